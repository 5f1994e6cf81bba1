//! `stop_nginx`: stops the nginx a start left in a run directory, like the seed's
//! `run_test_server.py stop_nginx`. It owns the command line; the work is
//! [`crate::stack::nginx::stop`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::stack::nginx;
use crate::stack::services::RunDirArg;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Stop the nginx start_nginx started",
    after_help = "Sends SIGTERM to the process in nginx.pid in the run directory, waits up to 5 s, \
then SIGKILL, and likewise what is left of its process group holding nginx.pid (workers \
a killed master left); a pid file whose process is gone, or whose pid now belongs to another process, is \
only cleaned up. Then nginx.pid and nginx.port are removed with keepproxy-ssl.port and arv-git-httpd-ssl.port, and nginx.conf and the nginx/ \
directory when the run made them (RUN_DIR/cibox.manifest lists them). Nothing running is not an \
error.\n\n\
Exit status:\n  0  nothing left running\n  1  it survived SIGKILL, or nginx.pid is still held \
by a process not proven ours\n  2  usage error"
)]
struct StopArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopArgs>()?;
    nginx::stop(&args.run_dir.path())?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "stop_nginx",
        about: "Stop the nginx start_nginx started",
        aliases: &[],
        command: StopArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "stop_nginx",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/nginx.conf, nginx.pid, *-ssl.port", "read to find nginx, then removed")]],
    }
}
