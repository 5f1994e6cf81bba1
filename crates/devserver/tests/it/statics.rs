//! `/static/...`: ranges, HEAD, conditional requests, traversal, archive mode.

use crate::support::*;

fn server_with_payload(bytes: &[u8]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/update.gz"), bytes).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "TOP-SECRET").unwrap();
    Server::start_in(dir, &[], &[])
}

#[test]
fn range_and_head_downloads() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let s = server_with_payload(&payload);
    let url = s.url("/static/update.gz");

    let head = request("HEAD", &url, &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("300000"));
    assert_eq!(head.header("accept-ranges"), Some("bytes"));
    assert!(head.body.is_empty());
    let etag = head.header("etag").expect("etag").to_string();
    let modified = head
        .header("last-modified")
        .expect("last-modified")
        .to_string();

    let full = s.get("/static/update.gz");
    assert_eq!(full.body, payload);
    assert_eq!(full.header("content-type"), Some("application/gzip"));

    let part = get_with(&url, &[("Range", "bytes=1000-1999")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/300000"));
    assert_eq!(part.body, &payload[1000..2000]);
    let tail = get_with(&url, &[("Range", "bytes=-10")]);
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, &payload[payload.len() - 10..]);
    let bad = get_with(&url, &[("Range", "bytes=400000-")]);
    assert_eq!(bad.status, 416);

    assert_eq!(get_with(&url, &[("If-None-Match", &etag)]).status, 304);
    assert_eq!(
        get_with(&url, &[("If-Modified-Since", &modified)]).status,
        304
    );
    assert_eq!(
        get_with(&url, &[("If-None-Match", "\"other\"")]).status,
        200
    );
    // HEAD of the payload URL an update check names.
    let xml = s.omaha("/update", &v3_check(APPID, "1", "b"), &[]);
    let pkg = element(&xml, "package");
    let head = request(
        "HEAD",
        &format!("{}{}", element(&xml, "url")["codebase"], pkg["name"]),
        &[],
        b"",
    );
    assert_eq!(head.header("content-length"), Some(pkg["size"].as_str()));
}

#[test]
fn static_traversal_is_refused() {
    let s = server_with_payload(VECTOR);
    let outside = s.dir.path().join("secret.txt");
    std::os::unix::fs::symlink(&outside, s.static_dir().join("link-out")).unwrap();
    std::os::unix::fs::symlink(
        s.static_dir().join("update.gz"),
        s.static_dir().join("link-in"),
    )
    .unwrap();
    std::fs::create_dir(s.static_dir().join("sub")).unwrap();
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2fsecret.txt",
        "/static/sub/../../secret.txt",
        "/static/sub/%2e%2e/%2e%2e/secret.txt",
        "/static//etc/passwd",
        "/static/link-out",
        &format!("/static/{}", outside.display()),
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(s.port, req.as_bytes());
        assert!(matches!(status, 400 | 403 | 404), "{path}: {status} {text}");
        assert!(!text.contains("TOP-SECRET"), "{path}: {text}");
        assert!(!text.contains("root:"), "{path}: {text}");
    }
    assert_eq!(s.get("/static/link-out").status, 403);
    // A symlink that stays inside the root is followed.
    assert_eq!(s.get("/static/link-in").body, VECTOR);
    // Directories are not listed.
    assert_eq!(s.get("/static/sub").status, 404);
}

#[test]
fn archive_mode_link_handling() {
    let dir = tempfile::tempdir().unwrap();
    let archive = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(archive.path().join("update.gz"), VECTOR).unwrap();
    std::fs::create_dir(archive.path().join("build1")).unwrap();
    std::fs::write(archive.path().join("build1/update.gz"), b"build one\n").unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), archive.path().join("out")).unwrap();
    std::fs::write(elsewhere.path().join("secret"), "TOP-SECRET").unwrap();
    let st = dir.path().join("static");
    std::fs::create_dir_all(&st).unwrap();
    // A stale link is replaced.
    std::os::unix::fs::symlink(elsewhere.path(), st.join("archive")).unwrap();
    let archive_arg = archive.path().to_str().unwrap();
    let out = run_serve(dir.path(), &["--archive_dir", archive_arg, "--exit"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let canonical = archive.path().canonicalize().unwrap();
    assert_eq!(std::fs::read_link(st.join("archive")).unwrap(), canonical);
    assert!(String::from_utf8_lossy(&out.stderr).contains("stale"));
    // The right link is kept as it is (dashes work too).
    let out = run_serve(dir.path(), &["--archive-dir", archive_arg, "--exit"], &[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("stale"));

    let s = Server::start_in(dir, &["--archive_dir", archive_arg], &[]);
    let xml = s.omaha("/update", &v3_check(APPID, "1", "b"), &[]);
    let codebase = element(&xml, "url")["codebase"].clone();
    assert_eq!(codebase, s.url("/static/archive/"));
    assert_eq!(element(&xml, "package")["hash"], VECTOR_SHA1);
    assert_eq!(get_with(&format!("{codebase}update.gz"), &[]).body, VECTOR);
    let xml = s.omaha("/update/build1", &v3_check(APPID, "1", "b"), &[]);
    assert_eq!(
        element(&xml, "url")["codebase"],
        s.url("/static/archive/build1/")
    );
    assert_eq!(
        s.get("/static/archive/build1/update.gz").body,
        b"build one\n"
    );
    // The archive is a root of its own: a link out of it is refused.
    let r = s.get("/static/archive/out/secret");
    assert_eq!(r.status, 403);
    assert!(!r.text().contains("TOP-SECRET"));
    for path in [
        "/static/archive/%2e%2e/",
        "/static/archive/../archive/update.gz",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(raw(s.port, req.as_bytes()).0, 403, "{path}");
    }
    drop(s);

    // static/archive that is a real directory is not replaced.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static/archive")).unwrap();
    let out = run_serve(dir.path(), &["--archive_dir", archive_arg, "--exit"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a symbolic link"));
    // A missing archive dir is a clear error.
    let out = run_serve(
        dir.path(),
        &["--archive_dir", "/nonexistent/archive", "--exit"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must exist"));
}
