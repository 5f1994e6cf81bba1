//! `start_nginx`: starts the machine's nginx with TLS in front of keepproxy and the git
//! server, like the seed's `run_test_server.py start_nginx`. It owns the command line and the
//! output; the work is [`crate::stack::nginx::start`].

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::stack::nginx;
use crate::stack::services::{exit_if_interrupted, RunDirArg};
use cibox_core::applet::{Applet, Invocation, Manual};

#[derive(Parser, Debug)]
#[command(
    about = "Start nginx with TLS in front of keepproxy and the git server",
    after_help = "Writes RUN_DIR/nginx.conf and runs the machine's nginx (PATH, then /usr/sbin, \
/sbin, /usr/local/sbin) in the foreground under cibox's log relay (lines prefixed [nginx]), with \
the run directory's certificate (self-signed.pem, self-signed.key), bodies up to 64 MiB, every \
request header passed on, and its pid file, temp files and lock inside the run directory. It \
fronts whichever of keepproxy and arv-git-httpd the run directory records, each on a free TLS \
port on 127.0.0.1, waits until they accept, and writes keepproxy-ssl.port and \
arv-git-httpd-ssl.port. Prints one `NAME https://127.0.0.1:PORT` line per service. Every path \
in nginx.conf is quoted; a run directory with a control character (a newline), a '$' or a name \
that is not UTF-8 is refused, and so are an nginx.conf or nginx/ the run did not make. SIGINT, \
SIGTERM or SIGHUP during the start stop nginx and remove what the start made.\n\n\
Exit status:\n  0  nginx accepts connections\n  1  no nginx, no certificate, nothing to front, \
a run directory nginx cannot take, or nginx failed to start\n  2  usage error\n  128+N  \
interrupted by signal N (130 for SIGINT)"
)]
struct StartNginxArgs {
    #[command(flatten)]
    run_dir: RunDirArg,
    /// Print a JSON description
    #[arg(long)]
    json: bool,
    /// Run this nginx program instead of the one found in PATH or the sbin directories
    #[arg(long, value_name = "PATH")]
    nginx: Option<PathBuf>,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<StartNginxArgs>()?;
    let run_dir = args.run_dir.path();
    let started =
        match exit_if_interrupted("start_nginx", nginx::start(&run_dir, args.nginx.as_deref()))? {
            Ok(started) => started,
            Err(status) => return Ok(status),
        };
    if args.json {
        let value = serde_json::to_value(&started).context("describing nginx")?;
        println!("{value:#}");
    } else {
        for (name, port) in [
            ("keepproxy-ssl", started.keepproxy_ssl_port),
            ("arv-git-httpd-ssl", started.git_ssl_port),
        ] {
            if let Some(port) = port {
                println!("{name} https://127.0.0.1:{port}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "start_nginx",
        about: "Start nginx with TLS in front of keepproxy and the git server",
        aliases: &[],
        command: StartNginxArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "start_nginx",
        environment: &[&[("TMPDIR", "the default run directory is $TMPDIR/cibox")]],
        files: &[&[("RUN_DIR/nginx.conf, RUN_DIR/nginx.pid", "the generated configuration and the pid file"), ("RUN_DIR/keepproxy-ssl.port, arv-git-httpd-ssl.port", "the TLS ports nginx listens on"), ("RUN_DIR/self-signed.pem, self-signed.key", "the certificate it serves")]],
    }
}
