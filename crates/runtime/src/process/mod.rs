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
//!   [`pid_file_group`]: the rest of such a daemon's process group still holding the file
//!   (nginx's workers after their master was killed), to stop with it.
//! * [`RunDir`]: the directory holding those files, checked (ours, not writable by others) and
//!   locked for the whole of a start or stop.
//! * [`InterruptGuard`]: SIGINT, SIGTERM and SIGHUP recorded instead of fatal while a start
//!   runs, so it can stop what it started and remove its files ([`Interrupted`]).
//! * [`terminate`]: SIGTERM a set of processes at once, poll until they are gone, SIGKILL what
//!   is left at the deadline (never init, us or our parent).
//!
//! Linux only (it reads `/proc`).

mod daemon;
mod files;
mod interrupt;
mod pidfile;
mod ports;
mod rundir;
mod terminate;

pub use daemon::{Daemon, DaemonSpec, WaitError};
pub use files::write_atomic;
pub use interrupt::{InterruptGuard, Interrupted};
pub use pidfile::{
    pid_file_check, pid_file_group, pid_file_owner, read_pid_file, Ownership, PidFileError,
    PidFileInfo, PidFileLock,
};
pub use ports::{free_loopback_port, wait_for_port, PortWaitError};
pub use rundir::{IfMissing, RunDir, RunDirError};
pub use terminate::{
    is_protected_pid, is_running, process_group_members, start_time, terminate, Ending,
};

pub use nix::unistd::Pid;
