//! Hostile clients against `cibox serve`, through the binary over loopback: slow and stalled
//! requests, too many connections, traversal and malformed input. Every attack must be answered
//! with a 4xx/408 (or a closed connection) within a time limit, and the server must still
//! answer a normal request afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;
use cibox_testsupport::procfs::rss_kib;

/// Connects and sends `head` (possibly incomplete), then waits for the server to answer or
/// close within `limit`; returns the status (0: closed without an answer) and how long it took.
fn stall(port: u16, head: &[u8], limit: Duration) -> (u16, Duration) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    let started = Instant::now();
    let _ = s.write_all(head);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "no answer and no close within {limit:?} (after {:?}): {e}",
                started.elapsed()
            ),
        }
    }
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, started.elapsed())
}

#[test]
fn help_documents_the_connection_limits() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_serve(dir.path(), &["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    for (option, default) in [
        ("--header-timeout", "[default: 10]"),
        ("--body-timeout", "[default: 30]"),
        ("--idle-timeout", "[default: 60]"),
        ("--max-connections", "[default: 512]"),
        ("--download-timeout", "[default: 1800]"),
        ("--download-max-bytes", "[default: 17179869184]"),
    ] {
        let at = help
            .find(option)
            .unwrap_or_else(|| panic!("{option} in {help}"));
        let rest = &help[at..];
        let next = rest[2..].find("\n  -").map_or(rest.len(), |n| n + 2);
        assert!(
            rest[..next].contains(default),
            "{option}: {}",
            &rest[..next]
        );
    }
}

#[test]
fn slow_headers_and_stalled_bodies_are_cut_off() {
    let server = Server::start(&[
        "--header-timeout",
        "0.5",
        "--body-timeout",
        "0.5",
        "--idle-timeout",
        "0.5",
    ]);
    let limit = Duration::from_secs(5);
    let (status, took) = stall(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n", limit);
    assert!(status == 0 || status == 408, "slow headers: {status}");
    assert!(
        took >= Duration::from_millis(400),
        "closed too early: {took:?}"
    );

    let (status, _) = stall(
        server.port,
        b"POST /api/setnextupdate/10.0.0.1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
        limit,
    );
    assert!(status == 0 || status == 408, "stalled body: {status}");

    let (status, _) = stall(server.port, b"", limit);
    assert_eq!(status, 0, "a silent connection is closed");
    assert_eq!(server.get("/").status, 200);
}

#[test]
fn hostile_factory_configs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.py");
    std::fs::write(
        &deep,
        format!("config = {}1{}", "[".repeat(20_000), "]".repeat(20_000)),
    )
    .unwrap();
    let data = dir.path().join("data");
    for (config, expected) in [
        (deep.as_path(), "nested deeper than"),
        (Path::new("/dev/zero"), "larger than"),
    ] {
        let out = run_serve(
            &data,
            &[
                "--factory_config",
                config.to_str().unwrap(),
                "--validate_factory_config",
            ],
            &[],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{config:?}: {stderr}");
        assert!(stderr.contains(expected), "{config:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// What an attack may get: these statuses, or the connection closed without an answer.
fn answered_or_closed(status: u16, allowed: &[u16]) -> bool {
    status == 0 || allowed.contains(&status)
}

/// The server's memory bound after the whole attack list (the release build stays far
/// below; this is the debug build the tests run).
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[test]
fn attack_list_is_answered_in_time_and_the_server_survives() {
    let server = Server::start(&[
        "--header-timeout",
        "1",
        "--body-timeout",
        "1",
        "--idle-timeout",
        "2",
        "--max-connections",
        "64",
    ]);
    let port = server.port;
    let limit = Duration::from_secs(5);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let long_uri = format!(
        "GET /static/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a/".repeat(50_000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    const CLIENT_ERROR: &[u16] = &[400, 403, 404, 405, 408, 413, 414, 416, 431];
    let attacks: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("dot-dot", b"GET /static/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("encoded dot-dot", b"GET /static/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("encoded slash", b"GET /static/..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("double slash", b"GET /static//etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("backslash", b"GET /static/..%5c..%5cetc%5cpasswd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("NUL", b"GET /static/update.gz%00.txt HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("bad escape", b"GET /static/%zz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("invalid UTF-8", b"GET /static/%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("absolute URI", b"GET http://evil/static/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("fileinfo dot-dot", b"GET /api/fileinfo/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("fileinfo encoded", b"GET /api/fileinfo/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("controlfiles build", b"GET /controlfiles?build=../../etc HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("controlfiles path", b"GET /controlfiles?build=t/b&control_path=/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("latestbuild", b"GET /latestbuild?target=.. HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("download dot-dot", b"GET /download?archive_url=file:///etc/../.. HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("download scheme", b"GET /download?archive_url=ftp://x/t/b HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("huge header", big_header.into_bytes(), CLIENT_ERROR),
        ("long URI", long_uri.into_bytes(), CLIENT_ERROR),
        ("many headers", many_headers.into_bytes(), CLIENT_ERROR),
        ("huge declared body", b"POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n<request".to_vec(), CLIENT_ERROR),
        ("stalled body", b"POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab".to_vec(), CLIENT_ERROR),
        ("slow headers", b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec(), CLIENT_ERROR),
        ("silence", Vec::new(), CLIENT_ERROR),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("bad version", b"GET / HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), &[400, 505]),
        ("no colon", b"GET / HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("bad chunk", b"POST /update HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("CL and TE", b"POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /static/../../etc/passwd HTTP/1.1\r\n\r\n".to_vec(), CLIENT_ERROR),
        ("two lengths", b"POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd".to_vec(), CLIENT_ERROR),
        ("bad XML", b"POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n<request>".to_vec(), CLIENT_ERROR),
        ("bad range", b"GET /static/update.gz HTTP/1.1\r\nHost: x\r\nRange: bytes=99999-\r\n\r\n".to_vec(), CLIENT_ERROR),
    ];
    // All at once, each on its own connection: every one must be settled within the limit.
    let results: Vec<_> = std::thread::scope(|scope| {
        let running: Vec<_> = attacks
            .iter()
            .map(|(name, request, allowed)| {
                scope.spawn(move || (*name, *allowed, stall(port, request, limit)))
            })
            .collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (name, allowed, (status, took)) in results {
        // The list with its answers, for the record (shown with --no-capture).
        eprintln!("attack {name:>20}: {status:3} in {took:.2?}");
        assert!(
            answered_or_closed(status, allowed),
            "{name}: answered {status} after {took:?}"
        );
        assert!(took < limit, "{name}: took {took:?}");
    }

    // Many connections at once: the cap refuses the excess promptly, then frees up. On a
    // server of its own whose header timeout outlasts the check, so that the held
    // connections still hold their places however slowly a loaded machine opens them.
    let capped = Server::start(&["--header-timeout", "60", "--max-connections", "64"]);
    let mut held = Vec::new();
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", capped.port)) {
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let (status, took) = stall(capped.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", limit);
    assert!(status == 0 || status == 503, "past the cap: {status}");
    assert!(took < Duration::from_secs(2), "past the cap took {took:?}");
    drop(held);

    // Both still serving, the attacked one with bounded memory.
    for port in [capped.port, port] {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, text) = raw(
                port,
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            if status == 200 {
                assert!(!text.is_empty());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no normal answer after the attacks: {status}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let rss = rss_kib(server.pid());
    eprintln!("RSS after the attack list: {rss} KiB");
    assert!(rss < RSS_BOUND_KIB, "RSS {rss} KiB after the attack list");
    assert_eq!(server.get("/static/update.gz").body, VECTOR);
}

#[test]
fn sigterm_lets_a_request_in_progress_finish() {
    let base = "/a/tgt/R7";
    let mut routes = std::collections::HashMap::new();
    routes.insert(
        format!("{base}/update.gz"),
        Reply::Body(VECTOR.to_vec(), Duration::from_millis(1200)),
    );
    let origin = Origin::start(routes);
    let server = Server::start(&[]);
    let url = server.url(&format!(
        "/download?archive_url=http://127.0.0.1:{}{base}",
        origin.port
    ));
    let in_progress = std::thread::spawn(move || get_with(&url, &[]));
    std::thread::sleep(Duration::from_millis(400));
    let (status, dir) = server.terminate();
    assert!(status.success(), "{status:?}");
    let r = in_progress.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(dir.path().join("static/tgt/R7/update.gz").is_file());
}
