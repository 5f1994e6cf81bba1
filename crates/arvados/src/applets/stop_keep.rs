//! `stop_keep`: stops the Keep servers `start_keep` started in a run directory, like the
//! seed's `run_test_server.py stop_keep`, and removes their volumes and state files. It owns
//! the command line; the work is [`crate::stack::keep::stop`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::rundir;
use crate::stack::keep as launcher;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Stop the Keep storage servers start_keep started",
    after_help = "Sends SIGTERM to every server recorded in the run directory at once, waits up \
to 5 s, then SIGKILL. Only a process proven to be a server is signalled: it holds its pid file's \
lock and has the file open, started before the file was written, names the file on its command \
line, and is not init, stop_keep itself or its parent. Any other process a pid file names is left \
alone (a line on standard error says so) and the file is only cleaned up. Then the volumes, \
keepN.pid/.port/.volume, and the key and token files and temporary files an interrupted start \
left when the run made them (RUN_DIR/cibox.manifest) are removed. A run directory owned by another user or writable by others is refused. Nothing \
running is not an error.\n\n\
Exit status:\n  0  nothing left running\n  1  a server survived SIGKILL, or the run directory \
is refused or cannot be read\n  2  usage error"
)]
struct StopKeepArgs {
    /// Directory start_keep used [default: $TMPDIR/cibox]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopKeepArgs>()?;
    let run_dir = args.run_dir.unwrap_or_else(rundir::default_run_dir);
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
