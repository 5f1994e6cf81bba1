//! A directory volume: `ROOT/<first 3 hex>/<32 hex>` holds a block's raw bytes.
//!
//! Writes go to a temporary file in the block's subdirectory (`tmp.<hash>.<pid>.<random>`),
//! are flushed to disk and renamed into place, so no partial block is ever visible under its
//! hash. Trash is `<hash>.trash.<deadline unix seconds>` beside the block. Everything here is
//! blocking file I/O: the server calls it from blocking threads.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::digest::BlockHasher;

use super::locator::is_hash;

/// Largest block: 64 MiB.
pub const BLOCK_MAX: u64 = 64 << 20;
/// A volume with less free space than this is full.
pub const DEFAULT_MIN_FREE: u64 = 64 << 20;

/// Volume errors beyond plain I/O.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A different block with the same MD5 is already stored.
    #[error("collision: a different block with hash {0} is already stored")]
    Collision(String),
    /// File system error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// What storing a block did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// It was new.
    New,
    /// The same bytes were there already: their modification time was refreshed.
    Touched,
    /// A corrupt copy was there and was replaced.
    Repaired,
}

/// What [`Volume::trash`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// The block is not on this volume.
    NotFound,
    /// The block is newer than the protection cutoff and was kept.
    Protected,
    /// Its modification time is not the one the request named: kept.
    MtimeMismatch,
    /// Moved to trash, or deleted.
    Removed,
}

/// A block being written: the temporary file is removed on drop unless committed.
#[derive(Debug)]
pub struct TempBlock {
    path: PathBuf,
    file: Option<File>,
}

/// Asks the kernel to start writing `len` bytes at `offset` of `file` to disk, without waiting
/// (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`). A block's final fsync then has only the
/// tail left to flush. Only a hint: where it is not supported nothing happens.
pub fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call; the call reads no memory.
    unsafe {
        libc::sync_file_range(
            file.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

impl TempBlock {
    /// The open temporary file.
    pub fn file(&mut self) -> &mut File {
        self.file
            .as_mut()
            .expect("temp block file is open until commit")
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBlock {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Space figures for `status.json`.
#[derive(Debug, Clone, Copy)]
pub struct Space {
    /// Bytes available to us.
    pub free: u64,
    /// Bytes used on the file system.
    pub used: u64,
    /// The file system's device number.
    pub device: u64,
}

/// One directory volume.
#[derive(Debug)]
pub struct Volume {
    root: PathBuf,
    readonly: bool,
    serialize: Option<Arc<tokio::sync::Mutex<()>>>,
    min_free: u64,
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// MD5 of a whole file, lowercase hex.
pub fn md5_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut md5 = BlockHasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
    }
    Ok(md5.finish_hex())
}

fn same_contents(a: &Path, b: &Path) -> io::Result<bool> {
    let (mut fa, mut fb) = (File::open(a)?, File::open(b)?);
    if fa.metadata()?.len() != fb.metadata()?.len() {
        return Ok(false);
    }
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = read_full(&mut fa, &mut ba)?;
        let m = read_full(&mut fb, &mut bb)?;
        if n != m || ba[..n] != bb[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Volume {
    /// Opens the volume at `root`, which must be an existing directory.
    pub fn open(root: &Path, readonly: bool, serialize: bool, min_free: u64) -> io::Result<Volume> {
        let meta = fs::metadata(root)
            .map_err(|e| io::Error::new(e.kind(), format!("volume {}: {e}", root.display())))?;
        if !meta.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("volume {}: not a directory", root.display()),
            ));
        }
        Ok(Volume {
            root: root.to_path_buf(),
            readonly,
            serialize: serialize.then(|| Arc::new(tokio::sync::Mutex::new(()))),
            min_free,
        })
    }

    /// The volume's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether writes, deletes and touches are refused here.
    pub fn readonly(&self) -> bool {
        self.readonly
    }

    /// With `-serialize`, the lock that makes this volume's I/O one request at a time.
    pub async fn io_lock(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.serialize {
            Some(m) => Some(m.clone().lock_owned().await),
            None => None,
        }
    }

    fn subdir(&self, hash: &str) -> PathBuf {
        self.root.join(&hash[..3])
    }

    /// Where the block `hash` lives.
    pub fn block_path(&self, hash: &str) -> PathBuf {
        self.subdir(hash).join(hash)
    }

    /// The block's metadata, `None` when it is not here.
    pub fn stat(&self, hash: &str) -> io::Result<Option<Metadata>> {
        match fs::metadata(self.block_path(hash)) {
            Ok(m) => Ok(Some(m)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens the block for reading, with its size.
    pub fn open_block(&self, hash: &str) -> io::Result<Option<(File, u64)>> {
        match File::open(self.block_path(hash)) {
            Ok(f) => {
                let len = f.metadata()?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Free and used space of the file system holding the volume.
    pub fn space(&self) -> io::Result<Space> {
        let st = nix::sys::statvfs::statvfs(&self.root).map_err(io::Error::from)?;
        let frsize = st.fragment_size() as u64;
        Ok(Space {
            free: st.blocks_available() as u64 * frsize,
            used: (st.blocks() as u64).saturating_sub(st.blocks_free() as u64) * frsize,
            device: fs::metadata(&self.root)?.dev(),
        })
    }

    /// Whether a block can be written here: not read-only and at least the minimum free space.
    pub fn has_room(&self) -> bool {
        !self.readonly && self.space().is_ok_and(|s| s.free >= self.min_free)
    }

    /// Creates the temporary file a new copy of `hash` is written to.
    pub fn create_temp(&self, hash: &str) -> io::Result<TempBlock> {
        let dir = self.subdir(hash);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)?;
        let name = format!(
            "tmp.{hash}.{}.{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        let path = dir.join(name);
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)?;
        Ok(TempBlock {
            path,
            file: Some(file),
        })
    }

    /// Makes the fully written (and hash-checked) temporary file the block `hash`: flushed to
    /// disk and renamed into place. An identical stored copy is touched instead, a corrupt one
    /// replaced; a different block with the same hash is a collision.
    pub fn commit(&self, mut temp: TempBlock, hash: &str) -> Result<Stored, VolumeError> {
        temp.file().flush()?;
        temp.file().sync_data()?;
        let target = self.block_path(hash);
        let outcome = match fs::metadata(&target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Stored::New,
            Err(e) => return Err(e.into()),
            Ok(_) => {
                if same_contents(&target, temp.path())? {
                    File::options()
                        .write(true)
                        .open(&target)?
                        .set_modified(SystemTime::now())?;
                    return Ok(Stored::Touched); // temp removed on drop
                }
                if md5_file(&target)? == hash {
                    return Err(VolumeError::Collision(hash.to_string()));
                }
                Stored::Repaired
            }
        };
        fs::rename(temp.path(), &target)?;
        temp.file = None; // committed: nothing to remove
        File::open(self.subdir(hash))?.sync_all()?;
        Ok(outcome)
    }

    /// Index lines (`hash+size mtime\n`) of the blocks in one subdirectory whose hash starts
    /// with `prefix`, sorted, for each subdirectory that can hold such blocks.
    pub fn index(&self, prefix: &str, mut each_dir: impl FnMut(String) -> bool) -> io::Result<()> {
        let mut dirs: Vec<String> = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            let compatible = if prefix.len() >= 3 {
                prefix.starts_with(&name)
            } else {
                name.starts_with(prefix)
            };
            if name.len() == 3 && is_hex(&name) && compatible {
                dirs.push(name);
            }
        }
        dirs.sort();
        for dir in dirs {
            let mut lines: Vec<String> = Vec::new();
            let entries = match fs::read_dir(self.root.join(&dir)) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !is_hash(&name) || !name.starts_with(prefix) {
                    continue;
                }
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                let mtime = unix_seconds(meta.modified()?);
                lines.push(format!("{name}+{} {mtime}\n", meta.len()));
            }
            lines.sort();
            if !lines.is_empty() && !each_dir(lines.concat()) {
                break;
            }
        }
        Ok(())
    }

    /// Trashes (with `lifetime` > 0: renames to `<hash>.trash.<now + lifetime>`) or deletes
    /// the block. Kept when modified after `protect_after`, or when `expected_mtime` (unix
    /// seconds or nanoseconds) is given and differs.
    pub fn trash(
        &self,
        hash: &str,
        lifetime: u64,
        protect_after: Option<SystemTime>,
        expected_mtime: Option<i128>,
    ) -> io::Result<Removal> {
        let Some(meta) = self.stat(hash)? else {
            return Ok(Removal::NotFound);
        };
        let mtime = meta.modified()?;
        if let Some(expected) = expected_mtime {
            if expected != unix_seconds(mtime) as i128 && expected != unix_nanos(mtime) {
                return Ok(Removal::MtimeMismatch);
            }
        }
        if protect_after.is_some_and(|cutoff| mtime > cutoff) {
            return Ok(Removal::Protected);
        }
        let path = self.block_path(hash);
        if lifetime > 0 {
            let deadline = unix_seconds(SystemTime::now()) + lifetime as i64;
            fs::rename(
                &path,
                self.subdir(hash).join(format!("{hash}.trash.{deadline}")),
            )?;
        } else {
            fs::remove_file(&path)?;
        }
        Ok(Removal::Removed)
    }

    fn trash_entries(dir: &Path, hash: Option<&str>) -> io::Result<Vec<(PathBuf, String, i64)>> {
        let mut found = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((h, deadline)) = name.split_once(".trash.") else {
                continue;
            };
            if !is_hash(h) || hash.is_some_and(|want| want != h) {
                continue;
            }
            if let Ok(deadline) = deadline.parse::<i64>() {
                found.push((entry.path(), h.to_string(), deadline));
            }
        }
        Ok(found)
    }

    /// Moves the most recently trashed copy of `hash` back. `false` when there is none.
    pub fn untrash(&self, hash: &str) -> io::Result<bool> {
        let entries = Self::trash_entries(&self.subdir(hash), Some(hash))?;
        match entries.into_iter().max_by_key(|e| e.2) {
            Some((path, _, _)) => {
                fs::rename(path, self.block_path(hash))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn subdirs(&self) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.len() == 3 && is_hex(&name) {
                dirs.push(entry.path());
            }
        }
        Ok(dirs)
    }

    /// Deletes trash whose deadline has passed. Returns how many copies went.
    pub fn empty_trash(&self, now: SystemTime) -> io::Result<usize> {
        let now = unix_seconds(now);
        let mut removed = 0;
        for dir in self.subdirs()? {
            for (path, _, deadline) in Self::trash_entries(&dir, None)? {
                if deadline <= now && fs::remove_file(path).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Removes temporary files left by writers that are gone (a server killed mid-write).
    pub fn remove_stale_temps(&self) -> io::Result<usize> {
        let me = std::process::id() as i32;
        let mut removed = 0;
        for dir in self.subdirs()? {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().into_owned();
                let mut parts = name.split('.');
                if parts.next() != Some("tmp") {
                    continue;
                }
                let (_hash, pid) = (parts.next(), parts.next());
                let writer_alive = pid.and_then(|p| p.parse::<i32>().ok()).is_some_and(|p| {
                    p != me
                        && cibox_runtime::process::is_running(
                            cibox_runtime::process::Pid::from_raw(p),
                        )
                });
                if !writer_alive && fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

fn is_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOO: &str = "acbd18db4cc2f85cedef654fccc4a4d8";

    fn volume(dir: &Path) -> Volume {
        Volume::open(dir, false, false, 0).unwrap()
    }

    fn write_temp(v: &Volume, hash: &str, data: &[u8]) -> TempBlock {
        let mut t = v.create_temp(hash).unwrap();
        t.file().write_all(data).unwrap();
        t
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn commit_touch_repair_collision() {
        let dir = tempfile::tempdir().unwrap();
        let v = volume(dir.path());
        let t = write_temp(&v, FOO, b"foo");
        assert_eq!(v.commit(t, FOO).unwrap(), Stored::New);
        assert_eq!(fs::read(v.block_path(FOO)).unwrap(), b"foo");
        assert_eq!(names(&dir.path().join("acb")), [FOO]);

        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        File::options()
            .write(true)
            .open(v.block_path(FOO))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let t = write_temp(&v, FOO, b"foo");
        assert_eq!(v.commit(t, FOO).unwrap(), Stored::Touched);
        assert!(fs::metadata(v.block_path(FOO)).unwrap().modified().unwrap() > old);

        fs::write(v.block_path(FOO), b"corrupt").unwrap();
        let t = write_temp(&v, FOO, b"foo");
        assert_eq!(v.commit(t, FOO).unwrap(), Stored::Repaired);
        assert_eq!(fs::read(v.block_path(FOO)).unwrap(), b"foo");

        // The stored copy hashes to FOO but the new bytes differ: a collision (the new bytes'
        // hash was checked by the caller while they arrived).
        let t = write_temp(&v, FOO, b"bar");
        assert!(matches!(v.commit(t, FOO), Err(VolumeError::Collision(_))));
        assert_eq!(fs::read(v.block_path(FOO)).unwrap(), b"foo");
        assert_eq!(names(&dir.path().join("acb")), [FOO]);
    }

    #[test]
    fn dropped_temp_is_removed_and_stale_temps_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let v = volume(dir.path());
        drop(write_temp(&v, FOO, b"fo"));
        assert!(names(&dir.path().join("acb")).is_empty());
        let t = write_temp(&v, FOO, b"fo");
        let kept = t.path().to_path_buf();
        std::mem::forget(t);
        fs::write(
            dir.path()
                .join("acb")
                .join(format!("tmp.{FOO}.999999999.x")),
            b"x",
        )
        .unwrap();
        assert_eq!(v.remove_stale_temps().unwrap(), 2);
        assert!(!kept.exists());
    }

    #[test]
    fn index_trash_untrash() {
        let dir = tempfile::tempdir().unwrap();
        let v = volume(dir.path());
        v.commit(write_temp(&v, FOO, b"foo"), FOO).unwrap();
        let bar = "37b51d194a7513e45b56f6524f2d51f2";
        v.commit(write_temp(&v, bar, b"bar"), bar).unwrap();
        let _pending = write_temp(&v, FOO, b"f");
        let mut out = String::new();
        v.index("", |chunk| {
            out.push_str(&chunk);
            true
        })
        .unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with(&format!("{bar}+3 ")));
        assert!(lines[1].starts_with(&format!("{FOO}+3 ")));
        let mut only = String::new();
        v.index("acbd", |chunk| {
            only.push_str(&chunk);
            true
        })
        .unwrap();
        assert!(only.starts_with(FOO) && only.lines().count() == 1);

        let now = SystemTime::now();
        assert_eq!(
            v.trash(
                FOO,
                3600,
                Some(now - std::time::Duration::from_secs(60)),
                None
            )
            .unwrap(),
            Removal::Protected
        );
        assert_eq!(
            v.trash(FOO, 3600, None, Some(1)).unwrap(),
            Removal::MtimeMismatch
        );
        assert_eq!(v.trash(FOO, 3600, None, None).unwrap(), Removal::Removed);
        assert!(v.stat(FOO).unwrap().is_none());
        assert_eq!(v.empty_trash(now).unwrap(), 0);
        assert!(v.untrash(FOO).unwrap());
        assert!(v.stat(FOO).unwrap().is_some());
        assert!(!v.untrash(FOO).unwrap());
        assert_eq!(v.trash(FOO, 1, None, None).unwrap(), Removal::Removed);
        assert_eq!(
            v.empty_trash(now + std::time::Duration::from_secs(10))
                .unwrap(),
            1
        );
        assert_eq!(v.trash(bar, 0, None, None).unwrap(), Removal::Removed);
        assert_eq!(v.trash(bar, 0, None, None).unwrap(), Removal::NotFound);
    }
}
