//! `stop_api`: stops the API server `start_api` started, like the seed's
//! `run_test_server.py stop`. It owns the command line; the work is
//! [`crate::stack::api::stop`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::stack::api as launcher;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Stop the Arvados API server start_api started",
    after_help = "Sends SIGTERM to the server recorded in the run directory (only when the pid \
file's identity check passes), SIGKILL after 5 s, then removes api.pid, api.port, \
and the state file and certificate when the run made them (RUN_DIR/cibox.manifest lists them). \
Nothing running is not an error. With \
ARVADOS_TEST_API_HOST set nothing is stopped: that server belongs to someone else.\n\n\
Exit status:\n  0  nothing left running\n  1  the server survived SIGKILL\n  2  usage error"
)]
struct StopApiArgs {
    /// Directory start_api used [default: $TMPDIR/cibox]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StopApiArgs>()?;
    let run_dir = args.run_dir.unwrap_or_else(crate::rundir::default_run_dir);
    launcher::stop(&run_dir)?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "stop_api",
        about: "Stop the Arvados API server start_api started",
        aliases: &[],
        command: StopApiArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "stop_api",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox"), ("ARVADOS_TEST_API_HOST", "a real API server to use instead: it is only reset")]],
        files: &[&[("RUN_DIR/api.pid, api.port, api.state.json", "the server's pid, port and records (RUN_DIR is --run-dir, default $TMPDIR/cibox)"), ("RUN_DIR/self-signed.pem, self-signed.key", "the TLS certificate and key")]],
    }
}
