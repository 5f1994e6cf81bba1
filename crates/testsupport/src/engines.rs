//! Shared helpers for the tests that need a real container engine.
//!
//! `scripts/test-env up` starts the engines and writes `target/test-env/env.sh`; the test
//! command sources it, so these tests see `CIBOX_TEST_ENGINES`, `CIBOX_TEST_IMAGE`,
//! `DOCKER_HOST`, `CONTAINERS_CONF` and `CIBOX_TEST_REGISTRY`. Each test runs once per engine
//! through [`engine_tests!`]; a missing engine skips the test, unless `CIBOX_REQUIRE_ENGINES=1`,
//! when it fails the run. Every container a test starts carries the label `cibox.test=<id>`
//! unique to that test, so tests never see each other's containers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The cibox binary under test.
pub fn cibox_path() -> PathBuf {
    PathBuf::from(crate::cibox_bin())
}

/// A `cibox` command.
pub fn cibox() -> Command {
    Command::new(cibox_path())
}

/// The engine program (`podman` or `docker`) for direct checks, with the test environment.
pub fn engine_cmd(engine: &str) -> Command {
    Command::new(engine)
}

/// Whether `engine` is available for these tests. A missing engine fails the test when
/// `CIBOX_REQUIRE_ENGINES=1`, else the test is skipped (returns false with a note).
pub fn engine_available(engine: &str) -> bool {
    let listed = std::env::var("CIBOX_TEST_ENGINES").unwrap_or_default();
    let required = std::env::var("CIBOX_REQUIRE_ENGINES").is_ok_and(|v| v == "1");
    if listed.split_whitespace().any(|e| e == engine) {
        return true;
    }
    if required {
        panic!(
            "engine {engine} is required (CIBOX_REQUIRE_ENGINES=1) but not in \
             CIBOX_TEST_ENGINES={listed:?}: run the tests through scripts/test"
        );
    }
    eprintln!("skipped: engine {engine} not set up (run the tests through scripts/test)");
    false
}

/// The base image both engines have (busybox).
pub fn base_image() -> String {
    std::env::var("CIBOX_TEST_IMAGE").unwrap_or_else(|_| "cibox-test/busybox:latest".into())
}

/// Makes `name` an image of its own with the base image's content (a label makes its id
/// differ), for a test that tags, pushes or removes it. The base image every test builds on
/// never carries a test's names: podman 4.3 loses names, and once lost the base image itself,
/// when many processes change the names of one image at the same moment.
pub fn own_copy_of_base(engine: &str, name: &str) {
    use std::io::Write as _;
    let mut child = engine_cmd(engine)
        .args(["build", "-q", "-t", name, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {engine} build: {e}"));
    let dockerfile = format!("FROM {}\nLABEL cibox.test.copy={name}\n", base_image());
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dockerfile.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{engine} build of {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name unique to this test process and call: for labels, tags, files.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs a command and returns its output, panicking with context if it cannot start.
pub fn output(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The ids of the containers (any state) carrying `cibox.test=<label>`.
pub fn containers_with_label(engine: &str, label: &str) -> Vec<String> {
    let out = output(engine_cmd(engine).args([
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=cibox.test={label}"),
    ]));
    assert!(out.status.success(), "{engine} ps failed: {}", stderr(&out));
    stdout(&out)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// Starts `cibox run` with a `sleep 600` container and waits until the container runs.
pub fn start_sleeper(engine: &str, label: &str, keep: bool) -> Child {
    let mut command = cibox();
    command.args(["--engine", engine, "run"]);
    if keep {
        command.arg("--keep");
    }
    let child = command
        .args([
            "--label",
            &format!("cibox.test={label}"),
            &base_image(),
            "sleep",
            "600",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start cibox run");
    let running = wait_until(Duration::from_secs(30), || {
        let out = output(engine_cmd(engine).args([
            "ps",
            "-q",
            "--filter",
            &format!("label=cibox.test={label}"),
        ]));
        !stdout(&out).trim().is_empty()
    });
    assert!(running, "the container never started");
    child
}

/// Sends `signal` to a child process (cibox under test).
pub fn send_signal(child: &Child, signal: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal)
        .expect("signal the child");
}

/// Asserts that no container labelled `cibox.test=<label>` is left within 10 s of `event`.
pub fn assert_containers_gone(engine: &str, label: &str, event: &str) {
    assert!(
        wait_until(Duration::from_secs(10), || containers_with_label(
            engine, label
        )
        .is_empty()),
        "a labelled container is still there 10 s after {event}"
    );
}

/// Removes the test's containers whatever happens to the test (a guard).
pub struct LabelGuard {
    pub engine: String,
    pub label: String,
}

impl LabelGuard {
    pub fn new(engine: &str, label: &str) -> LabelGuard {
        LabelGuard {
            engine: engine.into(),
            label: label.into(),
        }
    }
}

impl Drop for LabelGuard {
    fn drop(&mut self) {
        let ids = containers_with_label(&self.engine, &self.label);
        if !ids.is_empty() {
            let mut rm = engine_cmd(&self.engine);
            rm.args(["rm", "-f"]);
            if self.engine == "podman" {
                rm.arg("--time=0");
            }
            let _ = rm.args(ids).output();
        }
    }
}

/// Defines one `#[test]` per engine for each function `fn name(engine: &str)`:
/// `engine_tests!(probe_works, run_status);` gives `podman::probe_works`,
/// `docker::probe_works`, ...
#[macro_export]
macro_rules! engine_tests {
    ($($name:ident),* $(,)?) => {
        mod podman {
            $(
                #[test]
                fn $name() {
                    if $crate::engines::engine_available("podman") {
                        super::$name("podman");
                    }
                }
            )*
        }
        mod docker {
            $(
                #[test]
                fn $name() {
                    if $crate::engines::engine_available("docker") {
                        super::$name("docker");
                    }
                }
            )*
        }
    };
}

/// Removes the named images (and the layers only they used) whatever happens to the test.
pub struct Images {
    engine: String,
    names: Vec<String>,
}

impl Images {
    pub fn new(engine: &str) -> Images {
        Images {
            engine: engine.into(),
            names: Vec::new(),
        }
    }

    /// A fresh image name (`cibox-test/<what>-<pid>-<n>`), removed at the end.
    pub fn name(&mut self, what: &str) -> String {
        let name = unique(&format!("cibox-test/{what}"));
        self.names.push(name.clone());
        name
    }

    /// Also remove `name` at the end.
    pub fn add(&mut self, name: &str) {
        self.names.push(name.into());
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let rmi = |targets: &[String]| {
            let _ = engine_cmd(&self.engine)
                .args(["rmi", "-f"])
                .args(targets)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        };
        rmi(&self.names);
        // A copy of the base image made for one of these names ([`own_copy_of_base`]) that a
        // test then rebuilt under the same name (`update`) is left untagged; it, and anything
        // built on it, carries the copy's label.
        let mut copies = Vec::new();
        for name in &self.names {
            if let Ok(out) = engine_cmd(&self.engine)
                .args(["images", "-a", "-q", "--no-trunc", "--filter"])
                .arg(format!("label=cibox.test.copy={name}"))
                .stderr(Stdio::null())
                .output()
            {
                copies.extend(
                    String::from_utf8_lossy(&out.stdout)
                        .split_whitespace()
                        .map(str::to_string),
                );
            }
        }
        if !copies.is_empty() {
            rmi(&copies);
        }
    }
}

/// Runs a build, again when podman 4.3 trips over an image removed by a parallel test at the
/// same moment ("layer not known"; cibox's own builds do the same).
pub fn retrying_podman_race(mut command: impl FnMut() -> Output) -> Output {
    let mut out = command();
    for pause in [200, 400, 800, 1600, 3200] {
        if out.status.success() || !stderr(&out).contains("layer not known") {
            break;
        }
        std::thread::sleep(Duration::from_millis(pause));
        out = command();
    }
    out
}

/// Runs the original docker.py (`script`) with `--engine ENGINE ARGS`.
pub fn reference(engine: &str, script: &std::path::Path, args: &[&str]) -> Output {
    retrying_podman_race(|| {
        output(
            Command::new("python3")
                .arg(script)
                .args(["--engine", engine])
                .args(args)
                // The original forces BuildKit on docker, which this client refuses without
                // buildx (defect 1); it leaves BuildKit alone under GITLAB_CI.
                .env("GITLAB_CI", "1")
                .stdin(Stdio::null()),
        )
    })
}

/// The compiler image (gcc) the engine has, or `None` (test skipped) when it is missing,
/// which fails the test instead when the engines are required.
pub fn cc_image(engine: &str) -> Option<String> {
    let image =
        std::env::var("CIBOX_TEST_CC_IMAGE").unwrap_or_else(|_| "cibox-test/gcc:bookworm".into());
    let present = output(engine_cmd(engine).args(["image", "inspect", &image]))
        .status
        .success();
    assert!(
        present || std::env::var("CIBOX_REQUIRE_ENGINES").is_err(),
        "compiler image {image} missing: run scripts/test-env up"
    );
    present.then_some(image)
}

/// Asserts that a command succeeded, showing its status and output when it did not.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        stdout(out),
        stderr(out)
    );
}
