//! Running one of the stack's HTTP daemons (keepproxy, the git server): pid file, listening
//! address in Go's `[HOST]:PORT` spelling, request log lines, and a graceful stop on SIGTERM or
//! SIGINT, served through [`crate::httpd`] (timeouts, connection cap). The daemon brings its
//! axum router; this module owns the process around it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::keepstore::{listen_addrs, log_requests, shutdown_signal};

/// Where and how a daemon serves.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The daemon's name, for log lines and thread names.
    pub name: &'static str,
    /// `[HOST]:PORT`; an empty host means every interface.
    pub listen: String,
    /// Pid file, written and locked while running.
    pub pid_file: Option<PathBuf>,
    /// Timeouts and the connection cap ([`crate::httpd`]).
    pub limits: crate::httpd::Limits,
}

/// Serves `router` until SIGTERM or SIGINT, then lets requests in flight finish (for a while)
/// and returns. Blocking: builds its own tokio runtime.
pub fn run(listen: &Listen, router: axum::Router) -> anyhow::Result<()> {
    let addrs = listen_addrs(&listen.listen)?;
    let _pid_lock = match &listen.pid_file {
        Some(path) => Some(crate::process::PidFileLock::acquire(path)?),
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(listen.name)
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(serve(listen, router, addrs));
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(
    listen: &Listen,
    router: axum::Router,
    addrs: Vec<SocketAddr>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen on {}", listen.listen))?;
    tracing::info!("{} listening on {}", listen.name, listener.local_addr()?);
    let app = router.layer(axum::middleware::from_fn(log_requests));
    let signalled = Arc::new(tokio::sync::Notify::new());
    crate::httpd::serve(
        app,
        vec![listener],
        listen.limits.clone(),
        shutdown_signal(signalled),
    )
    .await
    .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// The [`crate::httpd::Limits`] flags the stack's daemons share (Go-style spelling works too:
/// `-idle-timeout=5`).
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Seconds a client has to send a whole request head; past it the connection closes
    #[arg(long = "header-timeout", value_name = "SECS", default_value = "10",
          value_parser = crate::httpd::parse_seconds)]
    header_timeout: Duration,
    /// Seconds each piece of a request body may take to arrive; past it: 408 and close
    #[arg(long = "body-timeout", value_name = "SECS", default_value = "30",
          value_parser = crate::httpd::parse_seconds)]
    body_timeout: Duration,
    /// Seconds a connection may move no byte while no request is being handled
    #[arg(long = "idle-timeout", value_name = "SECS", default_value = "60",
          value_parser = crate::httpd::parse_seconds)]
    idle_timeout: Duration,
    /// Connections served at once; more are answered 503 and closed at once
    #[arg(long = "max-connections", value_name = "N", default_value = "512",
          value_parser = crate::httpd::parse_connection_cap)]
    max_connections: usize,
}

impl LimitArgs {
    /// The limits these flags ask for.
    pub fn limits(&self) -> crate::httpd::Limits {
        crate::httpd::Limits {
            header_read_timeout: self.header_timeout,
            body_read_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            ..crate::httpd::Limits::default()
        }
    }
}
