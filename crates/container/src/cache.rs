//! The engine-detection cache: QEMU's make calls the container helper hundreds of times a
//! build, and asking the engines each time costs a `version` call (25-30 ms) per step.
//!
//! A successful detection is remembered for a short while (10 minutes, or
//! `$CIBOX_ENGINE_CACHE_SECONDS`; 0 turns the cache off) in a file under
//! `$XDG_RUNTIME_DIR/cibox/`, else `$XDG_CACHE_HOME/cibox/` or `~/.cache/cibox/`, else
//! `$TMPDIR/cibox-<uid>/`: a directory only the user can write. The file name is a digest of everything that decides the answer: the engine
//! choice, the user, `PATH`, the engine environment variables, and which file each candidate
//! program resolves to (path, inode, size, modification time). Installing, removing or
//! upgrading an engine, or pointing `DOCKER_HOST` elsewhere, therefore misses the cache.
//! Failures are never cached. An engine that stops working inside the window shows up as the
//! engine's own clear error on the next command, and `probe --json` always asks afresh.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::EngineKind;
use cibox_core::EngineChoice;

/// How long a detection stays good unless `$CIBOX_ENGINE_CACHE_SECONDS` says otherwise.
const DEFAULT_TTL: Duration = Duration::from_secs(600);

/// Environment variables that change which engine answers, or how.
const ENGINE_ENV: &[&str] = &[
    "PATH",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "CONTAINER_HOST",
    "CONTAINER_CONNECTION",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
];

/// What a cache file holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cached {
    pub argv: Vec<String>,
    pub kind: EngineKind,
    pub version: Option<String>,
    /// Seconds since the epoch when the engine last answered.
    pub checked: u64,
}

fn ttl() -> Duration {
    std::env::var("CIBOX_ENGINE_CACHE_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_TTL)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The cache directory, created if needed; `None` when there is no safe one.
fn directory() -> Option<PathBuf> {
    let uid = nix::unistd::geteuid().as_raw();
    let env_dir = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    // The runtime directory must exist already; a cache directory is made if need be.
    let dir = env_dir("XDG_RUNTIME_DIR")
        .filter(|runtime| runtime.is_dir())
        .or_else(|| env_dir("XDG_CACHE_HOME"))
        .or_else(|| {
            env_dir("HOME")
                .filter(|home| home.is_dir())
                .map(|home| home.join(".cache"))
        })
        .map(|parent| parent.join("cibox"))
        .unwrap_or_else(|| std::env::temp_dir().join(format!("cibox-{uid}")));
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            return None;
        }
    }
    // Only a directory of ours that nobody else can write is trusted.
    let meta = std::fs::symlink_metadata(&dir).ok()?;
    let safe = meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o022 == 0;
    safe.then_some(dir)
}

/// The cache file for `choice` with `programs` (each candidate's program names) as they
/// resolve now.
fn path(choice: EngineChoice, programs: &[&str]) -> Option<PathBuf> {
    let mut key = Sha256::new();
    key.update(format!("{choice:?}\0{}\0", nix::unistd::geteuid()));
    for name in ENGINE_ENV {
        key.update(name);
        key.update(b"=");
        if let Some(value) = std::env::var_os(name) {
            key.update(value.as_encoded_bytes());
        }
        key.update(b"\0");
    }
    for program in programs {
        key.update(program);
        match which::which(program)
            .ok()
            .and_then(|p| std::fs::metadata(&p).ok().map(|m| (p, m)))
        {
            Some((resolved, meta)) => key.update(format!(
                "={}:{}:{}:{}.{}\0",
                resolved.display(),
                meta.ino(),
                meta.size(),
                meta.mtime(),
                meta.mtime_nsec()
            )),
            None => key.update(b"=missing\0"),
        }
    }
    let digest = hex::encode(&key.finalize()[..12]);
    Some(directory()?.join(format!("engine-{digest}.json")))
}

/// A detection remembered for `choice`, if one is still good.
pub fn load(choice: EngineChoice, programs: &[&str]) -> Option<Cached> {
    let ttl = ttl();
    if ttl.is_zero() {
        return None;
    }
    let text = std::fs::read(path(choice, programs)?).ok()?;
    let cached: Cached = serde_json::from_slice(&text).ok()?;
    let age = now().checked_sub(cached.checked)?;
    (age < ttl.as_secs() && !cached.argv.is_empty()).then_some(cached)
}

/// Remembers a successful detection for `choice`. Failing to write is not an error: the
/// next call simply asks the engines again.
pub fn store(
    choice: EngineChoice,
    programs: &[&str],
    argv: &[String],
    kind: EngineKind,
    version: Option<&str>,
) {
    if ttl().is_zero() {
        return;
    }
    let Some(path) = path(choice, programs) else {
        return;
    };
    let cached = Cached {
        argv: argv.to_vec(),
        kind,
        version: version.map(str::to_string),
        checked: now(),
    };
    let Ok(text) = serde_json::to_vec(&cached) else {
        return;
    };
    let Some(dir) = path.parent() else { return };
    prune(dir);
    // Written beside it and renamed, so a reader never sees half a file.
    if let Ok(mut file) = tempfile::NamedTempFile::new_in(dir) {
        if file.write_all(&text).is_ok() {
            let _ = file.persist(&path);
        }
    }
}

/// Removes cache files past their time (a new one is being written, so this runs on a miss
/// only, never on the fast path).
fn prune(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let limit = ttl();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("engine-") && name.ends_with(".json")) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > limit);
        if old {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
