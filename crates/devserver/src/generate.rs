//! Payload generation and its cache: running `cros_generate_update_payload` (and
//! `cros_generate_stateful_update_payload`) for `--image` / `-p`, into
//! `static/cache/<md5 of the inputs>/`; pruning the cache to its newest entries and clearing it.
//! Nothing is removed through a symbolic link: a cache directory that is one is refused, and
//! entries that are links are removed, not followed.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use md5::Digest as _;

/// How many cache entries are kept (the newest by modification time).
pub const CACHED_ENTRIES: usize = 12;
/// The update payload generator.
pub const GENERATOR: &str = "cros_generate_update_payload";
/// The stateful payload generator.
pub const STATEFUL_GENERATOR: &str = "cros_generate_stateful_update_payload";
/// File name of an update payload.
pub const UPDATE_FILE: &str = "update.gz";
/// File name of a stateful payload.
pub const STATEFUL_FILE: &str = "stateful.tgz";

/// What a payload is generated from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenInputs {
    /// The image to update to.
    pub image: PathBuf,
    /// The image to update from (a delta), if any.
    pub src_image: Option<PathBuf>,
    /// Key to sign the payload with.
    pub private_key: Option<PathBuf>,
    /// For a VM image (no kernel patching).
    pub for_vm: bool,
}

fn feed_file(hasher: &mut md5::Md5, path: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(path)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let canonical = std::fs::canonicalize(path)?;
    hasher.update(canonical.as_os_str().as_encoded_bytes());
    hasher.update(b"\0");
    hasher.update(meta.len().to_le_bytes());
    hasher.update(meta.mtime().to_le_bytes());
    hasher.update(meta.mtime_nsec().to_le_bytes());
    Ok(())
}

impl GenInputs {
    /// The cache key: md5 (hex) of the inputs' paths, sizes and modification times.
    pub fn digest(&self) -> std::io::Result<String> {
        let mut h = md5::Md5::new();
        h.update(b"image\0");
        feed_file(&mut h, &self.image)?;
        if let Some(src) = &self.src_image {
            h.update(b"src\0");
            feed_file(&mut h, src)?;
        }
        if let Some(key) = &self.private_key {
            h.update(b"key\0");
            feed_file(&mut h, key)?;
        }
        h.update(if self.for_vm { b"vm" } else { b"hw" });
        Ok(hex::encode(h.finalize()))
    }
}

/// Fails with a message naming the first generator missing from PATH.
pub fn check_generators() -> anyhow::Result<()> {
    for program in [GENERATOR, STATEFUL_GENERATOR] {
        if which::which(program).is_err() {
            anyhow::bail!(
                "payload generation needs {program}, which is not on PATH \
                 (run inside the ChromiumOS SDK, or serve a ready payload with --payload)"
            );
        }
    }
    Ok(())
}

/// Fails when the cache directory is a symbolic link (it would be emptied through it).
fn refuse_link(cache_dir: &Path) -> std::io::Result<()> {
    if std::fs::symlink_metadata(cache_dir)?
        .file_type()
        .is_symlink()
    {
        return Err(std::io::Error::other(format!(
            "{} is a symbolic link; refusing to remove anything through it",
            cache_dir.display()
        )));
    }
    Ok(())
}

/// Removes every entry of the cache directory (refused when it is a symbolic link).
pub fn clear(cache_dir: &Path) -> std::io::Result<usize> {
    refuse_link(cache_dir)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(cache_dir)? {
        let path = entry?.path();
        remove_any(&path)?;
        removed += 1;
    }
    Ok(removed)
}

fn remove_any(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Keeps the newest `keep` entries of the cache directory (by modification time), removes
/// the others; returns the names removed. Refused when the directory is a symbolic link.
pub fn prune(cache_dir: &Path, keep: usize) -> std::io::Result<Vec<String>> {
    refuse_link(cache_dir)?;
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(cache_dir)? {
        let entry = entry?;
        let meta = entry.path().symlink_metadata()?;
        let mtime = (meta.mtime(), meta.mtime_nsec());
        entries.push((mtime, entry.file_name().to_string_lossy().into_owned()));
    }
    if entries.len() <= keep {
        return Ok(Vec::new());
    }
    entries.sort();
    let excess = entries.len() - keep;
    let mut removed = Vec::new();
    for (_, name) in entries.into_iter().take(excess) {
        remove_any(&cache_dir.join(&name))?;
        removed.push(name);
    }
    Ok(removed)
}

/// Runs the generators unless the cache already holds the payload; one generation at a time.
pub struct Generator {
    cache_dir: PathBuf,
    lock: tokio::sync::Mutex<()>,
}

impl Generator {
    /// A generator writing under `cache_dir`.
    pub fn new(cache_dir: PathBuf) -> Self {
        Generator {
            cache_dir,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The cache entry (its name and directory) holding the payload for `inputs`, generated
    /// now if needed.
    pub async fn generate(&self, inputs: &GenInputs) -> Result<(String, PathBuf), String> {
        let digest = inputs.digest().map_err(|e| e.to_string())?;
        let dir = self.cache_dir.join(&digest);
        if dir.join(UPDATE_FILE).is_file() {
            return Ok((digest, dir));
        }
        let _guard = self.lock.lock().await;
        if dir.join(UPDATE_FILE).is_file() {
            return Ok((digest, dir));
        }
        let tmp = self
            .cache_dir
            .join(format!(".tmp-{digest}-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
        let result = run_generators(inputs, &tmp).await;
        let result = result.and_then(|()| {
            std::fs::rename(&tmp, &dir).map_err(|e| format!("{}: {e}", dir.display()))
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result?;
        let _ = prune(&self.cache_dir, CACHED_ENTRIES);
        Ok((digest, dir))
    }
}

async fn run(program: &str, args: Vec<std::ffi::OsString>) -> Result<(), String> {
    let output = tokio::process::Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let tail: String = text.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
    Err(format!("{program} failed ({}): {tail}", output.status))
}

async fn run_generators(inputs: &GenInputs, out: &Path) -> Result<(), String> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--image".into(),
        inputs.image.clone().into(),
        "--output".into(),
        out.join(UPDATE_FILE).into(),
    ];
    if let Some(src) = &inputs.src_image {
        args.push("--src_image".into());
        args.push(src.clone().into());
    }
    if !inputs.for_vm {
        args.push("--patch_kernel".into());
    }
    if let Some(key) = &inputs.private_key {
        args.push("--private_key".into());
        args.push(key.clone().into());
    }
    run(GENERATOR, args).await?;
    run(
        STATEFUL_GENERATOR,
        vec![
            "--image".into(),
            inputs.image.clone().into(),
            "--output".into(),
            out.into(),
        ],
    )
    .await?;
    if !out.join(UPDATE_FILE).is_file() {
        return Err(format!("{GENERATOR} wrote no {UPDATE_FILE}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::time::SystemTime::now() - std::time::Duration::from_secs(1000);
        for i in 0..15u64 {
            let p = dir.path().join(format!("e{i:02}"));
            std::fs::create_dir(&p).unwrap();
            let f = std::fs::File::open(&p).unwrap();
            f.set_modified(base + std::time::Duration::from_secs(i * 10))
                .unwrap();
        }
        let removed = prune(dir.path(), 12).unwrap();
        assert_eq!(removed, vec!["e00", "e01", "e02"]);
        assert_eq!(clear(dir.path()).unwrap(), 12);
    }

    #[test]
    fn a_linked_cache_is_neither_cleared_nor_pruned() {
        let target = tempfile::tempdir().unwrap();
        for i in 0..15 {
            std::fs::create_dir(target.path().join(format!("e{i:02}"))).unwrap();
        }
        let holder = tempfile::tempdir().unwrap();
        let cache = holder.path().join("cache");
        std::os::unix::fs::symlink(target.path(), &cache).unwrap();
        let e = clear(&cache).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        assert!(prune(&cache, 12).is_err());
        assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 15);
    }
}
