//! The one server start-up: the process around an HTTP server. A runtime of its own with the
//! pid file locked for as long as it runs ([`block_on_locked`]), the listening socket (Go's
//! `[HOST]:PORT` spelling, [`listen_addrs`], or serve's dual-stack default, [`bind`]), request
//! log lines ([`log_requests`]), and a graceful stop on SIGTERM or SIGINT, served through
//! [`crate::httpd`] (timeouts, connection cap). [`run`] puts them together for a daemon that
//! brings only its axum router (keepproxy, the git server); keepstore, the API server and
//! serve use the pieces.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;

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
    block_on_locked(
        listen.name,
        listen.pid_file.as_deref(),
        None,
        serve(listen, router, addrs),
    )
}

/// Runs a daemon's serving future on a runtime of its own (threads named `name`, `workers`
/// worker threads or tokio's default), with its pid file locked for as long as it runs; once
/// the future ends, tasks still running get a moment, then go.
pub fn block_on_locked(
    name: &str,
    pid_file: Option<&Path>,
    workers: Option<usize>,
    serving: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let _pid_lock = pid_file
        .map(crate::process::PidFileLock::acquire)
        .transpose()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name(name);
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    let runtime = builder.build().context("starting the runtime")?;
    let result = runtime.block_on(serving);
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(
    listen: &Listen,
    router: axum::Router,
    addrs: Vec<SocketAddr>,
) -> anyhow::Result<()> {
    let signals = crate::httpd::ShutdownSignals::install().context("watching for signals")?;
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen on {}", listen.listen))?;
    tracing::info!("{} listening on {}", listen.name, listener.local_addr()?);
    let app = router.layer(axum::middleware::from_fn(log_requests));
    crate::httpd::serve(app, vec![listener], listen.limits.clone(), signals.logged())
        .await
        .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

/// Logs each request: peer, method, path, status and time.
pub async fn log_requests(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let response = next.run(req).await;
    tracing::info!(
        "{peer} {method} {path} {} {:.3}ms",
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    response
}

/// Turns `[HOST]:PORT` into addresses to bind (an empty host: every IPv4 interface).
pub fn listen_addrs(listen: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let (host, port) = listen
        .rsplit_once(':')
        .with_context(|| format!("-listen {listen:?}: expected [HOST]:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("-listen {listen:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    use std::net::ToSocketAddrs;
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("-listen {listen:?}: cannot resolve {host:?}"))?
        .collect();
    anyhow::ensure!(!addrs.is_empty(), "-listen {listen:?}: no address");
    Ok(addrs)
}

/// Binds serve's listening socket: `host` if given, else `::` dual-stack (IPv6-only off), else
/// 0.0.0.0 where IPv6 is unavailable.
pub async fn bind(host: Option<IpAddr>, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(host) = host {
        let addr = SocketAddr::new(host, port);
        return tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"));
    }
    match bind_dual_stack(port) {
        Ok(l) => Ok(l),
        Err(_) => {
            let addr = SocketAddr::from(([0, 0, 0, 0], port));
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}"))
        }
    }
}

fn bind_dual_stack(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    use std::os::fd::AsRawFd;
    let socket = tokio::net::TcpSocket::new_v6()?;
    socket.set_reuseaddr(true)?;
    let off: libc::c_int = 0;
    // SAFETY: setsockopt on a valid socket with a pointer to a live c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IPV6,
            libc::IPV6_V6ONLY,
            (&off as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port)))?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(
            listen_addrs(":25107").unwrap(),
            vec!["0.0.0.0:25107".parse().unwrap()]
        );
        assert_eq!(
            listen_addrs("127.0.0.1:0").unwrap(),
            vec!["127.0.0.1:0".parse().unwrap()]
        );
        assert_eq!(
            listen_addrs("[::1]:80").unwrap(),
            vec!["[::1]:80".parse().unwrap()]
        );
        assert!(listen_addrs("25107").is_err());
        assert!(listen_addrs(":x").is_err());
    }
}
