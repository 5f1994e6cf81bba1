//! `start_api`: starts the API server for a test run, like the seed's
//! `run_test_server.py start` (the `start` action of the `run_test_server.py` link). It owns
//! the command line and the output; [`crate::stack::api`] does the work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::stack::api as launcher;
use crate::stack::services::exit_if_interrupted;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Start the Arvados API server for a test run",
    after_help = "Stops an API server left from an earlier start in the same run directory, makes \
a self-signed certificate for 127.0.0.1, localhost and 0.0.0.0 when there is none \
(self-signed.pem, self-signed.key), starts `cibox apiserver` on a free port of 127.0.0.1 and \
waits until it accepts connections. It starts from the built-in fixtures, or with --fixtures DIR \
from an Arvados checkout's services/api/test/fixtures/*.yml (users, tokens, collections, groups, \
links, logs; their small ERB is expanded, anything else in it refused naming the file and line); \
POST /database/reset restores the same set. Prints the host \
(127.0.0.1:PORT), or with --auth NAME the three export lines for that token fixture. The \
server's log lines go to standard error prefixed [api]; stop it with stop_api. The run \
directory holds api.pid, api.port, api.state.json and the certificate.\n\n\
With ARVADOS_TEST_API_HOST set, that server is used instead: it is only reset to fixtures.\n\n\
Exit status:\n  0  the server accepts connections\n  1  it failed to start (or the reset \
failed)\n  2  usage error, or an unknown --auth fixture\n  128+N  interrupted by signal N (130 \
for SIGINT): the server it started is stopped and its files removed"
)]
struct StartApiArgs {
    /// Print export lines for this token fixture (admin, active, spectator, ...)
    #[arg(long, value_name = "FIXTURE_NAME")]
    auth: Option<String>,
    /// Start from the fixture files of this Arvados checkout (its
    /// services/api/test/fixtures/*.yml) instead of the built-in fixtures
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// Directory for the pid, port, state and certificate files [default: $TMPDIR/cibox]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StartApiArgs>()?;
    // The fixture files are read here first, so a directory the server would refuse is one
    // line and nothing started.
    let tokens = match &args.fixtures {
        Some(dir) => Some(launcher::fixture_tokens(dir)?),
        None => None,
    };
    if let Some(name) = &args.auth {
        if let Err(e) = launcher::auth_exports("", name, tokens.as_deref()) {
            eprintln!("cibox start_api: {e:#}");
            return Ok(ExitCode::from(2));
        }
    }
    let run_dir = args.run_dir.unwrap_or_else(crate::rundir::default_run_dir);
    let started = match exit_if_interrupted(
        "start_api",
        launcher::start(&run_dir, args.fixtures.as_deref()),
    )? {
        Ok(started) => started,
        Err(status) => return Ok(status),
    };
    match &args.auth {
        Some(name) => print!(
            "{}",
            launcher::auth_exports(&started.host, name, tokens.as_deref())?
        ),
        None => println!("{}", started.host),
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "start_api",
        about: "Start the Arvados API server for a test run",
        aliases: &[],
        command: StartApiArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "start_api",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox"), ("ARVADOS_TEST_API_HOST", "a real API server to use instead: it is only reset")]],
        files: &[&[("RUN_DIR/api.pid, api.port, api.state.json", "the server's pid, port and records (RUN_DIR is --run-dir, default $TMPDIR/cibox)"), ("RUN_DIR/self-signed.pem, self-signed.key", "the TLS certificate and key")]],
    }
}
