//! Running one of the stack's HTTP daemons (keepproxy, the git server): pid file, listening
//! address in Go's `[HOST]:PORT` spelling, request log lines, and a graceful stop on SIGTERM or
//! SIGINT. The daemon brings its axum router; this module owns the process around it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::keepstore::{listen_addrs, log_requests, shutdown_signal};

/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Where and how a daemon serves.
#[derive(Debug, Clone)]
pub struct Listen {
    /// The daemon's name, for log lines and thread names.
    pub name: &'static str,
    /// `[HOST]:PORT`; an empty host means every interface.
    pub listen: String,
    /// Pid file, written and locked while running.
    pub pid_file: Option<PathBuf>,
}

/// Sets up log lines on stderr (`CIBOX_LOG` filters, default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CIBOX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
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
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let signalled = Arc::new(tokio::sync::Notify::new());
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal(signalled.clone()));
    tokio::select! {
        result = server => result.context("serving")?,
        _ = async {
            signalled.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; exiting anyway"),
    }
    tracing::info!("stopped");
    Ok(())
}
