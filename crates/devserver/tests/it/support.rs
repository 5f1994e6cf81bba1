//! Shared helpers for the `serve` integration tests: start the binary on a free loopback port
//! in its own temp dir, talk HTTP to it, parse its XML, and a tiny origin HTTP server for
//! staging tests.

#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use quick_xml::events::Event;

pub use cibox_testsupport::cibox_bin;
pub const VECTOR: &[u8] = b"Developers, developers, developers!\n";
pub const VECTOR_SHA1: &str = "kGcOinJ0vA8vdYX53FN0F5BdwfY=";
pub const VECTOR_SHA256_B64: &str = "hgfZ19hcsA5OGUN3f4SDtoO0kzT24o+JsGgjNVCVEy0=";
pub const VECTOR_SHA256_HEX: &str =
    "8607d9d7d85cb00e4e1943777f8483b683b49334f6e28f89b06823355095132d";
pub const APPID: &str = "{DEADBEEF-0000-0000-0000-000000000001}";

/// A protocol 3.0 update check.
pub fn v3_check(appid: &str, version: &str, board: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" updater="ChromeOSUpdateEngine" updaterversion="0.1.0.0" ismachine="1">
  <os version="Indy" platform="Chrome OS" sp="1.0.0_x86_64"/>
  <app appid="{appid}" version="{version}" track="stable-channel" board="{board}"
       hardware_class="FAKE-HWID" delta_okay="false" lang="en-US">
    <ping active="1" a="1" r="1"/>
    <updatecheck/>
  </app>
</request>"#
    )
}

/// A protocol 3.0 update check with a track.
pub fn v3_check_track(board: &str, track: &str) -> String {
    v3_check(APPID, "1.0.0", board).replace("stable-channel", track)
}

/// A protocol 3.0 event report (no updatecheck).
pub fn v3_event(event_type: u32, result: u32) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0"><app appid="{APPID}" version="1.0.0" track="stable-channel" board="x86-generic">
<event eventtype="{event_type}" eventresult="{result}" previousversion="0.9.0"/></app></request>"#
    )
}

/// A protocol 2.0 update check.
pub fn v2_check() -> String {
    r#"<?xml version="1.0" encoding="UTF-8"?>
<o:gupdate xmlns:o="http://www.google.com/update2/request" version="ChromeOSUpdateEngine-0.1.0.0" updaterversion="ChromeOSUpdateEngine-0.1.0.0" protocol="2.0" ismachine="1">
    <o:os version="Indy" platform="Chrome OS" sp="0.9.0_x86"></o:os>
    <o:app appid="{87efface-864d-49a5-9bb3-4b050a7c227a}" version="0.9.0" lang="en-US" track="dev-channel" board="x86-generic" hardware_class="FAKE" delta_okay="true">
        <o:ping active="0"></o:ping>
        <o:updatecheck></o:updatecheck>
    </o:app>
</o:gupdate>"#
        .to_string()
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub body: Vec<u8>,
    pub headers: HashMap<String, String>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .redirects(0)
        .build()
}

fn to_resp(result: Result<ureq::Response, ureq::Error>) -> Resp {
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("HTTP request failed: {e}"),
    };
    let status = response.status();
    let mut headers = HashMap::new();
    for name in response.headers_names() {
        if let Some(v) = response.header(&name) {
            headers.insert(name.to_ascii_lowercase(), v.to_string());
        }
    }
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    Resp {
        status,
        body,
        headers,
    }
}

/// GET with extra headers.
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> Resp {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.call())
}

/// Any method with a body and headers.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    to_resp(req.send_bytes(body))
}

/// Sends raw bytes over TCP and returns the status code and the whole answer.
pub fn raw(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer (and close) before reading everything: ignore write errors.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Attributes of every element with this local name, in document order.
pub fn elements(xml: &str, name: &str) -> Vec<HashMap<String, String>> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event().expect("well-formed XML answer") {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == name.as_bytes() => {
                let mut map = HashMap::new();
                for a in e.attributes() {
                    let a = a.unwrap();
                    map.insert(
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        a.unescape_value().unwrap().into_owned(),
                    );
                }
                out.push(map);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

/// The single element with this local name (panics when there is not exactly one).
pub fn element(xml: &str, name: &str) -> HashMap<String, String> {
    let mut all = elements(xml, name);
    assert_eq!(all.len(), 1, "expected one <{name}> in {xml}");
    all.remove(0)
}

/// The root element's local name.
pub fn root_name(xml: &str) -> String {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) | Event::Empty(e) => {
                return String::from_utf8_lossy(e.name().as_ref()).into_owned()
            }
            Event::Eof => panic!("no root in {xml}"),
            _ => {}
        }
    }
}

/// A running `cibox serve`.
pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub stderr: PathBuf,
}

impl Server {
    /// Starts in a fresh temp data dir.
    pub fn start(args: &[&str]) -> Server {
        Self::start_in(tempfile::tempdir().unwrap(), args, &[])
    }

    /// Starts with `dir` as data dir, extra args and environment.
    pub fn start_in(dir: tempfile::TempDir, args: &[&str], env: &[(&str, OsString)]) -> Server {
        Self::start_on(Some("127.0.0.1"), dir, args, env)
    }

    /// Starts listening on `host` (`None`: the default address).
    pub fn start_on(
        host: Option<&str>,
        dir: tempfile::TempDir,
        args: &[&str],
        env: &[(&str, OsString)],
    ) -> Server {
        let stderr = dir.path().join("serve.stderr");
        let err_file = std::fs::File::create(&stderr).unwrap();
        let mut cmd = Command::new(cibox_bin());
        cmd.arg("serve");
        if let Some(host) = host {
            cmd.args(["--host", host]);
        }
        cmd.args(["--port", "0", "--data_dir"])
            .arg(dir.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err_file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("cibox serve: listening on http://") {
                        let addr = url.trim_end_matches('/');
                        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
                        return Server {
                            child,
                            port,
                            dir,
                            stderr,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "server did not start: {}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    );
                }
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn static_dir(&self) -> PathBuf {
        self.dir.path().join("static")
    }

    pub fn get(&self, path: &str) -> Resp {
        get_with(&self.url(path), &[])
    }

    pub fn post(&self, path: &str, body: &str) -> Resp {
        request("POST", &self.url(path), &[], body.as_bytes())
    }

    /// POSTs an update request and checks it is a `text/xml` 200.
    pub fn omaha(&self, path: &str, body: &str, headers: &[(&str, &str)]) -> String {
        let r = request("POST", &self.url(path), headers, body.as_bytes());
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .unwrap_or("")
                .starts_with("text/xml"),
            "{:?}",
            r.headers
        );
        r.text()
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Whether `needle` shows up on the server's stderr within `limit` (its log lines are
    /// written by a background thread, so one may lag behind the answer it belongs to).
    pub fn stderr_shows(&self, needle: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.stderr_text().contains(needle) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Server {
    /// Sends SIGTERM and waits for the exit status; hands back the data dir.
    pub fn terminate(mut self) -> (std::process::ExitStatus, tempfile::TempDir) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
                return (status, dir);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "server ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cibox serve ARGS` to completion (for `--exit`, `--help`, start-up errors).
pub fn run_serve(data_dir: &Path, args: &[&str], env: &[(&str, OsString)]) -> Output {
    let mut cmd = Command::new(cibox_bin());
    cmd.arg("serve")
        .args(["--host", "127.0.0.1", "--port", "0", "--data_dir"])
        .arg(data_dir)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Writes an executable shell script.
pub fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// PATH with `dir` first.
pub fn path_with(dir: &Path) -> OsString {
    let mut p = OsString::from(dir);
    p.push(":");
    p.push(std::env::var_os("PATH").unwrap_or_default());
    p
}

/// What the origin server answers for a path.
#[derive(Clone)]
pub enum Reply {
    /// 200 with this body, after a delay.
    Body(Vec<u8>, Duration),
    /// 200 announcing more bytes than it sends, then closing.
    Truncated(Vec<u8>),
    /// This status, empty body.
    Status(u16),
}

/// A small HTTP/1.1 origin server (one thread per connection, `Connection: close`).
pub struct Origin {
    pub port: u16,
    pub hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    pub fn start(routes: HashMap<String, Reply>) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let routes = Arc::new(routes);
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let (routes, hits) = (routes.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
                            break;
                        }
                    }
                    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                    let reply = routes.get(&path).cloned().unwrap_or(Reply::Status(404));
                    let _ = match reply {
                        Reply::Body(body, delay) => {
                            std::thread::sleep(delay);
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            conn.write_all(head.as_bytes())
                                .and_then(|()| conn.write_all(&body))
                        }
                        Reply::Truncated(body) => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len() * 2 + 100
                            );
                            conn.write_all(head.as_bytes())
                                .and_then(|()| conn.write_all(&body))
                        }
                        Reply::Status(code) => conn.write_all(
                            format!(
                                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            )
                            .as_bytes(),
                        ),
                    };
                    let _ = conn.flush();
                });
            }
        });
        Origin { port, hits, stop }
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
