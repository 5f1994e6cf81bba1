//! Spawning a daemon whose output lines reach our stderr with a `[label] ` prefix.
//!
//! The daemon's stdout and stderr go into a pipe read by a relay process (forked from us,
//! then orphaned so nobody has to reap it). The relay writes each line to our stderr with the
//! prefix and copies the raw output to a second pipe that a thread of ours reads, keeping the
//! last lines for error messages. When we stop caring (or exit), the relay notices the closed
//! pipe and goes on relaying to stderr alone until the daemon's output ends. Relaying whole
//! lines in single writes keeps lines of several daemons from interleaving.
//!
//! The relay runs only async-signal-safe code between `fork` and `_exit`, so it is safe to
//! spawn daemons from several threads at once.

use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use super::ports::{wait_for_port, PortWaitError};

/// Lines of output kept for error messages.
const TAIL_LINES: usize = 20;
/// Longest line kept (longer ones are cut).
const TAIL_LINE_CHARS: usize = 400;

/// What to run as a daemon.
#[derive(Debug, Clone)]
pub struct DaemonSpec {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// A short name: output lines are prefixed `[label] `, messages name it.
    pub label: String,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// A pid file we write and lock for the daemon, which inherits the lock (see
    /// [`DaemonSpec::locked_pid_file`]).
    pub locked_pid_file: Option<PathBuf>,
}

impl DaemonSpec {
    /// A spec for `program` labelled `label`, no arguments.
    pub fn new(program: impl Into<PathBuf>, label: impl Into<String>) -> DaemonSpec {
        DaemonSpec {
            program: program.into(),
            args: Vec::new(),
            label: label.into(),
            env: Vec::new(),
            locked_pid_file: None,
        }
    }

    /// For a daemon that does not lock a pid file of its own (nginx, most servers): before it
    /// runs, we take the pid file's lock ([`PidFileLock`](super::PidFileLock)), write the
    /// daemon's pid into it and hand the locked descriptor down to it, so the lock lasts as
    /// long as the daemon (or whatever it forks keeping the descriptor) runs, and
    /// [`pid_file_check`](super::pid_file_check) can prove it ours. The daemon's command line
    /// must name the file too (as an argument, or inside one), which is the check's last proof.
    /// The file is not removed when the daemon exits: a stale one is told apart by its lock.
    pub fn locked_pid_file(mut self, path: impl Into<PathBuf>) -> DaemonSpec {
        self.locked_pid_file = Some(path.into());
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> DaemonSpec {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> DaemonSpec {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
}

fn lines_suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        "; it printed nothing".to_string()
    } else {
        format!("; its last output:\n{}", lines.join("\n"))
    }
}

/// Why a daemon did not come up.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// It exited before the port accepted connections.
    #[error("{label} exited ({status}) before {addr} accepted connections{}", lines_suffix(.last_lines))]
    Exited {
        /// The daemon's label.
        label: String,
        /// The address waited for.
        addr: SocketAddr,
        /// How it exited.
        status: ExitStatus,
        /// Its last output lines.
        last_lines: Vec<String>,
    },
    /// The port did not accept connections before the deadline (the daemon still runs).
    #[error("{label} did not accept connections on {addr} within {timeout:?}{}", lines_suffix(.last_lines))]
    Timeout {
        /// The daemon's label.
        label: String,
        /// The address waited for.
        addr: SocketAddr,
        /// The deadline.
        timeout: Duration,
        /// Its last output lines.
        last_lines: Vec<String>,
    },
    /// The caller gave up waiting (see [`Daemon::wait_until_accepting_unless`]); the daemon
    /// still runs.
    #[error("{label}: waiting for {addr} given up")]
    Cancelled {
        /// The daemon's label.
        label: String,
        /// The address waited for.
        addr: SocketAddr,
    },
    /// Checking on the daemon failed.
    #[error("{label}: {source}")]
    Io {
        /// The daemon's label.
        label: String,
        /// The cause.
        source: io::Error,
    },
}

#[derive(Default)]
struct Tail {
    lines: Mutex<(VecDeque<String>, Vec<u8>)>,
    done: AtomicBool,
}

impl Tail {
    fn push(&self, bytes: &[u8]) {
        let mut guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, partial) = &mut *guard;
        for &b in bytes {
            if b == b'\n' {
                let line = String::from_utf8_lossy(partial)
                    .chars()
                    .take(TAIL_LINE_CHARS)
                    .collect();
                partial.clear();
                if lines.len() == TAIL_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            } else if partial.len() < TAIL_LINE_CHARS * 4 {
                partial.push(b);
            }
        }
    }

    fn snapshot(&self) -> Vec<String> {
        let guard = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let (lines, partial) = &*guard;
        let mut out: Vec<String> = lines.iter().cloned().collect();
        if !partial.is_empty() {
            out.push(String::from_utf8_lossy(partial).into_owned());
        }
        out
    }
}

/// A daemon we spawned. Dropping it (or [`Daemon::detach`]) leaves the daemon running.
pub struct Daemon {
    label: String,
    child: Child,
    tail: Arc<Tail>,
    stop_capture: Arc<AtomicBool>,
}

/// The daemon exited (`Some`), or the caller gave up (`None`).
#[derive(Debug, thiserror::Error)]
#[error("exited or given up")]
struct ExitedEarly(Option<ExitStatus>);

impl Daemon {
    /// Starts `spec` in a process group of its own, stdin from `/dev/null`, output relayed to
    /// our stderr line by line with the prefix `[label] `.
    pub fn spawn(spec: &DaemonSpec) -> io::Result<Daemon> {
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC)?;
        let (cap_r, cap_w) = pipe2(OFlag::O_CLOEXEC)?;
        let pid_file = match &spec.locked_pid_file {
            Some(path) => Some(
                super::pidfile::PidFileLock::acquire(path)
                    .map_err(|e| io::Error::other(format!("{}: {e}", spec.label)))?
                    .into_file(),
            ),
            None => None,
        };
        let mut child = {
            let mut cmd = Command::new(&spec.program);
            cmd.args(&spec.args)
                .envs(spec.env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::from(out_w.try_clone()?))
                .stderr(Stdio::from(out_w))
                .process_group(0);
            if let Some(file) = &pid_file {
                let fd = file.as_raw_fd();
                // SAFETY: between fork and exec the child makes only async-signal-safe calls
                // (fcntl, getpid, ftruncate, pwrite) on a descriptor it inherited, and formats
                // into a stack buffer.
                unsafe {
                    cmd.pre_exec(move || hand_down_pid_file(fd));
                }
            }
            cmd.spawn().map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot run {}: {e}", spec.program.display()),
                )
            })?
            // `cmd` is dropped here, closing our copies of the pipe's write end, so the relay
            // sees end of file when the daemon (and whatever inherited its output) is gone.
        };
        // The daemon holds the pid file's lock now; our copy goes before the relay is forked.
        drop(pid_file);
        let mut prefix = format!("[{}] ", spec.label).into_bytes();
        prefix.truncate(64);
        let mut name: Vec<u8> = format!("{}-log", spec.label)
            .bytes()
            .filter(|&b| b != 0)
            .collect();
        name.truncate(15);
        let name = CString::new(name).unwrap_or_default();
        if let Err(e) = spawn_relay(out_r, cap_w, &prefix, &name, child.id() as i32) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start the log relay for {}: {e}", spec.label),
            ));
        }
        let tail = Arc::new(Tail::default());
        let stop_capture = Arc::new(AtomicBool::new(false));
        {
            let (tail, stop) = (tail.clone(), stop_capture.clone());
            let file = File::from(cap_r);
            std::thread::Builder::new()
                .name(format!("{}-tail", spec.label))
                .spawn(move || capture_loop(file, &tail, &stop))?;
        }
        Ok(Daemon {
            label: spec.label.clone(),
            child,
            tail,
            stop_capture,
        })
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// How it exited, if it has.
    pub fn try_exit(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Its last output lines (up to 20). After it exited, waits up to 200 ms for the relay to
    /// pass on the rest of its output first.
    pub fn last_lines(&mut self) -> Vec<String> {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            let deadline = Instant::now() + Duration::from_millis(200);
            while !self.tail.done.load(Ordering::Acquire) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.tail.snapshot()
    }

    /// Waits until `addr` accepts a TCP connection, polling every 2 ms. Fails at once (with
    /// the daemon's last output) if the daemon exits, or after `timeout` (the daemon is left
    /// running: [`Daemon::kill`] it if it is not wanted).
    pub fn wait_until_accepting(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.wait_until_accepting_unless(addr, timeout, || false)
    }

    /// [`Daemon::wait_until_accepting`], giving up with [`WaitError::Cancelled`] as soon as
    /// `cancelled` returns true (it is asked every few milliseconds).
    pub fn wait_until_accepting_unless(
        &mut self,
        addr: SocketAddr,
        timeout: Duration,
        cancelled: impl Fn() -> bool,
    ) -> Result<(), WaitError> {
        let child = &mut self.child;
        let result = wait_for_port(addr, timeout, || {
            if cancelled() {
                return Err(ExitedEarly(None));
            }
            match child.try_wait() {
                Ok(Some(status)) => Err(ExitedEarly(Some(status))),
                _ => Ok(()),
            }
        });
        match result {
            Ok(()) => Ok(()),
            Err(PortWaitError::Check(ExitedEarly(None))) => Err(WaitError::Cancelled {
                label: self.label.clone(),
                addr,
            }),
            Err(PortWaitError::Check(ExitedEarly(Some(status)))) => Err(WaitError::Exited {
                label: self.label.clone(),
                addr,
                status,
                last_lines: self.last_lines(),
            }),
            Err(PortWaitError::Timeout { .. }) => Err(WaitError::Timeout {
                label: self.label.clone(),
                addr,
                timeout,
                last_lines: self.last_lines(),
            }),
        }
    }

    /// Kills the daemon (SIGKILL) and reaps it: for daemons that failed to come up.
    pub fn kill(mut self) -> io::Result<ExitStatus> {
        let _ = self.child.kill();
        self.child.wait()
    }

    /// Leaves the daemon running on its own and stops keeping its output.
    pub fn detach(self) {}
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop_capture.store(true, Ordering::Release);
    }
}

fn capture_loop(mut file: File, tail: &Tail, stop: &AtomicBool) {
    let fd = file.as_raw_fd();
    let mut buf = [0u8; 8192];
    while !stop.load(Ordering::Acquire) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, 50) };
        if rc == 0 || (rc < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted) {
            continue;
        }
        if rc < 0 {
            break;
        }
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => tail.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    tail.done.store(true, Ordering::Release);
}

/// In the daemon between fork and exec: keep the locked pid file open across exec and write
/// our pid into it. Async-signal-safe.
fn hand_down_pid_file(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain system calls on a descriptor this process holds.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut digits = [0u8; 24];
        let mut at = digits.len() - 1;
        digits[at] = b'\n';
        let mut pid = libc::getpid() as u32;
        loop {
            at -= 1;
            digits[at] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        let text = &digits[at..];
        if libc::ftruncate(fd, 0) < 0
            || libc::pwrite(fd, text.as_ptr().cast(), text.len(), 0) != text.len() as isize
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Forks the relay (twice, so that it is adopted by init and nobody needs to reap it).
fn spawn_relay(
    out_r: OwnedFd,
    cap_w: OwnedFd,
    prefix: &[u8],
    name: &CString,
    pgid: i32,
) -> io::Result<()> {
    // SAFETY: between fork and _exit the children make only async-signal-safe calls
    // (fork, setpgid, signal, dup, read, write, poll, close, _exit) and touch only memory that
    // existed before the fork; nothing allocates or takes a lock.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => unsafe {
            match libc::fork() {
                0 => relay_main(out_r.as_raw_fd(), cap_w.as_raw_fd(), prefix, name, pgid),
                -1 => libc::_exit(1),
                _ => libc::_exit(0),
            }
        },
        pid => {
            drop(out_r);
            drop(cap_w);
            let mut status = 0;
            loop {
                // SAFETY: waiting for the intermediate child we just forked.
                let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
                if rc >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
                Ok(())
            } else {
                Err(io::Error::other("fork failed"))
            }
        }
    }
}

fn errno() -> i32 {
    // SAFETY: reading this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// Writes all of `buf` to `fd`, giving up quietly on errors (a closed stderr must not stop
/// the relay from draining the daemon's output).
unsafe fn write_all(fd: RawFd, mut buf: &[u8]) {
    let mut stalls = 0;
    while !buf.is_empty() {
        let n = libc::write(fd, buf.as_ptr().cast(), buf.len());
        if n > 0 {
            buf = &buf[n as usize..];
            continue;
        }
        match errno() {
            libc::EINTR => {}
            libc::EAGAIN if stalls < 50 => {
                stalls += 1;
                let mut pfd = libc::pollfd {
                    fd,
                    events: libc::POLLOUT,
                    revents: 0,
                };
                libc::poll(&mut pfd, 1, 100);
            }
            _ => return,
        }
    }
}

/// The relay: read the daemon's output on fd 0, copy it raw to fd 1 (the capture pipe, while
/// someone reads it) and prefixed, line by line, to fd 2.
unsafe fn relay_main(out_r: RawFd, cap_w: RawFd, prefix: &[u8], name: &CString, pgid: i32) -> ! {
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    for sig in [libc::SIGPIPE, libc::SIGINT, libc::SIGHUP, libc::SIGTERM] {
        libc::signal(sig, libc::SIG_IGN);
    }
    libc::setpgid(0, pgid);
    libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
    let a = libc::fcntl(out_r, libc::F_DUPFD, 10);
    let b = libc::fcntl(cap_w, libc::F_DUPFD, 10);
    if a < 0 || b < 0 || libc::dup2(a, 0) < 0 || libc::dup2(b, 1) < 0 {
        libc::_exit(1);
    }
    if libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) != 0 {
        for fd in 3..4096 {
            libc::close(fd);
        }
    }
    let flags = libc::fcntl(1, libc::F_GETFL);
    libc::fcntl(1, libc::F_SETFL, flags | libc::O_NONBLOCK);

    const OUT: usize = 32 * 1024;
    let mut input = [0u8; 16 * 1024];
    let mut out = [0u8; OUT];
    let mut len = 0usize;
    let mut at_line_start = true;
    let mut capturing = true;
    loop {
        let n = libc::read(0, input.as_mut_ptr().cast(), input.len());
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            break;
        }
        if n == 0 {
            break;
        }
        let chunk = &input[..n as usize];
        if capturing {
            let w = libc::write(1, chunk.as_ptr().cast(), chunk.len());
            if w < 0 && !matches!(errno(), libc::EAGAIN | libc::EINTR) {
                capturing = false;
                libc::close(1);
            }
        }
        for &byte in chunk {
            if at_line_start {
                if len + prefix.len() + 1 > OUT {
                    write_all(2, &out[..len]);
                    len = 0;
                }
                out[len..len + prefix.len()].copy_from_slice(prefix);
                len += prefix.len();
                at_line_start = false;
            }
            if len == OUT {
                write_all(2, &out[..len]);
                len = 0;
            }
            out[len] = byte;
            len += 1;
            if byte == b'\n' {
                at_line_start = true;
            }
        }
        // Pass on the complete lines; keep a partial last line for the next read.
        if let Some(last_nl) = out[..len].iter().rposition(|&b| b == b'\n') {
            write_all(2, &out[..=last_nl]);
            out.copy_within(last_nl + 1..len, 0);
            len -= last_nl + 1;
        }
    }
    if len > 0 {
        write_all(2, &out[..len]);
        write_all(2, b"\n");
    }
    libc::_exit(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_before_listening_reports_last_lines() {
        let port = super::super::ports::free_loopback_port().unwrap();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let spec = DaemonSpec::new("sh", "t0").args([
            "-c",
            "echo first; echo second >&2; printf 'no newline'; exit 3",
        ]);
        let mut daemon = Daemon::spawn(&spec).unwrap();
        let started = Instant::now();
        let err = daemon
            .wait_until_accepting(addr, Duration::from_secs(10))
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        match &err {
            WaitError::Exited {
                status, last_lines, ..
            } => {
                assert_eq!(status.code(), Some(3));
                assert_eq!(last_lines, &["first", "second", "no newline"]);
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("t0 exited"), "{text}");
        assert!(text.contains("second"), "{text}");
    }

    #[test]
    fn a_locked_pid_file_is_handed_down_and_proves_the_daemon() {
        use super::super::pidfile::{pid_file_check, Ownership};
        use nix::unistd::Pid;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        // Named on its command line: ours.
        let spec = DaemonSpec::new("sh", "t3")
            .args(["-c", "sleep 30", "sh"])
            .arg(&path)
            .locked_pid_file(&path);
        let daemon = Daemon::spawn(&spec).unwrap();
        let pid = Pid::from_raw(daemon.pid() as i32);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{pid}\n"));
        assert_eq!(pid_file_check(&path).unwrap(), Ownership::Ours(pid));
        // A second daemon on the same pid file is refused while the first runs.
        let again = Daemon::spawn(&spec.clone().locked_pid_file(&path));
        assert!(again.is_err());
        let _ = nix::sys::signal::killpg(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = daemon.kill();
        assert!(matches!(pid_file_check(&path).unwrap(), Ownership::Gone(_)));
        // The lock goes with the last process holding it (the killed `sleep` too).
        let deadline = Instant::now() + Duration::from_secs(5);
        while super::super::pidfile::read_pid_file(&path)
            .unwrap()
            .unwrap()
            .locked
        {
            assert!(Instant::now() < deadline, "the lock outlived the daemon");
            std::thread::sleep(Duration::from_millis(5));
        }
        // Not named on its command line: not proven.
        let spec = DaemonSpec::new("sh", "t4")
            .args(["-c", "sleep 30"])
            .locked_pid_file(&path);
        let daemon = Daemon::spawn(&spec).unwrap();
        assert!(matches!(
            pid_file_check(&path).unwrap(),
            Ownership::NotOurs { .. }
        ));
        let _ = nix::sys::signal::killpg(
            Pid::from_raw(daemon.pid() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = daemon.kill();
    }

    #[test]
    fn stdin_is_dev_null_and_process_group_is_own() {
        let spec = DaemonSpec::new("sh", "t1").args([
            "-c",
            "read x; echo \"read=$? pgid=$(cut -d' ' -f5 /proc/$$/stat) pid=$$\"",
        ]);
        let mut daemon = Daemon::spawn(&spec).unwrap();
        let pid = daemon.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while daemon.try_exit().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let lines = daemon.last_lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert!(line.starts_with("read=1 "), "{line}");
        assert!(line.ends_with(&format!("pgid={pid} pid={pid}")), "{line}");
    }

    #[test]
    fn missing_program_is_an_error() {
        let spec = DaemonSpec::new("/nonexistent/cibox-daemon", "t2");
        let err = Daemon::spawn(&spec).err().unwrap();
        assert!(err.to_string().contains("/nonexistent/cibox-daemon"));
    }
}
