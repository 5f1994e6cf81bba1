//! The HTTP/1.1 front end every cibox server stands on: [`serve`] runs an axum [`Router`] on one
//! or more bound [`TcpListener`]s and protects it from slow or greedy clients with the bounds in
//! [`Limits`]:
//!
//! - **header read timeout**: a request head (request line and headers) must arrive in full
//!   within this time, counted from the moment the connection is ready for a request (a new
//!   connection, or a kept-alive one after its previous answer). Past it the connection is
//!   closed. This is hyper's own `header_read_timeout`.
//! - **body read timeout**: while a handler reads a request body, each piece of it must arrive
//!   within this time (tower-http's `TimeoutBody`); a stalled body ends the request with
//!   `408 Request Timeout` and `Connection: close`.
//! - **idle timeout**: a connection on which no byte has moved in either direction for this long,
//!   while no handler is working on one of its requests, is closed. This bounds kept-alive
//!   connections between requests (together with the header read timeout: the shorter wins) and
//!   clients that stop reading an answer.
//! - **connection cap**: at most this many connections are served at once. A connection past the
//!   cap gets a one-line `503 Service Unavailable` (written only if the socket takes it at once)
//!   and is closed on the spot; nothing waits in a queue of ours.
//! - **graceful shutdown**: when the `shutdown` future completes, no new connection is accepted,
//!   idle connections close, requests in progress may finish within the shutdown grace, and then
//!   whatever is left is dropped.
//!
//! [`serve_tls`] does the same over TLS (the Arvados API server's HTTPS): the handshake runs in
//! the connection's own task, holds one place under the connection cap, must finish within the
//! header read timeout, and is abandoned when shutdown starts; then the bounds above apply to
//! the decrypted connection as to a plain one (the idle timeout counting bytes on the socket).
//! A connection past the cap gets its 503 after a handshake of its own, bounded the same way;
//! only a few such refusals run at once, and past them a connection is closed unanswered.
//!
//! Handlers see the client and local addresses as `ConnectInfo<Peer>` (and the client address
//! alone as `ConnectInfo<SocketAddr>`, as `axum::serve` gives it). Accepted sockets get
//! `TCP_NODELAY`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;
use tower_http::timeout::{TimeoutBody, TimeoutError};

/// Default [`Limits::header_read_timeout`]: 10 seconds.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default [`Limits::body_read_timeout`]: 30 seconds.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`Limits::idle_timeout`]: 60 seconds.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default [`Limits::max_connections`]: 512.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default [`Limits::shutdown_grace`]: 3 seconds.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long an accept loop pauses after an accept error (such as running out of file
/// descriptors) before it tries again, so that the error does not spin a core.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The answer written to a connection past the cap, if the socket takes it at once.
const OVER_CAP_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Length: 25\r\n\r\ntoo many open connections";

/// The bounds [`serve`] enforces; see the module documentation for what each one means.
/// Every server exposes them as command-line options with these defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time for a whole request head to arrive (default 10 s).
    pub header_read_timeout: Duration,
    /// Time for each piece of a request body to arrive while a handler reads it (default 30 s).
    pub body_read_timeout: Duration,
    /// Time a connection may move no byte while no handler works for it (default 60 s).
    pub idle_timeout: Duration,
    /// Connections served at once; more are refused with 503 and closed (default 512).
    pub max_connections: usize,
    /// After shutdown starts, time left to requests in progress (default 3 s).
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Parses a command-line duration in seconds (`30`, `0.5`), for clap's `value_parser`: a
/// positive, finite number.
pub fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err(format!("{text:?}: the number of seconds must be above 0"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?}: too many seconds"))
}

/// Parses a command-line connection cap, for clap's `value_parser`: a whole number of at least 1.
pub fn parse_connection_cap(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("{text:?} is not a connection count of at least 1")),
    }
}

/// The options for [`Limits`] of every server (serve, keepstore, apiserver, keepproxy,
/// arv-git-httpd; the Go-style ones also take `-flag=value`), to flatten into their clap parsers: `-header-timeout`, `-body-timeout`, `-idle-timeout`, `-max-connections`.
#[derive(clap::Args, Debug, Clone)]
pub struct LimitArgs {
    /// Seconds for a whole request head to arrive (over TLS, the handshake first gets as
    /// long); slower connections are closed
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds)]
    pub header_timeout: Duration,
    /// Seconds each piece of a request body may take to arrive; a stalled body gets 408 (a
    /// stalled keepstore PUT gives its buffer back)
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    pub body_timeout: Duration,
    /// Seconds a connection may move no byte between requests, or while a client does not
    /// read its answer, before it is closed
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,
    /// Connections served at once (TLS handshakes included); more are answered 503 and closed
    #[arg(long, value_name = "N", default_value = "512", value_parser = parse_connection_cap)]
    pub max_connections: usize,
}

impl LimitArgs {
    /// The limits these options ask for, with the default shutdown grace.
    pub fn limits(&self) -> Limits {
        Limits {
            header_read_timeout: self.header_timeout,
            body_read_timeout: self.body_timeout,
            idle_timeout: self.idle_timeout,
            max_connections: self.max_connections,
            ..Limits::default()
        }
    }
}

/// SIGINT and SIGTERM, watched from the moment [`ShutdownSignals::install`] returns, so a
/// signal sent as soon as a server announces itself is a clean shutdown, not the default death.
pub struct ShutdownSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> io::Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for the first of them; its name.
    pub async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }

    /// The `shutdown` future for [`serve`] and [`serve_tls`]: the first signal, logged.
    pub async fn logged(mut self) {
        let name = self.recv().await;
        tracing::info!("{name}: finishing requests in flight, then exiting");
    }
}

/// Both ends of a connection, given to handlers as `ConnectInfo<Peer>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The client.
    pub remote: SocketAddr,
    /// Our end (IPv4-mapped addresses shown as IPv4), for URLs when a request names no host.
    pub local: SocketAddr,
}

impl Peer {
    /// The client's IP, IPv4-mapped addresses shown as IPv4.
    pub fn client_ip(&self) -> IpAddr {
        self.remote.ip().to_canonical()
    }
}

/// Serves `router` on every listener in `listeners` within `limits` until `shutdown` completes,
/// then shuts down gracefully (see the module documentation). Returns once every connection
/// has ended or the shutdown grace has run out.
pub async fn serve<F>(
    router: Router,
    listeners: Vec<TcpListener>,
    limits: Limits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(router, listeners, None, limits, shutdown).await
}

/// [`serve`] over TLS: every accepted connection first completes a handshake with `tls`, within
/// the header read timeout and counted against the connection cap (see the module
/// documentation).
pub async fn serve_tls<F>(
    router: Router,
    listeners: Vec<TcpListener>,
    tls: TlsAcceptor,
    limits: Limits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(router, listeners, Some(tls), limits, shutdown).await
}

async fn serve_with<F>(
    router: Router,
    listeners: Vec<TcpListener>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    if listeners.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no listening socket to serve on",
        ));
    }
    let limits = Arc::new(limits);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (accepted_tx, mut accepted_rx) = mpsc::channel::<Accepted>(64);
    let mut accept_loops = JoinSet::new();
    let refusal = tls.clone().map(|acceptor| TlsRefusal {
        acceptor,
        handshake_timeout: limits.header_read_timeout,
    });
    for listener in listeners {
        accept_loops.spawn(accept_loop(
            listener,
            permits.clone(),
            refusal.clone(),
            accepted_tx.clone(),
        ));
    }
    drop(accepted_tx);

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = accepted_rx.recv() => match accepted {
                Some(accepted) => {
                    connections.spawn(serve_connection(
                        accepted,
                        tls.clone(),
                        router.clone(),
                        limits.clone(),
                        stop_rx.clone(),
                    ));
                }
                None => break,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }

    accept_loops.shutdown().await;
    drop(accepted_rx);
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, drain)
        .await
        .is_err()
    {
        connections.shutdown().await;
    }
    Ok(())
}

/// An accepted connection within the cap.
struct Accepted {
    stream: TcpStream,
    peer: Peer,
    permit: OwnedSemaphorePermit,
}

/// How a TLS server refuses a connection past the cap: the 503 is only readable after a
/// handshake, so a few such handshakes (at most [`TLS_REFUSALS_AT_ONCE`] per listener, each
/// within the header read timeout) run beside the served connections; past that a connection
/// is closed without an answer.
#[derive(Clone)]
struct TlsRefusal {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

/// Handshakes at once, per listener, only to answer 503 to connections past the cap.
const TLS_REFUSALS_AT_ONCE: usize = 16;

impl TlsRefusal {
    async fn refuse(self, stream: TcpStream) {
        let handshake = self.acceptor.accept(stream);
        if let Ok(Ok(mut secured)) = tokio::time::timeout(self.handshake_timeout, handshake).await {
            let answer = async {
                secured.write_all(OVER_CAP_ANSWER).await?;
                secured.shutdown().await
            };
            let _ = tokio::time::timeout(self.handshake_timeout, answer).await;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    permits: Arc<Semaphore>,
    tls_refusal: Option<TlsRefusal>,
    out: mpsc::Sender<Accepted>,
) {
    // Dropped (and so aborted) with the loop when shutdown starts.
    let mut refusals = JoinSet::new();
    loop {
        while refusals.try_join_next().is_some() {}
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            match &tls_refusal {
                // Past the cap over TLS: answer after a bounded handshake, if few are running.
                Some(refusal) if refusals.len() < TLS_REFUSALS_AT_ONCE => {
                    refusals.spawn(refusal.clone().refuse(stream));
                }
                Some(_) => drop(stream),
                // Past the cap: answer only if the socket takes it now, then close.
                None => {
                    let _ = stream.try_write(OVER_CAP_ANSWER);
                    drop(stream);
                }
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let local = stream
            .local_addr()
            .map(|a| SocketAddr::new(a.ip().to_canonical(), a.port()))
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let peer = Peer { remote, local };
        if out
            .send(Accepted {
                stream,
                peer,
                permit,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// What a connection has done lately: when a byte last moved, and how many of its requests a
/// handler is working on.
struct Activity {
    origin: Instant,
    last_io_ms: AtomicU64,
    busy: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_io_ms.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_io_ms.load(Ordering::Relaxed)))
    }
}

/// Marks one request as being worked on until dropped.
struct BusyGuard(Arc<Activity>);

impl BusyGuard {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.busy.fetch_add(1, Ordering::SeqCst);
        BusyGuard(activity.clone())
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
        self.0.touch();
    }
}

/// A socket that records each read or write that moves bytes.
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Serves one accepted connection, after its TLS handshake when `tls` is given, and gives its
/// place under the cap back when it ends.
async fn serve_connection(
    accepted: Accepted,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Arc<Limits>,
    mut stop: watch::Receiver<bool>,
) {
    let Accepted {
        stream,
        peer,
        permit,
    } = accepted;
    let activity = Arc::new(Activity::new());
    let tracked = TrackedStream {
        inner: stream,
        activity: activity.clone(),
    };
    match tls {
        None => serve_http(tracked, activity, peer, router, &limits, stop).await,
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tracked));
            let secured = tokio::select! {
                done = handshake => match done {
                    Ok(Ok(secured)) => Some(secured),
                    Ok(Err(e)) => {
                        tracing::debug!("TLS handshake with {} failed: {e}", peer.remote);
                        None
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake with {} timed out", peer.remote);
                        None
                    }
                },
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            if let Some(secured) = secured {
                serve_http(secured, activity, peer, router, &limits, stop).await;
            }
        }
    }
    drop(permit);
}

/// Runs HTTP/1.1 on one connection (plain or decrypted) within `limits` until it ends, is idle
/// too long, or shutdown closes it.
async fn serve_http<S>(
    stream: S,
    activity: Arc<Activity>,
    peer: Peer,
    router: Router,
    limits: &Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(stream);
    let body_timeout = limits.body_read_timeout;
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let busy = BusyGuard::new(&service_activity);
        let router = router.clone();
        async move {
            let answer = handle(router, req, peer, body_timeout).await;
            drop(busy);
            Ok::<_, Infallible>(answer)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(conn);

    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        let quiet = activity.quiet_for();
        let idle_check = limits.idle_timeout.saturating_sub(quiet);
        tokio::select! {
            _ = conn.as_mut() => break,
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep(idle_check.max(Duration::from_millis(10))) => {
                if activity.busy.load(Ordering::SeqCst) == 0
                    && activity.quiet_for() >= limits.idle_timeout
                {
                    tracing::debug!("closing idle connection from {}", peer.remote);
                    break;
                }
            }
        }
    }
}

/// Runs one request through the router: connection info in, body read under its timeout, and
/// a stalled body answered with 408.
async fn handle(
    router: Router,
    req: Request<hyper::body::Incoming>,
    peer: Peer,
    body_timeout: Duration,
) -> Response<Body> {
    let stalled = Arc::new(AtomicBool::new(false));
    let flag = stalled.clone();
    let (mut parts, incoming) = req.into_parts();
    let body = TimeoutBody::new(body_timeout, incoming).map_err(move |e| {
        if e.is::<TimeoutError>() {
            flag.store(true, Ordering::SeqCst);
        }
        e
    });
    parts.extensions.insert(ConnectInfo(peer));
    parts.extensions.insert(ConnectInfo(peer.remote));
    let req = Request::from_parts(parts, Body::new(body));
    let answer = match router.oneshot(req).await {
        Ok(answer) => answer,
        Err(never) => match never {},
    };
    if stalled.load(Ordering::SeqCst) {
        return request_timeout();
    }
    answer
}

/// `408 Request Timeout`, closing the connection.
fn request_timeout() -> Response<Body> {
    let mut answer = crate::response::text(StatusCode::REQUEST_TIMEOUT, "request body timed out");
    answer
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_and_refuse() {
        assert_eq!(parse_seconds("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.25"), Ok(Duration::from_millis(250)));
        assert!(parse_seconds("0").is_err());
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("nan").is_err());
        assert!(parse_seconds("inf").is_err());
        assert!(parse_seconds("1e30").is_err());
        assert!(parse_seconds("ten").is_err());
    }

    #[test]
    fn connection_cap_parses_and_refuses() {
        assert_eq!(parse_connection_cap("8"), Ok(8));
        assert!(parse_connection_cap("0").is_err());
        assert!(parse_connection_cap("-3").is_err());
        assert!(parse_connection_cap("many").is_err());
    }
}
