//! Helpers shared by the Arvados API tests: a private run directory with `start_api`,
//! `start_keep` and friends run through the binary, and HTTPS calls trusting the run
//! directory's certificate.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use cibox_testsupport::cibox_bin;
use cibox_testsupport::keep::run_cibox;

pub const ADMIN: &str = "4axaw8zxe0qm22wa6urpp5nskcne8z88cvbupv653y1njyi05h";
pub const ACTIVE: &str = "3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi";
pub const SPECTATOR: &str = "zw2f4gwx8hw8cjre7yp6v1zylhrhn3m5gvjq73rtpwhmknrybu";
pub const EXPIRED: &str = "2ym314ysp27sk7h943q6vtc378srb06se3pq6ghurylyf3pdmx";
pub const INACTIVE: &str = "5s29oj2hzmcmpq80hx9cta0rl5wuf3xfd6r7disusaptz7h9m0";

/// One test's run directory and TMPDIR; stops the servers it started when dropped.
pub struct Stack {
    pub tmp: tempfile::TempDir,
}

impl Stack {
    pub fn new() -> Stack {
        Stack {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    pub fn cibox_as(&self, program: &Path, args: &[&str]) -> Output {
        let run_dir = self.run_dir();
        let mut all = args.to_vec();
        if !args.contains(&"--help") {
            all.push("--run-dir");
            all.push(run_dir.to_str().unwrap());
        }
        run_cibox(
            program,
            &all,
            &self.tmp.path().join("stderr.log"),
            &[("TMPDIR", self.tmp.path())],
        )
    }

    pub fn cibox(&self, args: &[&str]) -> Output {
        self.cibox_as(Path::new(cibox_bin()), args)
    }

    /// `start_api`: the host it printed.
    pub fn start(&self) -> String {
        let out = self.cibox(&["start_api"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    pub fn api(&self, host: &str) -> Api {
        let tls = cibox_runtime::tls::client_config_trusting(
            &self.run_dir().join(cibox_runtime::tls::CERT_FILE),
        )
        .unwrap();
        Api {
            agent: ureq::AgentBuilder::new()
                .tls_config(Arc::new(tls))
                .timeout(Duration::from_secs(20))
                .build(),
            host: host.to_string(),
        }
    }

    pub fn files(&self) -> Vec<String> {
        cibox_testsupport::keep::names_in(&self.run_dir())
    }

    pub fn pid(&self) -> u32 {
        pid_in(&self.run_dir(), "api")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.cibox(&["stop_keep"]);
        let _ = self.cibox(&["stop_api"]);
    }
}

pub struct Api {
    pub agent: ureq::Agent,
    pub host: String,
}

impl Api {
    /// `(status, JSON body)` of `METHOD path` with `token` and an optional raw body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .agent
            .request(method, &format!("https://{}{path}", self.host));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("OAuth2 {t}"));
        }
        let result = match body {
            Some(b) => req.set("Content-Type", "application/json").send_string(b),
            None => req.call(),
        };
        let (status, response) = match result {
            Ok(r) => (r.status(), r),
            Err(ureq::Error::Status(s, r)) => (s, r),
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let text = response.into_string().unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        )
    }

    pub fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: &Value) -> (u16, Value) {
        self.call("POST", path, Some(token), Some(&body.to_string()))
    }
}

/// `cibox APPLET --run-dir RUN` for a test whose own directory (its TMPDIR) is `tmp`, with no
/// API server from the caller's environment and no stdin; the caller adds arguments and says
/// where the output goes.
pub fn applet_command(applet: &str, run_dir: &Path, tmp: &Path) -> Command {
    let mut cmd = Command::new(cibox_bin());
    cmd.arg(applet)
        .arg("--run-dir")
        .arg(run_dir)
        .env("TMPDIR", tmp)
        .env_remove("ARVADOS_API_HOST")
        .env_remove("ARVADOS_API_TOKEN")
        .env_remove("ARVADOS_TEST_API_HOST")
        .stdin(Stdio::null());
    cmd
}

/// The pid in `RUN/NAME.pid`.
pub fn pid_in(run_dir: &Path, name: &str) -> u32 {
    std::fs::read_to_string(run_dir.join(format!("{name}.pid")))
        .unwrap_or_else(|e| panic!("{name}.pid: {e}"))
        .trim()
        .parse()
        .unwrap()
}

/// Writes the run directory's self-signed certificate, as the API server's start does.
pub fn write_run_certificate(run_dir: &Path) {
    std::fs::create_dir_all(run_dir).unwrap();
    cibox_runtime::tls::write_self_signed(
        &run_dir.join(cibox_runtime::tls::CERT_FILE),
        &run_dir.join(cibox_runtime::tls::KEY_FILE),
    )
    .unwrap();
}

pub fn uuids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|i| i["uuid"].as_str().unwrap().to_string())
        .collect()
}

/// The Python of the virtualenv with arvados-python-client (`CIBOX_TEST_ARVADOS_PYTHON`, made
/// by `scripts/test-env up`), or None (the test is skipped with a note) when there is none and
/// `CIBOX_REQUIRE_ENGINES` is unset.
pub fn sdk_python() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CIBOX_TEST_ARVADOS_PYTHON").map(PathBuf::from),
        std::env::var_os("CIBOX_TEST_ENV").map(|d| PathBuf::from(d).join("venv/bin/python")),
        Some(cibox_testsupport::workspace_root().join("target/test-env/venv/bin/python")),
    ];
    let found = candidates.into_iter().flatten().find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CIBOX_REQUIRE_ENGINES").is_none(),
            "CIBOX_REQUIRE_ENGINES is set but the Arvados SDK is missing: run scripts/test-env up"
        );
        eprintln!(
            "skipped: no Arvados Python SDK (CIBOX_TEST_ARVADOS_PYTHON); run scripts/test-env up"
        );
    }
    found
}

/// The environment `--auth NAME` exports, parsed.
pub fn exports(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

impl Stack {
    /// `start_api --auth NAME`: the exports.
    pub fn start_with_auth(&self, fixture: &str) -> Vec<(String, String)> {
        let out = self.cibox(&["start_api", "--auth", fixture]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        exports(&String::from_utf8(out.stdout).unwrap())
    }

    /// `start_keep --json ARGS`: the servers' ports.
    pub fn start_keep(&self, args: &[&str]) -> Vec<u16> {
        let mut all = vec!["start_keep", "--json"];
        all.extend_from_slice(args);
        let out = self.cibox(&all);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let started: Value = serde_json::from_slice(&out.stdout).unwrap();
        started["servers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["port"].as_u64().unwrap() as u16)
            .collect()
    }

    /// Runs an SDK program (`python`, or a tool such as `arv-put` beside it) with `env`, HOME in
    /// the test's directory; panics with its stderr when it fails.
    pub fn sdk(
        &self,
        python: &Path,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> String {
        let exe = if program == "python" {
            python.to_path_buf()
        } else {
            python.parent().unwrap().join(program)
        };
        let home = self.tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let out = std::process::Command::new(&exe)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HOME", &home)
            .env_remove("ARVADOS_KEEP_PROXY")
            .env_remove("ARVADOS_KEEP_SERVICES")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Stack {
    /// Runs `cibox ARGS --run-dir RUN` with more environment.
    pub fn cibox_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let run_dir = self.run_dir();
        let mut all = args.to_vec();
        all.push("--run-dir");
        all.push(run_dir.to_str().unwrap());
        let mut vars: Vec<(&str, &Path)> = vec![("TMPDIR", self.tmp.path())];
        vars.extend(env.iter().map(|(k, v)| (*k, Path::new(*v))));
        run_cibox(
            Path::new(cibox_bin()),
            &all,
            &self.tmp.path().join("stderr.log"),
            &vars,
        )
    }
}
