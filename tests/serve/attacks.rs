//! Hostile clients against `cibox serve`, through the binary over loopback: slow and stalled
//! requests, too many connections, traversal and malformed input. Every attack must be answered
//! with a 4xx/408 (or a closed connection) within a time limit, and the server must still
//! answer a normal request afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::*;

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
