//! `start_arv-git-httpd`: starts `cibox arv-git-httpd` for a test run, like the seed's
//! `run_test_server.py start_arv-git-httpd`. It owns the command line and the output; the work
//! is [`crate::stack::git::start`].

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::stack::git;
use crate::stack::services::RunDirArg;
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Start the git server for a test run",
    after_help = "Needs the API server (ARVADOS_API_HOST, an admin ARVADOS_API_TOKEN, \
ARVADOS_API_HOST_INSECURE=true: what `start --auth admin` prints). Makes a bare repository with \
one commit under RUN_DIR/git/test for each repository the API server lists that has none yet, \
stops a git server left from an earlier start, starts `cibox arv-git-httpd` on a free port on \
127.0.0.1, waits until it accepts connections and writes arv-git-httpd.pid and \
arv-git-httpd.port. Prints http://127.0.0.1:PORT. Its log lines go to standard error prefixed \
[arv-git-httpd].\n\n\
Exit status:\n  0  the server accepts connections\n  1  no API server, or it failed to start\n  \
2  usage error"
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
    let started = git::start(&run_dir)?;
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
