//! `stop_keep_proxy`: stops the keepproxy a start left in a run directory, like the seed's
//! `run_test_server.py stop_keep_proxy`. It owns the command line; the work is
//! [`crate::stack::keepproxy::stop`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::stack::keepproxy;
use crate::stack::services::RunDirArg;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Stop the Keep proxy start_keep_proxy started",
    after_help = "Sends SIGTERM to the process in keepproxy.pid in the run directory, waits up to 5 s, \
then SIGKILL; a pid file whose process is gone, or whose pid now belongs to another process, is \
only cleaned up. Then keepproxy.pid and keepproxy.port are removed. Nothing running is not an error.\n\n\
Exit status:\n  0  nothing left running\n  1  it survived SIGKILL\n  2  usage error"
)]
struct StopArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopArgs>()?;
    keepproxy::stop(&args.run_dir.path())?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "stop_keep_proxy",
        about: "Stop the Keep proxy start_keep_proxy started",
        aliases: &[],
        command: StopArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "stop_keep_proxy",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/keepproxy.pid, keepproxy.port", "read to find the proxy, then removed")]],
    }
}
