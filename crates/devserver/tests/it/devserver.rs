//! The later devserver's command line as test harnesses use it (`--static_dir`, `--pidfile`,
//! `--portfile`, `--logfile`, `--port 0`, waiting on the port file), xbuddy paths, and the
//! devserver's 2014 integration test (its checks that need no network) reproduced against
//! the binary run through a link named `devserver.py`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

/// Waits until `path` holds a number (the harness's loop; the file is written whole).
fn wait_for_file(path: &std::path::Path, child: &mut std::process::Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return text;
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
    // The bare pid, without a newline.
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
        "amd64-generic/R10-200.0.0"
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

/// The 2014 integration test's update request (Omaha 3.0, a developer build).
const UPDATE_REQUEST_2014: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<request version="ChromeOSUpdateEngine-0.1.0.0" updaterversion="ChromeOSUpdateEngine-0.1.0.0" protocol="3.0" ismachine="1">
    <os version="Indy" platform="Chrome OS" sp="0.11.254.2011_03_09_1814_i686"></os>
    <app appid="{DEV-BUILD}" version="11.254.2011_03_09_1814" lang="en-US" track="developer-build" board="x86-generic" hardware_class="BETA DVT" delta_okay="true">
        <updatecheck></updatecheck>
    </app>
</request>
"#;

/// The devserver started as the 2014 test starts it: `devserver.py devserver.py
/// --static_dir D --pidfile P --portfile F --port 0 --logfile L` (plus `--host 127.0.0.1`:
/// tests listen on loopback only), waited for through the port file and `/check_health`.
struct Harness2014 {
    child: std::process::Child,
    url: String,
    pid: String,
    data: tempfile::TempDir,
    _work: tempfile::TempDir,
}

impl Harness2014 {
    fn start() -> Harness2014 {
        let data = tempfile::tempdir().unwrap();
        for label in ["devserver", "new_update-test/the-new-update"] {
            std::fs::create_dir_all(data.path().join(label)).unwrap();
            std::fs::write(data.path().join(label).join("update.gz"), VECTOR).unwrap();
        }
        let work = tempfile::tempdir().unwrap();
        let link = work.path().join("devserver.py");
        std::os::unix::fs::symlink(cibox_bin(), &link).unwrap();
        let (pidfile, portfile, logfile) = (
            work.path().join("x-devserver-pid"),
            work.path().join("x-devserver-port"),
            work.path().join("x-devserver-log"),
        );
        let mut child = Command::new(&link)
            .arg("devserver.py")
            .arg("--static_dir")
            .arg(data.path())
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--portfile")
            .arg(&portfile)
            .args(["--port", "0", "--host", "127.0.0.1", "--logfile"])
            .arg(&logfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let url = loop {
            // int(open(portfile).read()), then /check_health.
            let port = std::fs::read_to_string(&portfile)
                .ok()
                .and_then(|t| t.trim().parse::<u16>().ok());
            if let Some(port) = port {
                let url = format!("http://127.0.0.1:{port}");
                if get_with(&format!("{url}/check_health"), &[]).status == 200 {
                    break url;
                }
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("devserver.py exited: {status}");
            }
            assert!(Instant::now() < deadline, "devserver.py did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        Harness2014 {
            child,
            url,
            pid,
            data,
            _work: work,
        }
    }

    fn rpc(&self, path: &str) -> Resp {
        get_with(&format!("{}/{path}", self.url), &[])
    }

    fn post(&self, path: &str, data: &str) -> Resp {
        request(
            "POST",
            &format!("{}/{path}", self.url),
            &[],
            data.as_bytes(),
        )
    }

    /// VerifyHandleUpdate: the update answer names `static/LABEL/update.gz` (with the test
    /// payload's hash when `hash` is given); returns the payload URL.
    fn verify_handle_update(&self, label: &str, hash: Option<&str>) -> String {
        let r = self.post(&format!("update/{label}"), UPDATE_REQUEST_2014);
        assert_eq!(r.status, 200, "{}", r.text());
        let xml = r.text();
        assert_eq!(
            element(&xml, "url")["codebase"],
            format!("{}/static/{label}/", self.url),
            "{xml}"
        );
        let package = element(&xml, "package");
        assert_eq!(package["name"], "update.gz");
        if let Some(hash) = hash {
            assert_eq!(package["hash"], hash);
        }
        format!("{}/static/{label}/update.gz", self.url)
    }
}

impl Drop for Harness2014 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn devserver_2014_integration_test_passes_run_as_devserver_py() {
    let h = Harness2014::start();
    // testPidFile: the pid alone (pid.isdigit()), of a running process whose command line
    // names devserver.py.
    assert!(
        !h.pid.is_empty() && h.pid.bytes().all(|b| b.is_ascii_digit()),
        "{:?}",
        h.pid
    );
    assert_eq!(h.pid, h.child.id().to_string());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", h.pid)).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).contains("devserver.py"));

    // testHandleUpdateV3.
    let url = h.verify_handle_update("devserver", Some(VECTOR_SHA1));
    assert_eq!(get_with(&url, &[]).body, VECTOR);

    // testApiBadSetNextUpdateRequest, testApiBadSetNextUpdateURL, testApiBadHostInfoURL:
    // each an HTTP error.
    for bad in [
        "api/setnextupdate/127.0.0.1",
        "api/setnextupdate",
        "api/hostinfo",
    ] {
        let status = h.rpc(bad).status;
        assert!(status >= 400, "{bad}: {status}");
    }

    // testXBuddyLocalAlias.
    let build_id = "x86-generic/R32-9999.0.0-a1";
    let build_dir = h.data.path().join(build_id);
    std::fs::create_dir_all(&build_dir).unwrap();
    for (item, file, data) in [
        ("full_payload", "update.gz", "TEST UPDATE"),
        ("test", "chromiumos_test_image.bin", "TEST IMAGE"),
        ("stateful", "stateful.tgz", "STATEFUL STUFFS"),
    ] {
        std::fs::write(build_dir.join(file), data).unwrap();
        let path = format!("xbuddy/{build_id}/{item}");
        assert_eq!(h.rpc(&path).text(), data, "{path}");
        assert_eq!(
            h.rpc(&format!("{path}?return_dir=True")).text(),
            format!("{}/static/{build_id}", h.url),
            "{path}"
        );
        assert_eq!(
            h.rpc(&format!("{path}?relative_path=True")).text(),
            build_id,
            "{path}"
        );
    }
    let r = h.rpc(&format!("xbuddy/{build_id}/test?for_update=True"));
    assert_eq!(r.text(), format!("{}/update/{build_id}", h.url));
    let url = h.verify_handle_update(build_id, None);
    assert_eq!(get_with(&url, &[]).text(), "TEST UPDATE");

    // The extended tests' answers that need no network: is_staged is a bare True/False.
    let src = tempfile::tempdir().unwrap();
    let build = src.path().join("x86-mario-release/R32-4810.0.0");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("update.gz"), VECTOR).unwrap();
    std::fs::write(build.join("stateful.tgz"), b"stateful").unwrap();
    let archive_url = format!("file://{}", build.display());
    let query = format!("archive_url={archive_url}&artifacts=full_payload,stateful");
    assert_eq!(h.rpc(&format!("is_staged?{query}")).text(), "False");
    assert_eq!(h.rpc(&format!("stage?{query}")).status, 200);
    assert_eq!(h.rpc(&format!("is_staged?{query}")).text(), "True");
    let staged = h.data.path().join("x86-mario-release/R32-4810.0.0");
    assert!(staged.join("update.gz").is_file() && staged.join("stateful.tgz").is_file());
    h.verify_handle_update("x86-mario-release/R32-4810.0.0", Some(VECTOR_SHA1));

    // testApiHostInfoAndSetNextUpdate (last: the forced label steers the next check).
    let label = "new_update-test/the-new-update";
    let r = h.post("api/setnextupdate/127.0.0.1", label);
    assert_eq!(r.status, 200, "{}", r.text());
    let info: serde_json::Value =
        serde_json::from_slice(&h.rpc("api/hostinfo/127.0.0.1").body).unwrap();
    assert_eq!(info["forced_update_label"], label);
}

#[test]
fn list_image_dir_lists_what_is_staged() {
    let src = tempfile::tempdir().unwrap();
    let build = src.path().join("tgt/R1-1.0.0");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("update.gz"), VECTOR).unwrap();
    std::fs::write(build.join("stateful.tgz"), b"stateful").unwrap();
    let url = format!("file://{}", build.display());
    let s = Server::start(&[]);
    let r = s.get(&format!("/list_image_dir?archive_url={url}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("has not been staged"), "{}", r.text());
    assert_eq!(
        s.get(&format!("/stage?archive_url={url}")).text(),
        "Success"
    );
    let text = s.get(&format!("/list_image_dir?archive_url={url}")).text();
    assert!(text.contains("tgt/R1-1.0.0"), "{text}");
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Name: "))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(names, ["stateful.tgz", "update.gz"], "{text}");
    assert!(
        text.contains(&format!("Size: {} bytes", VECTOR.len())),
        "{text}"
    );
    assert_eq!(s.get("/list_image_dir").status, 400);
}
