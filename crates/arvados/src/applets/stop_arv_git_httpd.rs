//! `stop_arv-git-httpd`: stops the git server a start left in a run directory, like the seed's
//! `run_test_server.py stop_arv-git-httpd`. It owns the command line; the work is
//! [`crate::stack::git::stop`].

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::stack::git;
use crate::stack::services::RunDirArg;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Stop the git server start_arv-git-httpd started",
    after_help = "Sends SIGTERM to the process in arv-git-httpd.pid in the run directory, waits up to 5 s, \
then SIGKILL; a pid file whose process is gone, or whose pid now belongs to another process, is \
only cleaned up. Then arv-git-httpd.pid and arv-git-httpd.port are removed, with the \
repositories under RUN_DIR/git when the run made that directory (RUN_DIR/cibox.manifest lists \
it). Nothing running is not an error.\n\n\
Exit status:\n  0  nothing left running\n  1  it survived SIGKILL\n  2  usage error"
)]
struct StopArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopArgs>()?;
    git::stop(&args.run_dir.path())?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "stop_arv-git-httpd",
        about: "Stop the git server start_arv-git-httpd started",
        aliases: &[],
        command: StopArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "stop_arv-git-httpd",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/arv-git-httpd.pid, arv-git-httpd.port, RUN_DIR/git/", "read to find the server, then removed with the repositories")]],
    }
}
