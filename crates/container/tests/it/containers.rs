//! probe, run and images against real podman and Docker, once per engine.

use std::process::Command;
use std::time::Duration;

use cibox_testsupport::engine_tests;
use cibox_testsupport::engines::*;

engine_tests!(
    probe_names_the_explicit_engine,
    run_returns_the_command_status,
    run_as_current_user_works,
    run_passes_unknown_options_through_in_order,
    run_quiet_hides_the_container_output,
    sigterm_removes_the_container,
    sigint_removes_the_container,
    sighup_removes_the_container,
    sigkill_of_cibox_still_removes_the_container,
    stopping_run_during_start_up_leaves_no_container,
    keep_leaves_the_container_running,
    images_passes_arguments_and_status,
    docker_py_link_behaves_as_cibox,
    engine_after_the_applet_name_and_from_environment,
);

fn probe_names_the_explicit_engine(engine: &str) {
    let out = output(cibox().args(["--engine", engine, "probe"]));
    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("{engine}\n"));

    let json = output(cibox().args(["--engine", engine, "probe", "--json"]));
    assert!(json.status.success());
    let detail: serde_json::Value = serde_json::from_slice(&json.stdout).expect("probe --json");
    assert_eq!(detail["engine"], engine);
    assert_eq!(detail["kind"], engine);
    assert!(detail["version"].as_str().is_some_and(|v| !v.is_empty()));
    assert_eq!(detail["rootless"], false, "the tests run as root");
}

fn run_returns_the_command_status(engine: &str) {
    let label = unique("status");
    let _guard = LabelGuard::new(engine, &label);
    for status in [0, 7] {
        let out = output(cibox().args([
            "--engine",
            engine,
            "run",
            "--label",
            &format!("cibox.test={label}"),
            &base_image(),
            "sh",
            "-c",
            &format!("exit {status}"),
        ]));
        assert_eq!(out.status.code(), Some(status), "{}", stderr(&out));
    }
    assert!(
        containers_with_label(engine, &label).is_empty(),
        "--rm left a container"
    );
}

fn run_as_current_user_works(engine: &str) {
    // As root this is rootful podman: the seed added --userns=keep-id, which podman refuses.
    let out = output(cibox().args([
        "--engine",
        engine,
        "run",
        "--run-as-current-user",
        &base_image(),
        "id",
        "-u",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let uid = nix::unistd::getuid().to_string();
    assert_eq!(stdout(&out).trim(), uid);
}

fn run_passes_unknown_options_through_in_order(engine: &str) {
    let out = output(cibox().args([
        "run",
        "--engine",
        engine,
        "--env",
        "GREETING=hello",
        "-w",
        "/tmp",
        "--quiet-not-ours=x",
        &base_image(),
        "sh",
        "-c",
        "echo $GREETING $(pwd)",
    ]));
    // The engine must have seen --quiet-not-ours (and refused it): proof it was passed on.
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("quiet-not-ours"),
        "engine did not see the unknown option: {}",
        stderr(&out)
    );

    let out = output(cibox().args([
        "run",
        "--engine",
        engine,
        "--env",
        "GREETING=hello",
        "-w",
        "/tmp",
        &base_image(),
        "sh",
        "-c",
        "echo $GREETING $(pwd)",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello /tmp\n");
}

fn run_quiet_hides_the_container_output(engine: &str) {
    let out = output(cibox().args([
        "--engine",
        engine,
        "run",
        "--quiet",
        &base_image(),
        "sh",
        "-c",
        "echo visible-on-stdout; exit 3",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert!(!stdout(&out).contains("visible-on-stdout"));
}

fn stop_with(engine: &str, signal: nix::sys::signal::Signal) {
    let label = unique("signal");
    let _guard = LabelGuard::new(engine, &label);
    let mut child = start_sleeper(engine, &label, false);
    send_signal(&child, signal);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + signal as i32));
    assert_containers_gone(engine, &label, signal.as_str());
}

fn sigterm_removes_the_container(engine: &str) {
    stop_with(engine, nix::sys::signal::Signal::SIGTERM);
}

fn sigint_removes_the_container(engine: &str) {
    stop_with(engine, nix::sys::signal::Signal::SIGINT);
}

fn sighup_removes_the_container(engine: &str) {
    stop_with(engine, nix::sys::signal::Signal::SIGHUP);
}

fn sigkill_of_cibox_still_removes_the_container(engine: &str) {
    // No handler runs on SIGKILL: the reaper cibox started beside the container cleans up.
    let label = unique("sigkill");
    let _guard = LabelGuard::new(engine, &label);
    let mut child = start_sleeper(engine, &label, false);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_containers_gone(engine, &label, "cibox was SIGKILLed");
}

/// SIGKILL or SIGTERM while the engine is still creating the container: the container may
/// appear after cibox is gone, and must still be removed (the reaper, or the handler, waits
/// until the engine client has finished before it calls the container gone).
fn stopping_run_during_start_up_leaves_no_container(engine: &str) {
    use nix::sys::signal::Signal;
    for signal in [Signal::SIGKILL, Signal::SIGTERM] {
        for delay_ms in [0, 40, 120, 250] {
            let label = unique("startup-stop");
            let _guard = LabelGuard::new(engine, &label);
            let mut child = cibox()
                .args(["--engine", engine, "run", "--label"])
                .arg(format!("cibox.test={label}"))
                .args([&base_image(), "sleep", "600"])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("start cibox run");
            std::thread::sleep(Duration::from_millis(delay_ms));
            send_signal(&child, signal);
            child.wait().unwrap();
            // Long enough for a late container to appear, then for it to be removed.
            std::thread::sleep(Duration::from_secs(2));
            assert_containers_gone(
                engine,
                &label,
                &format!("{signal} {delay_ms} ms into the start-up"),
            );
        }
    }
}

fn keep_leaves_the_container_running(engine: &str) {
    let label = unique("keep");
    let _guard = LabelGuard::new(engine, &label);
    let mut child = start_sleeper(engine, &label, true);
    send_signal(&child, nix::sys::signal::Signal::SIGTERM);
    child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let ids = containers_with_label(engine, &label);
    assert_eq!(ids.len(), 1, "--keep should leave the container: {ids:?}");
    // It carries the instance label, so `clean` would find it (crates/container/tests/exclusive.rs).
    let out = output(engine_cmd(engine).args([
        "inspect",
        "--format",
        "{{index .Config.Labels \"com.qemu.instance.uuid\"}}",
        &ids[0],
    ]));
    assert_eq!(stdout(&out).trim().len(), 32, "{}", stderr(&out));
}

fn images_passes_arguments_and_status(engine: &str) {
    let out = output(cibox().args([
        "--engine",
        engine,
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let image = base_image();
    let short = image.trim_start_matches("localhost/");
    assert!(
        stdout(&out).lines().any(|l| l.ends_with(short)),
        "{short} not in {}",
        stdout(&out)
    );
    let out = output(cibox().args(["--engine", engine, "images", "--no-such-flag"]));
    assert_ne!(out.status.code(), Some(0));
    let quiet = output(cibox().args(["--engine", engine, "images", "--quiet"]));
    assert!(quiet.status.success());
    assert!(stdout(&quiet).is_empty());
}

fn docker_py_link_behaves_as_cibox(engine: &str) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("docker.py");
    std::os::unix::fs::symlink(cibox_path(), &link).unwrap();
    let out = output(Command::new(&link).args(["--engine", engine, "probe"]));
    assert_eq!(stdout(&out), format!("{engine}\n"));
    let out = output(Command::new(&link).args([
        "--engine",
        engine,
        "run",
        &base_image(),
        "sh",
        "-c",
        "exit 5",
    ]));
    assert_eq!(out.status.code(), Some(5));
}

fn engine_after_the_applet_name_and_from_environment(engine: &str) {
    let out = output(cibox().args(["probe", "--engine", engine]));
    assert_eq!(stdout(&out), format!("{engine}\n"));
    let out = output(cibox().env("CIBOX_ENGINE", engine).arg("probe"));
    assert_eq!(stdout(&out), format!("{engine}\n"));
    // The command line wins over the environment.
    let other = if engine == "podman" {
        "docker"
    } else {
        "podman"
    };
    let out = output(
        cibox()
            .env("CIBOX_ENGINE", other)
            .args(["--engine", engine, "probe"]),
    );
    assert_eq!(stdout(&out), format!("{engine}\n"));
}

#[test]
fn probe_auto_prefers_podman() {
    if !(engine_available("podman") && engine_available("docker")) {
        return;
    }
    let out = output(cibox().arg("probe"));
    assert!(out.status.success());
    assert_eq!(stdout(&out), "podman\n");
    // docker.py's own spelling of auto.
    let out = output(cibox().args(["--engine", "auto", "probe"]));
    assert_eq!(stdout(&out), "podman\n");
}

#[test]
fn probe_auto_falls_back_to_docker_without_podman() {
    if !engine_available("docker") {
        return;
    }
    // A PATH with docker but no podman.
    let dir = tempfile::tempdir().unwrap();
    let docker = which::which("docker").expect("docker on PATH");
    std::os::unix::fs::symlink(docker, dir.path().join("docker")).unwrap();
    let out = output(cibox().env("PATH", dir.path()).arg("probe"));
    assert_eq!(stdout(&out), "docker\n", "{}", stderr(&out));
}

/// Stops a background process when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn remote_podman_through_container_host() {
    if !engine_available("podman") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("podman.sock");
    let url = format!("unix://{}", socket.display());
    let _service = KillOnDrop(
        Command::new("podman")
            .args(["system", "service", "--time=0", &url])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start podman system service"),
    );
    assert!(
        wait_until(Duration::from_secs(15), || socket.exists()),
        "podman service never made its socket"
    );
    let out = output(
        cibox()
            .env("CONTAINER_HOST", &url)
            .args(["--engine", "podman", "probe", "--json"]),
    );
    let detail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detail["engine"], "podman", "{}", stderr(&out));
    // Remote: rootless is the service's answer (it runs as root here), not a guess.
    assert_eq!(detail["rootless"], false);
    let label = unique("remote");
    let _guard = LabelGuard::new("podman", &label);
    let out = output(cibox().env("CONTAINER_HOST", &url).args([
        "--engine",
        "podman",
        "run",
        "--run-as-current-user",
        "--label",
        &format!("cibox.test={label}"),
        &base_image(),
        "sh",
        "-c",
        "id -u; exit 7",
    ]));
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), nix::unistd::getuid().to_string());
}

/// The tests' podman keeps its images and containers in the test environment's own store,
/// never in the machine's (`scripts/test-env` names a storage.conf in
/// `CONTAINERS_STORAGE_CONF`).
#[test]
fn podman_uses_the_test_store_only() {
    if !engine_available("podman") {
        return;
    }
    let Ok(state) = std::env::var("CIBOX_TEST_ENV") else {
        panic!("CIBOX_TEST_ENV is not set: run the tests through scripts/test");
    };
    let out = output(engine_cmd("podman").args([
        "info",
        "--format",
        "{{.Store.GraphRoot}} {{.Store.RunRoot}}",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let roots = stdout(&out);
    for root in roots.split_whitespace() {
        assert!(
            root.starts_with(&state),
            "podman's store {root} is outside the test environment {state}"
        );
    }
}
