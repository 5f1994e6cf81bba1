//! The keepstore HTTP server (tokio + axum): every route of the Keep protocol.
//!
//! Block bodies are streamed: a PUT's bytes go through a bounded channel to a blocking thread
//! that feeds MD5 and the temporary file in one pass; a GET reads the block in 1 MiB chunks on a
//! blocking thread, hashing as it goes, and holds back the last chunk until the hash checks
//! out, so a client never receives all the bytes of a corrupt block. At most `max_buffers`
//! block transfers run at once; further ones wait. PUTs may hold at most three quarters of
//! them, so GETs are answered however many PUTs wait for their bodies, and a PUT body must
//! average `put_min_rate` bytes per second after `put_rate_grace` (a slower one is answered
//! 408 and gives its buffer back), so trickling PUTs cannot hold buffers for long.
//!
//! Routing is by hand, not with axum's router, so that anything unknown (including a known
//! path with another method) is answered 400 as keepstore does.
//!
//! Connections go through the shared front end ([`cibox_runtime::httpd`]): a request head must arrive
//! within the header timeout, each piece of a body within the body timeout (a stalled PUT is
//! answered 408 and gives its buffer back), a connection that moves no byte for the idle
//! timeout (a kept-alive one, or a client that stops reading a GET) is closed, which releases
//! the buffer of a GET nobody reads, and connections past the cap are refused.
//!
//! A volume that is out of space or on a read-only file system makes a PUT try the next one;
//! when none can take it the answer is 507 naming why.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digest::{md5_hex, BlockHasher};
use anyhow::Context;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cibox_runtime::response::{text, HttpError, HttpResult};
use futures_util::StreamExt;
use tokio::sync::{mpsc, Semaphore};

use super::locator::{is_hash, Locator, EMPTY_BLOCK_HASH};
use super::signature;
use super::volume::{Removal, Stored, Volume, VolumeError, BLOCK_MAX};

/// Blocks up to this size are read whole and checked before the response starts (so a
/// corrupt one is answered 500); bigger ones are streamed.
const SMALL_BLOCK: u64 = 1 << 20;
/// Read size for streamed GETs.
const CHUNK: usize = 1 << 20;
/// How much a PUT writes before it asks the kernel to start writing it back.
const WRITEBACK_STEP: u64 = 8 << 20;
/// How long in-flight requests may take to finish after SIGTERM/SIGINT.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Largest trash or pull list body.
const LIST_BODY_MAX: usize = 16 << 20;

/// One `-volume` and the modifiers in force for it.
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// The directory.
    pub path: PathBuf,
    /// `-readonly`: no writes, deletes or touches.
    pub readonly: bool,
    /// `-serialize`: one request at a time on this volume.
    pub serialize: bool,
}

/// Everything the server needs, from keepstore's flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// The volumes, in order (PUT uses the first writable one with room).
    pub volumes: Vec<VolumeConfig>,
    /// `[HOST]:PORT` to listen on; an empty host means every interface.
    pub listen: String,
    /// Pid file, locked while running.
    pub pid_file: Option<PathBuf>,
    /// Permission signing key (trimmed file contents).
    pub signing_key: Option<Vec<u8>>,
    /// Refuse GETs without a valid signature.
    pub enforce_permissions: bool,
    /// Signature lifetime in seconds.
    pub ttl: u64,
    /// Token that may index, delete, trash and untrash.
    pub data_manager_token: Option<String>,
    /// Token for `/_health/ping` (open when unset).
    pub management_token: Option<String>,
    /// Refuse DELETE and ignore trash lists.
    pub never_delete: bool,
    /// Concurrent block transfers.
    pub max_buffers: usize,
    /// Bytes per second a PUT body must average once its grace is over.
    pub put_min_rate: u64,
    /// How long a PUT body may take before the minimum rate applies.
    pub put_rate_grace: Duration,
    /// Seconds a deleted block stays in trash (0: deleted at once).
    pub trash_lifetime: u64,
    /// Seconds between trash emptying runs.
    pub trash_check_interval: u64,
    /// Free space below which a volume counts as full.
    pub min_free: u64,
    /// Header, body and idle timeouts and the connection cap (the shutdown grace is
    /// [`SHUTDOWN_GRACE`] unless set otherwise).
    pub http: cibox_runtime::httpd::Limits,
}

struct Keep {
    volumes: Vec<Volume>,
    config: Config,
    buffers: Arc<Semaphore>,
    /// PUTs take one of these before a buffer: a quarter of the buffers stay for GETs.
    put_slots: Arc<Semaphore>,
}

/// How many of `max_buffers` PUTs may hold at once: all but a quarter (at least one left
/// for GETs when there are two or more).
fn put_slots(max_buffers: usize) -> usize {
    let max = max_buffers.max(1);
    (max - max / 4).min(max.saturating_sub(1)).max(1)
}

/// A plain-text error with status `code` (500 for a code that is not one).
fn status(code: u16, body: &str) -> HttpError {
    HttpError::new(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        body,
    )
}

/// A 500 saying what failed, logged too.
fn internal(context: &str, err: impl std::fmt::Display) -> HttpError {
    tracing::error!("{context}: {err}");
    HttpError::internal(format!("{context}: {err}"))
}

/// The API token: `Authorization: OAuth2 <tok>` or `Bearer <tok>`, else `?api_token=`.
pub(crate) fn request_token(headers: &HeaderMap, query: Option<&str>) -> Option<String> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some((scheme, token)) = value.trim().split_once(' ') {
            let token = token.trim();
            if (scheme.eq_ignore_ascii_case("OAuth2") || scheme.eq_ignore_ascii_case("Bearer"))
                && !token.is_empty()
            {
                return Some(token.to_string());
            }
        }
    }
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("api_token="))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

fn blocking_err(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("worker failed: {e}"))
}

impl Keep {
    /// Whether the request carries the data manager token; else the refusal: 401 (no token)
    /// or 403.
    fn require_system_token(&self, req: &Request) -> Result<(), HttpError> {
        let token = request_token(req.headers(), req.uri().query());
        match (token, &self.config.data_manager_token) {
            (None, _) => Err(status(401, "Unauthorized")),
            (Some(t), Some(want)) if t.as_bytes() == want.as_bytes() => Ok(()),
            _ => Err(status(403, "Forbidden")),
        }
    }

    fn all_readonly(&self) -> bool {
        self.volumes.iter().all(Volume::readonly)
    }

    fn protect_after(&self) -> SystemTime {
        SystemTime::now()
            .checked_sub(Duration::from_secs(self.config.ttl))
            .unwrap_or(UNIX_EPOCH)
    }
}

/// The Keep API's routes, as keepstore serves them. Anything else (an unknown path or method)
/// is answered 400, as the original does. A block's locator is the whole path after `/`
/// (`HASH+SIZE+HINTS`), checked by the handler.
fn routes() -> axum::Router<Arc<Keep>> {
    use axum::routing::{get, put};
    axum::Router::new()
        .route("/status.json", get(status_json))
        .route("/index", get(index_all))
        .route("/index/{*prefix}", get(index_prefix))
        .route("/_health/ping", get(ping))
        .route("/trash", put(trash_list))
        .route("/pull", put(pull_list))
        .route("/untrash/{*hash}", put(untrash))
        .route(
            "/{*locator}",
            get(get_block)
                .head(head_block)
                .put(put_block)
                .delete(delete_block),
        )
        .fallback(bad_request)
        .method_not_allowed_fallback(bad_request)
}

/// What an unknown path or method gets.
async fn bad_request() -> HttpError {
    status(400, "Bad Request")
}

async fn put_block(
    State(keep): State<Arc<Keep>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    let locator = match Locator::parse(&path) {
        Ok(l) => l,
        Err(e) => return Err(status(400, &e.to_string())),
    };
    if keep.all_readonly() {
        return Err(status(405, "Method Not Allowed: all volumes are read-only"));
    }
    let length = match req.headers().get(header::CONTENT_LENGTH) {
        None => return Err(status(411, "Length Required")),
        Some(v) => match v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => n,
            None => return Err(status(400, "bad Content-Length")),
        },
    };
    if length > BLOCK_MAX {
        return Err(status(
            413,
            "Request Entity Too Large: blocks are at most 64 MiB",
        ));
    }
    if locator.size.is_some_and(|s| s != length) {
        return Err(status(400, "size hint does not match Content-Length"));
    }
    let token = request_token(req.headers(), req.uri().query());
    let hash = locator.hash.clone();

    let (Ok(_slot), Ok(_permit)) = (
        keep.put_slots.clone().acquire_owned().await,
        keep.buffers.clone().acquire_owned().await,
    ) else {
        return Err(status(503, "shutting down"));
    };
    let (index, mut temp, _io) = open_temp(&keep, &hash).await?;

    // One pass over the body, two consumers: a hasher and a writer, each on its own thread,
    // so hashing (the costliest part) overlaps writing. The writer starts the disk writeback
    // as it goes, so the fsync at commit has only the tail left to flush.
    let (hash_tx, mut hash_rx) = mpsc::channel::<Bytes>(8);
    let (write_tx, mut write_rx) = mpsc::channel::<Bytes>(8);
    let hasher = tokio::task::spawn_blocking(move || {
        let mut md5 = BlockHasher::new();
        while let Some(chunk) = hash_rx.blocking_recv() {
            md5.update(&chunk);
        }
        md5.finish_hex()
    });
    let writer = tokio::task::spawn_blocking(move || {
        let result = (|| -> io::Result<()> {
            let mut written: u64 = 0;
            let mut flushed: u64 = 0;
            // The body arrives in chunks of hundreds of KiB: written as they are, no copy.
            let out = temp.file();
            while let Some(chunk) = write_rx.blocking_recv() {
                out.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    crate::volume::start_writeback(out, flushed, written - flushed);
                    flushed = written;
                }
            }
            Ok(())
        })();
        (result, temp)
    });
    let mut body = req.into_body().into_data_stream();
    let mut received: u64 = 0;
    let mut body_error = None;
    let mut too_slow = false;
    let started = tokio::time::Instant::now();
    let rate = keep.config.put_min_rate.max(1) as f64;
    loop {
        // By now the body must have come at the minimum rate, after the grace.
        let due = started
            + keep.config.put_rate_grace
            + Duration::from_secs_f64((received + 1) as f64 / rate);
        let Ok(next) = tokio::time::timeout_at(due, body.next()).await else {
            too_slow = true;
            break;
        };
        let Some(chunk) = next else {
            break;
        };
        match chunk {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if received > length
                    || hash_tx.send(chunk.clone()).await.is_err()
                    || write_tx.send(chunk).await.is_err()
                {
                    break;
                }
            }
            Err(e) => {
                body_error = Some(e);
                break;
            }
        }
    }
    drop(hash_tx);
    drop(write_tx);
    let digest = match hasher.await {
        Ok(d) => d,
        Err(e) => return Err(internal("hashing the block", e)),
    };
    let (written, temp) = match writer.await {
        Ok(r) => r,
        Err(e) => return Err(internal("writing the block", e)),
    };
    if too_slow {
        return Err(HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "request body too slow: under {} bytes per second",
                keep.config.put_min_rate
            ),
        )
        .with_header(header::CONNECTION, HeaderValue::from_static("close")));
    }
    if let Some(e) = body_error {
        return Err(status(400, &format!("reading the request body: {e}")));
    }
    if let Err(e) = written {
        if is_storage_refusal(&e) {
            return Err(full(&keep.volumes[index], &e));
        }
        return Err(internal("writing the block", e));
    }
    if received != length {
        return Err(status(400, "body length does not match Content-Length"));
    }
    if digest != hash {
        return Err(status(
            422,
            &format!("Hash mismatch: the body's MD5 is {digest}"),
        ));
    }
    let committed = {
        let (keep, hash) = (keep.clone(), hash.clone());
        tokio::task::spawn_blocking(move || keep.volumes[index].commit(temp, &hash)).await
    };
    match committed {
        Ok(Ok(stored)) => {
            if stored == Stored::Repaired {
                tracing::warn!("{hash}: replaced a corrupt stored copy");
            }
        }
        Ok(Err(VolumeError::Collision(_))) => {
            tracing::error!("{hash}: collision with a different stored block");
            return Err(status(500, "Collision"));
        }
        Ok(Err(VolumeError::Io(e))) if is_storage_refusal(&e) => {
            return Err(full(&keep.volumes[index], &e))
        }
        Ok(Err(e)) => return Err(internal("storing the block", e)),
        Err(e) => return Err(internal("storing the block", e)),
    }
    let plain = format!("{hash}+{length}");
    let answer = match (&keep.config.signing_key, &token) {
        (Some(key), Some(token)) => signature::sign_locator(
            &plain,
            key,
            token,
            signature::now() + keep.config.ttl,
            keep.config.ttl,
        ),
        _ => plain,
    };
    let mut response = text(StatusCode::OK, answer);
    let headers = response.headers_mut();
    headers.insert("X-Keep-Replicas-Stored", HeaderValue::from_static("1"));
    headers.insert(
        "X-Keep-Storage-Classes-Confirmed",
        HeaderValue::from_static("default=1"),
    );
    Ok(response)
}

/// Whether `e` says the volume cannot take data now: out of space or quota, a read-only file
/// system, no permission.
fn is_storage_refusal(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EDQUOT | libc::EROFS | libc::EACCES | libc::EPERM)
    )
}

/// 507 for a volume that refused the data (`e` says why).
fn full(volume: &Volume, e: &io::Error) -> HttpError {
    tracing::warn!("{}: cannot store a block: {e}", volume.root().display());
    status(
        507,
        &format!(
            "Full: volume {} cannot store the block: {e}",
            volume.root().display()
        ),
    )
}

/// The first writable volume with room that accepts a new temporary file for `hash`, with the
/// temporary file and the volume's `-serialize` lock. A volume out of space or on a read-only
/// file system is skipped; when none is left the answer is 507 saying why.
async fn open_temp(
    keep: &Arc<Keep>,
    hash: &str,
) -> Result<
    (
        usize,
        super::volume::TempBlock,
        Option<tokio::sync::OwnedMutexGuard<()>>,
    ),
    HttpError,
> {
    let mut refusals = Vec::new();
    for index in 0..keep.volumes.len() {
        if keep.volumes[index].readonly() {
            continue;
        }
        let room = {
            let keep = keep.clone();
            tokio::task::spawn_blocking(move || keep.volumes[index].has_room()).await
        };
        match room {
            Ok(true) => {}
            Ok(false) => {
                refusals.push(format!(
                    "{}: less free space than -min-free-space",
                    keep.volumes[index].root().display()
                ));
                continue;
            }
            Err(e) => return Err(internal("choosing a volume", e)),
        }
        let io = keep.volumes[index].io_lock().await;
        let temp = {
            let (keep, hash) = (keep.clone(), hash.to_string());
            tokio::task::spawn_blocking(move || keep.volumes[index].create_temp(&hash)).await
        };
        match temp.map_err(blocking_err).and_then(|r| r) {
            Ok(t) => return Ok((index, t, io)),
            Err(e) if is_storage_refusal(&e) => {
                tracing::warn!("{}: {e}", keep.volumes[index].root().display());
                refusals.push(format!("{}: {e}", keep.volumes[index].root().display()));
            }
            Err(e) => return Err(internal("creating a temporary file", e)),
        }
    }
    Err(status(
        507,
        &format!(
            "Full: no writable volume has room ({})",
            refusals.join("; ")
        ),
    ))
}

fn block_response(len: u64, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

async fn get_block(
    State(keep): State<Arc<Keep>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    read_block(keep, path, req, false).await
}

async fn head_block(
    State(keep): State<Arc<Keep>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    read_block(keep, path, req, true).await
}

/// A block's content (GET) or its headers alone (HEAD).
async fn read_block(keep: Arc<Keep>, path: String, req: Request, head: bool) -> HttpResult {
    let locator = match Locator::parse(&path) {
        Ok(l) => l,
        Err(e) => return Err(status(400, &e.to_string())),
    };
    if keep.config.enforce_permissions {
        let Some(token) = request_token(req.headers(), req.uri().query()) else {
            return Err(status(401, "Unauthorized: no token"));
        };
        let key = keep.config.signing_key.as_deref().unwrap_or_default();
        if let Err(e) = signature::verify(&locator, key, &token, keep.config.ttl, signature::now())
        {
            return Err(status(e.http_status(), &e.to_string()));
        }
    }
    let hash = locator.hash;
    if hash == EMPTY_BLOCK_HASH {
        return Ok(block_response(0, Body::empty()));
    }
    if head {
        let found = {
            let (keep, hash) = (keep.clone(), hash.clone());
            tokio::task::spawn_blocking(move || -> io::Result<Option<u64>> {
                for v in &keep.volumes {
                    if let Some(meta) = v.stat(&hash)? {
                        return Ok(Some(meta.len()));
                    }
                }
                Ok(None)
            })
            .await
        };
        return match found.map_err(blocking_err).and_then(|r| r) {
            Ok(Some(len)) => Ok(block_response(len, Body::empty())),
            Ok(None) => Err(status(404, "Not Found")),
            Err(e) => Err(internal("looking up the block", e)),
        };
    }

    let permit = match keep.buffers.clone().acquire_owned().await {
        Ok(p) => p,
        Err(_) => return Err(status(503, "shutting down")),
    };
    let mut corrupt = false;
    for index in 0..keep.volumes.len() {
        let io_guard = keep.volumes[index].io_lock().await;
        let opened = {
            let (keep, hash) = (keep.clone(), hash.clone());
            tokio::task::spawn_blocking(move || keep.volumes[index].open_block(&hash)).await
        };
        let (mut file, len) = match opened.map_err(blocking_err).and_then(|r| r) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => return Err(internal("opening the block", e)),
        };
        if len <= SMALL_BLOCK {
            let hash2 = hash.clone();
            let read = tokio::task::spawn_blocking(move || -> io::Result<Option<Vec<u8>>> {
                let mut data = Vec::with_capacity(len as usize);
                file.read_to_end(&mut data)?;
                Ok((md5_hex(&data) == hash2).then_some(data))
            })
            .await;
            match read.map_err(blocking_err).and_then(|r| r) {
                Ok(Some(data)) => return Ok(block_response(data.len() as u64, Body::from(data))),
                Ok(None) => {
                    tracing::error!(
                        "{hash}: stored copy on {} fails its hash",
                        keep.volumes[index].root().display()
                    );
                    corrupt = true;
                    continue;
                }
                Err(e) => return Err(internal("reading the block", e)),
            }
        }
        let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(2);
        let (hash2, root) = (hash.clone(), keep.volumes[index].root().to_path_buf());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _io = io_guard;
            stream_block(&mut file, len, &hash2, &root, &tx);
        });
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        return Ok(block_response(len, Body::from_stream(stream)));
    }
    if corrupt {
        Err(status(500, "Data hash mismatch"))
    } else {
        Err(status(404, "Not Found"))
    }
}

/// Sends the block in chunks, hashing as it goes; the last chunk is sent only when the hash
/// matches, otherwise the body ends in an error (the client sees a short response).
fn stream_block(
    file: &mut std::fs::File,
    len: u64,
    hash: &str,
    root: &Path,
    tx: &mpsc::Sender<io::Result<Bytes>>,
) {
    let mut md5 = BlockHasher::new();
    let mut remaining = len;
    let mut pending: Option<Bytes> = None;
    while remaining > 0 {
        let want = remaining.min(CHUNK as u64);
        let mut buf = Vec::with_capacity(want as usize);
        match Read::by_ref(file).take(want).read_to_end(&mut buf) {
            Ok(n) if n as u64 == want => {}
            Ok(_) => {
                let _ = tx.blocking_send(Err(io::Error::other("block shrank while read")));
                return;
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
        md5.update(&buf);
        remaining -= want;
        if let Some(chunk) = pending.replace(Bytes::from(buf)) {
            if tx.blocking_send(Ok(chunk)).is_err() {
                return; // client went away
            }
        }
    }
    if md5.finish_hex() != hash {
        tracing::error!(
            "{hash}: stored copy on {} fails its hash; response cut short",
            root.display()
        );
        let _ = tx.blocking_send(Err(io::Error::other("data hash mismatch")));
        return;
    }
    if let Some(chunk) = pending {
        let _ = tx.blocking_send(Ok(chunk));
    }
}

async fn delete_block(
    State(keep): State<Arc<Keep>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    if keep.config.never_delete {
        return Err(status(
            405,
            "Method Not Allowed: deletes are disabled (-never-delete)",
        ));
    }
    keep.require_system_token(&req)?;
    let hash = match Locator::parse(&path) {
        Ok(l) => l.hash,
        Err(e) => return Err(status(400, &e.to_string())),
    };
    if keep.all_readonly() {
        return Err(status(405, "Method Not Allowed: all volumes are read-only"));
    }
    let result = tokio::task::spawn_blocking(move || {
        let (mut deleted, mut failed) = (0u32, 0u32);
        let cutoff = keep.protect_after();
        for v in &keep.volumes {
            if v.readonly() {
                if matches!(v.stat(&hash), Ok(Some(_))) {
                    failed += 1;
                }
                continue;
            }
            match v.trash(&hash, keep.config.trash_lifetime, Some(cutoff), None) {
                Ok(Removal::NotFound) => {}
                Ok(_) => deleted += 1,
                Err(e) => {
                    tracing::error!("deleting {hash} on {}: {e}", v.root().display());
                    failed += 1;
                }
            }
        }
        (deleted, failed)
    })
    .await;
    match result {
        Ok((0, 0)) => Err(status(404, "Not Found")),
        Ok((deleted, failed)) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"copies_deleted": deleted, "copies_failed": failed}).to_string(),
        )
            .into_response()),
        Err(e) => Err(internal("deleting the block", e)),
    }
}

async fn index_all(State(keep): State<Arc<Keep>>, req: Request) -> HttpResult {
    index(keep, req, String::new()).await
}

async fn index_prefix(
    State(keep): State<Arc<Keep>>,
    UrlPath(prefix): UrlPath<String>,
    req: Request,
) -> HttpResult {
    index(keep, req, prefix).await
}

async fn index(keep: Arc<Keep>, req: Request, prefix: String) -> HttpResult {
    keep.require_system_token(&req)?;
    if prefix.len() > 32
        || !prefix
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(status(
            400,
            "Bad Request: the index prefix must be lowercase hex",
        ));
    }
    let (tx, mut rx) = mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        for v in &keep.volumes {
            let mut open = true;
            let result = v.index(&prefix, |chunk| {
                open = tx.blocking_send(Ok(Bytes::from(chunk))).is_ok();
                open
            });
            if let Err(e) = result {
                tracing::error!("indexing {}: {e}", v.root().display());
                let _ = tx.blocking_send(Err(e));
                return;
            }
            if !open {
                return;
            }
        }
        // The empty line that tells a complete index from a cut one.
        let _ = tx.blocking_send(Ok(Bytes::from_static(b"\n")));
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn status_json(State(keep): State<Arc<Keep>>) -> HttpResult {
    let keep2 = keep.clone();
    let volumes = tokio::task::spawn_blocking(move || {
        keep2
            .volumes
            .iter()
            .map(|v| {
                let space = v.space().ok();
                serde_json::json!({
                    "mount_point": v.root().display().to_string(),
                    "device_num": space.map(|s| s.device).unwrap_or(0),
                    "bytes_free": space.map(|s| s.free).unwrap_or(0),
                    "bytes_used": space.map(|s| s.used).unwrap_or(0),
                    "read_only": v.readonly(),
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let max = keep.config.max_buffers;
    let body = serde_json::json!({
        "volumes": volumes,
        "BufferPool": {
            "BuffersMax": max,
            "BuffersInUse": max.saturating_sub(keep.buffers.available_permits()),
        },
    });
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

async fn ping(State(keep): State<Arc<Keep>>, req: Request) -> HttpResult {
    if let Some(want) = &keep.config.management_token {
        match request_token(req.headers(), req.uri().query()) {
            None => return Err(status(401, "Unauthorized")),
            Some(t) if t != *want => return Err(status(403, "Forbidden")),
            Some(_) => {}
        }
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{\"health\":\"OK\"}\n",
    )
        .into_response())
}

#[derive(serde::Deserialize)]
struct TrashRequest {
    locator: String,
    block_mtime: i128,
}

/// A trash or pull list body: at most 16 MiB (413 beyond), else 400 when it cannot be read.
async fn read_small_body(req: Request) -> Result<Bytes, HttpError> {
    let too_large = || status(413, "Request Entity Too Large: lists are at most 16 MiB");
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > LIST_BODY_MAX as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(req.into_body(), LIST_BODY_MAX)
        .await
        .map_err(|e| {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            while let Some(c) = cause {
                if c.is::<http_body_util::LengthLimitError>() {
                    return too_large();
                }
                cause = c.source();
            }
            status(400, &format!("reading the request body: {e}"))
        })
}

async fn trash_list(State(keep): State<Arc<Keep>>, req: Request) -> HttpResult {
    keep.require_system_token(&req)?;
    let body = read_small_body(req).await?;
    let list: Vec<TrashRequest> = match serde_json::from_slice(&body) {
        Ok(l) => l,
        Err(e) => return Err(status(400, &format!("Bad Request: {e}"))),
    };
    let count = list.len();
    if keep.config.never_delete {
        tracing::info!("-never-delete: ignoring {count} trash requests");
    } else {
        let done = tokio::task::spawn_blocking(move || {
            let cutoff = keep.protect_after();
            for item in &list {
                let Some(hash) = item.locator.split('+').next().filter(|h| is_hash(h)) else {
                    continue;
                };
                for v in keep.volumes.iter().filter(|v| !v.readonly()) {
                    let lifetime = keep.config.trash_lifetime;
                    if let Err(e) = v.trash(hash, lifetime, Some(cutoff), Some(item.block_mtime)) {
                        tracing::error!("trashing {hash} on {}: {e}", v.root().display());
                    }
                }
            }
        })
        .await;
        if let Err(e) = done {
            return Err(internal("processing the trash list", e));
        }
    }
    Ok(text(
        StatusCode::OK,
        format!("Received {count} trash requests"),
    ))
}

async fn pull_list(State(keep): State<Arc<Keep>>, req: Request) -> HttpResult {
    keep.require_system_token(&req)?;
    let body = read_small_body(req).await?;
    match serde_json::from_slice::<Vec<serde_json::Value>>(&body) {
        Ok(list) => {
            tracing::info!(
                "pull list of {} entries accepted (pulling is not implemented)",
                list.len()
            );
            Ok(text(
                StatusCode::OK,
                format!("Received {} pull requests", list.len()),
            ))
        }
        Err(e) => Err(status(400, &format!("Bad Request: {e}"))),
    }
}

async fn untrash(
    State(keep): State<Arc<Keep>>,
    UrlPath(hash): UrlPath<String>,
    req: Request,
) -> HttpResult {
    keep.require_system_token(&req)?;
    if !is_hash(&hash) {
        return Err(status(400, "Bad Request: not a block hash"));
    }
    if keep.all_readonly() {
        return Err(status(405, "Method Not Allowed: all volumes are read-only"));
    }
    let result = tokio::task::spawn_blocking(move || {
        let mut done = Vec::new();
        for v in keep.volumes.iter().filter(|v| !v.readonly()) {
            match v.untrash(&hash) {
                Ok(true) => done.push(v.root().display().to_string()),
                Ok(false) => {}
                Err(e) => tracing::error!("untrashing {hash} on {}: {e}", v.root().display()),
            }
        }
        done
    })
    .await;
    match result {
        Ok(done) if done.is_empty() => Err(status(404, "Not Found")),
        Ok(done) => Ok(text(
            StatusCode::OK,
            format!("Successfully untrashed on: {}", done.join(", ")),
        )),
        Err(e) => Err(internal("untrashing", e)),
    }
}

/// Runs the server until SIGTERM or SIGINT (then stops accepting, lets requests in flight
/// finish for up to 30 s, and returns). Blocking: builds its own tokio runtime.
pub fn run(config: Config) -> anyhow::Result<()> {
    anyhow::ensure!(!config.volumes.is_empty(), "no -volume given");
    anyhow::ensure!(
        !config.enforce_permissions || config.signing_key.is_some(),
        "-enforce-permissions needs -permission-key-file"
    );
    let mut volumes = Vec::new();
    for v in &config.volumes {
        let volume = Volume::open(&v.path, v.readonly, v.serialize, config.min_free)?;
        if !v.readonly {
            match volume.remove_stale_temps() {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "{}: removed {n} temporary files left by an earlier run",
                    v.path.display()
                ),
                Err(e) => tracing::warn!("{}: cleaning temporary files: {e}", v.path.display()),
            }
        }
        volumes.push(volume);
    }
    let addrs = cibox_runtime::server::listen_addrs(&config.listen)?;
    let keep = Arc::new(Keep {
        volumes,
        buffers: Arc::new(Semaphore::new(config.max_buffers.max(1))),
        put_slots: Arc::new(Semaphore::new(put_slots(config.max_buffers))),
        config,
    });
    let result = cibox_runtime::server::block_on_locked(
        "keepstore",
        keep.config.pid_file.as_deref(),
        None,
        serve(keep.clone(), addrs),
    );
    // Requests cut off at the end of the grace may leave temporary files: ours go now.
    for v in keep.volumes.iter().filter(|v| !v.readonly()) {
        if let Err(e) = v.remove_stale_temps() {
            tracing::warn!("{}: cleaning temporary files: {e}", v.root().display());
        }
    }
    result
}

async fn serve(keep: Arc<Keep>, addrs: Vec<SocketAddr>) -> anyhow::Result<()> {
    let signals =
        cibox_runtime::httpd::ShutdownSignals::install().context("watching for signals")?;
    let listener = tokio::net::TcpListener::bind(&addrs[..])
        .await
        .with_context(|| format!("cannot listen on {}", keep.config.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(
        "listening on {local}, volumes: {}",
        keep.volumes
            .iter()
            .map(|v| v.root().display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if keep.config.trash_lifetime > 0 && !keep.config.never_delete {
        let keep = keep.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(keep.config.trash_check_interval.max(1));
            loop {
                let k = keep.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    for v in k.volumes.iter().filter(|v| !v.readonly()) {
                        match v.empty_trash(SystemTime::now()) {
                            Ok(0) => {}
                            Ok(n) => {
                                tracing::info!("{}: emptied {n} from trash", v.root().display())
                            }
                            Err(e) => tracing::warn!("{}: emptying trash: {e}", v.root().display()),
                        }
                    }
                })
                .await;
                tokio::time::sleep(every).await;
            }
        });
    }
    // `GET /metrics`: Prometheus metrics (cibox_runtime::metrics); any other method on it is
    // an unknown request.
    let metrics = Arc::new(cibox_runtime::metrics::HttpMetrics::new("cibox_keepstore"));
    let exposed = metrics.clone();
    let app = routes()
        .route(
            "/metrics",
            axum::routing::get(move || async move { exposed.response() }).fallback(bad_request),
        )
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            cibox_runtime::metrics::track,
        ))
        .layer(axum::middleware::from_fn(
            cibox_runtime::server::log_requests,
        ))
        .with_state(keep.clone());
    let limits = keep.config.http.clone();
    let grace = limits.shutdown_grace;
    cibox_runtime::httpd::serve(app, vec![listener], limits, signals.logged())
        .await
        .context("serving")?;
    if keep.buffers.available_permits() < keep.config.max_buffers.max(1) {
        tracing::warn!("requests still running after {grace:?}; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_leave_a_quarter_of_the_buffers_to_gets() {
        assert_eq!(put_slots(1), 1);
        assert_eq!(put_slots(2), 1);
        assert_eq!(put_slots(4), 3);
        assert_eq!(put_slots(128), 96);
    }

    #[test]
    fn tokens_from_headers_and_query() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(&h, None), None);
        assert_eq!(
            request_token(&h, Some("a=1&api_token=xyz")),
            Some("xyz".into())
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("OAuth2 abc"),
        );
        assert_eq!(request_token(&h, None), Some("abc".into()));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer def"),
        );
        assert_eq!(request_token(&h, Some("api_token=xyz")), Some("def".into()));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic ghi"));
        assert_eq!(request_token(&h, None), None);
    }
}
