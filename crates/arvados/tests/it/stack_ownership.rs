//! What the launchers own, through the binary: the stops remove only what a run recorded as its
//! own in the run directory's manifest (never a user's `git/`, `nginx.conf`, certificate or
//! temporary files), nginx is stopped as a whole process group (a worker outliving a killed
//! master is stopped too) and takes run directories with spaces, `;`, quotes and backslashes,
//! and `start_arv-git-httpd` makes its repositories under the run-dir lock, whole or not at
//! all, exiting 130 on SIGINT.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use cibox_testsupport::keep::*;

use crate::support::{applet_command, pid_in, write_run_certificate};

/// One test's TMPDIR and run directory (named `name` inside it); stops everything in it when
/// dropped, and SIGKILLs the nginx processes it was told about that are still there.
struct Stack {
    tmp: tempfile::TempDir,
    name: String,
    nginx_pids: std::cell::RefCell<Vec<u32>>,
}

impl Stack {
    fn new(name: &str) -> Stack {
        Stack {
            tmp: tempfile::tempdir().unwrap(),
            name: name.to_string(),
            nginx_pids: Default::default(),
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.tmp.path().join(&self.name)
    }

    fn cibox(&self, applet: &str, args: &[&str]) -> Output {
        let mut cmd = applet_command(applet, &self.run_dir(), self.tmp.path());
        cmd.args(args).stdout(Stdio::piped());
        // The servers keep the launcher's stderr: a file, not a pipe we would wait on.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.tmp.path().join("servers.log"))
            .unwrap();
        cmd.stderr(log);
        let before = std::fs::metadata(self.tmp.path().join("servers.log"))
            .map(|m| m.len())
            .unwrap_or(0);
        let mut out = cmd.output().unwrap();
        let all = std::fs::read(self.tmp.path().join("servers.log")).unwrap_or_default();
        out.stderr = all[before as usize..].to_vec();
        out
    }

    /// Spawns `cibox APPLET --run-dir RUN`, its stderr (which the servers it starts keep) to
    /// the file `log` in the test's directory.
    fn spawn(&self, applet: &str, log: &str) -> std::process::Child {
        let log = std::fs::File::create(self.tmp.path().join(log)).unwrap();
        applet_command(applet, &self.run_dir(), self.tmp.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn log(&self, log: &str) -> String {
        std::fs::read_to_string(self.tmp.path().join(log)).unwrap_or_default()
    }

    fn ok(&self, applet: &str, args: &[&str]) -> String {
        let out = self.cibox(applet, args);
        assert!(
            out.status.success(),
            "{applet} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
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
        for &pid in self.nginx_pids.borrow().iter() {
            let is_nginx = std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.windows(5).any(|w| w == b"nginx"));
            if is_nginx && alive(pid) {
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
        }
    }
}

/// The messages of a failed applet: its stderr without the servers' `[name]` lines.
fn messages(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with('['))
        .map(str::to_string)
        .collect()
}

/// Files a user keeps in a directory, as the stops used to delete them: `(path, contents)`.
const USER_FILES: &[&str] = &[
    "git/test/notes.txt",
    "nginx/site.conf",
    "nginx.conf",
    "self-signed.pem",
    "self-signed.key",
    "api.state.json",
    ".tmp-draft",
    ".pid-draft",
    "keep.blob_signing_key",
    "keep.data_manager_token",
    "nginx.pid.master",
];

fn plant_user_files(dir: &Path, files: &[&str]) {
    for name in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("the user's {name}\n")).unwrap();
        // Written well before any run.
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }
}

fn assert_user_files_intact(dir: &Path, files: &[&str], after: &str) {
    for name in files {
        let text = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("{after} removed the user's {name}: {e}"));
        assert_eq!(
            text,
            format!("the user's {name}\n"),
            "{after} changed {name}"
        );
    }
}

#[test]
fn stops_in_a_users_directory_remove_nothing_of_theirs() {
    let stack = Stack::new("project");
    let dir = stack.run_dir();
    plant_user_files(&dir, USER_FILES);
    for applet in [
        "stop_api",
        "stop_keep",
        "stop_keep_proxy",
        "stop_arv-git-httpd",
        "stop_nginx",
        "stop_all",
    ] {
        stack.ok(applet, &[]);
        assert_user_files_intact(&dir, USER_FILES, applet);
    }
}

#[test]
fn a_run_in_a_users_directory_removes_what_it_made_and_nothing_else() {
    let stack = Stack::new("project");
    let dir = stack.run_dir();
    // No certificate, state or keep files: the run makes those (and so owns them).
    let mine = &[
        "git/test/notes.txt",
        "nginx/site.conf",
        "nginx.conf",
        ".tmp-draft",
        ".pid-draft",
        "notes.txt",
    ];
    plant_user_files(&dir, mine);
    stack.ok("start_api", &[]);
    stack.ok("start_keep", &["--num-keep-servers", "1"]);
    // The git server's start will not put its repositories into the user's git/.
    let out = stack.cibox("start_arv-git-httpd", &[]);
    assert_eq!(out.status.code(), Some(1));
    let lines = messages(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(dir.join("git").to_str().unwrap()),
        "{lines:?}"
    );
    assert!(!stack.run_dir().join("arv-git-httpd.pid").exists());
    let pids = [stack.pid("api"), stack.pid("keep0")];
    stack.ok("stop_all", &[]);
    for pid in pids {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{pid} still runs");
    }
    assert_user_files_intact(&dir, mine, "stop_all");
    let mut left = names_in(&dir);
    left.sort();
    let expected = [
        ".pid-draft",
        ".tmp-draft",
        "git",
        "nginx",
        "nginx.conf",
        "notes.txt",
    ];
    assert_eq!(
        left, expected,
        "the run's own files are gone, the user's stay"
    );
}

/// nginx, if the machine has it, else `None` with a note (a failure under
/// `CIBOX_REQUIRE_ENGINES`).
fn nginx_available() -> bool {
    let found = ["/usr/sbin/nginx", "/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .any(|p| Path::new(p).is_file())
        || std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("nginx").is_file()));
    if !found {
        assert!(
            std::env::var_os("CIBOX_REQUIRE_ENGINES").is_none(),
            "nginx is required (CIBOX_REQUIRE_ENGINES) but not installed"
        );
        eprintln!("skipped: nginx is not installed (scripts/test-env up installs it)");
    }
    found
}

/// nginx's workers in process group `pgid` (the master's; cibox's log relay is in it too).
fn nginx_workers(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != pgid)
        .filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                let after = &stat[stat.rfind(')').unwrap_or(0) + 1..];
                after.split_whitespace().nth(2) == Some(&pgid.to_string())
            })
        })
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"nginx: worker process"))
        })
        .filter(|&pid| alive(pid))
        .collect()
}

/// `start_nginx` in front of keepproxy: the master's pid and its workers.
fn start_nginx(stack: &Stack) -> (u32, Vec<u32>) {
    stack.ok("start_nginx", &[]);
    let master = stack.pid("nginx");
    stack.nginx_pids.borrow_mut().push(master);
    let deadline = Instant::now() + Duration::from_secs(5);
    let workers = loop {
        let workers = nginx_workers(master);
        if !workers.is_empty() || Instant::now() > deadline {
            break workers;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!workers.is_empty(), "no nginx worker in group {master}");
    stack.nginx_pids.borrow_mut().extend(&workers);
    (master, workers)
}

#[test]
fn a_worker_left_by_a_killed_nginx_master_is_stopped_and_nginx_starts_again() {
    if !nginx_available() {
        return;
    }
    let stack = Stack::new("run");
    stack.certificate();
    stack.ok("start_keep", &["--num-keep-servers", "1"]);
    stack.ok("start_keep_proxy", &[]);
    for stop in ["stop_nginx", "stop_all"] {
        if stop == "stop_all" {
            stack.ok("start_keep", &["--num-keep-servers", "1"]);
            stack.ok("start_keep_proxy", &[]);
        }
        let (master, workers) = start_nginx(&stack);
        unsafe { libc::kill(master as i32, libc::SIGKILL) };
        assert!(wait_gone(master, Duration::from_secs(5)));
        assert!(
            workers.iter().all(|&w| alive(w)),
            "the worker outlives its master"
        );
        stack.ok(stop, &[]);
        for &w in &workers {
            assert!(
                wait_gone(w, Duration::from_secs(5)),
                "{stop} left nginx worker {w} running"
            );
        }
    }
    // Started again in the same run directory, it comes up.
    stack.ok("start_keep", &["--num-keep-servers", "1"]);
    stack.ok("start_keep_proxy", &[]);
    let (master, workers) = start_nginx(&stack);
    stack.ok("stop_nginx", &[]);
    for pid in std::iter::once(master).chain(workers) {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{pid} still runs");
    }
}

#[test]
fn nginx_takes_a_run_dir_with_spaces_semicolons_quotes_and_backslashes() {
    if !nginx_available() {
        return;
    }
    let stack = Stack::new("run dir; \"quoted\" back\\slash {x} #y");
    stack.certificate();
    stack.ok("start_keep", &["--num-keep-servers", "1"]);
    stack.ok("start_keep_proxy", &[]);
    let (master, workers) = start_nginx(&stack);
    let port: u16 = std::fs::read_to_string(stack.run_dir().join("keepproxy-ssl.port"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // nginx put its temporary directories where the config says, not in a split-off path.
    assert!(stack.run_dir().join("nginx/client_body").is_dir());
    std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stack.ok("stop_all", &[]);
    for pid in std::iter::once(master).chain(workers) {
        assert!(wait_gone(pid, Duration::from_secs(5)), "{pid} still runs");
    }
    let left: Vec<String> = names_in(&stack.run_dir())
        .into_iter()
        .filter(|n| !n.starts_with("self-signed"))
        .collect();
    assert!(left.is_empty(), "left in the run directory: {left:?}");
}

#[test]
fn start_nginx_refuses_a_run_dir_with_a_newline_in_one_line() {
    let stack = Stack::new("run\ndir");
    let out = stack.cibox("start_nginx", &["--nginx", "/bin/true"]);
    assert_eq!(out.status.code(), Some(1));
    let lines = messages(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("newline"), "{lines:?}");
    assert!(lines[0].contains("run\\ndir"), "{lines:?}");
    assert!(!stack.run_dir().exists());
}

/// The repositories under `RUN/git/test`: each one's name and whether it has a `master` commit.
fn repositories(run_dir: &Path) -> Vec<(String, bool)> {
    let root = run_dir.join("git/test");
    names_in(&root)
        .into_iter()
        .map(|name| {
            let out = Command::new("git")
                .arg("--git-dir")
                .arg(root.join(&name))
                .args(["rev-parse", "--verify", "--quiet", "refs/heads/master"])
                .output()
                .unwrap();
            (name, out.status.success())
        })
        .collect()
}

fn assert_whole(run_dir: &Path, after: &str) {
    let repos = repositories(run_dir);
    for (name, whole) in &repos {
        assert!(!name.starts_with('.'), "{after}: {name} left in git/test");
        assert!(whole, "{after}: repository {name} has no master");
    }
}

#[test]
fn concurrent_git_server_starts_take_turns_and_make_whole_repositories() {
    let stack = Stack::new("run");
    stack.ok("start_api", &[]);
    for round in 0..3 {
        let run_dir = stack.run_dir();
        let children: Vec<_> = (0..3)
            .map(|n| {
                let log = format!("start{n}.log");
                (stack.spawn("start_arv-git-httpd", &log), log)
            })
            .collect();
        for (mut child, log) in children {
            let status = child.wait().unwrap();
            assert!(status.success(), "round {round}: {}", stack.log(&log));
        }
        let repos = repositories(&run_dir);
        assert!(repos.len() >= 2, "{repos:?}");
        assert_whole(&run_dir, "concurrent starts");
        let pid = stack.pid("arv-git-httpd");
        assert!(alive(pid));
        stack.ok("stop_arv-git-httpd", &[]);
        assert!(wait_gone(pid, Duration::from_secs(5)));
        assert!(!run_dir.join("git").exists());
    }
}

#[test]
fn sigint_during_start_arv_git_httpd_exits_130_and_leaves_nothing_half_made() {
    let stack = Stack::new("run");
    stack.ok("start_api", &[]);
    let run_dir = stack.run_dir();
    for (i, delay_ms) in [0u64, 10, 40, 120].into_iter().enumerate() {
        let mut child = stack.spawn("start_arv-git-httpd", "interrupted.log");
        // Once it is making repositories (git/test exists), SIGINT after the delay.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !run_dir.join("git/test").exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        let status = child.wait().unwrap();
        let err = stack.log("interrupted.log");
        if status.success() {
            // The signal came after the start was done: nothing to check but the stop.
            eprintln!("round {i}: the start finished before SIGINT");
        } else {
            assert_eq!(status.code(), Some(130), "round {i}: {status}: {err}");
            assert!(err.contains("SIGINT"), "{err}");
            assert_whole(&run_dir, "an interrupted start");
            assert!(!run_dir.join("arv-git-httpd.pid").exists(), "{err}");
            assert!(!run_dir.join("arv-git-httpd.port").exists(), "{err}");
        }
        stack.ok("stop_arv-git-httpd", &[]);
        // A start after it makes every repository whole.
        stack.ok("start_arv-git-httpd", &[]);
        assert_whole(&run_dir, "the next start");
        assert!(repositories(&run_dir).len() >= 2);
        stack.ok("stop_arv-git-httpd", &[]);
    }
}
