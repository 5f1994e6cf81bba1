//! `cibox keepstore` against hostile and greedy clients over loopback: stalled bodies, unread
//! answers, full and read-only volumes, oversize bodies, and an attack list with a memory bound.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cibox_testsupport::keep::*;
use cibox_testsupport::procfs::rss_kib;

const DM_TOKEN: &str = "dm-token-for-hostile-tests";

/// A keepstore on a fresh volume with a data manager token and `extra` flags.
fn keepstore(tmp: &Path, extra: &[&str]) -> (Keepstore, PathBuf) {
    let vol = tmp.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    let token = tmp.join("dm");
    std::fs::write(&token, DM_TOKEN).unwrap();
    let mut args = vec![
        format!("-volume={}", vol.display()),
        format!("-data-manager-token-file={}", token.display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    (Keepstore::start(&args, tmp), vol)
}

/// Opens a PUT of `len` bytes and sends only `sent` of them.
fn stalled_put(port: u16, hash: &str, len: usize, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: {len}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&vec![b'x'; sent]).unwrap();
    stream
}

/// Reads whatever answer comes within `limit`: the status, or `None` when the connection was
/// closed without one (or nothing came).
fn answer_within(stream: &mut TcpStream, limit: Duration) -> Option<u16> {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
        }
    }
    let head = String::from_utf8_lossy(&buf);
    head.split_whitespace().nth(1)?.parse().ok()
}

fn quick_agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(8))
        .build()
}

#[test]
fn stalled_puts_release_their_buffers_and_get_408() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, vol) = keepstore(tmp.path(), &["-max-buffers=4", "-body-timeout=1"]);
    let hash = md5_hex(&vec![b'x'; 1000]);
    let mut stalled: Vec<TcpStream> = (0..8)
        .map(|_| stalled_put(ks.port, &hash, 1000, 1))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // Every buffer is held by a stalled PUT, yet a normal PUT gets through once they time out.
    let data = block(1, 50_000);
    let started = Instant::now();
    let answer = quick_agent()
        .put(&ks.url(&format!("/{}", md5_hex(&data))))
        .send_bytes(&data);
    assert!(answer.is_ok(), "a normal PUT stalled: {answer:?}");
    assert!(started.elapsed() < Duration::from_secs(6));
    for s in &mut stalled {
        let status = answer_within(s, Duration::from_secs(5));
        assert!(matches!(status, Some(408) | None), "{status:?}");
    }
    // No temporary file left by the abandoned PUTs.
    let left: Vec<_> = files_under(&vol)
        .into_iter()
        .filter(|f| f.contains("tmp."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn unread_gets_are_dropped_and_release_their_buffers() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, _vol) = keepstore(tmp.path(), &["-max-buffers=2", "-idle-timeout=1"]);
    let big = block(2, 32 << 20);
    let big_hash = md5_hex(&big);
    assert_eq!(put(&ks.url(&format!("/{big_hash}")), None, &big).0, 200);
    drop(big);
    let small = b"small".to_vec();
    let small_hash = md5_hex(&small);
    assert_eq!(put(&ks.url(&format!("/{small_hash}")), None, &small).0, 200);
    // Four GETs of 32 MiB whose answers nobody reads.
    let unread: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", ks.port)).unwrap();
            write!(s, "GET /{big_hash} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let answer = quick_agent().get(&ks.url(&format!("/{small_hash}"))).call();
    assert!(answer.is_ok(), "a normal GET stalled: {answer:?}");
    drop(unread);
}

#[test]
fn a_trash_list_over_16_mib_is_413() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, _vol) = keepstore(tmp.path(), &[]);
    // Announced with Content-Length: refused before the body is read.
    let mut s = TcpStream::connect(("127.0.0.1", ks.port)).unwrap();
    write!(
        s,
        "PUT /trash HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth2 {DM_TOKEN}\r\nContent-Length: {}\r\n\r\n",
        (16 << 20) + 10
    )
    .unwrap();
    let _ = s.write_all(&[b' '; 4096]);
    assert_eq!(answer_within(&mut s, Duration::from_secs(5)), Some(413));
    // Chunked, no length given: 413 as well.
    let mut s = TcpStream::connect(("127.0.0.1", ks.port)).unwrap();
    write!(
        s,
        "PUT /trash HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth2 {DM_TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b' '; 1 << 20];
    for _ in 0..17 {
        if write!(s, "{:x}\r\n", chunk.len()).is_err() || s.write_all(&chunk).is_err() {
            break;
        }
        let _ = s.write_all(b"\r\n");
    }
    assert_eq!(answer_within(&mut s, Duration::from_secs(5)), Some(413));
}

/// `cibox keepstore` in a private mount namespace whose volume is a small tmpfs (mounted
/// read-only when `readonly`), or `None` when mount namespaces are not available here.
fn keepstore_on_tmpfs(tmp: &Path, size: &str, readonly: bool) -> Option<Keepstore> {
    // As root a mount namespace alone; otherwise inside a user namespace, if allowed.
    let works = |flags: &[&str]| {
        Command::new("unshare")
            .args(flags)
            .arg("true")
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let Some(flags) = [&["-m"][..], &["-r", "-m"][..]]
        .into_iter()
        .find(|f| works(f))
    else {
        eprintln!("skipped: no mount namespaces here");
        return None;
    };
    let vol = tmp.join("tmpfs-vol");
    std::fs::create_dir_all(&vol).unwrap();
    let wrapper = tmp.join("in-namespace");
    let options = if readonly {
        format!("ro,size={size}")
    } else {
        format!("size={size}")
    };
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nmount -t tmpfs -o {options} cibox-test {vol} || exit 1\nexec {cibox} \"$@\"\n",
            vol = vol.display(),
            cibox = cibox_bin()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend([
        wrapper.display().to_string(),
        "keepstore".into(),
        format!("-volume={}", vol.display()),
        "-min-free-space=0".into(),
    ]);
    Some(Keepstore::start_program("unshare", &args, tmp))
}

#[test]
fn a_full_volume_is_507_and_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(ks) = keepstore_on_tmpfs(tmp.path(), "1m", false) else {
        return;
    };
    let data = block(5, 3 << 20);
    let (status, body) = put(&ks.url(&format!("/{}", md5_hex(&data))), None, &data);
    assert_eq!(status, 507, "{body}");
    assert!(body.to_lowercase().contains("space"), "{body}");
    // A small block still fits, and nothing of the big one stayed behind.
    let small = b"fits".to_vec();
    assert_eq!(
        put(&ks.url(&format!("/{}", md5_hex(&small))), None, &small).0,
        200
    );
    // The volume as the server sees it, inside its mount namespace.
    let inside = PathBuf::from(format!("/proc/{}/root", ks.pid()))
        .join(tmp.path().strip_prefix("/").unwrap())
        .join("tmpfs-vol");
    let files = files_under(&inside);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(!files[0].contains("tmp."), "{files:?}");
    let log = ks.log_text();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn a_read_only_file_system_is_507_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(ks) = keepstore_on_tmpfs(tmp.path(), "1m", true) else {
        return;
    };
    let data = b"read-only".to_vec();
    let (status, body) = put(&ks.url(&format!("/{}", md5_hex(&data))), None, &data);
    assert_eq!(status, 507, "{body}");
    assert!(body.to_lowercase().contains("read-only"), "{body}");
}

/// Sends `request` on a new connection (stopping early if the server closes it) and waits for
/// the answer: its status, or `None` when the connection was closed without one.
fn attack(port: u16, request: &[u8], limit: Duration) -> (Option<u16>, Duration) {
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    for piece in request.chunks(64 << 10) {
        if s.write_all(piece).is_err() {
            break;
        }
    }
    let status = answer_within(&mut s, limit);
    (status, started.elapsed())
}

/// Every hostile request gets a 4xx (or 408) or a closed connection within a time limit, the
/// server stays below a memory bound and still serves a normal PUT and GET.
#[test]
fn attack_list_is_refused_in_time_within_a_memory_bound() {
    const LIMIT: Duration = Duration::from_secs(5);
    /// Resident memory the server may have after the attack list (it starts near 10 MiB).
    const RSS_BOUND_KIB: u64 = 128 << 10;
    let tmp = tempfile::tempdir().unwrap();
    let (ks, vol) = keepstore(
        tmp.path(),
        &[
            "-header-timeout=1",
            "-body-timeout=1",
            "-idle-timeout=2",
            "-max-connections=48",
            "-never-delete=false",
        ],
    );
    let hash = md5_hex(b"foo");
    let long_hint = format!("/{hash}+3+A{}", "a".repeat(100_000));
    let big_header = format!(
        "GET /{hash} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(2 << 20)
    );
    let many_headers = format!(
        "GET /{hash} HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..5000)
            .map(|i| format!("X-{i}: v\r\n"))
            .collect::<String>()
    );
    let simple = |method: &str, path: &str| -> Vec<u8> {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    };
    let mut list: Vec<(String, Vec<u8>)> = vec![
        ("not a hash".into(), simple("GET", "/xyz")),
        ("uppercase hash".into(), simple("GET", &format!("/{}", hash.to_uppercase()))),
        ("bad size".into(), simple("GET", &format!("/{hash}+3x"))),
        ("bad hint".into(), simple("GET", &format!("/{hash}+3+a!"))),
        ("long hint".into(), simple("GET", &long_hint)),
        ("dot-dot".into(), simple("GET", "/../../../../etc/passwd")),
        ("encoded dot-dot".into(), simple("GET", "/%2e%2e/%2e%2e/etc/passwd")),
        ("dot-dot after a hash".into(), simple("GET", &format!("/{hash}/../../etc/passwd"))),
        ("prefix directory".into(), simple("GET", &format!("/{}/{hash}", &hash[..3]))),
        ("double slash".into(), simple("GET", "//etc/passwd")),
        ("NUL".into(), simple("GET", &format!("/{hash}%00"))),
        ("PUT dot-dot".into(), simple("PUT", "/../../../tmp/cibox-attack")),
        ("PUT traversal in hash".into(), simple("PUT", &format!("/{}..%2f..%2fx", &hash[..28]))),
        ("index dot-dot".into(), simple("GET", "/index/../../etc")),
        ("index not hex".into(), simple("GET", "/index/ZZ")),
        ("untrash dot-dot".into(), simple("PUT", "/untrash/../../x")),
        ("DELETE without token".into(), simple("DELETE", &format!("/{hash}"))),
        ("unknown method".into(), simple("BREW", "/")),
        ("trash without token".into(), simple("PUT", "/trash")),
        (
            "PUT over 64 MiB".into(),
            format!("PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", (64 << 20) + 1)
                .into_bytes(),
        ),
        (
            "PUT with a huge length".into(),
            format!("PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")
                .into_bytes(),
        ),
        (
            "PUT without a length".into(),
            format!("PUT /{hash} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n0\r\n\r\n")
                .into_bytes(),
        ),
        (
            "PUT length and hint disagree".into(),
            format!("PUT /{hash}+5 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nfoo").into_bytes(),
        ),
        (
            "PUT wrong content".into(),
            format!("PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbar").into_bytes(),
        ),
        ("2 MiB header".into(), big_header.into_bytes()),
        ("5000 headers".into(), many_headers.into_bytes()),
        ("binary garbage".into(), (0u8..=255).cycle().take(10_000).collect()),
        ("HTTP/0.9".into(), b"GET /\r\n\r\n".to_vec()),
        ("bad version".into(), b"GET / HTTP/9.9\r\n\r\n".to_vec()),
        ("slow header".into(), b"GET / HTTP/1.1\r\nHost:".to_vec()),
        (
            "slow body".into(),
            format!("PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nfo").into_bytes(),
        ),
    ];
    // Forty stalled PUTs of 64 MiB at once, each a few bytes in.
    let big_hash = md5_hex(b"never sent");
    let stalled: Vec<TcpStream> = (0..40)
        .map(|_| stalled_put(ks.port, &big_hash, 64 << 20, 3))
        .collect();
    list.push((
        "one more while 40 PUTs stall".into(),
        simple("GET", &format!("/{hash}")),
    ));
    let mut report = Vec::new();
    for (name, request) in &list {
        let (status, took) = attack(ks.port, request, LIMIT);
        report.push(format!("{name}: {status:?} in {took:.1?}"));
        assert!(
            took < LIMIT + Duration::from_secs(1),
            "{name}: took {took:?}"
        );
        match status {
            None => {}
            Some(code) => assert!(
                (400..500).contains(&code) || code == 503,
                "{name}: answered {code}"
            ),
        }
    }
    drop(stalled);
    // Many connections at once: past the cap they are refused, never queued for ever.
    let crowd: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", ks.port)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let refused = crowd
        .iter()
        .filter(|s| {
            let _ = s.set_nonblocking(true);
            let mut b = [0u8; 64];
            let mut reader: &TcpStream = s;
            !matches!(reader.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
        })
        .count();
    report.push(format!(
        "200 connections at a cap of 48: {refused} answered 503 or closed"
    ));
    assert!(refused >= 100, "{refused} of 200 refused");
    drop(crowd);
    std::thread::sleep(Duration::from_millis(300));

    let rss = rss_kib(ks.pid());
    eprintln!(
        "{}\nRSS after the attack list: {} KiB",
        report.join("\n"),
        rss
    );
    assert!(rss < RSS_BOUND_KIB, "RSS {rss} KiB");
    // Nothing was written outside the volume, nothing odd inside it.
    assert!(!Path::new("/tmp/cibox-attack").exists());
    let stray: Vec<_> = files_under(&vol);
    assert!(stray.is_empty(), "{stray:?}");
    // Still serving.
    let data = block(9, 100_000);
    let h = md5_hex(&data);
    assert_eq!(put(&ks.url(&format!("/{h}")), None, &data).0, 200);
    assert_eq!(get(&ks.url(&format!("/{h}")), None), (200, data));
}

/// Sends one byte of `stream`'s body every `every` until it is answered (or `limit` passes):
/// the answer's status.
fn trickle_until_answered(mut stream: TcpStream, every: Duration, limit: Duration) -> Option<u16> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = answer_within(&mut stream, every) {
            return Some(status);
        }
        if stream.write_all(b"x").is_err() {
            return answer_within(&mut stream, Duration::from_millis(200));
        }
    }
    None
}

#[test]
fn trickling_puts_leave_buffers_for_gets_and_are_cut_off_below_the_minimum_rate() {
    let tmp = tempfile::tempdir().unwrap();
    let (ks, _vol) = keepstore(
        tmp.path(),
        &[
            "-max-buffers=4",
            "-body-timeout=30",
            "-put-rate-grace=1",
            "-put-min-rate=1000",
        ],
    );
    let data = block(7, 10_000);
    let (status, locator) = put(&ks.url(&format!("/{}", md5_hex(&data))), None, &data);
    assert_eq!(status, 200, "{locator}");
    // More trickling PUTs than buffers, each sending a byte now and then, never stalling
    // long enough for the body timeout.
    let hash = md5_hex(&vec![b'x'; 100_000]);
    let tricklers: Vec<_> = (0..6)
        .map(|_| {
            let stream = stalled_put(ks.port, &hash, 100_000, 1);
            std::thread::spawn(move || {
                trickle_until_answered(stream, Duration::from_millis(300), Duration::from_secs(8))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A GET is answered at once: the PUTs cannot hold every buffer.
    let started = Instant::now();
    let (status, body) = get(&ks.url(&format!("/{locator}")), None);
    assert_eq!(status, 200);
    assert_eq!(body, data);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "GET took {:?}",
        started.elapsed()
    );
    // And the tricklers are cut off soon after their grace (408), freeing their buffers.
    let started = Instant::now();
    for t in tricklers {
        assert_eq!(t.join().unwrap(), Some(408));
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let more = block(8, 5_000);
    assert_eq!(
        put(&ks.url(&format!("/{}", md5_hex(&more))), None, &more).0,
        200
    );
}
