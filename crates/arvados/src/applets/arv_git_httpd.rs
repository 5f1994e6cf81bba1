//! `arv-git-httpd`: git over HTTP behind Arvados permissions, compatible with Arvados'
//! arv-git-httpd. It owns only the command line (Go-style flags); the server is
//! [`crate::git`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::git::{self, Config};
use cibox_core::applet::{Applet, Invocation, Manual};
use cibox_runtime::httpd::LimitArgs;

#[derive(Parser, Debug)]
#[command(
    about = "Git smart HTTP server with Arvados token checks (arv-git-httpd compatible)",
    args_override_self = true,
    after_help = "Serves the repositories under -repo-root through `git http-backend`. The \
password of HTTP Basic auth is an Arvados API token; the repository is looked up by name with \
that token at the API server in ARVADOS_API_HOST (ARVADOS_API_HOST_INSECURE=true accepts a \
self-signed certificate), and a push needs a token that may update it. No credentials or a \
refused token: 401 with WWW-Authenticate; an unknown repository: 404.\n\n\
Exit status:\n  0  stopped by SIGTERM or SIGINT\n  1  cannot start (no API server given, no \
repo root, cannot listen, pid file in use)\n  2  usage error"
)]
struct ArvGitHttpdArgs {
    /// Address to listen on
    #[arg(long, value_name = "[HOST]:PORT", default_value = ":80")]
    address: String,
    /// Directory holding the repositories (UUID.git or NAME.git)
    #[arg(long, value_name = "DIR")]
    repo_root: PathBuf,
    /// Write our pid here, locked while running, removed on exit
    #[arg(long, value_name = "FILE")]
    pid: Option<PathBuf>,
    /// The git program [default: git in PATH]
    #[arg(long, value_name = "PATH")]
    git_command: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
    #[command(flatten)]
    log: cibox_runtime::logging::LogArgs,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let args: ArvGitHttpdArgs = inv.parse_go_flags()?;
    cibox_runtime::logging::init(args.log.log_format);
    git::run(Config {
        address: args.address,
        repo_root: args.repo_root,
        pid_file: args.pid,
        limits: args.limits.limits(),
        git_command: git::find_git(args.git_command.as_deref())?,
    })?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "arv-git-httpd",
        about: "Git smart HTTP server with Arvados token checks (arv-git-httpd compatible)",
        aliases: &[],
        command: ArvGitHttpdArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "arv-git-httpd",
        environment: &[cibox_runtime::logging::ENVIRONMENT, &[("ARVADOS_API_HOST, ARVADOS_API_HOST_INSECURE", "the API server that checks tokens and names repositories")]],
        files: &[&[("-repo-root DIR", "the repositories served, UUID.git or NAME.git"), ("-pid FILE", "the pid file, locked while the server runs and removed on exit")]],
    }
}
