//! `keepproxy`: a Keep proxy in front of a run's keepstores, compatible with Arvados'
//! keepproxy. It owns only the command line (Go-style flags); the proxy is
//! [`crate::keepproxy`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{CommandFactory, Parser};

use crate::keepproxy::{self, Config, DEFAULT_REPLICAS};
use crate::rundir;
use cibox_core::applet::{Applet, Invocation, Manual};
use cibox_runtime::httpd::LimitArgs;

#[derive(Parser, Debug)]
#[command(
    about = "Keep proxy in front of a run's keepstores (Arvados keepproxy compatible)",
    args_override_self = true,
    after_help = "Flags may be spelled Go style: -flag=value, -flag value, --flag=value.\n\n\
The keepstores come from the API server's keep_services/accessible when ARVADOS_API_HOST is set \
(asked with ARVADOS_API_TOKEN; ARVADOS_API_HOST_INSECURE=true accepts a self-signed \
certificate), else from ARVADOS_KEEP_SERVICES, else from the keepstores start_keep recorded in \
-run-dir. Client tokens are checked with the API server's users/current (remembered for a \
minute); writes also need an active user and a token of full scope. Without an API server a token is required but not checked.\n\n\
Exit status:\n  0  stopped by SIGTERM or SIGINT\n  1  cannot start (cannot listen, pid file in \
use)\n  2  usage error"
)]
struct KeepproxyArgs {
    /// Address to listen on
    #[arg(long, value_name = "[HOST]:PORT", default_value = ":25107")]
    listen: String,
    /// Write our pid here, locked while running, removed on exit
    #[arg(long, value_name = "FILE")]
    pid: Option<PathBuf>,
    /// Seconds one request to a keepstore may take
    #[arg(long, value_name = "SECONDS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=86400))]
    timeout: u64,
    /// Refuse GET and HEAD
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    no_get: bool,
    /// Refuse PUT and POST
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    no_put: bool,
    /// Copies to write when the client sends no X-Keep-Desired-Replicas
    #[arg(long, value_name = "N", default_value_t = DEFAULT_REPLICAS as u64,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    default_replicas: u64,
    /// (cibox) How many writes may hold a block (up to 64 MiB) in memory at once; further
    /// ones wait, their bodies unread
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=4096))]
    max_buffers: u64,
    /// (cibox) Where start_keep recorded its keepstores [default: $TMPDIR/cibox]
    #[arg(long, value_name = "DIR")]
    run_dir: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    log: cibox_runtime::logging::LogArgs,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let args: KeepproxyArgs = inv.parse_go_flags()?;
    cibox_runtime::logging::init(args.log.log_format);
    keepproxy::run(Config {
        listen: args.listen,
        pid_file: args.pid,
        limits: args.limits.limits(),
        timeout: Duration::from_secs(args.timeout),
        no_get: args.no_get,
        no_put: args.no_put,
        default_replicas: args.default_replicas as usize,
        max_buffers: args.max_buffers as usize,
        run_dir: args.run_dir.unwrap_or_else(rundir::default_run_dir),
    })?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "keepproxy",
        about: "Keep proxy in front of a run's keepstores (Arvados keepproxy compatible)",
        aliases: &[],
        command: KeepproxyArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "keepproxy",
        environment: &[cibox_runtime::logging::ENVIRONMENT, &[("ARVADOS_API_HOST, ARVADOS_API_TOKEN, ARVADOS_API_HOST_INSECURE", "the API server whose keep_services/accessible lists the keepstores and which checks client tokens"), ("ARVADOS_KEEP_SERVICES", "keepstore URLs when no API server is given")]],
        files: &[&[("-pid FILE", "the pid file, locked while the proxy runs and removed on exit")]],
    }
}
