//! The one launcher's interrupt clean-up, through the binary: SIGINT or SIGTERM while
//! `start_keep_proxy`, `start_nginx` or `start_api` waits for its daemon stops the daemon,
//! removes what the start made and exits 128 + the signal, as `start_keep` does (its own test is
//! in [`super::keep`]) and `start_arv-git-httpd` (in [`super::stack_ownership`]).
//!
//! Each test holds its start in the wait deterministically with a daemon that never listens on
//! the port the launcher gave it: keepproxy told to listen elsewhere (a later `-listen`), a
//! stand-in nginx that only sleeps, an API server whose state file is a FIFO nobody writes.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use cibox_testsupport::keep::*;

use crate::support::{applet_command, write_run_certificate};

/// One test's TMPDIR and run directory. When dropped, stops the run and SIGKILLs, by pid, any
/// process still naming the test's directory on its command line, and the process groups it
/// was told about.
struct Run {
    tmp: tempfile::TempDir,
    groups: std::cell::RefCell<Vec<u32>>,
}

impl Run {
    fn new() -> Run {
        let run = Run {
            tmp: tempfile::tempdir().unwrap(),
            groups: Default::default(),
        };
        std::fs::create_dir(run.run_dir()).unwrap();
        run
    }

    fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("run")
    }

    fn log(&self) -> PathBuf {
        self.tmp.path().join("start.log")
    }

    /// Spawns `cibox APPLET --run-dir RUN ARGS...`, its stderr (which the daemons keep) to a file.
    fn spawn(&self, applet: &str, args: &[&str]) -> Child {
        applet_command(applet, &self.run_dir(), self.tmp.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log()).unwrap())
            .spawn()
            .unwrap()
    }

    /// Processes (other than the test's) whose command line names the test's directory and
    /// contains `word`.
    fn processes_with(&self, word: &str) -> Vec<u32> {
        let dir = self.tmp.path().to_str().unwrap().as_bytes().to_vec();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|&pid| pid != std::process::id())
            .filter(|&pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                    c.windows(dir.len()).any(|w| w == dir.as_slice())
                        && c.windows(word.len()).any(|w| w == word.as_bytes())
                })
            })
            .filter(|&pid| alive(pid))
            .collect()
    }

    /// The names left in the run directory.
    fn files(&self) -> Vec<String> {
        names_in(&self.run_dir())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = Command::new(cibox_bin())
            .arg("stop_all")
            .arg("--run-dir")
            .arg(self.run_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for pid in self.processes_with("") {
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        for &pgid in self.groups.borrow().iter() {
            if !group_members(pgid).is_empty() {
                unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
            }
        }
    }
}

/// The live processes in process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
                after.split_whitespace().nth(2) == Some(&pgid.to_string())
            })
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// Polls `found` every 5 ms for up to 10 s; its last answer.
fn wait_until<T>(mut found: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = found() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits up to 20 s for `child` (killing it after that).
fn wait_bounded(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the start did not end within 20 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Signals the start `child` and checks that it exits 128 + `signal`, saying so.
fn interrupt(run: &Run, child: &mut Child, signal: i32) {
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = wait_bounded(child);
    let log = std::fs::read_to_string(run.log()).unwrap_or_default();
    assert_eq!(
        status.code(),
        Some(128 + signal),
        "after {}: {status}: {log}",
        signal_name(signal)
    );
    assert!(log.contains(signal_name(signal)), "{log}");
}

#[test]
fn a_signal_during_start_keep_proxy_stops_the_proxy_and_exits_128_plus_n() {
    let run = Run::new();
    let dir = run.run_dir();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // It listens on a port of its own choosing, never on the one the launcher waits for.
        let mut child = run.spawn("start_keep_proxy", &["--", "-listen=127.0.0.1:0"]);
        let pid = wait_until(|| {
            std::fs::read_to_string(dir.join("keepproxy.pid"))
                .ok()?
                .trim()
                .parse::<u32>()
                .ok()
        });
        let pid = pid.unwrap_or_else(|| panic!("keepproxy never started: {:?}", run.files()));
        interrupt(&run, &mut child, signal);
        assert!(
            wait_gone(pid, Duration::from_secs(5)),
            "keepproxy still runs"
        );
        assert!(run.files().is_empty(), "{:?}", run.files());
        assert!(run.processes_with("keepproxy").is_empty());
    }
}

#[test]
fn a_signal_during_start_nginx_stops_its_process_group_and_removes_what_it_made() {
    let run = Run::new();
    let dir = run.run_dir();
    write_run_certificate(&dir);
    // Something to front (never reached: the stand-in does not listen).
    std::fs::write(dir.join("keepproxy.port"), "9\n").unwrap();
    // An nginx that never listens; it and its child hold the pid file the launcher locked for it.
    let fake = run.tmp.path().join("fake-nginx");
    std::fs::write(&fake, "#!/bin/sh\nsleep 60 &\nwait\n").unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let made = [
        "nginx.pid",
        "nginx.port",
        "nginx.pid.master",
        "nginx.conf",
        "nginx",
        "keepproxy-ssl.port",
        "cibox.manifest",
    ];
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let mut child = run.spawn("start_nginx", &["--nginx", fake.to_str().unwrap()]);
        let master = wait_until(|| {
            let pid = std::fs::read_to_string(dir.join("nginx.pid")).ok()?;
            let pid = pid.trim().parse::<u32>().ok()?;
            // Its child is up too.
            (group_members(pid).len() >= 2).then_some(pid)
        });
        let master = master.unwrap_or_else(|| panic!("nginx never started: {:?}", run.files()));
        run.groups.borrow_mut().push(master);
        interrupt(&run, &mut child, signal);
        // The master and its child (the relay ends with them).
        let gone = wait_until(|| group_members(master).is_empty().then_some(()));
        assert!(
            gone.is_some(),
            "left in group {master}: {:?}",
            group_members(master)
        );
        for name in made {
            assert!(!dir.join(name).exists(), "{name} left: {:?}", run.files());
        }
        // What the run had before the start is still there.
        for name in ["self-signed.pem", "self-signed.key", "keepproxy.port"] {
            assert!(dir.join(name).exists(), "{name} removed");
        }
    }
}

#[test]
fn a_signal_during_start_api_stops_the_server_and_removes_what_it_made() {
    let run = Run::new();
    let dir = run.run_dir();
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // The run's own state file (its manifest says so), a FIFO: the server blocks opening it
        // before it listens.
        std::fs::write(
            dir.join("cibox.manifest"),
            "# a test's run\nsince 0.000000000\napi.state.json\n",
        )
        .unwrap();
        let fifo = std::ffi::CString::new(dir.join("api.state.json").to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let mut child = run.spawn("start_api", &[]);
        let server = wait_until(|| run.processes_with("apiserver").first().copied());
        let server = server.unwrap_or_else(|| panic!("no API server started: {:?}", run.files()));
        interrupt(&run, &mut child, signal);
        assert!(
            wait_gone(server, Duration::from_secs(5)),
            "the API server still runs"
        );
        // Its pid and port files, the certificate it made, the state file of the run, and the
        // manifest with its last entry.
        assert!(run.files().is_empty(), "{:?}", run.files());
    }
}
