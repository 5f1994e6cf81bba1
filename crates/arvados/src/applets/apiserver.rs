//! `apiserver`: the built-in Arvados-compatible API server for test runs, over HTTPS (what
//! `start_api` runs, as `keepstore` is what `start_keep` runs). It owns the command line
//! (Go-style flags like keepstore's); [`crate::api::run`] serves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::api::{self, Config};
use cibox_core::applet::{Applet, Invocation, Manual};
use cibox_runtime::httpd;

#[derive(Parser, Debug)]
#[command(
    about = "Arvados-compatible API server for test runs (HTTPS)",
    args_override_self = true,
    after_help = "A test server for users, API tokens, keep services and disks, collections and \
repositories, starting from Arvados' test fixtures (tokens admin, active, spectator, ...). Any \
other resource answers a JSON error (404 unknown, 501 not implemented). POST /database/reset \
(admin token) restores the fixtures. Usually started by start_api (run_test_server.py start).\n\n\
Flags may be spelled Go style: -flag=value, -flag value, --flag=value.\n\n\
Exit status:\n  0  stopped by SIGTERM or SIGINT\n  1  cannot start (certificate or key unreadable, \
pid file in use, cannot listen, state file unwritable, fixture files unreadable)\n  2  usage error"
)]
struct ApiServerArgs {
    /// Address to listen on
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Write our pid here, locked while running, removed on exit
    #[arg(long, value_name = "FILE")]
    pid: Option<PathBuf>,
    /// TLS certificate (PEM)
    #[arg(long, value_name = "FILE")]
    tls_cert: PathBuf,
    /// TLS private key (PEM)
    #[arg(long, value_name = "FILE")]
    tls_key: PathBuf,
    /// Save the records here on every change (and start from it when it exists)
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// The keepstores' blob signing key file: manifests are checked and signed with it when
    /// it exists
    #[arg(long, value_name = "FILE")]
    blob_signing_key_file: Option<PathBuf>,
    /// Start from the fixture files of this Arvados checkout (or its
    /// services/api/test/fixtures directory) instead of the built-in fixtures
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    #[command(flatten)]
    http: httpd::LimitArgs,

    #[command(flatten)]
    log: cibox_runtime::logging::LogArgs,
}

/// The command line, with `-read-timeout` (the flag's earlier name) accepted for
/// `-header-timeout`.
fn command() -> clap::Command {
    ApiServerArgs::command().mut_arg("header_timeout", |flag| flag.alias("read-timeout"))
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let args: ApiServerArgs = inv.parse_go_flags()?;
    cibox_runtime::logging::init(args.log.log_format);
    api::run(Config {
        listen: args.listen,
        pid_file: args.pid,
        cert: args.tls_cert,
        key: args.tls_key,
        state_file: args.state,
        blob_signing_key_file: args.blob_signing_key_file,
        fixtures: args.fixtures,
        http: args.http.limits(),
    })?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "apiserver",
        about: "Arvados-compatible API server for test runs (HTTPS)",
        aliases: &[],
        command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "apiserver",
        environment: &[cibox_runtime::logging::ENVIRONMENT],
        files: &[&[("-state FILE", "the records, saved on every change"), ("-pid FILE", "the pid file, locked while the server runs and removed on exit"), ("-tls-cert FILE, -tls-key FILE", "the certificate and key it serves HTTPS with")]],
    }
}
