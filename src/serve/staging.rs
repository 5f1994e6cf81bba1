//! Staging builds (`/download`, `/stage`, `/is_staged`): fetching a build's artifacts from an
//! `http(s)://`, `file://` or `gs://` (through `gsutil`) archive URL into
//! `static/TARGET/BUILD`. The payload `update.gz` is required; `stateful.tgz`, the autotest
//! and test-suite archives are fetched when present, and the archives are unpacked into the
//! build directory (so `/controlfiles` finds `autotest/`). A build is staged in a hidden
//! temporary directory renamed into place only when complete, so a failure leaves nothing
//! half-staged; concurrent requests for one build share a single download.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::paths::is_plain_name;
use crate::progress::{Progress, Sink};

/// Artifacts fetched when present (besides the required payload).
const OPTIONAL: &[&str] = &[
    "stateful.tgz",
    "autotest.tar",
    "autotest.tar.bz2",
    "autotest.tar.gz",
    "test_suites.tar.bz2",
];
/// The required artifact.
const PAYLOAD: &str = "update.gz";

/// Why staging fails.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StageError {
    /// The URL is not usable (HTTP 400).
    #[error("{0}")]
    BadUrl(String),
    /// Fetching failed (HTTP 502).
    #[error("{0}")]
    Fetch(String),
    /// Writing locally failed (HTTP 500).
    #[error("{0}")]
    Local(String),
}

/// Where a build comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `http://` or `https://`.
    Http,
    /// `file://`.
    File,
    /// `gs://` (through gsutil).
    Gs,
}

/// A parsed archive URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveUrl {
    /// Scheme.
    pub scheme: Scheme,
    /// The URL without trailing slash.
    pub base: String,
    /// The build's target (next-to-last path component), e.g. `x86-generic-release`.
    pub target: String,
    /// The build (last path component), e.g. `R17-1208.0.0-a1-b338`.
    pub build: String,
}

impl ArchiveUrl {
    /// Parses and checks an archive URL.
    pub fn parse(url: &str) -> Result<Self, StageError> {
        let url = url.trim().trim_end_matches('/');
        let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Http, r)
        } else if let Some(r) = url.strip_prefix("file://") {
            (Scheme::File, r)
        } else if let Some(r) = url.strip_prefix("gs://") {
            (Scheme::Gs, r)
        } else {
            return Err(StageError::BadUrl(format!(
                "archive_url {url:?}: expected http://, https://, file:// or gs://"
            )));
        };
        if url.contains(['?', '#', '\0']) {
            return Err(StageError::BadUrl(format!(
                "archive_url {url:?}: no query or fragment allowed"
            )));
        }
        let parts: Vec<&str> = rest.split('/').collect();
        // host (or empty for file:///) + at least target and build.
        if parts.len() < 3 {
            return Err(StageError::BadUrl(format!(
                "archive_url {url:?} must end in .../TARGET/BUILD"
            )));
        }
        let build = parts[parts.len() - 1];
        let target = parts[parts.len() - 2];
        if parts[1..].contains(&"..")
            || !is_plain_name(target)
            || !is_plain_name(build)
            || target.starts_with('.')
            || build.starts_with('.')
        {
            return Err(StageError::BadUrl(format!(
                "archive_url {url:?} must end in .../TARGET/BUILD (plain names)"
            )));
        }
        Ok(ArchiveUrl {
            scheme,
            base: url.to_string(),
            target: target.to_string(),
            build: build.to_string(),
        })
    }

    /// `TARGET/BUILD`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.target, self.build)
    }
}

type Pending = Shared<BoxFuture<'static, Result<(), StageError>>>;

/// Stages builds under a static root.
pub struct Stager {
    static_root: PathBuf,
    pending: Mutex<HashMap<String, Pending>>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Stager {
    /// A stager writing under `static_root`.
    pub fn new(static_root: PathBuf) -> Self {
        Stager {
            static_root,
            pending: Mutex::default(),
            fetches: Default::default(),
        }
    }

    /// Builds staged by this server so far.
    pub fn staged_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The directory a build is staged into.
    pub fn build_dir(&self, url: &ArchiveUrl) -> PathBuf {
        self.static_root.join(&url.target).join(&url.build)
    }

    /// Whether the build is staged.
    pub fn is_staged(&self, url: &ArchiveUrl) -> bool {
        self.build_dir(url).join(PAYLOAD).is_file()
    }

    /// Stages a build (nothing to do when it already is); concurrent calls for one build
    /// share the same download and its result.
    pub async fn stage(self: &Arc<Self>, url: ArchiveUrl) -> Result<(), StageError> {
        if self.is_staged(&url) {
            return Ok(());
        }
        let key = url.key();
        let pending = {
            let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = map.get(&key) {
                p.clone()
            } else {
                let me = Arc::clone(self);
                let key2 = key.clone();
                let fut = async move {
                    let me2 = Arc::clone(&me);
                    let result = tokio::task::spawn_blocking(move || me2.stage_blocking(&url))
                        .await
                        .unwrap_or_else(|e| Err(StageError::Local(format!("staging task: {e}"))));
                    me.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key2);
                    result
                }
                .boxed()
                .shared();
                map.insert(key, fut.clone());
                fut
            }
        };
        pending.await
    }

    fn stage_blocking(&self, url: &ArchiveUrl) -> Result<(), StageError> {
        let final_dir = self.build_dir(url);
        if final_dir.join(PAYLOAD).is_file() {
            return Ok(());
        }
        let target_dir = self.static_root.join(&url.target);
        let local =
            |e: std::io::Error, p: &Path| StageError::Local(format!("{}: {e}", p.display()));
        std::fs::create_dir_all(&target_dir).map_err(|e| local(e, &target_dir))?;
        let tmp = target_dir.join(format!(
            ".{}.staging-{}",
            url.build,
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&tmp).map_err(|e| local(e, &tmp))?;
        let guard = RemoveOnDrop(Some(tmp.clone()));
        let fetcher = Fetcher::new(url)?;
        if !fetcher.fetch(PAYLOAD, &tmp.join(PAYLOAD))? {
            return Err(StageError::Fetch(format!(
                "{}/{PAYLOAD}: not found",
                url.base
            )));
        }
        for name in OPTIONAL {
            if fetcher.fetch(name, &tmp.join(name))? && name.contains(".tar") {
                unpack(&tmp.join(name), &tmp)?;
            }
        }
        if final_dir.exists() {
            // A directory without payload (made by hand, or an older layout): replace it.
            std::fs::remove_dir_all(&final_dir).map_err(|e| local(e, &final_dir))?;
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| local(e, &final_dir))?;
        drop(guard.disarm());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

struct RemoveOnDrop(Option<PathBuf>);

impl RemoveOnDrop {
    fn disarm(mut self) -> Self {
        self.0 = None;
        self
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

struct Fetcher<'a> {
    url: &'a ArchiveUrl,
    agent: Option<ureq::Agent>,
}

impl<'a> Fetcher<'a> {
    fn new(url: &'a ArchiveUrl) -> Result<Self, StageError> {
        let agent = match url.scheme {
            Scheme::Http => Some(
                ureq::AgentBuilder::new()
                    .timeout_connect(Duration::from_secs(15))
                    .timeout_read(Duration::from_secs(120))
                    .build(),
            ),
            Scheme::Gs => {
                if which::which("gsutil").is_err() {
                    return Err(StageError::Fetch(
                        "gs:// URLs need gsutil, which is not on PATH".into(),
                    ));
                }
                None
            }
            Scheme::File => None,
        };
        Ok(Fetcher { url, agent })
    }

    /// Fetches one artifact into `dest`: `Ok(false)` when the archive has none.
    fn fetch(&self, name: &str, dest: &Path) -> Result<bool, StageError> {
        let src = format!("{}/{name}", self.url.base);
        let fetch_err = |e: String| StageError::Fetch(format!("{src}: {e}"));
        let local = |e: std::io::Error| StageError::Local(format!("{}: {e}", dest.display()));
        match self.url.scheme {
            Scheme::Http => {
                let agent = self.agent.as_ref().expect("http agent");
                let response = match agent.get(&src).call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(404, _)) => return Ok(false),
                    Err(ureq::Error::Status(code, _)) => {
                        return Err(fetch_err(format!("HTTP status {code}")))
                    }
                    Err(e) => return Err(fetch_err(e.to_string())),
                };
                let expected: Option<u64> = response
                    .header("Content-Length")
                    .and_then(|v| v.parse().ok());
                let mut file = std::fs::File::create(dest).map_err(local)?;
                let progress = Progress::new(format!("downloading {src}"), expected, Sink::Log);
                let mut reader = progress.reader(response.into_reader());
                let n = std::io::copy(&mut reader, &mut file)
                    .map_err(|e| fetch_err(format!("download interrupted: {e}")))?;
                if expected.is_some_and(|len| len != n) {
                    return Err(fetch_err(format!(
                        "download truncated ({n} of {} bytes)",
                        expected.unwrap_or(0)
                    )));
                }
                file.flush().map_err(local)?;
                file.sync_all().map_err(local)?;
                Ok(true)
            }
            Scheme::File => {
                let path = PathBuf::from(src.strip_prefix("file://").unwrap_or(&src));
                if !path.is_file() {
                    return Ok(false);
                }
                std::fs::copy(&path, dest).map_err(|e| fetch_err(e.to_string()))?;
                Ok(true)
            }
            Scheme::Gs => {
                let exists = Command::new("gsutil")
                    .args(["-q", "stat", &src])
                    .status()
                    .map_err(|e| fetch_err(format!("cannot run gsutil: {e}")))?;
                if !exists.success() {
                    return Ok(false);
                }
                let out = Command::new("gsutil")
                    .args(["-q", "cp", &src])
                    .arg(dest)
                    .output()
                    .map_err(|e| fetch_err(format!("cannot run gsutil: {e}")))?;
                if !out.status.success() {
                    return Err(fetch_err(format!(
                        "gsutil cp failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )));
                }
                Ok(true)
            }
        }
    }
}

/// Unpacks a tar archive (plain with the tar crate, compressed with the system `tar`).
fn unpack(archive: &Path, into: &Path) -> Result<(), StageError> {
    let err = |e: String| StageError::Local(format!("unpacking {}: {e}", archive.display()));
    let name = archive.to_string_lossy();
    if name.ends_with(".tar") {
        let file = std::fs::File::open(archive).map_err(|e| err(e.to_string()))?;
        let mut tar = tar::Archive::new(file);
        tar.set_overwrite(true);
        return tar.unpack(into).map_err(|e| err(e.to_string()));
    }
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(into)
        .arg("--no-same-owner")
        .output()
        .map_err(|e| err(format!("cannot run tar: {e}")))?;
    if !out.status.success() {
        return Err(err(String::from_utf8_lossy(&out.stderr).trim().to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_archive_urls() {
        let u = ArchiveUrl::parse("gs://chromeos-image-archive/x86-generic/R17-1208.0.0-a1-b338/")
            .unwrap();
        assert_eq!(u.scheme, Scheme::Gs);
        assert_eq!(u.key(), "x86-generic/R17-1208.0.0-a1-b338");
        let u = ArchiveUrl::parse("file:///srv/a/t/b").unwrap();
        assert_eq!((u.target.as_str(), u.build.as_str()), ("t", "b"));
        assert!(ArchiveUrl::parse("ftp://x/t/b").is_err());
        assert!(ArchiveUrl::parse("http://host/..").is_err());
        assert!(ArchiveUrl::parse("http://host/t/..").is_err());
        assert!(ArchiveUrl::parse("http://host/b").is_err());
    }
}
