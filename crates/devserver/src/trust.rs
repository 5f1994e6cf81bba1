//! What `serve` trusts on disk before it writes there. The directories it keeps files in (the
//! data directory, the static directory, the payload cache) must be real directories owned by
//! the caller or root and writable by no one else ([`check_dir`]): another user must not be
//! able to plant links in them. The files it appends to or creates (the logs, the demo
//! payload) are opened without following a symbolic link at their last component
//! ([`open_log`], [`create_new`]), and a log that already exists must be a regular file of the
//! caller's with no other name. Every refusal is one line naming the path and what is wrong.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context as _};

/// Creates `path` and its missing parents, mode 0755 (less the umask).
pub fn create_dir(what: &str, path: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(path)
        .with_context(|| format!("cannot create the {what} {}", path.display()))
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Checks that `path` (`what`: "data dir", ...) is a directory, not a symbolic link, owned by
/// the caller or root, and not writable by group or others.
pub fn check_dir(what: &str, path: &Path) -> anyhow::Result<()> {
    let dir = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // A link to a directory fails as "not a directory" under O_NOFOLLOW.
            Some(libc::ELOOP | libc::ENOTDIR) if is_link(path) => anyhow::anyhow!(
                "{what} {} is a symbolic link; refusing to use it",
                path.display()
            ),
            Some(libc::ENOTDIR) => {
                anyhow::anyhow!("{what} {} is not a directory", path.display())
            }
            _ => anyhow::anyhow!("cannot open the {what} {}: {e}", path.display()),
        })?;
    // Checked on the opened directory, so a swap after the check changes nothing.
    let meta = dir
        .metadata()
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let us = nix::unistd::geteuid().as_raw();
    if meta.uid() != us && meta.uid() != 0 {
        bail!(
            "{what} {} is owned by uid {}, not by you (uid {us}) or root; refusing to use it",
            path.display(),
            meta.uid()
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o022 != 0 {
        bail!(
            "{what} {} is writable by group or others (mode {mode:o}); refusing to use it \
             (chmod go-w {})",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Fails when `path` is a symbolic link (`what` names it); a missing path is fine.
pub fn refuse_link(what: &str, path: &Path) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| "?".into());
            bail!(
                "{what} {} is a symbolic link (to {target}); refusing to use it (remove the link)",
                path.display()
            )
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot read the {what} {}", path.display())),
    }
}

/// Opens a log file for appending, creating it (mode 0644) when missing. Refused: a symbolic
/// link (even a dangling one: nothing is created at its target), anything but a regular file
/// (a FIFO never blocks the open), a file owned by another user, a file with other hard links.
pub fn open_log(path: &Path) -> anyhow::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => anyhow::anyhow!(
                "log file {} is a symbolic link; refusing to write through it",
                path.display()
            ),
            _ => anyhow::anyhow!("cannot open log file {}: {e}", path.display()),
        })?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read log file {}", path.display()))?;
    if !meta.is_file() {
        bail!(
            "log file {} is not a regular file; refusing to write to it",
            path.display()
        );
    }
    let us = nix::unistd::geteuid().as_raw();
    if meta.uid() != us {
        bail!(
            "log file {} is owned by uid {}, not by you (uid {us}); refusing to append to it",
            path.display(),
            meta.uid()
        );
    }
    if meta.nlink() > 1 {
        bail!(
            "log file {} has {} hard links; refusing to append to it",
            path.display(),
            meta.nlink()
        );
    }
    // Writes block as usual from here on.
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&file),
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_APPEND),
    )
    .with_context(|| format!("cannot set up log file {}", path.display()))?;
    Ok(file)
}

/// Creates `path` with `contents` (mode 0644) only if nothing is there, a dangling symbolic
/// link included (never followed); `Ok(false)` when something was.
pub fn create_new(path: &Path, contents: &[u8]) -> io::Result<bool> {
    let mut file = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    file.write_all(contents)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_refuse_links_and_foreign_names() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let link = dir.path().join("log");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = open_log(&link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("made"), &dangling).unwrap();
        assert!(open_log(&dangling).is_err());
        assert!(!dir.path().join("made").exists());
        let hard = dir.path().join("hard");
        std::fs::hard_link(&victim, &hard).unwrap();
        let e = open_log(&hard).unwrap_err().to_string();
        assert!(e.contains("hard links"), "{e}");
        nix::unistd::mkfifo(&dir.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let e = open_log(&dir.path().join("fifo")).unwrap_err().to_string();
        assert!(e.contains("fifo"), "{e}");
        let mut ok = open_log(&dir.path().join("fresh.log")).unwrap();
        ok.write_all(b"line\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
    }

    #[test]
    fn create_new_never_follows() {
        let dir = tempfile::tempdir().unwrap();
        let dangling = dir.path().join("update.gz");
        std::os::unix::fs::symlink(dir.path().join("made"), &dangling).unwrap();
        assert!(!create_new(&dangling, b"x").unwrap());
        assert!(!dir.path().join("made").exists());
        assert!(create_new(&dir.path().join("new"), b"x").unwrap());
        assert!(!create_new(&dir.path().join("new"), b"y").unwrap());
    }

    #[test]
    fn directories_others_may_write_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_dir("data dir", dir.path()).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir("data dir", dir.path()).unwrap_err().to_string();
        assert!(e.contains("writable by group or others (mode 777)"), "{e}");
        let link = tempfile::tempdir().unwrap();
        let link = link.path().join("l");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        let e = check_dir("static dir", &link).unwrap_err().to_string();
        assert!(e.contains("is a symbolic link"), "{e}");
        let e = refuse_link("payload cache", &link).unwrap_err().to_string();
        assert!(
            e.contains("payload cache") && e.contains("symbolic link"),
            "{e}"
        );
    }
}
