//! Payload digests (size, SHA-1 and SHA-256), computed once per file version and cached.
//!
//! A file version is its (device, inode, size, mtime); a request costs one `stat` when the
//! cache is warm. Concurrent requests for a file not hashed yet wait for a single hashing
//! (on the blocking pool); no lock is held while hashing.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use sha1::Digest as _;
use tokio::sync::OnceCell;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileKey {
    fn of(meta: &std::fs::Metadata) -> Self {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

/// The digests of one file version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Size in bytes.
    pub size: u64,
    /// Base64 SHA-1.
    pub sha1_b64: String,
    /// Base64 SHA-256.
    pub sha256_b64: String,
    /// Hex SHA-256.
    pub sha256_hex: String,
}

type Cell = Arc<OnceCell<Result<Arc<Digests>, String>>>;

/// Cache of digests keyed by path, valid while the file is unchanged.
#[derive(Default)]
pub struct DigestCache {
    entries: Mutex<HashMap<PathBuf, (FileKey, Cell)>>,
}

impl DigestCache {
    /// The digests of the file at `path` (hashed now if it changed or was never hashed).
    pub async fn get(&self, path: &Path) -> Result<Arc<Digests>, String> {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", path.display()));
        }
        let key = FileKey::of(&meta);
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(path) {
                Some((k, cell)) if *k == key => cell.clone(),
                _ => {
                    let cell: Cell = Arc::default();
                    entries.insert(path.to_path_buf(), (key, cell.clone()));
                    cell
                }
            }
        };
        let owned = path.to_path_buf();
        cell.get_or_init(|| async move {
            let result = tokio::task::spawn_blocking(move || hash_file(&owned, key)).await;
            match result {
                Ok(r) => r.map(Arc::new),
                Err(e) => Err(format!("hashing task failed: {e}")),
            }
        })
        .await
        .clone()
    }
}

fn hash_file(path: &Path, key: FileKey) -> Result<Digests, String> {
    let err = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(err)?;
    let mut sha1 = sha1::Sha1::new();
    let mut sha256 = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        sha1.update(&buf[..n]);
        sha256.update(&buf[..n]);
        size += n as u64;
    }
    let after = FileKey::of(&file.metadata().map_err(err)?);
    if after != key || size != key.size {
        return Err(format!("{}: changed while being hashed", path.display()));
    }
    let sha256 = sha256.finalize();
    let b64 = base64::engine::general_purpose::STANDARD;
    Ok(Digests {
        size,
        sha1_b64: b64.encode(sha1.finalize()),
        sha256_b64: b64.encode(sha256),
        sha256_hex: hex::encode(sha256),
    })
}

/// SHA-1 of a file, base64 (for checking factory config checksums, outside any cache).
pub fn sha1_b64_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut sha1 = sha1::Sha1::new();
    std::io::copy(&mut file, &mut sha1)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sha1.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn test_vector_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("update.gz");
        std::fs::write(&path, "Developers, developers, developers!\n").unwrap();
        let cache = DigestCache::default();
        let d = cache.get(&path).await.unwrap();
        assert_eq!(d.size, 36);
        assert_eq!(d.sha1_b64, "kGcOinJ0vA8vdYX53FN0F5BdwfY=");
        assert_eq!(d.sha256_b64, "hgfZ19hcsA5OGUN3f4SDtoO0kzT24o+JsGgjNVCVEy0=");
        assert_eq!(
            d.sha256_hex,
            "8607d9d7d85cb00e4e1943777f8483b683b49334f6e28f89b06823355095132d"
        );
        assert!(Arc::ptr_eq(&d, &cache.get(&path).await.unwrap()));
        std::fs::write(&path, "other content, longer than before\n").unwrap();
        let d2 = cache.get(&path).await.unwrap();
        assert_ne!(d2.sha1_b64, d.sha1_b64);
        assert_eq!(sha1_b64_of(&path).unwrap(), d2.sha1_b64);
    }
}
