//! Shared process helpers for applets that start and stop background servers.
//!
//! What a launcher needs, in the order it needs it:
//!
//! * [`free_loopback_port`]: a TCP port on 127.0.0.1 nobody listens on right now.
//! * [`Daemon::spawn`]: start a server in its own process group with stdin from `/dev/null`;
//!   its stdout and stderr lines go to our stderr prefixed `[label] ` through a small relay
//!   process that outlives us (so the server's logs keep flowing after the launcher exits),
//!   and the last lines are kept for error messages.
//! * [`Daemon::wait_until_accepting`] / [`wait_for_port`]: poll a TCP connect every few
//!   milliseconds until the port accepts, with a deadline, failing fast (with the server's last
//!   log lines) when the server exits first.
//! * [`write_atomic`]: write pid, port and other state files so a reader never sees half a file.
//! * [`PidFileLock`]: the daemon side of a pid file: written atomically and `flock`ed for as long
//!   as the daemon runs, removed when it exits. A daemon that locks no pid file of its own
//!   (nginx, most servers) gets one from [`DaemonSpec::locked_pid_file`]: we lock it, write its
//!   pid and hand the locked descriptor down to it.
//! * [`pid_file_check`] / [`pid_file_owner`]: the launcher side: the live process a pid file
//!   stands for, only when it is proven to be the daemon (it holds the file's lock, started
//!   before the file was written, names the file on its command line, and is not init, us or
//!   our parent), so a planted or stale pid file never gets an unrelated process signalled.
//! * [`RunDir`]: the directory holding those files, checked (ours, not writable by others) and
//!   locked for the whole of a start or stop.
//! * [`InterruptGuard`]: SIGINT, SIGTERM and SIGHUP recorded instead of fatal while a start
//!   runs, so it can stop what it started and remove its files ([`Interrupted`]).
//! * [`terminate`]: SIGTERM a set of processes at once, poll until they are gone, SIGKILL what
//!   is left at the deadline (never init, us or our parent).
//!
//! Linux only (it reads `/proc`).

mod daemon;
mod interrupt;
mod pidfile;
mod rundir;
mod terminate;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

pub use daemon::{Daemon, DaemonSpec, WaitError};
pub use interrupt::{InterruptGuard, Interrupted};
pub use pidfile::{
    is_protected_pid, pid_file_check, pid_file_owner, read_pid_file, Ownership, PidFileError,
    PidFileInfo, PidFileLock,
};
pub use rundir::{IfMissing, RunDir, RunDirError};
pub use terminate::{is_running, start_time, terminate, Ending};

pub use nix::unistd::Pid;

/// A TCP port on 127.0.0.1 that nothing listens on at the moment of the call.
///
/// The port is found by binding port 0 and closing the socket again, so another process can
/// take it before the caller binds it; callers that spawn a server on it should retry with a
/// new port when the server reports the address in use.
pub fn free_loopback_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Why [`wait_for_port`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum PortWaitError<E: std::error::Error + 'static> {
    /// Nothing accepted a connection before the deadline.
    #[error("nothing accepted connections on {addr} within {timeout:?}")]
    Timeout {
        /// The address polled.
        addr: SocketAddr,
        /// How long it waited.
        timeout: Duration,
    },
    /// The `check` callback reported a failure (typically: the server exited).
    #[error(transparent)]
    Check(E),
}

/// Waits until `addr` accepts a TCP connection, polling every 2 ms for at most `timeout`.
///
/// Before each attempt `check` is called; an error from it ends the wait at once (use it to
/// notice that the process meant to listen has exited).
pub fn wait_for_port<E: std::error::Error + 'static>(
    addr: SocketAddr,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<(), PortWaitError<E>> {
    let deadline = Instant::now() + timeout;
    loop {
        check().map_err(PortWaitError::Check)?;
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        let attempt = left.clamp(Duration::from_millis(1), Duration::from_millis(200));
        if TcpStream::connect_timeout(&addr, attempt).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(PortWaitError::Timeout { addr, timeout });
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory is written,
/// given `mode`, flushed to disk and renamed over `path`. A reader sees the old file or the new
/// one, never a part; on error the temporary file is removed.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let port = free_loopback_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn wait_for_port_sees_a_listener_and_times_out_without_one() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        wait_for_port::<io::Error>(addr, Duration::from_secs(2), || Ok(())).unwrap();
        drop(listener);
        let started = Instant::now();
        let err = wait_for_port::<io::Error>(addr, Duration::from_millis(50), || Ok(()));
        assert!(matches!(err, Err(PortWaitError::Timeout { .. })));
        assert!(started.elapsed() < Duration::from_secs(2));
        let err = wait_for_port(addr, Duration::from_secs(5), || {
            Err(io::Error::other("gone"))
        });
        assert!(matches!(err, Err(PortWaitError::Check(_))));
    }

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        write_atomic(&path, b"1\n", 0o600).unwrap();
        write_atomic(&path, b"22\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"22\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
