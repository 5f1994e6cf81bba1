//! `start_keep_proxy`: starts `cibox keepproxy` in front of the run's keepstores, like the
//! seed's `run_test_server.py start_keep_proxy`. It owns the command line and the output; the
//! work is [`crate::stack::keepproxy::start`].

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::stack::keepproxy;
use crate::stack::services::{exit_if_interrupted, sh_quote, RunDirArg};
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Start a Keep proxy for a test run",
    after_help = "Stops a keepproxy left from an earlier start in the same run directory, starts \
`cibox keepproxy` on a free port on 127.0.0.1 in front of the keepstores (see keepproxy --help \
for where it finds them), waits until it accepts connections and writes keepproxy.pid and \
keepproxy.port in the run directory. When ARVADOS_API_HOST is set it registers the proxy with \
the API server as the `proxy` keep service, replacing older ones (ARVADOS_API_TOKEN must be an \
admin token). Prints the proxy's URL, or with --env an `export ARVADOS_KEEP_PROXY=...` line. Its \
log lines go to standard error prefixed [keepproxy]. SIGINT, SIGTERM or SIGHUP during the start \
stop the proxy and remove its files.\n\n\
Exit status:\n  0  the proxy accepts connections\n  1  it failed to start or to register (it \
is stopped again)\n  2  usage error\n  128+N  interrupted by signal N (130 for SIGINT)"
)]
struct StartKeepProxyArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
    /// Print `export ARVADOS_KEEP_PROXY=...` for a shell to eval
    #[arg(long, conflicts_with = "json")]
    env: bool,
    /// Print a JSON description
    #[arg(long)]
    json: bool,
    /// More keepproxy flags (after `--`), e.g. `-- -no-get`
    #[arg(last = true, value_name = "KEEPPROXY FLAGS")]
    keepproxy_flags: Vec<OsString>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StartKeepProxyArgs>()?;
    let run_dir = args.run_dir.path();
    let started = match exit_if_interrupted(
        "start_keep_proxy",
        keepproxy::start(&run_dir, &args.keepproxy_flags),
    )? {
        Ok(started) => started,
        Err(status) => return Ok(status),
    };
    if args.json {
        let value = serde_json::to_value(&started).context("describing the proxy")?;
        println!("{value:#}");
    } else if args.env {
        println!("export ARVADOS_KEEP_PROXY={}", sh_quote(&started.url));
    } else {
        println!("{}", started.url);
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "start_keep_proxy",
        about: "Start a Keep proxy for a test run",
        aliases: &[],
        command: StartKeepProxyArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "start_keep_proxy",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/keepproxy.pid, keepproxy.port", "the proxy's pid and port (RUN_DIR is --run-dir, default $TMPDIR/cibox)")]],
    }
}
