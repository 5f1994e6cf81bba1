//! `start_keep` / `stop_keep` (and the seed's `run_test_server.py` form) through the binary,
//! with real HTTP on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use cibox_testsupport::keep::*;

/// One test's private world: a TMPDIR (where volumes go) and a run directory. Stops whatever
/// it started when dropped, so a failing test leaves no servers behind.
struct Run {
    tmp: tempfile::TempDir,
}

impl Run {
    fn new() -> Run {
        Run {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn tmpdir(&self) -> &Path {
        self.tmp.path()
    }

    fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    fn stderr_file(&self) -> PathBuf {
        self.tmp.path().join("stderr.log")
    }

    /// Runs `program args... --run-dir RUN` with TMPDIR set.
    fn cibox_with(&self, program: &Path, args: &[&str]) -> Output {
        let run_dir = self.run_dir();
        let mut all: Vec<&str> = args.to_vec();
        let run_dir_arg = run_dir.to_str().unwrap();
        // Put --run-dir before a `--` if there is one.
        let at = all.iter().position(|a| *a == "--").unwrap_or(all.len());
        all.insert(at, run_dir_arg);
        all.insert(at, "--run-dir");
        run_cibox(
            program,
            &all,
            &self.stderr_file(),
            &[("TMPDIR", self.tmpdir())],
        )
    }

    fn cibox(&self, args: &[&str]) -> Output {
        self.cibox_with(Path::new(cibox_bin()), args)
    }

    fn start_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["start_keep", "--json"];
        all.extend_from_slice(args);
        let out = self.cibox(&all);
        assert!(
            out.status.success(),
            "start_keep failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn stop(&self) -> Output {
        self.cibox(&["stop_keep"])
    }

    fn state_files(&self) -> Vec<String> {
        names_in(&self.run_dir())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

fn servers(started: &serde_json::Value) -> Vec<(u32, String, PathBuf)> {
    started["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["pid"].as_u64().unwrap() as u32,
                s["url"].as_str().unwrap().to_string(),
                PathBuf::from(s["volume"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn round_trip_put_get_index_then_stop() {
    let run = Run::new();
    let started = run.start_json(&[]);
    let servers = servers(&started);
    assert_eq!(servers.len(), 2);
    assert_eq!(
        started["keep_services"].as_str().unwrap(),
        format!("{} {}", servers[0].1, servers[1].1)
    );
    assert_eq!(
        run.state_files(),
        [
            "cibox.manifest",
            "keep.blob_signing_key",
            "keep.data_manager_token",
            "keep0.pid",
            "keep0.port",
            "keep0.volume",
            "keep1.pid",
            "keep1.port",
            "keep1.volume"
        ]
    );
    let token = std::fs::read_to_string(run.run_dir().join("keep.data_manager_token")).unwrap();
    assert_eq!(started["data_manager_token"].as_str().unwrap(), token);
    for (n, (pid, url, volume)) in servers.iter().enumerate() {
        assert!(alive(*pid));
        assert!(volume.starts_with(run.tmpdir()), "volume outside TMPDIR");
        let port = url.rsplit(':').next().unwrap();
        let run_file = |kind: &str| {
            std::fs::read_to_string(run.run_dir().join(format!("keep{n}.{kind}"))).unwrap()
        };
        assert_eq!(run_file("pid").trim(), pid.to_string());
        assert_eq!(run_file("port").trim(), port);
        assert_eq!(Path::new(run_file("volume").trim()), volume);

        let data = block(n as u64 + 10, 100_000);
        let hash = md5_hex(&data);
        let (status, locator) = put(&format!("{url}/{hash}"), None, &data);
        assert_eq!(status, 200);
        assert_eq!(locator.trim(), format!("{hash}+100000"));
        assert_eq!(get(&format!("{url}/{}", locator.trim()), None), (200, data));
        let (status, idx) = get(&format!("{url}/index"), Some(&token));
        assert_eq!(status, 200);
        let idx = String::from_utf8(idx).unwrap();
        assert!(idx.starts_with(&format!("{hash}+100000 ")), "{idx}");
        assert!(idx.ends_with("\n\n"));
        // Each server has only its own block.
        assert_eq!(idx.lines().filter(|l| !l.is_empty()).count(), 1);
    }
    // Log lines reach start_keep's stderr with their prefix.
    let log = std::fs::read_to_string(run.stderr_file()).unwrap();
    assert!(
        log.contains("[keep0] ") && log.contains("[keep1] "),
        "{log}"
    );

    let out = run.stop();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    for (pid, url, volume) in &servers {
        assert!(
            wait_gone(*pid, Duration::from_secs(2)),
            "pid {pid} still running"
        );
        assert!(!volume.exists(), "{} left behind", volume.display());
        assert!(std::net::TcpStream::connect(url.trim_start_matches("http://")).is_err());
    }
    assert!(run.state_files().is_empty(), "{:?}", run.state_files());

    // Twice: nothing running, quiet success.
    let stderr_before = std::fs::metadata(run.stderr_file()).unwrap().len();
    let out = run.stop();
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(
        std::fs::metadata(run.stderr_file()).unwrap().len(),
        stderr_before
    );
}

#[test]
fn env_output_and_restart_stops_the_earlier_servers() {
    let run = Run::new();
    let out = run.cibox(&["start_keep", "--num-keep-servers", "1", "--env"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let first_pid: u32 = std::fs::read_to_string(run.run_dir().join("keep0.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let services = text
        .lines()
        .find_map(|l| l.strip_prefix("export ARVADOS_KEEP_SERVICES="))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(services.starts_with("http://127.0.0.1:"), "{text}");
    assert!(text.contains("export KEEP_DATA_MANAGER_TOKEN="), "{text}");
    // Always signing, with the test cluster's key unless told another.
    assert!(
        text.contains(&format!(
            "export KEEP_BLOB_SIGNING_KEY={}",
            cibox_arvados::api::cluster::BLOB_SIGNING_KEY
        )),
        "{text}"
    );

    // Starting again in the same run directory stops the first server.
    let out = run.cibox(&["start_keep", "--num-keep-servers", "1"]);
    assert!(out.status.success());
    let url = String::from_utf8(out.stdout).unwrap();
    assert!(url.trim().starts_with("http://127.0.0.1:"));
    assert!(wait_gone(first_pid, Duration::from_secs(2)));
    let volumes: Vec<_> = std::fs::read_dir(run.tmpdir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("keep"))
        .collect();
    assert_eq!(volumes.len(), 1, "{volumes:?}");
    assert_eq!(get(&format!("{}/status.json", url.trim()), None).0, 200);
}

#[test]
fn enforced_permissions_with_a_generated_key() {
    let run = Run::new();
    let started = run.start_json(&["--keep-enforce-permissions", "--num-keep-servers", "1"]);
    let key_file = run.run_dir().join("keep.blob_signing_key");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.len() >= 32);
    assert_eq!(started["blob_signing_key"].as_str().unwrap(), key);
    let (_, url, _) = &servers(&started)[0];
    let data = b"permission test".to_vec();
    let hash = md5_hex(&data);
    let (status, signed) = put(&format!("{url}/{hash}"), Some("tok"), &data);
    assert_eq!(status, 200);
    let signed = signed.trim();
    assert!(signed.contains("+A"), "{signed}");
    assert_eq!(
        get(&format!("{url}/{signed}"), Some("tok")),
        (200, data.clone())
    );
    assert_eq!(get(&format!("{url}/{hash}"), None).0, 401);
    assert_eq!(get(&format!("{url}/{hash}"), Some("tok")).0, 403);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = cibox_arvados::signature::sign_locator(
        &format!("{hash}+{}", data.len()),
        key.as_bytes(),
        "tok",
        now - 1,
        1_209_600,
    );
    assert_eq!(get(&format!("{url}/{expired}"), Some("tok")).0, 401);
    let forged = format!("{hash}+A{}@{:08x}", "ab".repeat(20), now + 100);
    assert_eq!(get(&format!("{url}/{forged}"), Some("tok")).0, 403);

    assert!(run.stop().status.success());
    assert!(!key_file.exists());
}

#[test]
fn given_signing_key_and_extra_flags() {
    let run = Run::new();
    let key_src = run.tmpdir().join("my.key");
    std::fs::write(&key_src, "my-key\n").unwrap();
    let started = run.start_json(&[
        "--num-keep-servers",
        "1",
        "--blob-signing-key",
        key_src.to_str().unwrap(),
        "--",
        "-never-delete=false",
    ]);
    assert_eq!(
        std::fs::read_to_string(run.run_dir().join("keep.blob_signing_key")).unwrap(),
        "my-key"
    );
    let (_, url, _) = &servers(&started)[0];
    let hash = md5_hex(b"x");
    let (status, signed) = put(&format!("{url}/{hash}"), Some("t"), b"x");
    assert_eq!(status, 200);
    let loc = cibox_arvados::locator::Locator::parse(signed.trim()).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    cibox_arvados::signature::verify(&loc, b"my-key", "t", 1_209_600, now).unwrap();
    // Not enforcing: unsigned GETs are served.
    assert_eq!(get(&format!("{url}/{hash}"), None).0, 200);
    // The extra flag reached the server: DELETE is no longer 405 (401 without a token).
    let (status, _, _) = call(agent().delete(&format!("{url}/{hash}")), None);
    assert_eq!(status, 401);
    assert!(run.stop().status.success());
    assert!(key_src.exists(), "the caller's key file must stay");
}

#[test]
fn through_a_run_test_server_py_link() {
    let run = Run::new();
    let link = run.tmpdir().join("run_test_server.py");
    std::os::unix::fs::symlink(cibox_bin(), &link).unwrap();
    let out = run.cibox_with(&link, &["start_keep", "--num-keep-servers", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap();
    let pid: u32 = std::fs::read_to_string(run.run_dir().join("keep0.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(get(&format!("{}/_health/ping", url.trim()), None).0, 200);
    let out = run.cibox_with(&link, &["stop_keep"]);
    assert!(out.status.success());
    assert!(wait_gone(pid, Duration::from_secs(2)));
    assert!(run.state_files().is_empty());
    // Other applets are not reachable through that name.
    let out = Command::new(&link).arg("probe").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn stop_after_a_server_died_on_its_own() {
    let run = Run::new();
    let started = run.start_json(&[]);
    let servers = servers(&started);
    let (dead_pid, _, dead_volume) = &servers[0];
    unsafe { libc::kill(*dead_pid as i32, libc::SIGKILL) };
    assert!(wait_gone(*dead_pid, Duration::from_secs(2)));
    let out = run.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dead_volume.exists());
    assert!(wait_gone(servers[1].0, Duration::from_secs(2)));
    assert!(!servers[1].2.exists());
    assert!(run.state_files().is_empty(), "{:?}", run.state_files());
}

#[test]
fn stale_pid_file_naming_another_process_is_not_signalled() {
    let run = Run::new();
    let started = run.start_json(&["--num-keep-servers", "1"]);
    let (pid, _, volume) = servers(&started)[0].clone();
    // The server dies; its pid "gets reused" by an unrelated process started later.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    assert!(wait_gone(pid, Duration::from_secs(2)));
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    let pid_file = run.run_dir().join("keep0.pid");
    std::fs::write(&pid_file, format!("{}\n", other.id())).unwrap();
    // The file was written long before that process started.
    std::fs::File::options()
        .write(true)
        .open(&pid_file)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let out = run.stop();
    assert!(out.status.success());
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        other.try_wait().unwrap().is_none(),
        "stop_keep signalled a process it did not start"
    );
    assert!(!volume.exists());
    assert!(run.state_files().is_empty(), "{:?}", run.state_files());
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn a_server_that_fails_to_start_is_reported_fast_and_cleaned_up() {
    let run = Run::new();
    let script = run.tmpdir().join("badkeep");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"starting with $*\"\necho 'fatal: volume on fire' >&2\nexit 3\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let started = std::time::Instant::now();
    let out = run.cibox(&["start_keep", "--keepstore", script.to_str().unwrap()]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not fail fast"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("cibox start_keep: "), "{err}");
    assert!(last.contains("keep0 exited"), "{err}");
    assert!(last.contains("fatal: volume on fire"), "{err}");
    assert!(last.contains("-volume="), "{err}");
    assert!(err.contains("[keep1] fatal: volume on fire"), "{err}");
    assert!(run.state_files().is_empty(), "{:?}", run.state_files());
    let leftovers: Vec<_> = std::fs::read_dir(run.tmpdir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("keep"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_keepstore_from_path_by_name() {
    let run = Run::new();
    let bin = run.tmpdir().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(cibox_bin(), bin.join("keepstore")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(cibox_bin())
        .args([
            "start_keep",
            "--num-keep-servers",
            "1",
            "--keepstore",
            "keepstore",
        ])
        .arg("--run-dir")
        .arg(run.run_dir())
        .env("TMPDIR", run.tmpdir())
        .env("PATH", &path)
        .stderr(std::fs::File::create(run.stderr_file()).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        std::fs::read_to_string(run.stderr_file()).unwrap()
    );
    let url = String::from_utf8(out.stdout).unwrap();
    assert_eq!(get(&format!("{}/status.json", url.trim()), None).0, 200);
    // Unknown name: a one-line error.
    let out = run.cibox(&["start_keep", "--keepstore", "no-such-keepstore-here"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let run = Run::new();
    assert_eq!(
        run.cibox(&["start_keep", "--num-keep-servers", "0"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run.cibox(&["start_keep", "--bogus"]).status.code(), Some(2));
    assert_eq!(
        run.cibox(&["start_keep", "--env", "--json"]).status.code(),
        Some(2)
    );
    assert_eq!(run.cibox(&["stop_keep", "extra"]).status.code(), Some(2));
    let help = Command::new(cibox_bin())
        .args(["start_keep", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit status"));
}

/// Runs `stop_keep --run-dir DIR` (TMPDIR as the run's), its stderr captured.
fn stop_in(run: &Run, dir: &Path) -> Output {
    Command::new(cibox_bin())
        .args(["stop_keep", "--run-dir"])
        .arg(dir)
        .env("TMPDIR", run.tmpdir())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn stop_keep_never_signals_a_process_that_does_not_hold_the_pid_file() {
    let run = Run::new();
    let dir = run.run_dir();
    std::fs::create_dir(&dir).unwrap();
    // A plain process started before the pid file was written, which never locked it.
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    std::thread::sleep(Duration::from_millis(30));
    std::fs::write(dir.join("keep0.pid"), format!("{}\n", sleeper.id())).unwrap();
    // PID 1 and garbage next to it.
    std::fs::write(dir.join("keep1.pid"), "1\n").unwrap();
    let out = stop_in(&run, &dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        sleeper.try_wait().unwrap().is_none(),
        "stop_keep signalled a process it never started: {err}"
    );
    assert!(err.contains("not signalled"), "{err}");
    assert!(run.state_files().is_empty(), "{:?}", run.state_files());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
}

#[test]
fn stop_keep_never_signals_itself_or_its_parent() {
    let run = Run::new();
    let dir = run.run_dir();
    std::fs::create_dir(&dir).unwrap();
    // The pid file names stop_keep itself (exec keeps the shell's pid), then its parent.
    for script in [
        "echo $$ >\"$1/keep0.pid\"; exec \"$2\" stop_keep --run-dir \"$1\"",
        "echo $$ >\"$1/keep0.pid\"; \"$2\" stop_keep --run-dir \"$1\"; echo parent-survived",
    ] {
        let out = Command::new("sh")
            .args(["-c", script, "sh"])
            .arg(&dir)
            .arg(cibox_bin())
            .env("TMPDIR", run.tmpdir())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{:?} {err}", out.status);
        if script.contains("parent-survived") {
            assert_eq!(String::from_utf8_lossy(&out.stdout), "parent-survived\n");
        }
    }
}

#[test]
fn a_run_dir_others_may_write_or_own_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let run = Run::new();
    let dir = run.run_dir();
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut sleeper = Command::new("sleep").arg("600").spawn().unwrap();
    std::fs::write(dir.join("keep0.pid"), format!("{}\n", sleeper.id())).unwrap();
    for args in [
        &["stop_keep"][..],
        &["start_keep", "--num-keep-servers", "1"][..],
    ] {
        let out = run.cibox(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.contains(dir.to_str().unwrap()), "{err}");
        assert!(last.contains("writable"), "{err}");
    }
    assert!(sleeper.try_wait().unwrap().is_none());
    assert!(
        dir.join("keep0.pid").exists(),
        "a refused run dir is left alone"
    );
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Owned by someone else (only root can set that up).
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let out = run.stop();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.lines().last().unwrap_or_default().contains("owned by"),
            "{err}"
        );
        std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    }
    assert!(sleeper.try_wait().unwrap().is_none());
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    std::fs::remove_file(dir.join("keep0.pid")).unwrap();
}

#[test]
fn run_dir_that_is_a_file_is_one_clear_line() {
    let run = Run::new();
    std::fs::write(run.run_dir(), "not a dir").unwrap();
    let out = run.cibox(&["start_keep", "--num-keep-servers", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(run.run_dir().to_str().unwrap()), "{err}");
    assert!(err.contains("not a directory"), "{err}");
    assert_eq!(std::fs::read_to_string(run.run_dir()).unwrap(), "not a dir");
}

/// Names in `dir` starting with `prefix`.
fn names_starting(dir: &Path, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// Keepstores (cibox processes whose command line names `dir`) still running.
fn keepstores_using(dir: &Path) -> Vec<u32> {
    let needle = dir.to_str().unwrap().as_bytes().to_vec();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.windows(needle.len()).any(|w| w == needle.as_slice())
                    && c.windows(9).any(|w| w == b"keepstore")
            }) && alive(pid)
        })
        .collect()
}

#[test]
fn a_signal_during_start_keep_leaves_nothing_and_a_kill_is_cleaned_by_stop_keep() {
    let run = Run::new();
    let dir = run.run_dir();
    for (i, delay_ms) in [0u64, 1, 2, 4, 8, 15, 30, 60].into_iter().enumerate() {
        let signal = [libc::SIGINT, libc::SIGTERM, libc::SIGKILL][i % 3];
        let mut child = Command::new(cibox_bin())
            .args(["start_keep", "--num-keep-servers", "3", "--run-dir"])
            .arg(&dir)
            .env("TMPDIR", run.tmpdir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        if signal != libc::SIGKILL && status.code() != Some(0) {
            // Interrupted: it cleaned up after itself (or died before it had begun).
            assert!(
                names_starting(&dir, ".").is_empty() && names_starting(&dir, "keep").is_empty(),
                "after signal {signal} at {delay_ms} ms ({status}): {:?}",
                run.state_files()
            );
            assert!(names_starting(run.tmpdir(), "keep").is_empty());
            assert!(keepstores_using(&dir).is_empty());
        }
        // Whatever is left, stop_keep removes it all.
        let out = run.stop();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Servers a killed start_keep had spawned were stopped too.
        let pids = keepstores_using(&dir);
        for &pid in &pids {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        assert!(
            pids.is_empty(),
            "servers left running after signal {signal} at {delay_ms} ms"
        );
        assert!(
            names_starting(&dir, ".").is_empty(),
            "{:?}",
            names_starting(&dir, ".")
        );
        assert!(run.state_files().is_empty(), "{:?}", run.state_files());
        assert!(
            names_starting(run.tmpdir(), "keep").is_empty(),
            "volumes left after signal {signal} at {delay_ms} ms"
        );
    }
}

#[test]
fn two_start_keeps_in_one_run_dir_do_not_interleave() {
    let run = Run::new();
    let dir = run.run_dir();
    let spawn = || {
        Command::new(cibox_bin())
            .args(["start_keep", "--num-keep-servers", "2", "--run-dir"])
            .arg(&dir)
            .env("TMPDIR", run.tmpdir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    for _ in 0..3 {
        let (a, b) = (spawn(), spawn());
        let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
        assert!(a.status.success() && b.status.success());
        // The later one stopped the earlier one's servers: exactly two run, both recorded.
        std::thread::sleep(Duration::from_millis(50));
        let running = keepstores_using(&dir);
        assert_eq!(running.len(), 2, "{running:?}");
        assert_eq!(names_starting(run.tmpdir(), "keep").len(), 2);
        let out = run.stop();
        assert!(out.status.success());
        assert!(keepstores_using(&dir).is_empty());
        assert!(names_starting(run.tmpdir(), "keep").is_empty());
        assert!(run.state_files().is_empty(), "{:?}", run.state_files());
    }
}
