//! Progress a person can follow: `fetch --quiet` from the test environment's real registry,
//! on each engine, reports bytes of the layers the registry announced (plain lines, since
//! stderr is not a terminal here; `CIBOX_PROGRESS_INTERVAL=0` makes every step a line).

use cibox_testsupport::engines::*;

/// Pushes the base image to the registry as a unique repository; returns (tag, registry).
fn pushed(engine: &str, registry: &str) -> String {
    let tag = unique("cibox-test/progress");
    let remote = format!("{registry}/{tag}");
    let tls = if engine == "podman" {
        vec!["--tls-verify=false"]
    } else {
        vec![]
    };
    own_copy_of_base(engine, &remote);
    // podman 4.3 can trip over an image another test removes at the same moment: try again.
    let mut push = output(engine_cmd(engine).arg("push").args(&tls).arg(&remote));
    for pause in [200, 800, 2000] {
        if push.status.success() || !stderr(&push).contains("not known") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(pause));
        own_copy_of_base(engine, &remote);
        push = output(engine_cmd(engine).arg("push").args(&tls).arg(&remote));
    }
    assert!(push.status.success(), "{}", stderr(&push));
    let _ = output(engine_cmd(engine).args(["rmi", &remote]));
    tag
}

fn fetch_shows_layer_bytes(engine: &str) {
    if !engine_available(engine) {
        return;
    }
    let Ok(registry) = std::env::var("CIBOX_TEST_REGISTRY") else {
        eprintln!("skipped: no test registry (run the tests through scripts/test)");
        return;
    };
    let tag = pushed(engine, &registry);
    let remote = format!("{registry}/{tag}");
    let out = output(
        cibox()
            .env("CIBOX_PROGRESS_INTERVAL", "0")
            .args(["--engine", engine, "fetch", "--quiet", &tag, &registry]),
    );
    let _ = output(engine_cmd(engine).args(["rmi", &tag, &remote]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout(&out), "", "--quiet: nothing on stdout");
    // One layer: its size is the whole, announced by the registry before the pull.
    let progress = err
        .lines()
        .find(|l| l.starts_with(&format!("cibox fetch: pulling {remote}: ")) && l.contains(" of "))
        .unwrap_or_else(|| panic!("no progress line: {err}"));
    assert!(progress.contains("(100%)"), "{progress}");
    assert!(progress.contains("/s"), "{progress}");
    assert!(
        err.lines().any(
            |l| l.starts_with(&format!("cibox fetch: pulling {remote}: ")) && l.contains(" in ")
        ),
        "no summary line: {err}"
    );
}

#[test]
fn fetch_shows_layer_bytes_podman() {
    fetch_shows_layer_bytes("podman");
}

#[test]
fn fetch_shows_layer_bytes_docker() {
    fetch_shows_layer_bytes("docker");
}

#[test]
fn fetch_without_progress_interval_stays_quiet_when_quick() {
    if !engine_available("podman") {
        return;
    }
    let Ok(registry) = std::env::var("CIBOX_TEST_REGISTRY") else {
        eprintln!("skipped: no test registry (run the tests through scripts/test)");
        return;
    };
    let tag = pushed("podman", &registry);
    let out = output(cibox().args(["--engine", "podman", "fetch", "--quiet", &tag, &registry]));
    let _ = output(engine_cmd("podman").args(["rmi", &tag, &format!("{registry}/{tag}")]));
    assert!(out.status.success(), "{}", stderr(&out));
    // A pull shorter than the interval leaves no line in a log.
    assert_eq!(stderr(&out), "");
}
