//! Helpers shared by the Keep integration tests: run the binary, start a keepstore on a free
//! loopback port, plain HTTP with ureq and raw sockets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};

pub use crate::cibox_bin;

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Deterministic pseudo-random bytes.
pub fn block(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn free_port() -> u16 {
    cibox_runtime::process::free_loopback_port().expect("a free loopback port")
}

/// Whether /proc shows `pid` as a live (non-zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            !matches!(after.split_whitespace().next(), Some("Z" | "X"))
        }
        Err(_) => false,
    }
}

pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// A keepstore run directly (`cibox keepstore ...`), killed when dropped.
pub struct Keepstore {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl Keepstore {
    /// Starts `cibox keepstore -listen=127.0.0.1:PORT ARGS...` and waits until it accepts.
    /// Its output goes to `log_dir/keepstore-PORT.log`.
    pub fn start(args: &[String], log_dir: &Path) -> Keepstore {
        let mut all = vec!["keepstore".to_string()];
        all.extend_from_slice(args);
        Keepstore::start_program(cibox_bin(), &all, log_dir)
    }

    /// Starts `program ARGS... -listen=127.0.0.1:PORT` (ARGS ending in `keepstore ...`, e.g.
    /// through a wrapper) and waits until it accepts.
    pub fn start_program(program: &str, args: &[String], log_dir: &Path) -> Keepstore {
        for _ in 0..3 {
            let port = free_port();
            let log = log_dir.join(format!("keepstore-{port}.log"));
            let logfile = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(program)
                .args(args)
                .arg(format!("-listen=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(logfile.try_clone().unwrap())
                .stderr(logfile)
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    if text.contains("in use") {
                        break; // port taken meanwhile: try another
                    }
                    panic!("keepstore exited ({status}): {text}");
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Keepstore { child, port, log };
                }
                assert!(Instant::now() < deadline, "keepstore did not come up");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        panic!("no free port found");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "keepstore ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Keepstore {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, body and headers (lowercase names) of a ureq call, whatever the status.
pub fn call(req: ureq::Request, body: Option<&[u8]>) -> (u16, Vec<u8>, Vec<(String, String)>) {
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let response = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("request failed: {e}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = response.header(&n).unwrap_or_default().to_string();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    let mut data = Vec::new();
    response.into_reader().read_to_end(&mut data).unwrap();
    (status, data, headers)
}

pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

pub fn get(url: &str, token: Option<&str>) -> (u16, Vec<u8>) {
    let mut req = agent().get(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("OAuth2 {t}"));
    }
    let (s, b, _) = call(req, None);
    (s, b)
}

pub fn put(url: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut req = agent().put(url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let (s, b, _) = call(req, Some(body));
    (s, String::from_utf8_lossy(&b).into_owned())
}

/// Sends raw bytes on a fresh connection and reads the whole answer (the request should say
/// `Connection: close`): status, head, body.
pub fn raw(port: u16, request: &[u8]) -> (u16, String, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_response(&answer)
}

pub fn parse_response(answer: &[u8]) -> (u16, String, Vec<u8>) {
    let end = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(answer)));
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, answer[end + 4..].to_vec())
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// Runs cibox with `args`, stdout captured, stderr to `stderr_file` (servers started by the
/// command keep writing there, so it must not be a pipe we wait on), in `env` (TMPDIR etc.).
pub fn run_cibox(
    program: &Path,
    args: &[&str],
    stderr_file: &Path,
    env: &[(&str, &Path)],
) -> Output {
    let err = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_file)
        .unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let mut out = child.wait_with_output().unwrap();
    out.stderr = std::fs::read(stderr_file).unwrap_or_default();
    out
}

/// The names of the entries of `dir`, sorted (none when it does not exist).
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
