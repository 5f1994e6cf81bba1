//! Staging builds (`/download`, `/stage`, `/is_staged`, `/list_image_dir`): fetching a build's artifacts from an
//! `http(s)://`, `file://` or `gs://` (through `gsutil`) archive URL into
//! `static/TARGET/BUILD`. The payload `update.gz` is required; `stateful.tgz`, the autotest
//! and test-suite archives are fetched when present, and the archives are unpacked into the
//! build directory (so `/controlfiles` finds `autotest/`). A build is staged in a hidden
//! temporary directory renamed into place only when complete, so a failure leaves nothing
//! half-staged; concurrent requests for one archive URL share a single download (keyed by
//! the whole URL: another URL with the same `TARGET/BUILD` tail never waits on it).
//!
//! Hostile input: the build directory must resolve inside the static root (no symbolic link
//! out, at any level); archives are unpacked with the `tar` crate, refusing any entry, hard
//! link or symbolic link target that leaves the build directory and any entry written through
//! a symbolic link, and any symbolic link that, followed with the links already there (a
//! chain), resolves outside the build directory; every download is bounded in time and size
//! ([`StageLimits`]).
//!
//! Shutdown: a staging in progress gets the server's shutdown grace like any request; when
//! the runtime ends after it, every child (`gsutil`) is killed with its process group and
//! downloads stop, so the process exits within a bounded time instead of waiting on a child.

use std::collections::HashMap;
use std::io::{Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::paths::{is_plain_name, join_within, PathError};
use cibox_runtime::progress::{Progress, Sink};

/// Default [`StageLimits::download_timeout`]: 30 minutes per artifact.
pub const DEFAULT_DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Default [`StageLimits::max_bytes`]: 16 GiB per artifact.
pub const DEFAULT_MAX_DOWNLOAD_BYTES: u64 = 16 << 30;

/// How often a running `gsutil` is checked against its deadline and size bound.
const CHILD_POLL: Duration = Duration::from_millis(50);

/// Set once the server stops: running children are killed, no new one starts, downloads end.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// The process groups of the children running now.
static CHILD_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Most symbolic links followed while resolving one link of a staged build (as Linux).
const MAX_LINK_HOPS: u32 = 40;

/// Stops staging for good: kills the process group of every running child.
fn stop_children() {
    STOPPING.store(true, Ordering::SeqCst);
    let groups = CHILD_GROUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for group in groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Kills the children when dropped: the watcher task holds one, and the end of the runtime
/// drops its tasks before it waits for blocking work.
struct StopOnDrop;

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        stop_children();
    }
}

/// Starts, once per process and inside the runtime, the task that stops staging when the
/// runtime ends: after SIGINT or SIGTERM the server gives requests in progress (a staging
/// among them) the shutdown grace, then returns and the runtime ends; without this, the
/// runtime would wait for the blocking staging, and so for its child, as long as it runs.
fn watch_shutdown() {
    static WATCHING: OnceLock<()> = OnceLock::new();
    WATCHING.get_or_init(|| {
        tokio::spawn(async {
            let _stop = StopOnDrop;
            std::future::pending::<()>().await;
        });
    });
}

/// The error of work cut short by the server stopping.
const SHUTTING_DOWN: &str = "the server is shutting down";

/// Bounds on the work one staging does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageLimits {
    /// Time one artifact may take to download (HTTP, or `gsutil stat` + `cp`), default 30 min.
    pub download_timeout: Duration,
    /// Size of one artifact, downloaded or unpacked (all entries of an archive together),
    /// default 16 GiB.
    pub max_bytes: u64,
}

impl Default for StageLimits {
    fn default() -> Self {
        StageLimits {
            download_timeout: DEFAULT_DOWNLOAD_TIMEOUT,
            max_bytes: DEFAULT_MAX_DOWNLOAD_BYTES,
        }
    }
}

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
    /// An archive of the build is broken or hostile (HTTP 502).
    #[error("{0}")]
    BadArchive(String),
    /// The build directory would lie outside the static root (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
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

    /// What concurrent stagings share: the whole URL.
    fn pending_key(&self) -> &str {
        &self.base
    }
}

type Pending = Shared<BoxFuture<'static, Result<(), StageError>>>;

/// Stages builds under a static root.
pub struct Stager {
    static_root: PathBuf,
    limits: StageLimits,
    pending: Mutex<HashMap<String, Pending>>,
    /// Held while a finished staging is moved into place.
    finishing: Mutex<()>,
    fetches: std::sync::atomic::AtomicU64,
}

impl Stager {
    /// A stager writing under `static_root` (canonical) within `limits`.
    pub fn new(static_root: PathBuf, limits: StageLimits) -> Self {
        Stager {
            static_root,
            limits,
            pending: Mutex::default(),
            finishing: Mutex::default(),
            fetches: Default::default(),
        }
    }

    /// Builds staged by this server so far.
    pub fn staged_count(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The directory a build is staged into: `TARGET/BUILD` under the static root, refused
    /// when an existing part of it is a symbolic link leading out of the root.
    pub fn build_dir(&self, url: &ArchiveUrl) -> Result<PathBuf, StageError> {
        join_within(&self.static_root, &url.key()).map_err(|e| match e {
            PathError::Escapes => {
                StageError::Forbidden(format!("{} leads out of the static directory", url.key()))
            }
            other => StageError::BadUrl(format!("{}: {other}", url.key())),
        })
    }

    /// Whether the build is staged (never for a build directory outside the static root).
    pub fn is_staged(&self, url: &ArchiveUrl) -> bool {
        self.build_dir(url)
            .is_ok_and(|dir| dir.join(PAYLOAD).is_file())
    }

    /// The entries staged for a build, one level deep and sorted by name (`None`: nothing
    /// staged). Symbolic links are listed as themselves, never followed.
    pub fn list_build_dir(&self, url: &ArchiveUrl) -> Result<Option<Vec<Listed>>, StageError> {
        let dir = self.build_dir(url)?;
        let Ok(read) = std::fs::read_dir(&dir) else {
            return Ok(None);
        };
        let time = |t: std::io::Result<std::time::SystemTime>| {
            t.map(|t| {
                chrono::DateTime::<chrono::Local>::from(t)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string()
            })
            .unwrap_or_else(|_| "-".to_string())
        };
        let mut entries: Vec<Listed> = read
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.path().symlink_metadata().ok()?;
                Some(Listed {
                    name: e.file_name().to_string_lossy().into_owned(),
                    accessed: time(meta.accessed()),
                    modified: time(meta.modified()),
                    size: meta.len(),
                })
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(entries))
    }

    /// Stages a build (nothing to do when it already is); concurrent calls for one archive
    /// URL share the same download and its result. When two URLs with the same
    /// `TARGET/BUILD` tail finish, the first one staged stays.
    pub async fn stage(self: &Arc<Self>, url: ArchiveUrl) -> Result<(), StageError> {
        if self.is_staged(&url) {
            return Ok(());
        }
        watch_shutdown();
        // Refuse a build directory out of the root before anything waits or downloads.
        self.build_dir(&url)?;
        let key = url.pending_key().to_string();
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
        let final_dir = self.build_dir(url)?;
        if final_dir.join(PAYLOAD).is_file() {
            return Ok(());
        }
        let target_dir = final_dir
            .parent()
            .unwrap_or(&self.static_root)
            .to_path_buf();
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
        let fetcher = Fetcher::new(url, &self.limits)?;
        if !fetcher.fetch(PAYLOAD, &tmp.join(PAYLOAD))? {
            return Err(StageError::Fetch(format!(
                "{}/{PAYLOAD}: not found",
                url.base
            )));
        }
        for name in OPTIONAL {
            if fetcher.fetch(name, &tmp.join(name))? && name.contains(".tar") {
                unpack(&tmp.join(name), &tmp, self.limits.max_bytes)?;
            }
        }
        let _finishing = self.finishing.lock().unwrap_or_else(|e| e.into_inner());
        // Checked again: a link may have been planted while downloading.
        let final_dir = self.build_dir(url)?;
        if final_dir.join(PAYLOAD).is_file() {
            // Staged meanwhile (from another URL with the same tail): keep that one.
            return Ok(());
        }
        match std::fs::symlink_metadata(&final_dir) {
            // A directory without payload (made by hand, or an older layout): replace it.
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::remove_file(&final_dir).map_err(|e| local(e, &final_dir))?
            }
            Ok(_) => std::fs::remove_dir_all(&final_dir).map_err(|e| local(e, &final_dir))?,
            Err(_) => {}
        }
        std::fs::rename(&tmp, &final_dir).map_err(|e| local(e, &final_dir))?;
        drop(guard.disarm());
        self.fetches
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// One entry of a staged build directory (`/list_image_dir`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// File name.
    pub name: String,
    /// Last access, local time.
    pub accessed: String,
    /// Last modification, local time.
    pub modified: String,
    /// Size in bytes.
    pub size: u64,
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
    limits: &'a StageLimits,
    agent: Option<ureq::Agent>,
}

impl<'a> Fetcher<'a> {
    fn new(url: &'a ArchiveUrl, limits: &'a StageLimits) -> Result<Self, StageError> {
        let agent = match url.scheme {
            Scheme::Http => Some(
                ureq::AgentBuilder::new()
                    .timeout_connect(Duration::from_secs(15).min(limits.download_timeout))
                    .timeout_read(Duration::from_secs(120).min(limits.download_timeout))
                    .timeout(limits.download_timeout)
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
        Ok(Fetcher { url, limits, agent })
    }

    /// Fetches one artifact into `dest`: `Ok(false)` when the archive has none.
    fn fetch(&self, name: &str, dest: &Path) -> Result<bool, StageError> {
        let src = format!("{}/{name}", self.url.base);
        let fetch_err = |e: String| StageError::Fetch(format!("{src}: {e}"));
        let local = |e: std::io::Error| StageError::Local(format!("{}: {e}", dest.display()));
        let max = self.limits.max_bytes;
        let too_large = || fetch_err(format!("larger than the limit of {max} bytes"));
        let deadline = Instant::now() + self.limits.download_timeout;
        match self.url.scheme {
            Scheme::Http => {
                let agent = self.agent.as_ref().expect("http agent");
                let response = match agent.get(&src).call() {
                    Ok(r) => r,
                    Err(ureq::Error::Status(404, _)) => return Ok(false),
                    Err(ureq::Error::Status(code, _)) => {
                        return Err(fetch_err(format!("HTTP status {code}")))
                    }
                    Err(e) => return Err(fetch_err(timeout_or(&e.to_string(), deadline))),
                };
                let expected: Option<u64> = response
                    .header("Content-Length")
                    .and_then(|v| v.parse().ok());
                if expected.is_some_and(|len| len > max) {
                    return Err(too_large());
                }
                let mut file = std::fs::File::create(dest).map_err(local)?;
                let progress = Progress::new(format!("downloading {src}"), expected, Sink::Log);
                let mut reader =
                    progress.reader(StopReader(response.into_reader()).take(max.saturating_add(1)));
                let n = std::io::copy(&mut reader, &mut file).map_err(|e| {
                    let what = format!("download interrupted: {e}");
                    fetch_err(timeout_or(&what, deadline))
                })?;
                if n > max {
                    return Err(too_large());
                }
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
                let Ok(meta) = std::fs::metadata(&path) else {
                    return Ok(false);
                };
                if !meta.is_file() {
                    return Ok(false);
                }
                if meta.len() > max {
                    return Err(too_large());
                }
                std::fs::copy(&path, dest).map_err(|e| fetch_err(e.to_string()))?;
                Ok(true)
            }
            Scheme::Gs => {
                let mut stat = Command::new("gsutil");
                stat.args(["-q", "stat", &src]);
                let (exists, _) = run_bounded(&mut stat, deadline, None).map_err(fetch_err)?;
                if !exists.success() {
                    return Ok(false);
                }
                let mut cp = Command::new("gsutil");
                cp.args(["-q", "cp", &src]).arg(dest);
                let (status, stderr) =
                    run_bounded(&mut cp, deadline, Some((dest, max))).map_err(fetch_err)?;
                if !status.success() {
                    return Err(fetch_err(format!("gsutil cp failed: {}", stderr.trim())));
                }
                Ok(true)
            }
        }
    }
}

/// A reader that fails once the server stops.
struct StopReader<R>(R);

impl<R: Read> Read for StopReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if STOPPING.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(SHUTTING_DOWN));
        }
        self.0.read(buf)
    }
}

/// Says "timed out" for an error past the deadline (ureq's own words vary).
fn timeout_or(what: &str, deadline: Instant) -> String {
    if Instant::now() >= deadline {
        format!("timed out ({what})")
    } else {
        what.to_string()
    }
}

/// Runs `cmd` in a process group of its own until it exits, killing the whole group when
/// `deadline` passes or when the file of `watch` grows past its bound. Returns the exit
/// status and what it wrote on stderr (at most 64 KiB).
fn run_bounded(
    cmd: &mut Command,
    deadline: Instant,
    watch: Option<(&Path, u64)>,
) -> Result<(ExitStatus, String), String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    if STOPPING.load(Ordering::SeqCst) {
        return Err(SHUTTING_DOWN.to_string());
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.take(64 << 10).read_to_string(&mut text);
            let _ = tx.send(text);
        });
    }
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let groups = || CHILD_GROUPS.lock().unwrap_or_else(|e| e.into_inner());
    groups().push(group.as_raw());
    // Registered before this check, so a stop either finds the group or is seen here.
    let _unregister = Unregister(group.as_raw());
    let kill_group = |child: &mut std::process::Child| {
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = child.wait();
    };
    loop {
        if STOPPING.load(Ordering::SeqCst) {
            kill_group(&mut child);
            return Err(format!("{SHUTTING_DOWN}: {program} stopped"));
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                let stderr = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
                return Ok((status, stderr));
            }
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("cannot wait for {program}: {e}"));
            }
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            return Err(format!("timed out: {program} was still running"));
        }
        if let Some((file, max)) = watch {
            if std::fs::metadata(file).is_ok_and(|m| m.len() > max) {
                kill_group(&mut child);
                return Err(format!("larger than the limit of {max} bytes"));
            }
        }
        std::thread::sleep(CHILD_POLL);
    }
}

/// Takes a child's process group off the list of running ones when dropped.
struct Unregister(i32);

impl Drop for Unregister {
    fn drop(&mut self) {
        CHILD_GROUPS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|g| *g != self.0);
    }
}

/// Unpacks a tar archive (plain, gzip or bzip2 by its name) into `into` with the tar crate.
/// Refused, with nothing written for that entry: an entry path that is absolute or climbs
/// with `..`, an entry under an existing symbolic link, a hard link naming such a path, a
/// symbolic link whose target leaves `into`, device and FIFO entries, and archives whose
/// entries add up to more than `max_bytes`.
fn unpack(archive: &Path, into: &Path, max_bytes: u64) -> Result<(), StageError> {
    let label = archive.file_name().map_or_else(
        || archive.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let bad = |e: String| StageError::BadArchive(format!("{label}: {e}"));
    let file = std::fs::File::open(archive)
        .map_err(|e| StageError::Local(format!("{}: {e}", archive.display())))?;
    let reader: Box<dyn Read> = if label.ends_with(".tar.gz") || label.ends_with(".tgz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if label.ends_with(".tar.bz2") {
        Box::new(bzip2::read::MultiBzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut tar = tar::Archive::new(reader);
    tar.set_overwrite(true);
    tar.set_preserve_permissions(false);
    tar.set_unpack_xattrs(false);
    let mut total: u64 = 0;
    for entry in tar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(format!("not a valid archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("bad entry name: {e}")))?
            .into_owned();
        let shown = path.display().to_string();
        let leaves = || bad(format!("entry {shown} leaves the build directory"));
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let depth = inside_depth(&path).ok_or_else(leaves)?;
        if depth == 0 {
            continue;
        }
        if let Some(link) = through_symlink(into, &path) {
            return Err(bad(format!(
                "entry {shown} goes through the symbolic link {}",
                link.display()
            )));
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(|e| bad(format!("entry {shown}: bad link target: {e}")))?
                .ok_or_else(|| bad(format!("entry {shown}: link without a target")))?;
            if !link_stays_inside(depth - 1, &target) {
                return Err(leaves());
            }
        } else if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(|e| bad(format!("entry {shown}: bad link target: {e}")))?
                .ok_or_else(|| bad(format!("entry {shown}: link without a target")))?;
            if inside_depth(&target).is_none_or(|d| d == 0)
                || through_symlink(into, &target).is_some()
            {
                return Err(leaves());
            }
        } else if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            return Err(bad(format!("entry {shown} is a device or a FIFO")));
        }
        total = total.saturating_add(entry.header().size().unwrap_or(0));
        if total > max_bytes {
            return Err(bad(format!("unpacks to more than {max_bytes} bytes")));
        }
        match entry.unpack_in(into) {
            Ok(true) => {}
            Ok(false) => return Err(leaves()),
            Err(e) => return Err(bad(format!("entry {shown}: {e}"))),
        }
    }
    // Each link was judged alone, by its text; a later link can change where an earlier
    // one leads (`x -> a/b/../..` then `a -> .`). Every link of the build directory is
    // followed as the kernel will, chains included.
    if let Some(link) = link_leading_out(into) {
        return Err(bad(format!(
            "symbolic link {} resolves outside the build directory",
            link.strip_prefix(into).unwrap_or(&link).display()
        )));
    }
    Ok(())
}

/// The first symbolic link under `root` (not followed into) that, resolved with every link
/// on its way, leads outside `root`, or past [`MAX_LINK_HOPS`] links, or to an absolute
/// path.
fn link_leading_out(root: &Path) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(read) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in read.filter_map(Result::ok) {
            let path = entry.path();
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let mut hops = 0;
                let inside = std::fs::read_link(&path).ok().and_then(|target| {
                    follow(dir.clone(), &target, &mut hops).filter(|p| p.starts_with(&root))
                });
                if inside.is_none() {
                    return Some(path);
                }
            } else if meta.is_dir() {
                dirs.push(path);
            }
        }
    }
    None
}

/// Where `relative`, read from the directory `from` (canonical), leads: every existing
/// symbolic link on the way followed, names that do not exist taken as they are. `None` for
/// an absolute target or past [`MAX_LINK_HOPS`] links.
fn follow(mut from: PathBuf, relative: &Path, hops: &mut u32) -> Option<PathBuf> {
    for part in relative.components() {
        match part {
            Component::Normal(name) => {
                let next = from.join(name);
                match next.symlink_metadata() {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        *hops += 1;
                        if *hops > MAX_LINK_HOPS {
                            return None;
                        }
                        let target = std::fs::read_link(&next).ok()?;
                        from = follow(from, &target, hops)?;
                    }
                    _ => from = next,
                }
            }
            Component::CurDir => {}
            Component::ParentDir => {
                from.pop();
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(from)
}

/// How many plain components `path` has when it stays inside (`None`: absolute or `..`).
fn inside_depth(path: &Path) -> Option<usize> {
    let mut depth = 0;
    for part in path.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(depth)
}

/// Whether a symbolic link `depth` directories below the build directory, pointing at
/// `target`, resolves inside it (lexically: links inside are checked when they are made).
fn link_stays_inside(depth: usize, target: &Path) -> bool {
    let mut depth = depth as isize;
    for part in target.components() {
        match part {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// The first existing directory on the way to `relative` under `into` that is a symbolic
/// link, if any.
fn through_symlink(into: &Path, relative: &Path) -> Option<PathBuf> {
    let mut path = into.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        path.push(part);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Some(path),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
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

    #[test]
    fn link_chains_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("build");
        std::fs::create_dir_all(root.join("d")).unwrap();
        let link = |name: &str, target: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link("d/ok", "../d");
        assert_eq!(link_leading_out(&root), None);
        link("x", "a/b/../..");
        link("a", ".");
        assert_eq!(link_leading_out(&root), Some(root.join("x")));
        std::fs::remove_file(root.join("x")).unwrap();
        link("loop1", "loop2");
        link("loop2", "loop1");
        assert!(link_leading_out(&root).is_some());
    }

    #[test]
    fn link_targets_are_judged_from_where_the_link_lives() {
        assert!(link_stays_inside(1, Path::new("../x")));
        assert!(link_stays_inside(0, Path::new("a/./b")));
        assert!(!link_stays_inside(0, Path::new("../x")));
        assert!(link_stays_inside(2, Path::new("a/../../../x")));
        assert!(!link_stays_inside(2, Path::new("a/../../../../x")));
        assert!(!link_stays_inside(3, Path::new("/etc")));
        assert_eq!(inside_depth(Path::new("./a/b")), Some(2));
        assert_eq!(inside_depth(Path::new("a/../b")), None);
        assert_eq!(inside_depth(Path::new("/a")), None);
    }
}
