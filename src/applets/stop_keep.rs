//! `stop_keep`: stops the Keep servers `start_keep` started in a run directory, like the
//! seed's `run_test_server.py stop_keep`, and removes their volumes and state files. It owns
//! the command line; the work is [`crate::arvados::launcher::stop`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::applet::{Applet, Invocation, Manual};
use crate::arvados::launcher;

#[derive(Parser, Debug)]
#[command(
    about = "Stop the Keep storage servers start_keep started",
    after_help = "Sends SIGTERM to every server recorded in the run directory at once, waits up \
to 5 s, then SIGKILL. A pid file whose process is gone, or whose pid now belongs to a process \
that is not the server (pid reuse: the pid file's lock and the process start time are checked), \
is only cleaned up: no signal is sent. Then the volumes, keepN.pid/.port/.volume and the key \
and token files are removed. Nothing running is not an error.\n\n\
Exit status:\n  0  nothing left running\n  1  a server survived SIGKILL, or the run directory \
cannot be read\n  2  usage error"
)]
struct StopKeepArgs {
    /// Directory start_keep used [default: $TMPDIR/cibox]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopKeepArgs>()?;
    let run_dir = args.run_dir.unwrap_or_else(launcher::default_run_dir);
    launcher::stop(&run_dir)?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "stop_keep",
        about: "Stop the Keep storage servers start_keep started",
        aliases: &[],
        command: StopKeepArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "stop_keep",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/keepN.pid, keepN.port, keepN.volume, keep.*", "read to find the servers, then removed with the volumes")]],
    }
}
