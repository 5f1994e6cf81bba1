//! The Keep proxy behind the `keepproxy` applet: one Keep endpoint in front of a run's
//! keepstores, answering as Arvados' keepproxy does.
//!
//! * Which keepstores: the API server's `keep_services/accessible` (disk services) when there
//!   is one (`ARVADOS_API_HOST`, else the one running in the run directory), else
//!   `ARVADOS_KEEP_SERVICES`, else the keepstores `start_keep` recorded in the run directory. The list is looked up again every few seconds.
//! * Order: rendezvous hashing, as Arvados' clients: each service weighs
//!   `md5(block hash + last 15 characters of its uuid)`, heaviest first.
//! * Writes (PUT `/hash[+size...]`, POST `/`) go to the first `X-Keep-Desired-Replicas`
//!   services at once (default 2; a PUT's body streams to them as it arrives, the keepstores
//!   checking it against the hash), then to further ones for any that failed, until that many
//!   copies are stored or no service is left. `X-Keep-Replicas-Stored` says how many; 200 with
//!   the signed locator when at least one is stored, 503 when none.
//! * Reads (GET, HEAD) try the services in the same order; the first that has the block answers.
//! * Tokens (`Authorization: OAuth2 ...` or `Bearer ...`) are checked with the API server's
//!   `users/current` and remembered for a minute; writing also needs an active user and a
//!   token of full scope ([`ApiClient::writer`]). Without an API server a token is required
//!   but not checked. A missing or refused token is 403, as keepproxy answers. The token is
//!   checked before a byte of the body is read.
//! * Memory: at most `-max-buffers` writes hold a block in memory at once (each up to
//!   64 MiB); further ones wait for a place before their body is read.
//! * CORS: every answer allows any origin; OPTIONS answers the preflight.

use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use cibox_runtime::response::{text, HttpError, HttpResult};
use http_body_util::BodyExt;
use serde_json::Value;

use super::apiclient::{http_agent, ApiClient, RunApi, TokenCache, User};
use super::digest::md5_hex;
use super::locator::{Locator, EMPTY_BLOCK_HASH};
use super::volume::BLOCK_MAX;

/// Copies written when the client does not say.
pub const DEFAULT_REPLICAS: usize = 2;
/// How long a token check is remembered.
const TOKEN_TTL: Duration = Duration::from_secs(60);
/// How long a list of keepstores is used before it is looked up again.
const SERVICES_TTL: Duration = Duration::from_secs(5);
/// The name in `Via` headers.
const VIA: &str = "keepproxy";

/// How the proxy runs, from keepproxy's flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-listen`: `[HOST]:PORT`.
    pub listen: String,
    /// `-pid`: pid file, locked while running.
    pub pid_file: Option<PathBuf>,
    /// Client timeouts and the connection cap.
    pub limits: cibox_runtime::httpd::Limits,
    /// `-timeout`: how long one request to a keepstore may take.
    pub timeout: Duration,
    /// `-no-get`: refuse GET and HEAD.
    pub no_get: bool,
    /// `-no-put`: refuse PUT and POST.
    pub no_put: bool,
    /// `-default-replicas`: copies written when the client does not say.
    pub default_replicas: usize,
    /// `-max-buffers`: how many writes may hold a block in memory at once.
    pub max_buffers: usize,
    /// Where `start_keep` recorded its keepstores (used without API server and
    /// `ARVADOS_KEEP_SERVICES`).
    pub run_dir: PathBuf,
}

/// One keepstore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepService {
    /// Its uuid (the rendezvous weight uses the last 15 characters).
    pub uuid: String,
    /// `http://host:port`.
    pub root: String,
}

/// Where the list of keepstores comes from.
#[derive(Debug, Clone)]
pub enum ServiceSource {
    /// The API server's `keep_services/accessible`, asked with this token.
    Api(ApiClient, String),
    /// A fixed list (`ARVADOS_KEEP_SERVICES`).
    Fixed(Vec<KeepService>),
    /// The keepstores `start_keep` recorded in this run directory.
    RunDir(PathBuf),
}

impl ServiceSource {
    /// The source the environment and `run_dir` describe (see the module documentation).
    pub fn from_env(run_dir: &std::path::Path) -> ServiceSource {
        if let Some(api) = RunApi::find(run_dir) {
            return ServiceSource::Api(api.client, api.token);
        }
        match std::env::var("ARVADOS_KEEP_SERVICES") {
            Ok(list) if !list.trim().is_empty() => ServiceSource::Fixed(fixed_services(&list)),
            _ => ServiceSource::RunDir(run_dir.to_path_buf()),
        }
    }

    /// The keepstores, now.
    pub fn services(&self) -> anyhow::Result<Vec<KeepService>> {
        match self {
            ServiceSource::Fixed(list) => Ok(list.clone()),
            ServiceSource::RunDir(dir) => Ok(crate::rundir::recorded_servers(dir)?
                .into_iter()
                .map(|(n, port)| KeepService {
                    uuid: crate::rundir::server_uuid(n),
                    root: format!("http://127.0.0.1:{port}"),
                })
                .collect()),
            ServiceSource::Api(api, token) => Ok(api
                .accessible_keep_services(token)?
                .iter()
                .filter(|s| s.get("service_type").and_then(Value::as_str) != Some("proxy"))
                .filter_map(service_from_json)
                .collect()),
        }
    }
}

/// `ARVADOS_KEEP_SERVICES` (space separated URLs), with the uuids the Python SDK gives them.
fn fixed_services(list: &str) -> Vec<KeepService> {
    list.split_whitespace()
        .enumerate()
        .map(|(i, url)| KeepService {
            uuid: format!("00000-bi6l4-{i:015x}"),
            root: url.trim_end_matches('/').to_string(),
        })
        .collect()
}

fn service_from_json(s: &Value) -> Option<KeepService> {
    let uuid = s.get("uuid")?.as_str()?.to_string();
    let host = s.get("service_host")?.as_str()?;
    let port = s.get("service_port")?.as_u64()?;
    let tls = s
        .get("service_ssl_flag")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let scheme = if tls { "https" } else { "http" };
    Some(KeepService {
        uuid,
        root: format!("{scheme}://{host}:{port}"),
    })
}

/// `services` in rendezvous order for the block `hash`: heaviest
/// `md5(hash + uuid[-15:])` first.
pub fn probe_order(hash: &str, services: &[KeepService]) -> Vec<KeepService> {
    let mut weighted: Vec<(String, &KeepService)> = services
        .iter()
        .map(|s| {
            let tail = &s.uuid[s.uuid.len().saturating_sub(15)..];
            (md5_hex(format!("{hash}{tail}").as_bytes()), s)
        })
        .collect();
    weighted.sort_by(|a, b| b.0.cmp(&a.0));
    weighted.into_iter().map(|(_, s)| s.clone()).collect()
}

struct Proxy {
    config: Config,
    source: ServiceSource,
    api: Option<ApiClient>,
    tokens: TokenCache<Option<User>>,
    services: Mutex<Option<(Instant, Vec<KeepService>)>>,
    agent: ureq::Agent,
    /// One permit per write holding a block in memory.
    buffers: Arc<tokio::sync::Semaphore>,
}

/// The error answer for `code` (500 for a code that is not one) and `message`.
fn refused((code, message): Refusal) -> HttpError {
    HttpError::new(
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        message,
    )
}

/// What every answer of the proxy carries, errors included (a layer on the router): CORS for
/// any origin, and `Via`.
async fn with_cors(mut response: Response) -> Response {
    cors(response.headers_mut());
    response
}

fn cors(headers: &mut HeaderMap) {
    headers.insert(
        "Access-Control-Allow-Methods",
        HeaderValue::from_static("GET, HEAD, POST, PUT, OPTIONS"),
    );
    headers.insert("Access-Control-Allow-Origin", HeaderValue::from_static("*"));
    headers.insert(
        "Access-Control-Allow-Headers",
        HeaderValue::from_static(
            "Authorization, Content-Length, Content-Type, X-Keep-Desired-Replicas",
        ),
    );
    headers.insert(
        "Access-Control-Max-Age",
        HeaderValue::from_static("86486400"),
    );
    headers.insert(header::VIA, HeaderValue::from_static("HTTP/1.1 keepproxy"));
}

const BAD_AUTH: &str = "Missing or invalid Authorization header";

/// The token of `Authorization: OAuth2 TOKEN` (or `Bearer`).
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    ((scheme == "OAuth2" || scheme == "Bearer") && !token.is_empty()).then(|| token.to_string())
}

impl Proxy {
    /// One of the `-max-buffers` places for a block in memory, waited for; 503 once the proxy
    /// is shutting down.
    async fn buffer(&self) -> Result<tokio::sync::OwnedSemaphorePermit, (u16, String)> {
        self.buffers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| (503, "shutting down".to_string()))
    }

    /// The keepstores, from the cache when fresh.
    fn services(&self) -> anyhow::Result<Vec<KeepService>> {
        let mut cached = self.services.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((at, list)) = &*cached {
            if at.elapsed() < SERVICES_TTL {
                return Ok(list.clone());
            }
        }
        let list = self.source.services()?;
        *cached = Some((Instant::now(), list.clone()));
        Ok(list)
    }

    /// Whether `token` may read (`write == false`) or write through the proxy. Blocking.
    fn token_allowed(&self, token: &str, write: bool) -> bool {
        let Some(api) = &self.api else {
            return true;
        };
        let op = if write { "write" } else { "read" };
        let result = self
            .tokens
            .get_or_try(&format!("{op}:{token}"), || -> Result<_, String> {
                if write {
                    return api.writer(token).map(Some).map_err(|e| e.to_string());
                }
                match api.current_user(token) {
                    Ok(user) => Ok(Some(user)),
                    // A scoped (sharing) token may read when it may see the keep services.
                    Err(e) if e.status() == Some(403) => api
                        .accessible_keep_services(token)
                        .map(|_| None)
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            });
        match result {
            Ok(_) => true,
            Err(e) => {
                tracing::info!("token refused: {e}");
                false
            }
        }
    }
}

/// keepproxy's routes: a block by its locator (GET, HEAD, PUT), a block with its hash unknown
/// (`POST /`), CORS preflights anywhere. `-no-get` and `-no-put` leave those methods out, so
/// they get 400 like anything else unknown, and a request that already passed through this
/// proxy is refused ([`refuse_loops`]).
fn routes(config: &Config) -> axum::Router<Arc<Proxy>> {
    use axum::routing::{options, MethodRouter};
    let mut block: MethodRouter<Arc<Proxy>> = options(preflight);
    let mut root: MethodRouter<Arc<Proxy>> = options(preflight);
    if !config.no_get {
        block = block.get(get_block).head(head_block);
    }
    if !config.no_put {
        block = block.put(put_block);
        root = root.post(post_block);
    }
    axum::Router::new()
        .route("/", root)
        .route("/{*locator}", block)
        .fallback(bad_request)
        .method_not_allowed_fallback(bad_request)
        .layer(axum::middleware::from_fn(refuse_loops))
}

/// A request whose `Via` names this proxy already came round in a loop: 500.
async fn refuse_loops(req: Request, next: axum::middleware::Next) -> HttpResult {
    let looped = req
        .headers()
        .get(header::VIA)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(&format!(" {VIA}")));
    if looped {
        return Err(HttpError::internal("loop detected"));
    }
    Ok(next.run(req).await)
}

/// A CORS preflight: 200, empty (the CORS headers come from [`with_cors`]).
async fn preflight() -> Response {
    text(StatusCode::OK, "")
}

/// What an unknown path or method gets.
async fn bad_request() -> HttpError {
    HttpError::bad_request("Bad request")
}

/// The locator of a block request's path, if it is one.
fn block_locator(path: String) -> Result<String, HttpError> {
    match Locator::parse(&path) {
        Ok(_) => Ok(path),
        Err(_) => Err(HttpError::bad_request("Bad request")),
    }
}

async fn get_block(
    State(proxy): State<Arc<Proxy>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    get(proxy, block_locator(path)?, req, false).await
}

async fn head_block(
    State(proxy): State<Arc<Proxy>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    get(proxy, block_locator(path)?, req, true).await
}

async fn put_block(
    State(proxy): State<Arc<Proxy>>,
    UrlPath(path): UrlPath<String>,
    req: Request,
) -> HttpResult {
    put(proxy, Some(block_locator(path)?), req).await
}

async fn post_block(State(proxy): State<Arc<Proxy>>, req: Request) -> HttpResult {
    put(proxy, None, req).await
}

/// An error status and its text.
type Refusal = (u16, String);

/// Runs `work` on a blocking thread.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

async fn get(proxy: Arc<Proxy>, locator: String, req: Request, head: bool) -> HttpResult {
    let token = bearer_token(req.headers()).ok_or_else(|| HttpError::forbidden(BAD_AUTH))?;
    // Drop `+K@cluster` hints: the keepstores behind us are local.
    let locator = {
        let mut parsed =
            Locator::parse(&locator).map_err(|e| HttpError::bad_request(e.to_string()))?;
        parsed.hints.retain(|h| !h.starts_with("K@"));
        parsed.to_string()
    };
    let result = blocking(move || -> Result<(u64, Option<BlockReader>), Refusal> {
        if !proxy.token_allowed(&token, false) {
            return Err((403, BAD_AUTH.into()));
        }
        let hash = &locator[..32];
        if hash == EMPTY_BLOCK_HASH {
            return Ok((0, None));
        }
        let services = proxy.services().map_err(|e| (502, format!("{e:#}")))?;
        let method = if head { "HEAD" } else { "GET" };
        let mut not_found = 0;
        let mut last_error = String::from("no keep services");
        for service in probe_order(hash, &services) {
            let url = format!("{}/{locator}", service.root);
            match proxy
                .agent
                .request(method, &url)
                .set("Authorization", &format!("OAuth2 {token}"))
                .call()
            {
                Ok(response) => {
                    let len: Option<u64> = response
                        .header("Content-Length")
                        .and_then(|v| v.parse().ok());
                    match len {
                        Some(len) if len <= BLOCK_MAX => {
                            let body = (!head).then(|| Box::new(response.into_reader()) as _);
                            return Ok((len, body));
                        }
                        _ => last_error = format!("{}: no usable Content-Length", service.root),
                    }
                }
                Err(ureq::Error::Status(404, _)) => not_found += 1,
                Err(ureq::Error::Status(code @ (401 | 403), r)) => {
                    // Signatures are checked the same on every keepstore.
                    return Err((code, r.into_string().unwrap_or_default().trim().to_string()));
                }
                Err(e) => last_error = format!("{}: {e}", service.root),
            }
        }
        if not_found == services.len() {
            Err((404, "Block not found".into()))
        } else {
            Err((502, last_error))
        }
    })
    .await;
    let (len, body) = result
        .ok_or_else(|| HttpError::internal("worker failed"))?
        .map_err(refused)?;
    let mut response = Response::new(match body {
        Some(reader) => stream_body(reader),
        None => Body::empty(),
    });
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// A keepstore's answer body, read on a blocking thread.
type BlockReader = Box<dyn Read + Send + 'static>;

/// Streams `reader` as a response body, 1 MiB at a time, read on a blocking thread.
fn stream_body(mut reader: BlockReader) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; 1 << 20];
        let chunk = match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                buf.truncate(n);
                Ok(Bytes::from(buf))
            }
            Err(e) => Err(e),
        };
        let failed = chunk.is_err();
        if tx.blocking_send(chunk).is_err() || failed {
            return;
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    }))
}

/// Reads a request body of at most `limit` bytes.
async fn read_body(req: Request, limit: u64) -> Result<Bytes, (u16, String)> {
    let limited = http_body_util::Limited::new(req.into_body(), limit as usize);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err((413, "Block too large".into()))
        }
        Err(e) => Err((400, format!("reading the request body: {e}"))),
    }
}

/// What a write achieved.
#[derive(Default)]
struct Written {
    locator: Option<String>,
    replicas: usize,
    error: Option<Refusal>,
}

impl Written {
    /// Counts one keepstore's answer.
    fn add(&mut self, hash: &str, answer: Result<(String, usize), Refusal>) {
        match answer {
            Ok((locator, stored)) => {
                self.replicas += stored;
                if self.locator.is_none() && !locator.is_empty() {
                    self.locator = Some(locator);
                }
            }
            Err(e) => {
                tracing::warn!("writing {hash}: {}", e.1);
                self.error = Some(e);
            }
        }
    }

    /// Whether the body turned out not to be the block named (no other keepstore will take it).
    fn mismatch(&self) -> bool {
        matches!(self.error, Some((422, _)))
    }
}

/// One PUT of `body` to `service`: the locator it answers and the copies it stored. Blocking.
fn put_one(
    proxy: &Proxy,
    token: &str,
    service: &KeepService,
    hash: &str,
    length: u64,
    body: impl Read,
) -> Result<(String, usize), Refusal> {
    let url = format!("{}/{hash}", service.root);
    match proxy
        .agent
        .put(&url)
        .set("Authorization", &format!("OAuth2 {token}"))
        .set("Content-Length", &length.to_string())
        .send(body)
    {
        Ok(r) => {
            let stored = r
                .header("X-Keep-Replicas-Stored")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(1);
            Ok((
                r.into_string().unwrap_or_default().trim().to_string(),
                stored,
            ))
        }
        Err(ureq::Error::Status(code, r)) => Err((
            code,
            format!(
                "{}: {}",
                service.root,
                r.into_string().unwrap_or_default().trim()
            ),
        )),
        Err(e) => Err((502, format!("{}: {e}", service.root))),
    }
}

/// Writes `body` (whose MD5 is `hash`) to the keepstores of `rest` in order, a batch at a
/// time, until `want` copies are stored in all (counting those already `written`).
fn write_rest(
    proxy: &Proxy,
    token: &str,
    hash: &str,
    body: &Bytes,
    want: usize,
    rest: &[KeepService],
    mut written: Written,
) -> Written {
    let (order, mut next) = (rest, 0);
    while written.replicas < want && next < order.len() && !written.mismatch() {
        let batch = &order[next..(next + want - written.replicas).min(order.len())];
        next += batch.len();
        let answers: Vec<Result<(String, usize), Refusal>> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|service| {
                    scope.spawn(move || {
                        put_one(proxy, token, service, hash, body.len() as u64, &body[..])
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err((500, "writer thread failed".into())))
                })
                .collect()
        });
        for answer in answers {
            written.add(hash, answer);
        }
    }
    written
}

/// A blocking reader over the chunks of a request body as they arrive; an `Err` chunk (the
/// client went away, or sent too much) fails the read, so the keepstore request is abandoned.
struct ChunkReader {
    chunks: tokio::sync::mpsc::Receiver<Result<Bytes, ()>>,
    current: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(())) => return Err(std::io::Error::other("request body broken off")),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// A PUT naming its hash: the body streams to the first `want` keepstores while it arrives
/// (they check it against the hash); keepstores after a failed one get the kept copy.
async fn put_streaming(
    proxy: Arc<Proxy>,
    token: String,
    hash: String,
    length: u64,
    want: usize,
    req: Request,
) -> Result<Written, Refusal> {
    let order = {
        let (proxy, token, hash) = (proxy.clone(), token.clone(), hash.clone());
        blocking(move || -> Result<Vec<KeepService>, Refusal> {
            if !proxy.token_allowed(&token, true) {
                return Err((403, BAD_AUTH.into()));
            }
            let services = proxy.services().map_err(|e| (502, format!("{e:#}")))?;
            Ok(probe_order(&hash, &services))
        })
        .await
        .unwrap_or_else(|| Err((500, "worker failed".into())))?
    };
    let _buffer = proxy.buffer().await?;
    let first = want.min(order.len());
    let mut senders = Vec::new();
    let mut writers = Vec::new();
    for service in &order[..first] {
        let service = service.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        senders.push(tx);
        let (proxy, token, hash) = (proxy.clone(), token.clone(), hash.clone());
        writers.push(tokio::task::spawn_blocking(move || {
            let reader = ChunkReader {
                chunks: rx,
                current: Bytes::new(),
            };
            put_one(&proxy, &token, &service, &hash, length, reader)
        }));
    }
    let mut kept = bytes::BytesMut::with_capacity(length as usize);
    let mut stream = req.into_body().into_data_stream();
    let mut broken = None;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        match chunk {
            Ok(chunk) if kept.len() + chunk.len() <= length as usize => {
                kept.extend_from_slice(&chunk);
                for tx in &senders {
                    let _ = tx.send(Ok(chunk.clone())).await;
                }
            }
            Ok(_) => {
                broken = Some((400, "Actual length != expected content length".to_string()));
                break;
            }
            Err(e) => {
                broken = Some((400, format!("reading the request body: {e}")));
                break;
            }
        }
    }
    if broken.is_none() && kept.len() as u64 != length {
        broken = Some((400, "Actual length != expected content length".to_string()));
    }
    for tx in senders {
        if broken.is_some() {
            let _ = tx.send(Err(())).await;
        }
    }
    let mut written = Written::default();
    for writer in writers {
        let answer = writer
            .await
            .unwrap_or_else(|_| Err((500, "writer failed".into())));
        written.add(&hash, answer);
    }
    if let Some(refusal) = broken {
        return Err(refusal);
    }
    let body = kept.freeze();
    blocking(move || write_rest(&proxy, &token, &hash, &body, want, &order[first..], written))
        .await
        .ok_or((500, "worker failed".to_string()))
}

/// A POST: the token checked, a buffer taken, then the body read whole (its hash is known only
/// then) and written.
async fn post_whole(
    proxy: Arc<Proxy>,
    token: String,
    length: u64,
    want: usize,
    req: Request,
) -> Result<Written, Refusal> {
    let allowed = {
        let (proxy, token) = (proxy.clone(), token.clone());
        blocking(move || proxy.token_allowed(&token, true))
            .await
            .unwrap_or(false)
    };
    if !allowed {
        return Err((403, BAD_AUTH.into()));
    }
    let _buffer = proxy.buffer().await?;
    let body = read_body(req, BLOCK_MAX).await?;
    if body.len() as u64 != length {
        return Err((400, "Actual length != expected content length".into()));
    }
    blocking(move || -> Result<Written, Refusal> {
        let hash = md5_hex(&body);
        let services = proxy.services().map_err(|e| (502, format!("{e:#}")))?;
        let order = probe_order(&hash, &services);
        Ok(write_rest(
            &proxy,
            &token,
            &hash,
            &body,
            want,
            &order,
            Written::default(),
        ))
    })
    .await
    .unwrap_or_else(|| Err((500, "worker failed".into())))
}

async fn put(proxy: Arc<Proxy>, locator: Option<String>, req: Request) -> HttpResult {
    let length: Option<u64> = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let length =
        length.ok_or_else(|| HttpError::new(StatusCode::LENGTH_REQUIRED, "Length Required"))?;
    if length > BLOCK_MAX {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Block too large",
        ));
    }
    let expected_hash = match &locator {
        Some(l) => match Locator::parse(l) {
            Ok(parsed) if parsed.size.is_some_and(|s| s != length) => {
                return Err(HttpError::bad_request(
                    "Locator size hint does not match Content-Length header",
                ))
            }
            Ok(parsed) => Some(parsed.hash),
            Err(e) => return Err(HttpError::bad_request(e.to_string())),
        },
        None => None,
    };
    let token = bearer_token(req.headers()).ok_or_else(|| HttpError::forbidden(BAD_AUTH))?;
    let want = req
        .headers()
        .get("X-Keep-Desired-Replicas")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(proxy.config.default_replicas)
        .max(1);
    let result = match expected_hash {
        // The keepstores check the body against the hash (and answer 422, passed on).
        Some(hash) => put_streaming(proxy, token, hash, length, want, req).await,
        // POST: the hash is known once the whole body is here; the token is checked first.
        None => post_whole(proxy, token, length, want, req).await,
    };
    let written = result.map_err(refused)?;
    let mut response = match (&written.locator, &written.error) {
        (Some(locator), _) if written.replicas > 0 => {
            // The locator alone, no newline, as keepproxy answers.
            Response::new(Body::from(locator.clone()))
        }
        (_, Some((422, message))) => {
            HttpError::new(StatusCode::UNPROCESSABLE_ENTITY, message.as_str()).into_response()
        }
        (_, Some((_, message))) => {
            HttpError::new(StatusCode::SERVICE_UNAVAILABLE, message.as_str()).into_response()
        }
        _ => HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "no keep services").into_response(),
    };
    response.headers_mut().insert(
        "X-Keep-Replicas-Stored",
        HeaderValue::from(written.replicas as u64),
    );
    Ok(response)
}

/// Runs the proxy until SIGTERM or SIGINT. Blocking.
pub fn run(config: Config) -> anyhow::Result<()> {
    // A bad -listen is reported before anything else is said.
    cibox_runtime::server::listen_addrs(&config.listen)?;
    let source = ServiceSource::from_env(&config.run_dir);
    let api = RunApi::find(&config.run_dir).map(|a| a.client);
    match &source {
        ServiceSource::Api(api, _) => {
            tracing::info!("keep services from the API server at {}", api.base_url())
        }
        ServiceSource::Fixed(list) => tracing::info!(
            "keep services from ARVADOS_KEEP_SERVICES: {}",
            list.iter()
                .map(|s| s.root.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        ServiceSource::RunDir(dir) => {
            tracing::info!(
                "keep services from start_keep's run directory {}",
                dir.display()
            )
        }
    }
    if api.is_none() {
        tracing::warn!("no API server: tokens are required but not checked");
    }
    let proxy = Arc::new(Proxy {
        agent: http_agent(config.timeout, false),
        tokens: TokenCache::new(TOKEN_TTL),
        services: Mutex::new(None),
        buffers: Arc::new(tokio::sync::Semaphore::new(config.max_buffers.max(1))),
        source,
        api,
        config,
    });
    let listen = cibox_runtime::server::Listen {
        name: "keepproxy",
        listen: proxy.config.listen.clone(),
        pid_file: proxy.config.pid_file.clone(),
        limits: proxy.config.limits.clone(),
    };
    let router = routes(&proxy.config)
        .layer(axum::middleware::map_response(with_cors))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(proxy);
    cibox_runtime::server::run(&listen, router)
}

/// The state name of the proxy in the run directory (`keepproxy.pid`, `keepproxy.port`).
pub const NAME: &str = "keepproxy";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_cors_and_via() {
        use tower::ServiceExt as _;
        let router = axum::Router::new()
            .fallback(|| async { Err::<Response, _>(HttpError::bad_request("Bad request")) })
            .layer(axum::middleware::map_response(with_cors));
        let response = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(router.oneshot(Request::new(Body::empty())))
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let h = response.headers();
        assert_eq!(h.get("Access-Control-Allow-Origin").unwrap(), "*");
        assert_eq!(h.get(header::VIA).unwrap(), "HTTP/1.1 keepproxy");
        assert_eq!(
            h.get(header::CONTENT_TYPE).unwrap(),
            "text/plain; charset=utf-8"
        );
    }

    fn svc(uuid: &str) -> KeepService {
        KeepService {
            uuid: uuid.into(),
            root: format!("http://{uuid}"),
        }
    }

    #[test]
    fn rendezvous_order_is_by_md5_of_hash_and_uuid_tail() {
        let services = [
            svc("zzzzz-bi6l4-keepdisk0000000"),
            svc("zzzzz-bi6l4-keepdisk0000001"),
            svc("zzzzz-bi6l4-keepdisk0000002"),
        ];
        let hash = "acbd18db4cc2f85cedef654fccc4a4d8";
        let order = probe_order(hash, &services);
        let weights: Vec<String> = order
            .iter()
            .map(|s| md5_hex(format!("{hash}{}", &s.uuid[12..]).as_bytes()))
            .collect();
        let mut sorted = weights.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(weights, sorted);
        assert_eq!(order.len(), 3);
        // Another block gives another order for some hash (the point of rendezvous hashing).
        let differs = (0..50)
            .any(|i| probe_order(&md5_hex(format!("{i}").as_bytes()), &services)[0] != order[0]);
        assert!(differs);
    }

    #[test]
    fn fixed_list_uuids_follow_the_python_sdk() {
        let list = fixed_services("http://a:1/ http://b:2");
        assert_eq!(list[0].uuid, "00000-bi6l4-000000000000000");
        assert_eq!(list[1].uuid, "00000-bi6l4-000000000000001");
        assert_eq!(list[0].root, "http://a:1");
    }

    #[test]
    fn tokens_from_authorization() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("OAuth2 abc"),
        );
        assert_eq!(bearer_token(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_token(&h), None);
    }
}
