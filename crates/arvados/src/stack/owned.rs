//! What a run made in its run directory, recorded in the manifest `cibox.manifest` there, so
//! that the stops remove only that: a run directory may be any directory of the user's
//! (`--run-dir .`), holding a `git/`, an `nginx.conf` or a certificate of their own.
//!
//! A launcher [`claim`]s a name before it creates it, under the run-dir lock: a name the
//! manifest lists is the run's (it may be replaced), a name that exists but is not listed is
//! refused with a one-line error naming it, anything else is appended to the manifest. A stop
//! [`remove`]s only listed names, and drops them from the manifest; the manifest goes with its
//! last entry. A run directory without a manifest (an older cibox's) gets nothing unknown
//! removed. The seed's state files (`NAME.pid`, `NAME.port`, `keepN.*`) are not listed: their
//! names are the stops' protocol, and [`crate::stack::services`] removes them by name.
//!
//! Temporary files an interrupted write left (`.tmp-*`, `.pid-*`) have random names: the
//! manifest records when it was created (`since`, the file system's own time stamp), and
//! [`sweep_temporaries`] removes only those written since then.
//!
//! The manifest: a comment line, `since SECONDS.NANOSECONDS`, then one name per line. Entries
//! are appended with one write; it is rewritten (atomically) only to drop entries.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

use cibox_runtime::process::{self, RunDir};

/// The manifest's file name in the run directory.
pub const FILE: &str = "cibox.manifest";
const HEADER: &str =
    "# cibox: what the start applets made in this run directory; the stops remove only these";

/// The manifest as read.
#[derive(Debug, Default)]
struct Manifest {
    since: Option<SystemTime>,
    entries: Vec<String>,
}

fn manifest_path(lock: &RunDir) -> PathBuf {
    lock.path().join(FILE)
}

/// Reads the manifest; `None` when there is none. A last line without its newline (a write cut
/// short) is ignored.
fn read(lock: &RunDir) -> io::Result<Option<Manifest>> {
    let text = match std::fs::read_to_string(manifest_path(lock)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut manifest = Manifest::default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..end],
        None => "",
    };
    for line in complete.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(stamp) = line.strip_prefix("since ") {
            manifest.since = parse_stamp(stamp);
        } else if !manifest.entries.iter().any(|e| e == line) {
            manifest.entries.push(line.to_string());
        }
    }
    Ok(Some(manifest))
}

fn parse_stamp(stamp: &str) -> Option<SystemTime> {
    let (secs, nanos) = stamp.trim().split_once('.')?;
    UNIX_EPOCH.checked_add(Duration::new(secs.parse().ok()?, nanos.parse().ok()?))
}

fn format_stamp(time: SystemTime) -> String {
    let d = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
}

/// Whether `name` is one entry directly in the run directory.
fn check_name(name: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !name.contains('\n')
            && !name.starts_with('#')
            && !name.starts_with("since "),
        "{name:?}: not a name the manifest can record"
    );
    Ok(())
}

/// Whether the run recorded `name` as its own.
pub fn owns(lock: &RunDir, name: &str) -> bool {
    matches!(read(lock), Ok(Some(m)) if m.entries.iter().any(|e| e == name))
}

/// Claims `name` in the run directory for this run, before the caller creates it: fine when
/// the manifest lists it already; refused when it exists without being listed (the user's);
/// else recorded.
pub fn claim(lock: &RunDir, name: &str) -> anyhow::Result<()> {
    check_name(name)?;
    let manifest_file = manifest_path(lock);
    let manifest = read(lock).with_context(|| format!("reading {}", manifest_file.display()))?;
    if manifest
        .as_ref()
        .is_some_and(|m| m.entries.iter().any(|e| e == name))
    {
        return Ok(());
    }
    let path = lock.path().join(name);
    if std::fs::symlink_metadata(&path).is_ok() {
        bail!(
            "{} exists and was not made by a cibox start in this run directory (not in {}): \
             move it away or choose another --run-dir",
            path.display(),
            manifest_file.display()
        );
    }
    let written = match manifest {
        Some(_) => OpenOptions::new()
            .append(true)
            .open(&manifest_file)
            .and_then(|mut f| f.write_all(format!("{name}\n").as_bytes())),
        None => create(&manifest_file, name),
    };
    written.with_context(|| format!("recording {name} in {}", manifest_file.display()))
}

/// Creates the manifest with its first entry, stamped with the file system's own time of its
/// creation (the clock the temporary files' times come from).
fn create(path: &Path, first: &str) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let since = file.metadata()?.modified()?;
    file.write_all(format!("{HEADER}\nsince {}\n{first}\n", format_stamp(since)).as_bytes())
}

/// Removes `name` (a file, or a directory with everything in it; a link is removed, not
/// followed) when the run recorded it, and drops it from the manifest. Not recorded: left
/// alone. A failure is said on stderr and the entry kept.
pub fn remove(lock: &RunDir, name: &str) {
    if !owns(lock, name) {
        return;
    }
    let path = lock.path().join(name);
    let removed = match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
        Ok(_) => std::fs::remove_file(&path),
        Err(e) => Err(e),
    };
    match removed {
        Ok(()) => forget(lock, &[name]),
        Err(e) if e.kind() == io::ErrorKind::NotFound => forget(lock, &[name]),
        Err(e) => eprintln!("cibox: cannot remove {}: {e}", path.display()),
    }
}

/// Drops `names` from the manifest (their files are gone or never were). With the last entry
/// gone, the temporary files of the run are swept and the manifest removed.
pub fn forget(lock: &RunDir, names: &[&str]) {
    let manifest_file = manifest_path(lock);
    let Ok(Some(manifest)) = read(lock) else {
        return;
    };
    let kept: Vec<&String> = manifest
        .entries
        .iter()
        .filter(|e| !names.contains(&e.as_str()))
        .collect();
    let result = if kept.is_empty() {
        sweep_temporaries(lock);
        std::fs::remove_file(&manifest_file)
    } else if kept.len() == manifest.entries.len() {
        Ok(())
    } else {
        let mut text = format!("{HEADER}\n");
        if let Some(since) = manifest.since {
            text.push_str(&format!("since {}\n", format_stamp(since)));
        }
        for entry in kept {
            text.push_str(entry);
            text.push('\n');
        }
        process::write_atomic(&manifest_file, text.as_bytes(), 0o600)
    };
    if let Err(e) = result {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("cibox: cannot update {}: {e}", manifest_file.display());
        }
    }
}

/// Removes the temporary files an interrupted write of the run left in the run directory
/// (`.tmp-*`, `.pid-*`, written since the manifest was created). Without a manifest, none:
/// they may be the user's. Returns how many went.
pub fn sweep_temporaries(lock: &RunDir) -> usize {
    let Ok(Some(Manifest {
        since: Some(since), ..
    })) = read(lock)
    else {
        return 0;
    };
    let Ok(entries) = std::fs::read_dir(lock.path()) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with(".tmp-") || name.starts_with(".pid-")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        let ours = meta.is_file() && meta.modified().is_ok_and(|m| m >= since);
        if ours && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use cibox_runtime::process::IfMissing;

    fn lock(dir: &Path) -> RunDir {
        RunDir::lock(dir, IfMissing::Create, Duration::ZERO)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn claims_removals_and_the_users_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        let lock = lock(&dir);
        std::fs::write(dir.join("nginx.conf"), "the user's").unwrap();
        std::fs::write(dir.join(".tmp-old"), "the user's").unwrap();
        std::fs::File::options()
            .write(true)
            .open(dir.join(".tmp-old"))
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(60))
            .unwrap();
        let err = claim(&lock, "nginx.conf").unwrap_err().to_string();
        assert!(err.contains("nginx.conf exists"), "{err}");
        assert!(!dir.join(FILE).exists());
        // Nothing recorded: nothing removed.
        remove(&lock, "nginx.conf");
        assert!(dir.join("nginx.conf").exists());
        claim(&lock, "git").unwrap();
        claim(&lock, "git").unwrap();
        std::fs::create_dir_all(dir.join("git/test")).unwrap();
        claim(&lock, "self-signed.pem").unwrap();
        std::fs::write(dir.join("self-signed.pem"), "ours").unwrap();
        std::fs::write(dir.join(".tmp-new"), "ours").unwrap();
        assert!(owns(&lock, "git") && !owns(&lock, "nginx.conf"));
        remove(&lock, "git");
        assert!(!dir.join("git").exists());
        assert!(dir.join(FILE).exists());
        remove(&lock, "self-signed.pem");
        // The last entry gone: the run's temporaries and the manifest go, the user's stay.
        assert!(!dir.join(FILE).exists());
        assert!(!dir.join(".tmp-new").exists());
        assert!(dir.join(".tmp-old").exists());
        assert!(dir.join("nginx.conf").exists());
        assert!(claim(&lock, "../x").is_err());
        assert!(claim(&lock, "a\nb").is_err());
    }
}
