//! The services beside Keep through the binary: `start_keep_proxy`/`keepproxy` in front of
//! real keepstores from `start_keep`, `start_nginx` (the machine's real nginx) for TLS in front
//! of it, the stop applets and `stop_all`; real HTTP and HTTPS on loopback, and the real
//! Arvados Python SDK when the test setup provides it.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use cibox_testsupport::keep::*;

use crate::support::{pid_in, write_run_certificate};

/// One test's run directory and TMPDIR; stops everything in it when dropped.
struct Stack {
    tmp: tempfile::TempDir,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.tmp.path().join("stderr.log")).unwrap_or_default()
    }

    /// `cibox APPLET --run-dir RUN ARGS...` without any API server in the environment.
    fn cibox(&self, applet: &str, args: &[&str]) -> Output {
        let run_dir = self.run_dir();
        let mut all = vec![applet, "--run-dir", run_dir.to_str().unwrap()];
        all.extend_from_slice(args);
        run_cibox(
            Path::new(cibox_bin()),
            &all,
            &self.tmp.path().join("stderr.log"),
            &[("TMPDIR", self.tmp.path())],
        )
    }

    fn ok(&self, applet: &str, args: &[&str]) -> String {
        let out = self.cibox(applet, args);
        assert!(
            out.status.success(),
            "{applet} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, applet: &str) -> serde_json::Value {
        serde_json::from_str(&self.ok(applet, &["--json"])).unwrap()
    }

    fn file(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.run_dir().join(name))
            .ok()
            .map(|s| s.trim().to_string())
    }

    fn pid(&self, name: &str) -> u32 {
        pid_in(&self.run_dir(), name)
    }

    fn certificate(&self) {
        write_run_certificate(&self.run_dir());
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.cibox("stop_all", &[]);
    }
}

/// Keepstore volumes and the files in them: (volume, blocks).
fn volumes(stack: &Stack) -> Vec<(PathBuf, Vec<String>)> {
    (0..2)
        .map(|n| {
            let v = PathBuf::from(stack.file(&format!("keep{n}.volume")).unwrap());
            let files = files_under(&v)
                .into_iter()
                .filter(|f| !f.contains("tmp"))
                .collect();
            (v, files)
        })
        .collect()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn proxy_put(
    agent: &ureq::Agent,
    url: &str,
    data: &[u8],
    copies: Option<u32>,
    token: Option<&str>,
) -> (u16, String, Option<String>) {
    let mut req = agent.put(&format!("{url}/{}", md5_hex(data)));
    if let Some(c) = copies {
        req = req.set("X-Keep-Desired-Replicas", &c.to_string());
    }
    if let Some(t) = token {
        req = req.set("Authorization", &format!("OAuth2 {t}"));
    }
    let (status, body, headers) = call(req, Some(data));
    (
        status,
        String::from_utf8_lossy(&body).into_owned(),
        header(&headers, "x-keep-replicas-stored").map(str::to_string),
    )
}

fn proxy_get(agent: &ureq::Agent, url: &str, locator: &str, token: &str) -> (u16, Vec<u8>) {
    let req = agent
        .get(&format!("{url}/{locator}"))
        .set("Authorization", &format!("OAuth2 {token}"));
    let (status, body, _) = call(req, None);
    (status, body)
}

fn stop_keepstore(stack: &Stack, n: usize) {
    let pid = stack.pid(&format!("keep{n}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(
        wait_gone(pid, Duration::from_secs(10)),
        "keep{n} still runs"
    );
}

#[test]
fn keepproxy_stores_two_copies_on_two_keepstores_and_survives_one_stopping() {
    let stack = Stack::new();
    stack.ok("start_keep", &[]);
    let started = stack.json("start_keep_proxy");
    let url = started["url"].as_str().unwrap().to_string();
    let port = started["port"].as_u64().unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    assert_eq!(stack.file("keepproxy.port"), Some(port.to_string()));
    let proxy_pid = stack.pid("keepproxy");
    assert_eq!(proxy_pid as u64, started["pid"].as_u64().unwrap());
    assert!(alive(proxy_pid));
    let agent = agent();
    let token = "a-client-token";

    // Two copies by default, one on each keepstore.
    let data = block(1, 3_000_000);
    let (status, locator, stored) = proxy_put(&agent, &url, &data, None, Some(token));
    assert_eq!(status, 200, "{locator}");
    // Signed by the keepstores (they always have the cluster's key).
    assert!(
        locator.starts_with(&format!("{}+3000000+A", md5_hex(&data))),
        "{locator}"
    );
    assert_eq!(stored.as_deref(), Some("2"));
    for (volume, files) in volumes(&stack) {
        assert!(
            files.iter().any(|f| f.ends_with(&md5_hex(&data))),
            "{} lacks the block: {files:?}",
            volume.display()
        );
    }
    assert_eq!(
        proxy_get(&agent, &url, &locator, token),
        (200, data.clone())
    );
    // HEAD answers the length, +K@ hints are dropped.
    let (status, _, headers) = call(
        agent
            .head(&format!("{url}/{locator}+K@zzzzz"))
            .set("Authorization", "Bearer t"),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some("3000000"));
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));

    // One keepstore stopped: reads still work (from the other copy), a 3-copy write stores
    // what it can and says so.
    stop_keepstore(&stack, 0);
    assert_eq!(proxy_get(&agent, &url, &locator, token), (200, data));
    let small = b"three copies wanted".to_vec();
    let (status, body, stored) = proxy_put(&agent, &url, &small, Some(3), Some(token));
    assert_eq!(status, 200, "{body}");
    assert_eq!(stored.as_deref(), Some("1"));
    assert!(
        body.starts_with(&format!("{}+{}+A", md5_hex(&small), small.len())),
        "{body}"
    );
    // None left: 503, nothing stored.
    stop_keepstore(&stack, 1);
    let (status, _, stored) = proxy_put(&agent, &url, b"nowhere", None, Some(token));
    assert_eq!(status, 503);
    assert_eq!(stored.as_deref(), Some("0"));

    // Log lines arrive prefixed.
    assert!(stack.log().contains("[keepproxy] "), "{}", stack.log());

    // stop_keep_proxy: the process and its files are gone.
    stack.ok("stop_keep_proxy", &[]);
    assert!(wait_gone(proxy_pid, Duration::from_secs(5)));
    assert_eq!(stack.file("keepproxy.pid"), None);
    assert_eq!(stack.file("keepproxy.port"), None);
    // A second stop has nothing to do.
    stack.ok("stop_keep_proxy", &[]);
}

#[test]
fn keepproxy_refuses_bad_requests_as_keepproxy_does() {
    let stack = Stack::new();
    stack.ok("start_keep", &[]);
    let url = stack.ok("start_keep_proxy", &[]).trim().to_string();
    let agent = agent();
    let data = b"foo".to_vec();
    // No token: 403 for reads and writes.
    let (status, body, _) = proxy_put(&agent, &url, &data, None, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("Authorization"));
    let (status, _, _) = call(agent.get(&format!("{url}/{}", md5_hex(&data))), None);
    assert_eq!(status, 403);
    // Size hint against Content-Length, and a body that is not the hash.
    let req = agent
        .put(&format!("{url}/{}+4", md5_hex(&data)))
        .set("Authorization", "OAuth2 t");
    assert_eq!(call(req, Some(&data)).0, 400);
    let req = agent
        .put(&format!("{url}/{}", md5_hex(b"bar")))
        .set("Authorization", "OAuth2 t");
    assert_eq!(call(req, Some(&data)).0, 422);
    // A block nobody has: 404.
    assert_eq!(
        proxy_get(&agent, &url, &md5_hex(b"never stored"), "t").0,
        404
    );
    // Not a locator: 400.
    assert_eq!(proxy_get(&agent, &url, "index.html", "t").0, 400);
    // POST / hashes the body itself.
    let req = agent
        .post(&format!("{url}/"))
        .set("Authorization", "OAuth2 t");
    let (status, body, headers) = call(req, Some(&data));
    assert_eq!(status, 200);
    let answer = String::from_utf8(body).unwrap();
    assert!(
        answer.starts_with(&format!("{}+3+A", md5_hex(&data))),
        "{answer}"
    );
    assert_eq!(header(&headers, "x-keep-replicas-stored"), Some("2"));
    // CORS preflight.
    let (status, _, headers) = call(agent.request("OPTIONS", &format!("{url}/")), None);
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "access-control-allow-methods"),
        Some("GET, HEAD, POST, PUT, OPTIONS")
    );
    assert!(header(&headers, "access-control-allow-headers")
        .unwrap()
        .contains("X-Keep-Desired-Replicas"));
}

#[test]
fn keepproxy_without_get_or_put() {
    let stack = Stack::new();
    stack.ok("start_keep", &[]);
    let url = stack
        .ok("start_keep_proxy", &["--", "-no-get"])
        .trim()
        .to_string();
    let agent = agent();
    let (status, locator, _) = proxy_put(&agent, &url, b"bar", None, Some("t"));
    assert_eq!(status, 200);
    assert_eq!(proxy_get(&agent, &url, &locator, "t").0, 400);
    let url = stack
        .ok("start_keep_proxy", &["--", "-no-put"])
        .trim()
        .to_string();
    assert_eq!(proxy_put(&agent, &url, b"baz", None, Some("t")).0, 400);
    assert_eq!(
        proxy_get(&agent, &url, &locator, "t"),
        (200, b"bar".to_vec())
    );
}

/// nginx, if the machine has it (the test setup installs it), else `None` with a note, or a
/// failure under `CIBOX_REQUIRE_ENGINES=1`.
fn nginx_available() -> bool {
    let found = ["/usr/sbin/nginx", "/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .any(|p| Path::new(p).is_file())
        || which_nginx();
    if !found {
        assert!(
            std::env::var("CIBOX_REQUIRE_ENGINES").is_err(),
            "nginx is required (CIBOX_REQUIRE_ENGINES) but not installed"
        );
        eprintln!("skipped: nginx is not installed (scripts/test-env up installs it)");
    }
    found
}

fn which_nginx() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("nginx").is_file()))
        .unwrap_or(false)
}

#[test]
fn nginx_serves_keepproxy_over_tls_with_full_size_blocks_then_stop_all_stops_everything() {
    if !nginx_available() {
        return;
    }
    let stack = Stack::new();
    stack.certificate();
    stack.ok("start_keep", &[]);
    stack.ok("start_keep_proxy", &[]);
    let started = stack.json("start_nginx");
    let tls_port = started["keepproxy_ssl_port"].as_u64().unwrap() as u16;
    assert_eq!(stack.file("keepproxy-ssl.port"), Some(tls_port.to_string()));
    assert_eq!(stack.file("arv-git-httpd-ssl.port"), None);
    let nginx_pid = stack.pid("nginx");
    assert!(alive(nginx_pid));
    // Every path nginx writes is in the run directory.
    let conf = std::fs::read_to_string(stack.run_dir().join("nginx.conf")).unwrap();
    assert!(
        !conf.contains("/var/") && !conf.contains(" /run/"),
        "{conf}"
    );

    let tls = cibox_arvados::apiclient::http_agent(Duration::from_secs(120), true);
    let url = format!("https://127.0.0.1:{tls_port}");
    // A full 64 MiB block through nginx and keepproxy, two copies, and back.
    let data = block(7, 64 << 20);
    let (status, locator, stored) = proxy_put(&tls, &url, &data, Some(2), Some("t"));
    assert_eq!(status, 200, "{locator}");
    assert_eq!(stored.as_deref(), Some("2"), "X-Keep-* headers pass nginx");
    let (status, back) = proxy_get(&tls, &url, &locator, "t");
    assert_eq!(status, 200);
    assert!(back == data, "64 MiB block came back different");
    // One byte more is refused on the request head alone.
    let (status, _) = tls_head_only(
        tls_port,
        &format!(
            "PUT /{} HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth2 t\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            md5_hex(b"x"),
            (64 << 20) + 1
        ),
    );
    assert_eq!(status, 413);
    assert!(stack.log().contains("[nginx] "));

    let pids: Vec<u32> = ["nginx", "keepproxy", "keep0", "keep1"]
        .iter()
        .map(|n| stack.pid(n))
        .collect();
    stack.ok("stop_all", &[]);
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{pid} still runs");
    }
    let left: Vec<String> = std::fs::read_dir(stack.run_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("self-signed"))
        .collect();
    assert!(left.is_empty(), "left in the run directory: {left:?}");
}

/// Sends `head` over TLS (no body) and reads the answer: status and text.
fn tls_head_only(port: u16, head: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let config = std::sync::Arc::new(cibox_runtime::tls::client_config_insecure().unwrap());
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    tls.write_all(head.as_bytes()).unwrap();
    // Read the answer's head only: nginx keeps the connection a while for the body it refused.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let (status, text, _) = parse_response(&answer);
    (status, text)
}

#[test]
fn start_nginx_says_what_is_missing() {
    let stack = Stack::new();
    // Nothing to front yet (and no certificate).
    let out = stack.cibox("start_nginx", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("self-signed.pem"), "{err}");
    stack.certificate();
    let out = stack.cibox("start_nginx", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains("nothing for nginx to front"), "{err}");
    // A missing nginx is one line.
    stack.ok("start_keep", &[]);
    stack.ok("start_keep_proxy", &[]);
    std::fs::write(stack.tmp.path().join("stderr.log"), "").unwrap();
    let out = stack.cibox("start_nginx", &["--nginx", "/nonexistent/nginx"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].contains("/nonexistent/nginx"), "{err}");
    assert_eq!(stack.file("nginx.pid"), None);
}

/// The Arvados Python SDK's interpreter from the test setup, or `None` with a note (a failure
/// under `CIBOX_REQUIRE_ENGINES=1`).
fn sdk_python() -> Option<PathBuf> {
    match std::env::var_os("CIBOX_TEST_ARVADOS_PYTHON") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        _ => {
            assert!(
                std::env::var("CIBOX_REQUIRE_ENGINES").is_err(),
                "the Arvados Python SDK is required (CIBOX_REQUIRE_ENGINES) but \
                 CIBOX_TEST_ARVADOS_PYTHON is not set"
            );
            eprintln!("skipped: CIBOX_TEST_ARVADOS_PYTHON is not set (scripts/test-env up)");
            None
        }
    }
}

#[test]
fn python_keep_client_through_the_proxy() {
    let Some(python) = sdk_python() else {
        return;
    };
    let stack = Stack::new();
    // With the API server: keepproxy finds the keepstores and checks the SDK's token there.
    stack.ok("start_api", &[]);
    stack.ok("start_keep", &[]);
    let url = stack.ok("start_keep_proxy", &[]).trim().to_string();
    let script = r#"
import os, sys, arvados
try:
    arvados.KeepClient(api_token="forgedtoken000", proxy=os.environ["ARVADOS_KEEP_PROXY"],
                       num_retries=0).put(b"refused", copies=1)
    raise SystemExit("a forged token could write")
except arvados.errors.KeepWriteError:
    pass
kc = arvados.KeepClient(api_token=os.environ["TOKEN"], proxy=os.environ["ARVADOS_KEEP_PROXY"],
                        num_retries=0)
data = os.urandom(1 << 20)
loc = kc.put(data, copies=2)
assert kc.get(loc) == data, "read back differs"
print(loc)
sys.stdout.flush()
input()  # a keepstore is stopped now
assert kc.get(loc) == data, "read back after a keepstore stopped differs"
try:
    kc.put(b"three copies", copies=3)
    print("stored")
except arvados.errors.KeepWriteError as e:
    print("refused:", e)
"#;
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .env("ARVADOS_KEEP_PROXY", &url)
        .env("TOKEN", fixture_token("active"))
        .env_remove("ARVADOS_API_HOST")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let hash = line.trim().split('+').next().unwrap().to_string();
    assert_eq!(hash.len(), 32, "no locator from the SDK: {line:?}");
    for (volume, files) in volumes(&stack) {
        assert!(
            files.iter().any(|f| f.ends_with(&hash)),
            "{} lacks {hash}",
            volume.display()
        );
    }
    stop_keepstore(&stack, 1);
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        out.status.success(),
        "SDK script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The proxy stored one copy of three and said so: the SDK refuses the write.
    assert!(rest.starts_with("refused:"), "{rest}");
    assert!(rest.contains("wanted (3"), "{rest}");
}

/// Runs git with `args` in `dir`, trusting the run directory's certificate, never prompting.
fn git(stack: &Stack, dir: &Path, args: &[&str]) -> Output {
    let cert = stack.run_dir().join("self-signed.pem");
    std::process::Command::new("git")
        .args(args)
        .env("GIT_SSL_CAINFO", &cert)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "/bin/false")
        .env("HOME", stack.tmp.path())
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@localhost")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@localhost")
        .output()
        .unwrap()
}

/// Fails with the command's stderr unless it succeeded.
fn assert_succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Adds `file` to the clone `dir` in a commit `message` and pushes it: git's answer.
fn commit_and_push(stack: &Stack, dir: &Path, file: &str, message: &str) -> Output {
    std::fs::write(dir.join(file), format!("{message}\n")).unwrap();
    assert!(git(stack, dir, &["add", file]).status.success());
    assert!(git(stack, dir, &["commit", "-qm", message])
        .status
        .success());
    git(stack, dir, &["push", "origin", "master"])
}

fn fixture_token(name: &str) -> &'static str {
    cibox_arvados::api::fixtures::token(name).unwrap()
}

#[test]
fn git_clone_and_push_over_https_through_nginx_with_a_token_refused_without() {
    if !nginx_available() {
        return;
    }
    let stack = Stack::new();
    stack.ok("start_api", &[]);
    let started = stack.json("start_arv-git-httpd");
    assert!(
        started["made"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "active/foo"),
        "{started}"
    );
    let git_pid = stack.pid("arv-git-httpd");
    assert!(alive(git_pid));
    let nginx = stack.json("start_nginx");
    let port = nginx["git_ssl_port"].as_u64().unwrap();
    assert_eq!(stack.file("arv-git-httpd-ssl.port"), Some(port.to_string()));
    let base = format!("https://127.0.0.1:{port}");
    let with =
        |token: &str, repo: &str| format!("https://none:{token}@127.0.0.1:{port}/{repo}.git");
    let work = stack.tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();

    // No token: 401 with a Basic challenge, and git gives up.
    let tls = cibox_arvados::apiclient::http_agent(Duration::from_secs(30), true);
    let (status, _, headers) = call(
        tls.get(&format!(
            "{base}/active/foo.git/info/refs?service=git-upload-pack"
        )),
        None,
    );
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Basic realm=\"git\"")
    );
    let out = git(
        &stack,
        &work,
        &["clone", &format!("{base}/active/foo.git"), "anon"],
    );
    assert!(!out.status.success());
    assert!(!work.join("anon").exists());
    // A forged token: 401 as well.
    let out = git(
        &stack,
        &work,
        &["clone", &with("forgedtoken123", "active/foo"), "forged"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("401") || stderr.contains("Authentication failed"),
        "{stderr}"
    );

    // The owner clones, commits and pushes.
    let active = fixture_token("active");
    let out = git(
        &stack,
        &work,
        &["clone", &with(active, "active/foo"), "foo"],
    );
    assert_succeeded(&out);
    let clone = work.join("foo");
    assert!(clone.join("README").is_file());
    let out = commit_and_push(&stack, &clone, "new.txt", "a change");
    assert_succeeded(&out);
    // The push landed in the repository on disk.
    let bare = PathBuf::from(started["repo_root"].as_str().unwrap())
        .join("zzzzz-s0uqq-382brsig8rp3666.git");
    let log = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(&bare)
        .args(["log", "--format=%s", "master"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&log.stdout),
        "a change\ninitial commit\n"
    );

    // The spectator may read active/foo but not push to it.
    let spectator = fixture_token("spectator");
    let out = git(
        &stack,
        &work,
        &["clone", &with(spectator, "active/foo"), "seen"],
    );
    assert_succeeded(&out);
    let seen = work.join("seen");
    assert!(seen.join("new.txt").is_file());
    let out = commit_and_push(&stack, &seen, "other.txt", "refused");
    assert!(!out.status.success(), "the spectator could push");
    let (status, _, _) = call(
        tls.get(&format!(
            "{base}/active/foo.git/info/refs?service=git-receive-pack"
        ))
        .set("Authorization", &format!("OAuth2 {spectator}")),
        None,
    );
    assert_eq!(status, 403);
    // A repository that does not exist (or is not visible): 404.
    let (status, _, _) = call(
        tls.get(&format!(
            "{base}/active/nosuch.git/info/refs?service=git-upload-pack"
        ))
        .set("Authorization", &format!("OAuth2 {active}")),
        None,
    );
    assert_eq!(status, 404);
    let (status, _, _) = call(
        tls.get(&format!(
            "{base}/admin/foo3.git/info/refs?service=git-upload-pack"
        ))
        .set("Authorization", &format!("OAuth2 {spectator}")),
        None,
    );
    assert_eq!(status, 404);
    assert!(stack.log().contains("[arv-git-httpd] "));

    stack.ok("stop_arv-git-httpd", &[]);
    assert!(wait_gone(git_pid, Duration::from_secs(5)));
    assert_eq!(stack.file("arv-git-httpd.port"), None);
    assert!(
        !stack.run_dir().join("git").exists(),
        "repositories left behind"
    );
}

#[test]
fn git_server_needs_an_api_server() {
    let stack = Stack::new();
    let out = stack.cibox("start_arv-git-httpd", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs an API server"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(stack.file("arv-git-httpd.pid"), None);
}

#[test]
fn keepproxy_with_the_api_server_registers_itself_and_checks_tokens() {
    let stack = Stack::new();
    stack.ok("start_api", &[]);
    stack.ok("start_keep", &[]);
    let started = stack.json("start_keep_proxy");
    let uuid = started["service_uuid"].as_str().unwrap().to_string();
    let url = started["url"].as_str().unwrap().to_string();
    let port = started["port"].as_u64().unwrap();
    // Registered as the one proxy service, beside the two keepstores.
    let api_port = stack.file("api.port").unwrap();
    let tls = cibox_arvados::apiclient::http_agent(Duration::from_secs(30), true);
    let admin = fixture_token("admin");
    let (status, body, _) = call(
        tls.get(&format!(
            "https://127.0.0.1:{api_port}/arvados/v1/keep_services"
        ))
        .set("Authorization", &format!("OAuth2 {admin}")),
        None,
    );
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let items = list["items"].as_array().unwrap();
    let proxies: Vec<_> = items
        .iter()
        .filter(|s| s["service_type"] == "proxy")
        .collect();
    assert_eq!(proxies.len(), 1, "{list}");
    assert_eq!(proxies[0]["uuid"], uuid.as_str());
    assert_eq!(proxies[0]["service_port"].as_u64(), Some(port));
    assert_eq!(
        items.iter().filter(|s| s["service_type"] == "disk").count(),
        2
    );
    // A second start replaces the record.
    let again = stack.json("start_keep_proxy");
    let url2 = again["url"].as_str().unwrap().to_string();
    assert_ne!(again["service_uuid"], uuid.as_str());

    // Tokens are checked with the API server: a forged one is refused, a fixture's accepted
    // and the block lands on both keepstores (found through keep_services/accessible).
    let agent = agent();
    let data = b"checked by the API server".to_vec();
    let (status, _, _) = proxy_put(&agent, &url2, &data, None, Some("forgedtoken000"));
    assert_eq!(status, 403);
    let active = fixture_token("active");
    let (status, locator, stored) = proxy_put(&agent, &url2, &data, None, Some(active));
    assert_eq!(status, 200, "{locator}");
    assert_eq!(stored.as_deref(), Some("2"));
    assert_eq!(proxy_get(&agent, &url2, &locator, active), (200, data));
    assert_eq!(proxy_get(&agent, &url2, &locator, "forgedtoken000").0, 403);
    drop(url);

    // stop_all stops everything, the API server last.
    let pids: Vec<u32> = ["keepproxy", "keep0", "keep1", "api"]
        .iter()
        .map(|n| stack.pid(n))
        .collect();
    stack.ok("stop_all", &[]);
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{pid} still runs");
    }
}

#[test]
fn seed_actions_through_the_run_test_server_link() {
    let stack = Stack::new();
    let link = stack.tmp.path().join("run_test_server.py");
    std::os::unix::fs::symlink(cibox_bin(), &link).unwrap();
    let seed = |action: &str| {
        let run_dir = stack.run_dir();
        run_cibox(
            &link,
            &[action, "--run-dir", run_dir.to_str().unwrap()],
            &stack.tmp.path().join("stderr.log"),
            &[("TMPDIR", stack.tmp.path())],
        )
    };
    assert!(seed("start_keep").status.success());
    let out = seed("start_keep_proxy");
    assert_succeeded(&out);
    let proxy_pid = stack.pid("keepproxy");
    assert!(alive(proxy_pid));
    assert!(seed("stop_keep_proxy").status.success());
    assert!(wait_gone(proxy_pid, Duration::from_secs(5)));
    assert_eq!(stack.file("keepproxy.pid"), None);
    let keep_pid = stack.pid("keep0");
    assert!(seed("stop_all").status.success());
    assert!(wait_gone(keep_pid, Duration::from_secs(5)));
    // Not a seed action.
    let out = seed("keepproxy");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keepproxy_drops_a_client_that_never_finishes_its_request() {
    use std::io::{Read, Write};
    let stack = Stack::new();
    stack.ok("start_keep", &[]);
    let url = stack
        .ok("start_keep_proxy", &["--", "-header-timeout=1"])
        .trim()
        .to_string();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(b"GET /acbd18db4cc2f85cedef654fccc4a4d8 HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = slow.read_to_end(&mut rest);
    // Closed by the proxy (not by our 30 s read timeout), without an answer to half a request.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
    // Meanwhile other clients are served.
    assert_eq!(proxy_get(&agent(), &url, &md5_hex(b"x"), "t").0, 404);
}

#[test]
fn keepproxy_writes_past_a_stopped_keepstore_to_the_next_in_order() {
    let stack = Stack::new();
    stack.ok("start_keep", &["--num-keep-servers", "3"]);
    let url = stack.ok("start_keep_proxy", &[]).trim().to_string();
    stop_keepstore(&stack, 0);
    let agent = agent();
    // Two of every three blocks have keep0 among their first two keepstores: the proxy must
    // go on to the third with the copy it kept.
    for seed in 0..8 {
        let data = block(100 + seed, 200_000);
        let (status, locator, stored) = proxy_put(&agent, &url, &data, Some(2), Some("t"));
        assert_eq!(status, 200, "{locator}");
        assert_eq!(stored.as_deref(), Some("2"), "block {seed}");
        for n in [1, 2] {
            let port = stack.file(&format!("keep{n}.port")).unwrap();
            let direct = format!("http://127.0.0.1:{port}");
            assert_eq!(
                get(&format!("{direct}/{locator}"), None),
                (200, data.clone())
            );
        }
    }
}
