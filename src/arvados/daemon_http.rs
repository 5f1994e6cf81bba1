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

pub use crate::httpd::LimitArgs;
