//! `stop_all`: stops every service of a test run recorded in a run directory, in the reverse
//! of their start order. It owns the command line; the work is
//! [`crate::stack::all::stop_all`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::stack::all;
use crate::stack::services::RunDirArg;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Stop every service of a test run, in reverse start order",
    after_help = "Stops nginx, the git server, keepproxy, the keepstores and the API server \
recorded in the run directory, in that order, each as its own stop applet does (SIGTERM, SIGKILL after 5 s, the \
pid-reuse check, state files removed). A failure to stop one does not keep the others \
running.\n\n\
Exit status:\n  0  nothing left running\n  1  something survived SIGKILL, or the run directory \
cannot be read\n  2  usage error"
)]
struct StopAllArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopAllArgs>()?;
    all::stop_all(&args.run_dir.path())?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "stop_all",
        about: "Stop every service of a test run, in reverse start order",
        aliases: &[],
        command: StopAllArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "stop_all",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/", "every pid, port and state file of the run, removed as each service stops")]],
    }
}
