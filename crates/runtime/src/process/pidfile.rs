//! Pid files: the daemon's side ([`PidFileLock`]) and the launcher's ([`pid_file_owner`]).
//!
//! A pid file holds the process id in decimal and a newline, nothing else, so that other tools
//! (`kill $(cat x.pid)`, Python's `int(f.read())`) read it. A daemon that uses
//! [`PidFileLock`] also holds an exclusive `flock` on it while it runs; the lock disappears with
//! the process however it ends, which tells a stale file from a live one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::unistd::Pid;

use super::terminate::{is_protected_pid, is_running, process_group_members, start_time};

/// Pid file problems.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// Another running process holds the pid file's lock.
    #[error("{}: in use by running process {pid}", path.display())]
    Locked {
        /// The pid file.
        path: PathBuf,
        /// The pid it names.
        pid: i32,
    },
    /// The file does not hold a process id.
    #[error("{}: not a pid file (found {found:?})", path.display())]
    Invalid {
        /// The pid file.
        path: PathBuf,
        /// The start of what it holds.
        found: String,
    },
    /// Reading or writing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The pid file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PidFileError + '_ {
    move |source| PidFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a pid file says, and whether its owner still holds its lock.
#[derive(Debug, Clone)]
pub struct PidFileInfo {
    /// The process id written in it.
    pub pid: Pid,
    /// Whether some process holds a `flock` on it right now.
    pub locked: bool,
    /// When it was last written.
    pub modified: SystemTime,
}

/// Takes a non-blocking `flock` (`LOCK_SH` or `LOCK_EX`) on `fd`: `Ok(false)` when another
/// open file description holds a conflicting lock.
pub(super) fn try_flock(fd: &impl AsRawFd, kind: libc::c_int) -> io::Result<bool> {
    // SAFETY: flock on a descriptor the caller owns.
    if unsafe { libc::flock(fd.as_raw_fd(), kind | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

/// Whether another open file description holds a lock on `file`.
fn is_locked(file: &File) -> io::Result<bool> {
    if try_flock(file, libc::LOCK_SH)? {
        // SAFETY: flock on a descriptor we own; drop the shared lock we just took.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return Ok(false);
    }
    Ok(true)
}

/// Reads a pid file. `Ok(None)` when it does not exist.
pub fn read_pid_file(path: &Path) -> Result<Option<PidFileInfo>, PidFileError> {
    Ok(read_pid_file_with_identity(path)?.map(|(info, _, _)| info))
}

/// [`read_pid_file`], with the device and inode of the file read.
fn read_pid_file_with_identity(
    path: &Path,
) -> Result<Option<(PidFileInfo, u64, u64)>, PidFileError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(64)
        .read_to_string(&mut text)
        .map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => PidFileError::Invalid {
                path: path.to_path_buf(),
                found: String::new(),
            },
            _ => io_err(path)(e),
        })?;
    let pid: i32 = match text.trim().parse() {
        Ok(pid) if pid > 0 => pid,
        _ => {
            return Err(PidFileError::Invalid {
                path: path.to_path_buf(),
                found: text.chars().take(20).collect(),
            })
        }
    };
    let locked = is_locked(&file).map_err(io_err(path))?;
    let meta = file.metadata().map_err(io_err(path))?;
    let modified = meta.modified().map_err(io_err(path))?;
    Ok(Some((
        PidFileInfo {
            pid: Pid::from_raw(pid),
            locked,
            modified,
        },
        meta.dev(),
        meta.ino(),
    )))
}

/// What a pid file's process is to us, as [`pid_file_check`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ownership {
    /// There is no pid file.
    Missing,
    /// The process is gone (the file is stale).
    Gone(Pid),
    /// The process is running and proven to be the one the file was written for: signal it.
    Ours(Pid),
    /// A running process that is not proven to be the file's daemon: never signal it.
    NotOurs {
        /// The pid the file names.
        pid: Pid,
        /// Which proof failed.
        reason: &'static str,
    },
}
/// Whether process `pid` has the file `(dev, ino)` open. `false` when its descriptors cannot
/// be read (another user's process, unless we are root).
fn holds_open(pid: Pid, dev: u64, ino: u64) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten()
        .any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino))
}

/// Whether one of `pid`'s command-line arguments names `path` (as given, or its canonical
/// form), e.g. `-pid=/run/x.pid` or `--pidfile /run/x.pid`.
fn command_line_names(pid: Pid, path: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut forms: Vec<Vec<u8>> = vec![path.as_os_str().as_bytes().to_vec()];
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(dir) = std::fs::canonicalize(dir) {
            forms.push(dir.join(name).into_os_string().into_vec());
        }
    }
    cmdline.split(|&b| b == 0).any(|arg| {
        forms
            .iter()
            .any(|form| !form.is_empty() && arg.windows(form.len()).any(|w| w == form))
    })
}

/// Decides whether the process a pid file names is the daemon the file was written for. It is
/// [`Ownership::Ours`] only when every proof holds:
///
/// * the pid is not protected ([`is_protected_pid`]: not init, not us, not our parent);
/// * the file is `flock`ed and that process itself has the file open (a daemon holding its
///   [`PidFileLock`]; a process merely named in a planted file has no such descriptor);
/// * the process started no later than the file was written (pid reuse);
/// * its command line names the pid file (the launcher passed it, `-pid=FILE`).
///
/// Anything else is never signalled. Reading another user's `/proc/PID/fd` is refused by the
/// kernel, so a file naming a process of another user is never ours (unless we are root, and
/// then the other proofs still apply).
pub fn pid_file_check(path: &Path) -> Result<Ownership, PidFileError> {
    let Some((info, dev, ino)) = read_pid_file_with_identity(path)? else {
        return Ok(Ownership::Missing);
    };
    let pid = info.pid;
    let not_ours = |reason| Ok(Ownership::NotOurs { pid, reason });
    if is_protected_pid(pid) {
        return if pid.as_raw() > 0 && is_running(pid) {
            not_ours("init, ourselves or our parent")
        } else {
            Ok(Ownership::Gone(pid))
        };
    }
    if !is_running(pid) {
        return Ok(Ownership::Gone(pid));
    }
    if !info.locked {
        return not_ours("the pid file is not locked");
    }
    if !holds_open(pid, dev, ino) {
        return not_ours("the process does not hold the pid file");
    }
    // Slack for the 10 ms tick resolution of the start time and clock adjustments.
    let slack = Duration::from_secs(1);
    match start_time(pid) {
        Some(started) if started <= info.modified + slack => {}
        Some(_) => return not_ours("the process started after the pid file was written"),
        None => return Ok(Ownership::Gone(pid)),
    }
    if !command_line_names(pid, path) {
        return not_ours("its command line does not name the pid file");
    }
    Ok(Ownership::Ours(pid))
}

/// The running process that the pid file at `path` stands for, or `None` when the file is
/// missing, stale, or names a process not proven to be its daemon (see [`pid_file_check`]).
pub fn pid_file_owner(path: &Path) -> Result<Option<Pid>, PidFileError> {
    match pid_file_check(path)? {
        Ownership::Ours(pid) => Ok(Some(pid)),
        _ => Ok(None),
    }
}

/// What is left of a daemon's process group: the live processes of group `pgid` (the group a
/// daemon spawned by [`Daemon::spawn`](super::Daemon::spawn) leads, its pgid being its pid)
/// other than `pgid` itself that hold the pid file at `path` open, e.g. nginx's workers after
/// their master was killed (they inherited the master's locked descriptor). Only these are
/// ours to stop: being in the group and holding the very file is the proof; init, we and our
/// parent never are. Empty when the file is missing.
pub fn pid_file_group(path: &Path, pgid: Pid) -> Result<Vec<Pid>, PidFileError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    if pgid.as_raw() <= 1 {
        return Ok(Vec::new());
    }
    Ok(process_group_members(pgid)
        .into_iter()
        .filter(|&pid| pid != pgid && !is_protected_pid(pid))
        .filter(|&pid| holds_open(pid, meta.dev(), meta.ino()))
        .collect())
}

/// Takes an exclusive, non-blocking `flock` on `file`: `Ok(false)` when another open file
/// description holds a lock on it.
fn try_lock(file: &File) -> io::Result<bool> {
    try_flock(file, libc::LOCK_EX)
}

/// Whether `file` is (still) what `path` names.
fn is_current(file: &File, path: &Path) -> io::Result<bool> {
    let ours = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == ours.dev() && now.ino() == ours.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// A pid file written and locked by the running process, removed when dropped.
///
/// Keep it alive for the life of the daemon. Taking it is atomic: whoever locks the file that
/// `path` names (and finds it still named so once locked) wins, and every other taker fails
/// with [`PidFileError::Locked`]. The pid is then written to a locked temporary file renamed
/// over `path`, so a reader never sees it empty and never sees it unlocked while we run.
#[derive(Debug)]
pub struct PidFileLock {
    path: PathBuf,
    /// `None` once handed over by [`PidFileLock::into_file`].
    file: Option<File>,
    dev: u64,
    ino: u64,
}

impl PidFileLock {
    /// Writes our pid to `path` and locks it. Fails with [`PidFileError::Locked`] when a running
    /// process already holds it.
    pub fn acquire(path: &Path) -> Result<PidFileLock, PidFileError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let locked_temp = || -> io::Result<tempfile::NamedTempFile> {
            let mut tmp = tempfile::Builder::new().prefix(".pid-").tempfile_in(dir)?;
            writeln!(tmp, "{}", std::process::id())?;
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o644))?;
            if !try_lock(tmp.as_file())? {
                return Err(io::Error::other("cannot lock a fresh temporary file"));
            }
            Ok(tmp)
        };
        let held = |pid_hint: Option<i32>| PidFileError::Locked {
            path: path.to_path_buf(),
            pid: pid_hint.unwrap_or(0),
        };
        for _ in 0..100 {
            match File::open(path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // No file: publish a locked one with link(), which fails if another taker
                    // published theirs first.
                    let tmp = locked_temp().map_err(io_err(path))?;
                    match std::fs::hard_link(tmp.path(), path) {
                        Ok(()) => {
                            let (file, tmp_path) = tmp.keep().map_err(|e| io_err(path)(e.error))?;
                            let _ = std::fs::remove_file(&tmp_path);
                            return PidFileLock::holding(path, file);
                        }
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(io_err(path)(e)),
                    }
                }
                Err(e) => return Err(io_err(path)(e)),
                Ok(existing) => {
                    if !try_lock(&existing).map_err(io_err(path))? {
                        let pid = read_pid_file(path).ok().flatten().map(|i| i.pid.as_raw());
                        return Err(held(pid));
                    }
                    if !is_current(&existing, path).map_err(io_err(path))? {
                        continue; // replaced or removed meanwhile: look again
                    }
                    // We hold the lock of the file `path` names: nobody else can win now.
                    // Replace it by a locked file holding our pid.
                    let tmp = locked_temp().map_err(io_err(path))?;
                    let file = tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
                    drop(existing);
                    return PidFileLock::holding(path, file);
                }
            }
        }
        Err(io_err(path)(io::Error::other(
            "the pid file keeps changing under us",
        )))
    }

    fn holding(path: &Path, file: File) -> Result<PidFileLock, PidFileError> {
        let meta = file.metadata().map_err(io_err(path))?;
        Ok(PidFileLock {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            file: Some(file),
        })
    }

    /// The pid file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The locked file itself, no longer removed on drop: for handing the lock down to a
    /// child ([`DaemonSpec::locked_pid_file`](super::DaemonSpec::locked_pid_file)).
    pub fn into_file(mut self) -> File {
        self.file
            .take()
            .expect("a pid file lock holds its file until dropped")
    }
}

impl Drop for PidFileLock {
    fn drop(&mut self) {
        if self.file.is_none() {
            return; // handed over: its new holder owns it
        }
        // Remove it only if it is still ours (a newer daemon may have replaced it).
        if let Ok(meta) = std::fs::metadata(&self.path) {
            if meta.dev() == self.dev && meta.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command, Stdio};

    #[test]
    fn lock_is_seen_and_released_and_never_names_us_as_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let lock = PidFileLock::acquire(&path).unwrap();
        let info = read_pid_file(&path).unwrap().unwrap();
        assert_eq!(info.pid.as_raw() as u32, std::process::id());
        assert!(info.locked);
        // Ourselves: never a target, whatever the file says.
        assert!(matches!(
            pid_file_check(&path).unwrap(),
            Ownership::NotOurs { .. }
        ));
        assert_eq!(pid_file_owner(&path).unwrap(), None);
        assert!(matches!(
            PidFileLock::acquire(&path),
            Err(PidFileError::Locked { .. })
        ));
        drop(lock);
        assert!(!path.exists());
        assert!(read_pid_file(&path).unwrap().is_none());
        assert_eq!(pid_file_check(&path).unwrap(), Ownership::Missing);
        // Only the pid file is left in the directory while held: no temporary files.
        let lock = PidFileLock::acquire(&path).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        drop(lock);
    }

    #[test]
    fn concurrent_takers_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.pid");
        for round in 0..100 {
            // Alternate between a missing file and a stale one left behind.
            if round % 2 == 1 {
                std::fs::write(&path, "999999\n").unwrap();
            }
            let barrier = std::sync::Barrier::new(6);
            let won: Vec<Option<PidFileLock>> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..6)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            PidFileLock::acquire(&path).ok()
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(won.iter().flatten().count(), 1, "round {round}");
            drop(won);
            assert!(!path.exists());
        }
    }

    /// `sh` holding an exclusive flock on `path` (fd 9) and writing its pid there; `path` is
    /// in its command line when `named`.
    fn locking_shell(path: &Path, named: bool) -> Child {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("exec 9>>\"$P\"; flock -x 9; echo $$ >\"$P\"; echo ready; sleep 30")
            .env("P", path)
            .stdout(Stdio::piped())
            .process_group(0);
        if named {
            cmd.arg("sh").arg(path);
        }
        let mut child = cmd.spawn().unwrap();
        let mut ready = [0u8; 6];
        child.stdout.take().unwrap().read_exact(&mut ready).unwrap();
        child
    }

    fn kill_group(mut child: Child) {
        let _ = nix::sys::signal::killpg(
            Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
    }

    #[test]
    fn a_daemon_holding_its_named_pid_file_is_ours_nothing_else_is() {
        if which::which("flock").is_err() {
            return; // util-linux missing: the other tests cover the refusals
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let child = locking_shell(&path, true);
        let pid = Pid::from_raw(child.id() as i32);
        assert_eq!(pid_file_check(&path).unwrap(), Ownership::Ours(pid));
        kill_group(child);
        assert!(matches!(pid_file_check(&path).unwrap(), Ownership::Gone(_)));

        // Holds the lock, but its command line does not name the file.
        let child = locking_shell(&path, false);
        assert!(matches!(
            pid_file_check(&path).unwrap(),
            Ownership::NotOurs { reason, .. } if reason.contains("command line")
        ));
        kill_group(child);
    }

    #[test]
    fn unlocked_or_planted_files_are_never_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        // Written after the child started, unlocked: still not proof.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        assert!(matches!(
            pid_file_check(&path).unwrap(),
            Ownership::NotOurs { reason, .. } if reason.contains("not locked")
        ));
        // Locked by someone else (us), naming the child: the child does not hold it.
        let file = File::open(&path).unwrap();
        assert!(try_lock(&file).unwrap());
        assert!(matches!(
            pid_file_check(&path).unwrap(),
            Ownership::NotOurs { reason, .. } if reason.contains("does not hold")
        ));
        drop(file);
        // Init, ourselves and our parent.
        for protected in [1, std::process::id() as i32, Pid::parent().as_raw()] {
            std::fs::write(&path, format!("{protected}\n")).unwrap();
            assert!(matches!(
                pid_file_check(&path).unwrap(),
                Ownership::NotOurs { .. }
            ));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        std::fs::write(&path, format!("{pid}\n")).unwrap();
        assert_eq!(pid_file_check(&path).unwrap(), Ownership::Gone(pid));
    }

    #[test]
    fn garbage_is_an_error_to_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        std::fs::write(&path, "hello").unwrap();
        assert!(matches!(
            read_pid_file(&path),
            Err(PidFileError::Invalid { .. })
        ));
        std::fs::write(&path, b"\xff\xfe").unwrap();
        assert!(matches!(
            read_pid_file(&path),
            Err(PidFileError::Invalid { .. })
        ));
    }
}
