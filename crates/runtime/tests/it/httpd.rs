//! The shared HTTP front end (`cibox_runtime::httpd`) over real loopback sockets: stalled headers,
//! stalled bodies, idle keep-alive connections, clients that stop reading, the connection cap,
//! several listeners and graceful shutdown; and the same bounds over TLS (`httpd::serve_tls`),
//! with a stalled handshake and the cap's 503 readable by a TLS client.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::routing::{get, post};
use axum::Router;
use cibox_runtime::httpd::{self, Limits, Peer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Short limits so that every bound shows within a test's time.
fn quick_limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(400),
        body_read_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_millis(400),
        max_connections: 16,
        shutdown_grace: Duration::from_secs(2),
    }
}

/// Streams `n` MiB of zeros.
fn big_body(n: usize) -> Body {
    let chunks = (0..n).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 1 << 20])));
    Body::from_stream(futures_util::stream::iter(chunks))
}

fn app() -> Router {
    Router::new()
        .route("/", get(|| async { "hello\n" }))
        .route(
            "/peer",
            get(|ConnectInfo(peer): ConnectInfo<Peer>| async move {
                format!("{} {}\n", peer.client_ip(), peer.local)
            }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                "slow\n"
            }),
        )
        .route("/big", get(|| async { big_body(64) }))
}

/// A client connection, plain or TLS.
trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

struct Server {
    addrs: Vec<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    /// For a TLS server: a client that trusts its certificate (the temp dir holding it).
    tls: Option<(tokio_rustls::TlsConnector, tempfile::TempDir)>,
}

impl Server {
    async fn start(limits: Limits, listeners: usize) -> Server {
        let mut bound = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..listeners {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            addrs.push(l.local_addr().unwrap());
            bound.push(l);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(httpd::serve(app(), bound, limits, async move {
            let _ = stopped.await;
        }));
        Server {
            addrs,
            stop: Some(stop),
            task,
            tls: None,
        }
    }

    /// A server on one listener over TLS, with a fresh self-signed certificate.
    async fn start_tls(limits: Limits) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        cibox_runtime::tls::write_self_signed(&cert, &key).unwrap();
        let server_config = cibox_runtime::tls::server_config(&cert, &key).unwrap();
        let client_config = cibox_runtime::tls::client_config_trusting(&cert).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addrs = vec![listener.local_addr().unwrap()];
        let (stop, stopped) = oneshot::channel::<()>();
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config));
        let task = tokio::spawn(httpd::serve_tls(
            app(),
            vec![listener],
            acceptor,
            limits,
            async move {
                let _ = stopped.await;
            },
        ));
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client_config));
        Server {
            addrs,
            stop: Some(stop),
            task,
            tls: Some((connector, dir)),
        }
    }

    /// A connection ready for HTTP: plain, or TLS with the handshake done.
    async fn connect(&self) -> Box<dyn Connection> {
        let tcp = TcpStream::connect(self.addr()).await.unwrap();
        let Some((connector, _)) = &self.tls else {
            return Box::new(tcp);
        };
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let secured = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
            .await
            .expect("a handshake within 5 s")
            .expect("a TLS handshake");
        Box::new(secured)
    }

    /// The whole answer to `GET path` on a connection of its own.
    async fn fetch(&self, path: &str) -> String {
        let mut s = self.connect().await;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let got = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
        String::from_utf8_lossy(&got).to_string()
    }

    fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    async fn stop(mut self) -> Duration {
        let started = Instant::now();
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops within 10 s")
            .unwrap()
            .unwrap();
        started.elapsed()
    }
}

/// Reads until the peer closes (or resets) the connection, within `limit`; returns what came.
async fn read_to_close<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: Duration,
) -> Result<Vec<u8>, &'static str> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return Err("connection still open"),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads one answer head and its `Content-Length` body from a kept-alive connection.
async fn read_one_answer<S: AsyncRead + Unpin>(stream: &mut S) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "connection closed before the answer was complete");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

async fn get_ok(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let got = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    String::from_utf8_lossy(&got).to_string()
}

/// The bounds on one connection, checked the same way over plain TCP and over TLS.
mod per_connection {
    use super::*;

    async fn stalled_headers_close_the_connection(server: Server) {
        let mut s = server.connect().await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let started = Instant::now();
        let got = read_to_close(&mut s, Duration::from_secs(3)).await.unwrap();
        assert!(
            got.is_empty() || String::from_utf8_lossy(&got).starts_with("HTTP/1.1 408"),
            "unexpected answer {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(server.fetch("/").await.contains("hello"));
        server.stop().await;
    }

    async fn stalled_body_gets_408(server: Server) {
        let mut s = server.connect().await;
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            .await
            .unwrap();
        let got = read_to_close(&mut s, Duration::from_secs(3)).await.unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "answer: {text:?}");
        assert!(text.to_ascii_lowercase().contains("connection: close"));
        server.stop().await;
    }

    async fn complete_body_is_served(server: Server) {
        let mut s = server.connect().await;
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let text = read_one_answer(&mut s).await;
        assert!(text.starts_with("HTTP/1.1 200"), "answer: {text:?}");
        assert!(text.ends_with("hello"));
        server.stop().await;
    }

    /// The idle timeout is long here: the header read timeout alone must close the connection.
    fn header_limits() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(30),
            ..quick_limits()
        }
    }

    /// The header read timeout is long here: the idle timeout alone must close the connection.
    fn idle_limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            ..quick_limits()
        }
    }

    async fn idle_keep_alive_connection_is_closed(server: Server) {
        let mut s = server.connect().await;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_one_answer(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer:?}");
        let started = Instant::now();
        let rest = read_to_close(&mut s, Duration::from_secs(3)).await.unwrap();
        assert!(rest.is_empty());
        assert!(started.elapsed() >= Duration::from_millis(300));
        server.stop().await;
    }

    /// One `#[tokio::test]` over plain TCP and one over TLS for each check above.
    macro_rules! plain_and_tls {
        ($($check:ident($limits:expr);)*) => {
            mod plain {
                use super::*;
                $(#[tokio::test]
                async fn $check() {
                    super::$check(Server::start($limits, 1).await).await;
                })*
            }
            mod tls {
                use super::*;
                $(#[tokio::test]
                async fn $check() {
                    super::$check(Server::start_tls($limits).await).await;
                })*
            }
        };
    }

    plain_and_tls! {
        stalled_headers_close_the_connection(header_limits());
        stalled_body_gets_408(quick_limits());
        complete_body_is_served(quick_limits());
        idle_keep_alive_connection_is_closed(idle_limits());
    }
}

#[tokio::test]
async fn slow_handler_is_not_cut_by_the_idle_timeout() {
    let server = Server::start(quick_limits(), 1).await;
    // /slow takes longer than the idle timeout without moving a byte.
    assert!(get_ok(server.addr(), "/slow").await.contains("slow"));
    server.stop().await;
}

#[tokio::test]
async fn client_that_stops_reading_is_dropped() {
    let limits = Limits {
        max_connections: 1,
        ..quick_limits()
    };
    let server = Server::start(limits, 1).await;
    let mut reader = TcpStream::connect(server.addr()).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // Never read: the answer stalls once the socket buffers are full. The idle timeout must
    // free the only connection slot for the next client.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = get_ok(server.addr(), "/").await;
        if text.contains("hello") {
            break;
        }
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 503"),
            "answer: {text:?}"
        );
        assert!(
            Instant::now() < deadline,
            "the stalled reader still holds the slot"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(reader);
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_cap_are_refused_at_once() {
    let limits = Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..quick_limits()
    };
    let server = Server::start(limits, 1).await;
    let first = TcpStream::connect(server.addr()).await.unwrap();
    let _second = TcpStream::connect(server.addr()).await.unwrap();
    // Let the server take both.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let mut over = TcpStream::connect(server.addr()).await.unwrap();
        let started = Instant::now();
        let got = read_to_close(&mut over, Duration::from_secs(2))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || text.starts_with("HTTP/1.1 503"),
            "answer past the cap: {text:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if get_ok(server.addr(), "/").await.contains("hello") {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot is not reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

#[tokio::test]
async fn every_listener_serves_and_peer_is_known() {
    let server = Server::start(quick_limits(), 2).await;
    for addr in &server.addrs {
        let text = get_ok(*addr, "/peer").await;
        assert!(
            text.contains(&format!("127.0.0.1 {addr}")),
            "answer on {addr}: {text:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_finish_and_closes_idle_connections() {
    let limits = Limits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        ..quick_limits()
    };
    let server = Server::start(limits, 1).await;
    let addr = server.addr();
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let in_flight = tokio::spawn(async move { get_ok(addr, "/slow").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let took = server.stop().await;
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    assert!(in_flight.await.unwrap().contains("slow"));
    let rest = read_to_close(&mut idle, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn no_listener_is_an_error() {
    let err = httpd::serve(app(), Vec::new(), Limits::default(), async {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no listening socket"));
}

#[tokio::test]
async fn tls_peer_is_known() {
    let server = Server::start_tls(quick_limits()).await;
    let answer = server.fetch("/peer").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer:?}");
    assert!(answer.contains(&format!("127.0.0.1 {}", server.addr())));
    server.stop().await;
}

#[tokio::test]
async fn tls_stalled_handshake_is_closed() {
    let server = Server::start_tls(quick_limits()).await;
    // One client says nothing, another starts a ClientHello record and stops.
    let mut silent = TcpStream::connect(server.addr()).await.unwrap();
    let mut partial = TcpStream::connect(server.addr()).await.unwrap();
    partial
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    for stream in [&mut silent, &mut partial] {
        let got = read_to_close(stream, Duration::from_secs(3)).await.unwrap();
        assert!(!got.starts_with(b"HTTP"), "{got:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(300));
    // A real client still gets through.
    assert!(server.fetch("/").await.ends_with("hello\n"));
    server.stop().await;
}

#[tokio::test]
async fn tls_handshakes_count_against_the_cap_and_extra_clients_get_503() {
    let limits = Limits {
        max_connections: 2,
        header_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(30),
        ..quick_limits()
    };
    let server = Server::start_tls(limits).await;
    // Two clients that never finish a handshake fill the cap.
    let mut holders = Vec::new();
    for _ in 0..2 {
        holders.push(TcpStream::connect(server.addr()).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..3 {
        let mut over = server.connect().await;
        let got = read_to_close(&mut over, Duration::from_secs(2))
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&got);
        assert!(
            text.starts_with("HTTP/1.1 503"),
            "answer past the cap: {text:?}"
        );
    }
    // Their handshakes time out and free the places.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if server.fetch("/").await.contains("hello") {
            break;
        }
        assert!(Instant::now() < deadline, "the places are never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(holders);
    server.stop().await;
}
