//! Pid files: the daemon's side ([`PidFileLock`]) and the launcher's ([`pid_file_owner`]).
//!
//! A pid file holds the process id in decimal and a newline, nothing else, so that other tools
//! (`kill $(cat x.pid)`, Python's `int(f.read())`) read it. A daemon that uses
//! [`PidFileLock`] also holds an exclusive `flock` on it while it runs; the lock disappears with
//! the process however it ends, which tells a stale file from a live one.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::unistd::Pid;

use super::terminate::{is_running, start_time};

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

/// Whether another open file description holds a lock on `file`.
fn is_locked(file: &File) -> io::Result<bool> {
    // SAFETY: flock on a descriptor we own.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) };
    if rc == 0 {
        // SAFETY: as above; drop the shared lock we just took.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return Ok(false);
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(true)
    } else {
        Err(err)
    }
}

/// Reads a pid file. `Ok(None)` when it does not exist.
pub fn read_pid_file(path: &Path) -> Result<Option<PidFileInfo>, PidFileError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut text = String::new();
    Read::by_ref(&mut file)
        .take(64)
        .read_to_string(&mut text)
        .map_err(io_err(path))?;
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
    let modified = file
        .metadata()
        .and_then(|m| m.modified())
        .map_err(io_err(path))?;
    Ok(Some(PidFileInfo {
        pid: Pid::from_raw(pid),
        locked,
        modified,
    }))
}

/// The running process that the pid file at `path` stands for, or `None` when the file is
/// missing or stale. Safe against pid reuse: the pid is returned only if
///
/// * the file's lock is held (its daemon is alive, so its pid cannot have been reused), or
/// * the process with that pid started no later than the file was written (a process that
///   started afterwards cannot be the one the file was written for).
pub fn pid_file_owner(path: &Path) -> Result<Option<Pid>, PidFileError> {
    let Some(info) = read_pid_file(path)? else {
        return Ok(None);
    };
    if !is_running(info.pid) {
        return Ok(None);
    }
    if info.locked {
        return Ok(Some(info.pid));
    }
    // Slack for the 10 ms tick resolution of the start time and clock adjustments.
    let slack = Duration::from_secs(1);
    match start_time(info.pid) {
        Some(started) if started <= info.modified + slack => Ok(Some(info.pid)),
        _ => Ok(None),
    }
}

/// A pid file written and locked by the running process, removed when dropped.
///
/// Keep it alive for the life of the daemon. The file is written atomically (temporary file,
/// lock, rename), so a reader never sees it empty and never sees it unlocked while we run.
#[derive(Debug)]
pub struct PidFileLock {
    path: PathBuf,
    _file: File,
    dev: u64,
    ino: u64,
}

impl PidFileLock {
    /// Writes our pid to `path` and locks it. Fails with [`PidFileError::Locked`] when a running
    /// process already holds it.
    pub fn acquire(path: &Path) -> Result<PidFileLock, PidFileError> {
        if let Some(info) = read_pid_file(path).or_else(|e| match e {
            // A garbage file is not a lock anyone holds: replace it.
            PidFileError::Invalid { .. } => Ok(None),
            e => Err(e),
        })? {
            if info.locked {
                return Err(PidFileError::Locked {
                    path: path.to_path_buf(),
                    pid: info.pid.as_raw(),
                });
            }
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".pid-")
            .tempfile_in(dir)
            .map_err(io_err(path))?;
        writeln!(tmp, "{}", std::process::id()).map_err(io_err(path))?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io_err(path))?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(tmp.as_file().as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io_err(path)(io::Error::last_os_error()));
        }
        let file = tmp.persist(path).map_err(|e| io_err(path)(e.error))?;
        let meta = file.metadata().map_err(io_err(path))?;
        Ok(PidFileLock {
            path: path.to_path_buf(),
            dev: meta.dev(),
            ino: meta.ino(),
            _file: file,
        })
    }

    /// The pid file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PidFileLock {
    fn drop(&mut self) {
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
    use std::process::Command;

    #[test]
    fn lock_is_seen_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let lock = PidFileLock::acquire(&path).unwrap();
        let info = read_pid_file(&path).unwrap().unwrap();
        assert_eq!(info.pid.as_raw() as u32, std::process::id());
        assert!(info.locked);
        assert_eq!(pid_file_owner(&path).unwrap(), Some(Pid::this()));
        assert!(matches!(
            PidFileLock::acquire(&path),
            Err(PidFileError::Locked { .. })
        ));
        drop(lock);
        assert!(!path.exists());
        assert!(read_pid_file(&path).unwrap().is_none());
    }

    #[test]
    fn stale_file_naming_a_younger_process_is_not_its_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        std::fs::write(&path, format!("{}\n", child.id())).unwrap();
        // Written after the child started, unlocked: the child counts as its owner.
        assert_eq!(
            pid_file_owner(&path).unwrap(),
            Some(Pid::from_raw(child.id() as i32))
        );
        // Written an hour before the child started: stale, not the child's.
        let old = SystemTime::now() - Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(pid_file_owner(&path).unwrap(), None);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(pid_file_owner(&path).unwrap(), None);
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
    }
}
