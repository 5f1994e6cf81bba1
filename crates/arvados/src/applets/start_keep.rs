//! `start_keep`: starts Keep block storage servers for a test run, like the seed's
//! `run_test_server.py start_keep`. It owns the command line and the output formats (service
//! URLs, `export` lines, JSON); starting, waiting and cleaning up are in
//! [`crate::stack::keep`].

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::rundir;
use crate::stack::keep::{self as launcher, StartOptions, Started};
use crate::stack::services::{exit_if_interrupted, sh_quote};
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Start Keep storage servers for a test run",
    after_help = "Stops servers left from an earlier start in the same run directory, then starts \
N keepstores, each with a fresh temporary volume and a free port on 127.0.0.1, and waits until \
every one accepts connections. The servers keep running after start_keep exits, their log lines \
going to its standard error prefixed [keepN] (so a pipe on that standard error stays open while they run: capture standard output only); stop them with stop_keep. The run directory holds \
keepN.pid, keepN.port, keepN.volume, keep.data_manager_token and, when signing, \
keep.blob_signing_key.\n\n\
When an API server runs in the same run directory (start_api), or ARVADOS_TEST_API_HOST names \
one, the servers are registered with it as its keep services (zzzzz-bi6l4-keepdiskNNNNNNN) and \
keep disks, replacing the old ones, so SDK clients find them.\n\n\
The servers are `cibox keepstore` unless --keepstore names another program (a path, or a name \
looked up in PATH); a keepstore found in PATH is not used unless asked for.\n\n\
The run directory is created mode 0700 if missing; one owned by another user or writable by \
others is refused. A start or stop in the same run directory waits for this one to finish. \
SIGINT, SIGTERM or SIGHUP during the start stop every server it started and remove its files.\n\n\
Exit status:\n  0  every server accepts connections\n  1  a server failed to start (all \
started ones are stopped again), or the run directory is refused\n  2  usage error\n  \
128+N  interrupted by signal N (everything it started is stopped and removed)"
)]
struct StartKeepArgs {
    /// How many servers to start
    #[arg(long = "num-keep-servers", value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    num_keep_servers: u64,
    /// Refuse GETs without a valid permission signature (signed with the test cluster's key,
    /// the one the API server signs manifests with, unless --blob-signing-key is given)
    #[arg(long)]
    keep_enforce_permissions: bool,
    /// Sign locators with the key in FILE
    #[arg(long, value_name = "FILE")]
    blob_signing_key: Option<PathBuf>,
    /// Directory for pid, port, volume, key and token files [default: $TMPDIR/cibox]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    /// Run this keepstore program instead of `cibox keepstore`
    #[arg(long, value_name = "PATH")]
    keepstore: Option<PathBuf>,
    /// Print `export VAR=value` lines for a shell to eval
    #[arg(long, conflicts_with = "json")]
    env: bool,
    /// Print a JSON description of the servers
    #[arg(long)]
    json: bool,
    /// More keepstore flags (after `--`), e.g. `-- -max-buffers=8`
    #[arg(last = true, value_name = "KEEPSTORE FLAGS")]
    keepstore_flags: Vec<OsString>,
}

fn env_lines(started: &Started) -> String {
    let mut vars = vec![
        ("ARVADOS_KEEP_SERVICES", started.keep_services()),
        (
            "KEEP_DATA_MANAGER_TOKEN",
            started.data_manager_token.clone(),
        ),
        ("KEEP_RUN_DIR", started.run_dir.display().to_string()),
    ];
    if let Some(key) = &started.blob_signing_key {
        vars.push(("KEEP_BLOB_SIGNING_KEY", key.clone()));
    }
    vars.iter()
        .map(|(k, v)| format!("export {k}={}\n", sh_quote(v)))
        .collect()
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StartKeepArgs>()?;
    let opts = StartOptions {
        servers: args.num_keep_servers as usize,
        enforce_permissions: args.keep_enforce_permissions,
        blob_signing_key: args.blob_signing_key,
        run_dir: args.run_dir.unwrap_or_else(rundir::default_run_dir),
        keepstore: args.keepstore,
        extra_args: args.keepstore_flags,
    };
    let started = match exit_if_interrupted("start_keep", launcher::start(&opts))? {
        Ok(started) => started,
        Err(status) => return Ok(status),
    };
    let out = if args.json {
        let mut value = serde_json::to_value(&started).context("describing the servers")?;
        value["keep_services"] = started.keep_services().into();
        format!("{value:#}\n")
    } else if args.env {
        env_lines(&started)
    } else {
        started
            .servers
            .iter()
            .map(|s| format!("{}\n", s.url))
            .collect()
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "start_keep",
        about: "Start Keep storage servers for a test run",
        aliases: &[],
        command: StartKeepArgs::command,
        run,
        passthrough: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("http://127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), "'it'\\''s'");
        assert_eq!(sh_quote(""), "''");
    }
}

inventory::submit! {
    Manual {
        applet: "start_keep",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/keepN.pid, keepN.port, keepN.volume", "one set per server (RUN_DIR is --run-dir, default $TMPDIR/cibox)"), ("RUN_DIR/keep.data_manager_token, RUN_DIR/keep.blob_signing_key", "the data manager token and, when signing, the key")]],
    }
}
