//! Run directories: where launchers keep the pid, port and other state files of the daemons
//! they start. [`RunDir::lock`] makes sure the directory is one we may trust (a directory, ours,
//! not writable by others) and holds an exclusive `flock` on it for as long as a start or stop
//! runs, so two launchers never work in the same directory at once.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why a run directory is refused.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// It exists and is not a directory.
    #[error("run directory {}: exists and is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// Another user owns it.
    #[error("run directory {}: owned by uid {owner}, not by us (uid {us}); refusing to use it", path.display())]
    ForeignOwner {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// Our effective uid.
        us: u32,
    },
    /// Its group or others may write it.
    #[error("run directory {}: writable by others (mode {mode:o}); refusing to use it (chmod go-w)", path.display())]
    WritableByOthers {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Another launcher kept it locked too long.
    #[error("run directory {}: still in use by another start or stop after {waited:?}", path.display())]
    Busy {
        /// The directory.
        path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// It cannot be created, read or locked.
    #[error("run directory {}: {source}", path.display())]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// A run directory we checked and hold locked; the lock goes when this is dropped.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    _lock: File,
}

/// What to do when the run directory does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Create it, mode 0700 (a start).
    Create,
    /// Report it (a stop: nothing to do).
    Report,
}

impl RunDir {
    /// Checks the run directory at `path` and locks it, waiting up to `wait` for another start
    /// or stop to finish. `Ok(None)` when it does not exist and `if_missing` is
    /// [`IfMissing::Report`].
    ///
    /// Refused: something other than a directory, a directory owned by another user, one its
    /// group or others may write (the default lives under `/tmp`, where anyone could have made
    /// it first and planted pid files).
    pub fn lock(
        path: &Path,
        if_missing: IfMissing,
        wait: Duration,
    ) -> Result<Option<RunDir>, RunDirError> {
        let io_err = |source| RunDirError::Io {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(RunDirError::NotADirectory(path.to_path_buf()))
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => match if_missing {
                IfMissing::Report => return Ok(None),
                IfMissing::Create => {
                    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                        std::fs::create_dir_all(parent).map_err(io_err)?;
                    }
                    match std::fs::DirBuilder::new().mode(0o700).create(path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err(e)),
                    }
                }
            },
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(RunDirError::NotADirectory(path.to_path_buf()))
            }
            Err(e) => return Err(io_err(e)),
        }
        let dir = File::open(path).map_err(io_err)?;
        // Checked on the opened directory, so a swap after the check changes nothing.
        let meta = dir.metadata().map_err(io_err)?;
        if !meta.is_dir() {
            return Err(RunDirError::NotADirectory(path.to_path_buf()));
        }
        let us = nix::unistd::geteuid().as_raw();
        if meta.uid() != us {
            return Err(RunDirError::ForeignOwner {
                path: path.to_path_buf(),
                owner: meta.uid(),
                us,
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o022 != 0 {
            return Err(RunDirError::WritableByOthers {
                path: path.to_path_buf(),
                mode,
            });
        }
        let started = Instant::now();
        while !super::pidfile::try_flock(&dir, libc::LOCK_EX).map_err(io_err)? {
            if started.elapsed() >= wait {
                return Err(RunDirError::Busy {
                    path: path.to_path_buf(),
                    waited: wait,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Some(RunDir {
            path: path.to_path_buf(),
            _lock: dir,
        }))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the temporary files an interrupted [`write_atomic`](super::write_atomic) or
    /// [`PidFileLock`](super::PidFileLock) left (`.tmp-*`, `.pid-*`). Safe because we hold the
    /// lock: no start is writing here now. Returns how many went.
    pub fn sweep_temporary_files(&self) -> io::Result<usize> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if (name.starts_with(".tmp-") || name.starts_with(".pid-"))
                && entry.file_type()?.is_file()
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_WAIT: Duration = Duration::from_millis(0);

    #[test]
    fn created_private_locked_and_exclusive() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/run");
        assert!(RunDir::lock(&path, IfMissing::Report, NO_WAIT)
            .unwrap()
            .is_none());
        let held = RunDir::lock(&path, IfMissing::Create, NO_WAIT)
            .unwrap()
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert!(matches!(
            RunDir::lock(&path, IfMissing::Create, Duration::from_millis(30)),
            Err(RunDirError::Busy { .. })
        ));
        std::fs::write(path.join(".tmp-abc"), "x").unwrap();
        std::fs::write(path.join(".pid-abc"), "x").unwrap();
        std::fs::write(path.join("keep0.pid"), "1").unwrap();
        assert_eq!(held.sweep_temporary_files().unwrap(), 2);
        assert!(path.join("keep0.pid").exists());
        drop(held);
        assert!(RunDir::lock(&path, IfMissing::Report, NO_WAIT)
            .unwrap()
            .is_some());
    }

    #[test]
    fn refusals_name_the_directory_and_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        std::fs::write(&file, "x").unwrap();
        for path in [file.clone(), file.join("below")] {
            let err = RunDir::lock(&path, IfMissing::Create, NO_WAIT).unwrap_err();
            assert!(matches!(err, RunDirError::NotADirectory(_)), "{err}");
            assert!(err.to_string().contains(path.to_str().unwrap()));
        }
        let open = tmp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        for mode in [0o777, 0o1777, 0o770] {
            std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = RunDir::lock(&open, IfMissing::Create, NO_WAIT).unwrap_err();
            assert!(matches!(err, RunDirError::WritableByOthers { .. }), "{err}");
        }
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(RunDir::lock(&open, IfMissing::Create, NO_WAIT).is_ok());
        if nix::unistd::geteuid().is_root() {
            std::os::unix::fs::chown(&open, Some(65534), None).unwrap();
            let err = RunDir::lock(&open, IfMissing::Create, NO_WAIT).unwrap_err();
            assert!(
                matches!(err, RunDirError::ForeignOwner { owner: 65534, .. }),
                "{err}"
            );
        }
    }
}
