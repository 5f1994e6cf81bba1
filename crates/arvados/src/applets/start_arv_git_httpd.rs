//! `start_arv-git-httpd`: starts `cibox arv-git-httpd` for a test run, like the seed's
//! `run_test_server.py start_arv-git-httpd`. It owns the command line and the output; the work
//! is [`crate::stack::git::start`].

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::stack::git;
use crate::stack::services::{exit_if_interrupted, RunDirArg};
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Start the git server for a test run",
    after_help = "Needs the API server (ARVADOS_API_HOST, an admin ARVADOS_API_TOKEN, \
ARVADOS_API_HOST_INSECURE=true: what `start --auth admin` prints). Holding the run directory's \
lock, it stops a git server left from an earlier start, makes a bare repository with one commit \
under RUN_DIR/git/test for each repository the API server lists that has none yet (each built \
in a temporary directory and renamed into place; a RUN_DIR/git this run did not make is \
refused), starts `cibox arv-git-httpd` on a free port on 127.0.0.1, waits until it accepts \
connections and writes arv-git-httpd.pid and arv-git-httpd.port. Prints http://127.0.0.1:PORT. \
Its log lines go to standard error prefixed [arv-git-httpd]. SIGINT, SIGTERM or SIGHUP during \
the start stop the server and remove the repositories it made.\n\n\
Exit status:\n  0  the server accepts connections\n  1  no API server, a RUN_DIR/git not \
made by cibox, or it failed to start\n  2  usage error\n  128+N  interrupted by signal N \
(130 for SIGINT)"
)]
struct StartGitArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
    /// Print a JSON description
    #[arg(long)]
    json: bool,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StartGitArgs>()?;
    let run_dir = args.run_dir.path();
    let started = match exit_if_interrupted("start_arv-git-httpd", git::start(&run_dir))? {
        Ok(started) => started,
        Err(status) => return Ok(status),
    };
    if args.json {
        let value = serde_json::to_value(&started).context("describing the server")?;
        println!("{value:#}");
    } else {
        println!("http://127.0.0.1:{}", started.port);
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "start_arv-git-httpd",
        about: "Start the git server for a test run",
        aliases: &[],
        command: StartGitArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "start_arv-git-httpd",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/arv-git-httpd.pid, arv-git-httpd.port", "the server's pid and port"), ("RUN_DIR/git/", "the fixture repositories it makes")]],
    }
}
