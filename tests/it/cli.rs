//! The multicall binary itself: dispatch, links, global options, completions, and the
//! container applets' behaviour with no engine at all. Needs no engine.

use std::path::Path;
use std::process::Command;

use cibox_testsupport::engines::*;

#[test]
fn list_names_every_applet_one_a_line() {
    let out = output(cibox().arg("--list"));
    assert!(out.status.success());
    let names: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    for expected in ["clean", "images", "probe", "run"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing: {names:?}"
        );
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "--list is sorted");
}

#[test]
fn help_and_version() {
    let out = output(cibox().arg("--help"));
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(
        help.contains("probe") && help.contains("--engine"),
        "{help}"
    );
    let out = output(cibox().arg("--version"));
    assert_eq!(
        stdout(&out),
        format!("cibox {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = output(cibox().args(["run", "--help"]));
    assert!(out.status.success());
    assert!(stdout(&out).contains("Exit status"), "{}", stdout(&out));
}

#[test]
fn unknown_applet_and_option_are_usage_errors() {
    let out = output(cibox().arg("frobnicate"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown applet 'frobnicate'"));
    let out = output(cibox().arg("--frob"));
    assert_eq!(out.status.code(), Some(2));
    let out = output(cibox().args(["--engine", "lxc", "probe"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("lxc"));
    let out = output(&mut cibox());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn link_named_after_an_applet_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["probe", "cibox-probe"] {
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(cibox_path(), &link).unwrap();
        let out = output(
            Command::new(&link)
                .env("PATH", "/nonexistent")
                .arg("--help"),
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert!(stdout(&out).contains("probe"), "{name}: {}", stdout(&out));
        let out = output(Command::new(&link).env("PATH", "/nonexistent"));
        assert_eq!(stdout(&out), "no\n", "{name}");
    }
}

#[test]
fn probe_without_any_engine_says_no_and_exits_0() {
    for engine in ["auto", "docker", "podman"] {
        let out = output(
            cibox()
                .env("PATH", "/nonexistent")
                .args(["--engine", engine, "probe"]),
        );
        assert_eq!(out.status.code(), Some(0), "{engine}");
        assert_eq!(stdout(&out), "no\n", "{engine}");
    }
    let out = output(
        cibox()
            .env("PATH", "/nonexistent")
            .args(["probe", "--json"]),
    );
    let detail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detail["engine"], "no");
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert!(attempts[0]["error"]
        .as_str()
        .unwrap()
        .contains("podman not found"));
}

#[test]
fn no_engine_is_one_clear_line_and_exit_1() {
    // (clean ignores extra arguments, with a line saying so: none here.)
    for (applet, extra) in [("run", Some("x")), ("clean", None), ("images", Some("x"))] {
        let out = output(cibox().env("PATH", "/nonexistent").arg(applet).args(extra));
        assert_eq!(out.status.code(), Some(1), "{applet}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{applet}: {err}");
        assert!(
            err.starts_with(&format!(
                "cibox {applet}: no working container engine; tried: podman"
            )),
            "{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn engine_failure_is_reported_with_its_status_and_stderr() {
    // A stand-in podman that fails: the message names it, its status and its stderr tail.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("podman");
    std::fs::write(
        &fake,
        "#!/bin/sh\nif [ \"$1\" = version ]; then echo '{}'; exit 0; fi\necho \"cannot reach storage\" >&2\nexit 125\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = output(
        cibox()
            .env("PATH", dir.path())
            .args(["--engine", "podman", "clean"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "cibox clean: podman ps failed (exit 125): cannot reach storage\n"
    );
}

#[test]
fn install_makes_links_and_never_overwrites_a_stranger() {
    let dir = tempfile::tempdir().unwrap();
    let out = output(cibox().arg("--install").arg(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    for name in ["probe", "run", "arvados-fixtures"] {
        let link = dir.path().join(name);
        assert_eq!(
            std::fs::read_link(&link).unwrap(),
            cibox_path().canonicalize().unwrap()
        );
    }
    // run_test_server.py is the Python module the Arvados SDK's tests import, naming this cibox.
    let module = std::fs::read_to_string(dir.path().join("run_test_server.py")).unwrap();
    assert!(module.contains(cibox_core::pystub::MARKER));
    assert!(module.contains("class TestCaseWithServers"), "{module}");
    // docker.py is a Python stub (QEMU runs it through Python), naming this cibox.
    let stub = std::fs::read_to_string(dir.path().join("docker.py")).unwrap();
    assert!(stub.starts_with("#!/usr/bin/env python3\n"), "{stub}");
    assert!(stub.contains(cibox_core::pystub::MARKER));
    let exe = cibox_path().canonicalize().unwrap();
    assert!(stub.contains(exe.to_str().unwrap()), "{stub}");
    // Again: nothing to do, still success.
    let out = output(cibox().arg("--install").arg(dir.path()));
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("0 link(s) or stub(s) made"),
        "{}",
        stdout(&out)
    );
    // A docker.py of someone else's is never replaced without --force; a stale stub of ours is.
    let docker_py = dir.path().join("docker.py");
    std::fs::write(&docker_py, "#!/usr/bin/env python3\nprint('mine')\n").unwrap();
    let out = output(cibox().arg("--install").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("docker.py exists and is not a cibox stub or link"),
        "{}",
        stderr(&out)
    );
    assert!(std::fs::read_to_string(&docker_py)
        .unwrap()
        .contains("mine"));
    std::fs::write(
        &docker_py,
        cibox_core::pystub::text(Path::new("/old/place/cibox")),
    )
    .unwrap();
    let out = output(cibox().arg("--install").arg(dir.path()));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&docker_py).unwrap(), stub);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A file that is not ours is left alone without --force, replaced with it.
    let stranger = dir.path().join("clean");
    std::fs::remove_file(&stranger).unwrap();
    std::fs::write(&stranger, "mine").unwrap();
    let out = output(cibox().arg("--install").arg(dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a cibox link"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(&stranger).unwrap(), "mine");
    let out = output(cibox().args(["--install"]).arg(dir.path()).arg("--force"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(std::fs::read_link(&stranger).is_ok());
}

#[test]
fn completions_are_generated_and_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (shell, file) in [
        ("bash", "cibox.bash"),
        ("zsh", "_cibox"),
        ("fish", "cibox.fish"),
    ] {
        let out = output(cibox().args(["completions", shell]));
        assert!(out.status.success());
        assert!(!out.stdout.is_empty());
        let path = root.join("completions").join(file);
        if std::env::var_os("CIBOX_UPDATE_COMPLETIONS").is_some() {
            std::fs::write(&path, &out.stdout).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == out.stdout,
            "completions/{file} is stale: regenerate with {REGENERATE}"
        );
    }
    let out = output(cibox().args(["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn man_pages_are_generated_and_current() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    let pages = cibox_core::manual::pages().unwrap_or_else(|e| panic!("{e}"));
    let update = std::env::var_os("CIBOX_UPDATE_MANPAGES").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "1") {
                std::fs::remove_file(path).unwrap();
            }
        }
    }
    let mut expected: Vec<String> = Vec::new();
    for page in &pages {
        assert!(
            page.text.contains(".SH \"EXIT STATUS\""),
            "{}",
            page.file_name
        );
        assert!(page.text.contains(".SH SYNOPSIS"), "{}", page.file_name);
        let path = dir.join(&page.file_name);
        if update {
            std::fs::write(&path, &page.text).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == page.text,
            "man/{} is stale: regenerate with {REGENERATE}",
            page.file_name
        );
        expected.push(page.file_name.clone());
    }
    let mut present: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    present.sort();
    expected.sort();
    assert_eq!(
        present, expected,
        "man/ holds pages of no applet: {REGENERATE}"
    );
    // One page per applet, plus cibox(1).
    let applets = stdout(&output(cibox().arg("--list"))).lines().count();
    assert_eq!(pages.len(), applets + 1);
    let serve = pages
        .iter()
        .find(|p| p.file_name == "cibox-serve.1")
        .unwrap();
    assert!(
        serve.text.contains("devserver_access.log"),
        "{}",
        serve.text
    );
}

/// The one command that rewrites completions/ and man/ after a command line changes.
const REGENERATE: &str = "CIBOX_UPDATE_COMPLETIONS=1 CIBOX_UPDATE_MANPAGES=1 \
    cargo nextest run --test cli -E 'test(/generated_and_current/)'";

/// A directory with stand-in engines: each `(name, script body)` becomes an executable.
fn fake_engines(engines: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in engines {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    dir
}

#[test]
fn auto_keeps_the_seed_order_even_when_a_later_engine_answers_first() {
    // podman answers slowly (past the hedge delay, so docker is asked too), docker at once:
    // podman still wins, as callers of the original expect.
    let dir = fake_engines(&[
        (
            "podman",
            "sleep 0.3; echo '{\"Client\":{\"Version\":\"9.9\"}}'",
        ),
        ("docker", "echo '{\"Client\":{\"Version\":\"1.0\"}}'"),
    ]);
    let out = output(cibox().env("PATH", dir.path()).arg("probe"));
    assert_eq!(stdout(&out), "podman\n");
}

#[test]
fn auto_falls_through_a_failing_engine_and_reports_why() {
    let dir = fake_engines(&[
        ("podman", "echo 'storage is broken' >&2; exit 125"),
        ("docker", "echo '{\"Server\":{\"Version\":\"20.10\"}}'"),
    ]);
    let out = output(cibox().env("PATH", dir.path()).arg("probe"));
    assert_eq!(stdout(&out), "docker\n");
    let out = output(cibox().env("PATH", dir.path()).args(["probe", "--json"]));
    let detail: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(detail["engine"], "docker");
    assert_eq!(detail["version"], "20.10");
    assert_eq!(
        detail["attempts"][0]["error"],
        "version exited 125: storage is broken"
    );
    // Without --engine auto's fallbacks: an explicit podman is the only one asked.
    let out = output(
        cibox()
            .env("PATH", dir.path())
            .args(["--engine", "podman", "run", "x"]),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "cibox run: no working container engine; tried: podman (version exited 125: storage is broken)\n"
    );
}

/// A stand-in podman that counts its `version` calls in `count`.
fn counting_podman(count: &Path) -> tempfile::TempDir {
    fake_engines(&[(
        "podman",
        &format!(
            "[ \"$1\" = version ] && echo x >> {} && echo '{{\"Client\":{{\"Version\":\"4.3\"}}}}'",
            count.display()
        ),
    )])
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[test]
fn detection_is_cached_under_the_same_conditions_only() {
    let runtime = tempfile::tempdir().unwrap();
    let count = runtime.path().join("count");
    let engines = counting_podman(&count);
    let probe = |extra: &[(&str, &str)]| {
        let mut command = cibox();
        command
            .env("PATH", engines.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env_remove("CIBOX_ENGINE_CACHE_SECONDS")
            .env_remove("DOCKER_HOST")
            .arg("probe");
        for (k, v) in extra {
            command.env(k, v);
        }
        let out = output(&mut command);
        assert_eq!(stdout(&out), "podman\n");
    };
    probe(&[]);
    probe(&[]);
    probe(&[]);
    assert_eq!(lines(&count), 1, "repeat calls are answered from the cache");

    // Another DOCKER_HOST is another question.
    probe(&[("DOCKER_HOST", "unix:///elsewhere.sock")]);
    assert_eq!(lines(&count), 2);
    // The cache can be turned off.
    probe(&[("CIBOX_ENGINE_CACHE_SECONDS", "0")]);
    probe(&[("CIBOX_ENGINE_CACHE_SECONDS", "0")]);
    assert_eq!(lines(&count), 4);
    // An upgraded engine (the program file changed) is asked again.
    let program = engines.path().join("podman");
    let mut script = std::fs::read_to_string(&program).unwrap();
    script.push_str("# upgraded\n");
    std::fs::write(&program, script).unwrap();
    probe(&[]);
    assert_eq!(lines(&count), 5);
    probe(&[]);
    assert_eq!(lines(&count), 5);

    // probe --json always asks afresh.
    let out = output(
        cibox()
            .env("PATH", engines.path())
            .env("XDG_RUNTIME_DIR", runtime.path())
            .args(["probe", "--json"]),
    );
    assert!(out.status.success());
    assert_eq!(lines(&count), 6);
}

#[test]
fn a_cache_directory_others_can_write_is_not_trusted() {
    let runtime = tempfile::tempdir().unwrap();
    let count = runtime.path().join("count");
    let engines = counting_podman(&count);
    let dir = runtime.path().join("cibox");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    for _ in 0..2 {
        let out = output(
            cibox()
                .env("PATH", engines.path())
                .env("XDG_RUNTIME_DIR", runtime.path())
                .env_remove("CIBOX_ENGINE_CACHE_SECONDS")
                .arg("probe"),
        );
        assert_eq!(stdout(&out), "podman\n");
    }
    assert_eq!(lines(&count), 2);
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn failures_are_not_cached() {
    let runtime = tempfile::tempdir().unwrap();
    let count = runtime.path().join("count");
    let engines = fake_engines(&[("podman", &format!("echo x >> {}; exit 1", count.display()))]);
    for _ in 0..2 {
        let out = output(
            cibox()
                .env("PATH", engines.path())
                .env("XDG_RUNTIME_DIR", runtime.path())
                .arg("probe"),
        );
        assert_eq!(stdout(&out), "no\n");
    }
    assert_eq!(lines(&count), 2);
}

/// Hostile or mistaken inputs to the container applets, caught before any engine is asked:
/// a device as the Dockerfile is refused after a bounded read, a bad `--olderthan` is a usage
/// error, and a missing executable is named as such (not blamed on binfmt_misc).
#[test]
fn bounded_dockerfile_reads_and_clear_input_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        output(
            cibox()
                .env("TMPDIR", tmp.path())
                .env("PATH", "/nonexistent")
                .args(args),
        )
    };
    for args in [
        &["check", "cibox-test/x", "/dev/zero"][..],
        &["build", "-t", "cibox-test/x", "-f", "/dev/zero"][..],
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("Dockerfile /dev/zero is larger than 4 MiB"),
            "{err}"
        );
    }
    for value in ["-5", "99999999999999999999", "ten"] {
        let out = run(&[
            "check",
            "cibox-test/x",
            "--checktype",
            "age",
            "--olderthan",
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "--olderthan {value}");
        assert!(stderr(&out).contains("--olderthan"), "{}", stderr(&out));
    }
    let df = tmp.path().join("x.docker");
    std::fs::write(&df, "FROM scratch\n").unwrap();
    let out = run(&[
        "build",
        "-t",
        "cibox-test/x",
        "-f",
        df.to_str().unwrap(),
        "-e",
        "/nonexistent/qemu-aarch64",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("cibox build: cannot read executable /nonexistent/qemu-aarch64"),
        "{err}"
    );
    assert!(!err.contains("binfmt"), "{err}");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "left files"
    );
}
