//! The later devserver's command line as test harnesses use it (`--static_dir`, `--pidfile`,
//! `--portfile`, `--logfile`, `--port 0`, waiting on the port file) and xbuddy paths.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Waits until `path` holds a whole line (the harness's loop).
fn wait_for_file(path: &std::path::Path, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if text.ends_with('\n') {
                return text.trim().to_string();
            }
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("server exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn harness_flags_pid_port_and_log_files() {
    let work = tempfile::tempdir().unwrap();
    let static_dir = work.path().join("static-here");
    std::fs::create_dir(&static_dir).unwrap();
    std::fs::write(static_dir.join("update.gz"), VECTOR).unwrap();
    let (pidfile, portfile, logfile) = (
        work.path().join("ds.pid"),
        work.path().join("ds.port"),
        work.path().join("ds.log"),
    );
    let mut child = Command::new(cibox_bin())
        .arg("serve")
        .args(["--host", "127.0.0.1", "--port", "0", "--static_dir"])
        .arg(&static_dir)
        .arg("--pidfile")
        .arg(&pidfile)
        .arg("--portfile")
        .arg(&portfile)
        .arg("--logfile")
        .arg(&logfile)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let port: u16 = wait_for_file(&portfile, &mut child).parse().unwrap();
    assert_eq!(wait_for_file(&pidfile, &mut child), child.id().to_string());
    let r = get_with(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(r.status, 200);
    // The static dir given is the static root.
    let r = get_with(&format!("http://127.0.0.1:{port}/static/update.gz"), &[]);
    assert_eq!(r.body, VECTOR);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(!pidfile.exists() && !portfile.exists());
    let log = std::fs::read_to_string(&logfile).unwrap();
    assert!(log.contains("listening on http://127.0.0.1:"), "{log}");
    assert!(log.contains("GET /static/update.gz"), "{log}");
    // Nothing else was written beside the static dir.
    let mut names: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ds.log", "static-here"]);
}

#[test]
fn xbuddy_local_builds() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("static");
    for (v, payload) in [
        ("R9-100.0.0", &b"old payload\n"[..]),
        ("R10-200.0.0", VECTOR),
    ] {
        let b = st.join("amd64-generic").join(v);
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(b.join("update.gz"), payload).unwrap();
        std::fs::write(
            b.join("chromiumos_test_image.bin"),
            format!("test image {v}"),
        )
        .unwrap();
    }
    let s = Server::start_in(dir, &[], &[]);
    let r = s.get("/xbuddy/local/amd64-generic/latest/test");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "test image R10-200.0.0");
    let r = s.get("/xbuddy/amd64-generic/R9-100.0.0/full_payload");
    assert_eq!(r.body, b"old payload\n");
    assert_eq!(
        s.get("/xbuddy/local/amd64-generic/latest/full_payload?relative_path=true")
            .text(),
        "amd64-generic/R10-200.0.0/update.gz"
    );
    assert_eq!(
        s.get("/xbuddy/local/amd64-generic/latest?return_dir=true")
            .text(),
        s.url("/static/amd64-generic/R10-200.0.0")
    );
    let update_url = s
        .get("/xbuddy/local/amd64-generic/latest/full_payload?for_update=true")
        .text();
    assert_eq!(update_url, s.url("/update/amd64-generic/R10-200.0.0"));
    // The update URL answers with that build's payload.
    let path = update_url.strip_prefix(&s.url("")).unwrap();
    let xml = s.omaha(path, &v3_check(APPID, "1.0.0", "amd64-generic"), &[]);
    assert_eq!(
        element(&xml, "url")["codebase"],
        s.url("/static/amd64-generic/R10-200.0.0/")
    );
    assert_eq!(element(&xml, "package")["hash"], VECTOR_SHA1);
    // Errors: missing artifact, remote builds, escapes.
    let r = s.get("/xbuddy/amd64-generic/R9-100.0.0/stateful");
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(r.text().contains("stateful.tgz"), "{}", r.text());
    assert_eq!(s.get("/xbuddy/remote/amd64-generic/latest").status, 501);
    let (status, text) = raw(
        s.port,
        b"GET /xbuddy/%2e%2e/etc/test HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 400, "{text}");
    assert_eq!(s.get("/xbuddy/nothing/latest/test").status, 404);
}

#[test]
fn bad_payload_metadata_is_a_one_line_startup_error() {
    let work = tempfile::tempdir().unwrap();
    let meta = work.path().join("meta");
    std::fs::create_dir(&meta).unwrap();
    std::fs::write(
        meta.join("evil.json"),
        r#"{"appid":"dlc","name":"../../etc/passwd","target_version":"1"}"#,
    )
    .unwrap();
    let portfile = work.path().join("port");
    let out = run_serve(
        &work.path().join("data"),
        &[
            "--payload-metadata",
            meta.to_str().unwrap(),
            "--portfile",
            portfile.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.trim_end().lines().last().unwrap_or("");
    assert!(
        last.contains("evil.json") && last.contains("../../etc/passwd"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!portfile.exists());
}
