//! The HTTP surface: the shared [`State`], the route table, the small endpoints (index,
//! host API, file info, latest build, staging, build, health) and the access-log layer.
//! Protocol and file-system work lives in the sibling modules.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, Request};
use axum::http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Uri};
use axum::middleware::Next;
use axum::routing::{any, get, post};
use axum::Router;
use serde_json::json;

use super::builder::{BuildOutcome, Builder};
use super::controlfiles::{self, ControlError};
use super::digests::DigestCache;
use super::hosts::Hosts;
use super::logs::{AccessRecord, Logs};
use super::metadata::PayloadIndex;
use super::omaha::{Flavor, Steering};
use super::paths::{is_plain_name, percent_decode, resolve_within, PathError};
use super::payload::Selector;
use super::staging::{ArchiveUrl, StageError, Stager};
use super::statics::{self, path_error_response, StaticRoots};
use super::{update, versions};

/// Request counters for `/check_health`.
#[derive(Default)]
pub struct Stats {
    /// Every request.
    pub requests: AtomicU64,
    /// Update checks answered.
    pub update_checks: AtomicU64,
    /// ... with an update.
    pub updates: AtomicU64,
    /// ... with noupdate.
    pub noupdates: AtomicU64,
    /// Event-only requests acknowledged.
    pub event_acks: AtomicU64,
    /// Requests refused as bad input (4xx from /update).
    pub bad_requests: AtomicU64,
    /// Builds run.
    pub builds: AtomicU64,
}

/// Everything the handlers share.
pub struct State {
    /// The effective static root (canonical; the archive directory in serve-only mode).
    pub static_root: PathBuf,
    /// What `/static/` maps to.
    pub roots: StaticRoots,
    /// Serve-only mode.
    pub serve_only: bool,
    /// `--urlbase`.
    pub urlbase: Option<String>,
    /// `--proxy_port`.
    pub proxy_port: Option<u16>,
    /// `--omaha-flavor`: the response format forced (else decided per request).
    pub flavor: Option<Flavor>,
    /// `--payload-metadata`: payloads described per appid.
    pub payloads: Option<PayloadIndex>,
    /// `--install-metadata`: payloads for installs, described per appid.
    pub install_payloads: Option<PayloadIndex>,
    /// How answers are steered (`--critical_update`, then `/update_config`).
    pub steering: RwLock<Steering>,
    /// Payload selection.
    pub selector: Selector,
    /// Payload digests.
    pub digests: DigestCache,
    /// Hosts.
    pub hosts: Hosts,
    /// Logs.
    pub logs: Arc<Logs>,
    /// Counters.
    pub stats: Stats,
    /// Prometheus metrics (`/metrics`).
    pub metrics: super::metrics::ServeMetrics,
    /// Staging.
    pub stager: Arc<Stager>,
    /// Builder.
    pub builder: Builder,
    /// Start time.
    pub started: Instant,
}

impl State {
    /// The current steering of answers.
    pub fn steering(&self) -> Steering {
        self.steering
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

type S = axum::extract::State<Arc<State>>;

/// The two ends of a connection, as the shared HTTP front end hands them to handlers.
pub use cibox_runtime::httpd::Peer as ConnInfo;

/// A plain-text answer.
pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    if !body.ends_with('\n') {
        body.push('\n');
    }
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn json_response(value: serde_json::Value) -> Response<Body> {
    let mut r = Response::new(Body::from(value.to_string()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The route table.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(|| async { "Welcome to the Dev Server!" }))
        .route("/static", get(static_file))
        .route("/static/", get(static_file))
        .route("/static/{*path}", get(static_file))
        .route("/update", post(update_handler))
        .route("/update/", post(update_handler))
        .route("/update/{*label}", post(update_handler))
        .route("/v1/update", post(update_handler))
        .route("/v1/update/", post(update_handler))
        .route("/v1/update/{*label}", post(update_handler))
        .route("/update_config", get(update_config).post(update_config))
        .route("/payloads/{*path}", get(payload_file))
        .route("/install-payloads/{*path}", get(payload_file))
        .route("/xbuddy/{*path}", get(xbuddy_handler))
        .route("/hosts", get(|| async { super::fleet::page() }))
        .route("/api/hosts", get(hosts_list))
        .route("/api/hostinfo", get(hostinfo))
        .route("/api/hostinfo/{*ip}", get(hostinfo))
        .route("/api/hostlog", get(hostlog))
        .route("/api/hostlog/{*ip}", get(hostlog))
        .route("/api/setnextupdate", post(setnextupdate))
        .route("/api/setnextupdate/{*ip}", post(setnextupdate))
        .route("/api/fileinfo/{*path}", get(fileinfo))
        .route("/controlfiles", get(controlfiles_handler))
        .route("/download", any(stage_handler))
        .route("/stage", any(stage_handler))
        .route("/is_staged", get(is_staged))
        .route("/latestbuild", get(latestbuild))
        .route("/build", any(build_handler))
        .route("/check_health", get(check_health))
        .route(
            "/metrics",
            get(|s: S| async move { s.metrics.http.response() }),
        )
        .fallback(|| async { text(StatusCode::NOT_FOUND, "Not found") })
        .layer(DefaultBodyLimit::max(update::MAX_BODY))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access_log,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.http.clone(),
            cibox_runtime::metrics::track,
        ))
        .with_state(state)
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

async fn access_log(s: S, req: Request, next: Next) -> Response<Body> {
    let time = SystemTime::now();
    s.stats.requests.fetch_add(1, Ordering::Relaxed);
    let client = req
        .extensions()
        .get::<ConnectInfo<ConnInfo>>()
        .map(|c| c.0.client_ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let method = req.method().to_string();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let version = match req.version() {
        axum::http::Version::HTTP_10 => "HTTP/1.0",
        axum::http::Version::HTTP_2 => "HTTP/2",
        _ => "HTTP/1.1",
    };
    let referer = header_text(req.headers(), header::REFERER);
    let user_agent = header_text(req.headers(), header::USER_AGENT);
    let response = next.run(req).await;
    let length = cibox_runtime::metrics::body_length(&response);
    s.logs.access(AccessRecord {
        time,
        client,
        method,
        uri,
        version,
        status: response.status().as_u16(),
        length,
        referer,
        user_agent,
    });
    response
}

async fn static_file(s: S, req: Request) -> Response<Body> {
    let path = req.uri().path().to_string();
    let relative = path
        .strip_prefix("/static")
        .unwrap_or("")
        .trim_start_matches('/')
        .to_string();
    // `/static//etc/passwd` names an absolute path: refuse it rather than strip it.
    if path.starts_with("/static//") {
        return path_error_response(&super::paths::PathError::Escapes);
    }
    statics::serve(&s.roots, &relative, req).await
}

/// `/xbuddy/PATH[?return_dir=true|relative_path=true|for_update=true]`.
async fn xbuddy_handler(
    s: S,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response<Body> {
    use super::xbuddy::XbuddyError;
    let raw = req.uri().path().strip_prefix("/xbuddy/").unwrap_or("");
    let path = match percent_decode(raw) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad xbuddy path: {e}")),
    };
    let root = s.static_root.clone();
    let resolved = tokio::task::spawn_blocking(move || super::xbuddy::resolve(&root, &path)).await;
    let resolved = match resolved {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let status = match e {
                XbuddyError::BadPath(_) => StatusCode::BAD_REQUEST,
                XbuddyError::Remote => StatusCode::NOT_IMPLEMENTED,
                XbuddyError::NotFound(_) => StatusCode::NOT_FOUND,
                XbuddyError::Escapes => StatusCode::FORBIDDEN,
            };
            return text(status, e.to_string());
        }
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let flag = |name: &str| q.get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    // Answered as the devserver does: the bare string, no newline.
    let bare = |body: String| {
        let mut r = text(StatusCode::OK, "");
        *r.body_mut() = Body::from(body);
        r
    };
    let headers = req.headers().clone();
    if flag("for_update") {
        let base = update::site_base(&s, &headers, &conn);
        return bare(format!("{base}/update/{}", resolved.build));
    }
    if flag("return_dir") {
        let base = update::static_base(&s, &headers, &conn);
        return bare(format!("{base}/{}", resolved.build));
    }
    if flag("relative_path") {
        return bare(format!("{}/{}", resolved.build, resolved.file_name));
    }
    statics::serve_file(&resolved.file, req).await
}

/// `/payloads/PATH` and `/install-payloads/PATH`: files of the metadata directories.
async fn payload_file(s: S, req: Request) -> Response<Body> {
    let path = req.uri().path();
    let found = [&s.payloads, &s.install_payloads]
        .into_iter()
        .flatten()
        .find_map(|index| {
            path.strip_prefix(&format!("/{}/", index.url_prefix))
                .map(|rel| (index, rel.to_string()))
        });
    let Some((index, relative)) = found else {
        return text(
            StatusCode::NOT_FOUND,
            "Not found (no such metadata directory)",
        );
    };
    let roots = StaticRoots {
        data_static: index.dir.clone(),
        archive: None,
    };
    statics::serve(&roots, &relative, req).await
}

/// `GET /update_config`: the steering as JSON; `POST` with a JSON object of some fields
/// changes them for the next answers (unknown fields are refused).
async fn update_config(s: S, method: Method, body: Bytes) -> Response<Body> {
    if method == Method::POST {
        let mut current = serde_json::to_value(s.steering()).unwrap_or_default();
        let change: serde_json::Value = match serde_json::from_slice(&body) {
            Ok(serde_json::Value::Object(map)) => serde_json::Value::Object(map),
            Ok(_) => return text(StatusCode::BAD_REQUEST, "Expected a JSON object."),
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("Invalid JSON: {e}")),
        };
        if let (Some(cur), Some(change)) = (current.as_object_mut(), change.as_object()) {
            for (k, v) in change {
                cur.insert(k.clone(), v.clone());
            }
        }
        match serde_json::from_value::<Steering>(current) {
            Ok(new) => *s.steering.write().unwrap_or_else(|e| e.into_inner()) = new,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("Invalid configuration: {e}"),
                )
            }
        }
    }
    json_response(serde_json::to_value(s.steering()).unwrap_or_default())
}

async fn update_handler(
    s: S,
    ConnectInfo(conn): ConnectInfo<ConnInfo>,
    req: Request,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    update::handle(&s, &conn, parts.uri.path(), &parts.headers, body).await
}

/// The IP an `/api/...` request names (path tail, else `?ip=`), canonical when it parses.
fn ip_param(uri: &Uri, prefix: &str, query: &HashMap<String, String>) -> Option<String> {
    let tail = uri.path().strip_prefix(prefix).unwrap_or("");
    let tail = percent_decode(tail.trim_matches('/')).ok()?;
    let ip = if tail.is_empty() {
        query.get("ip")?.trim().to_string()
    } else {
        tail
    };
    // A host key is an address or a host name: bounded, no odd characters.
    if ip.is_empty()
        || ip.len() > 255
        || !ip
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-_%[]".contains(&b))
    {
        return None;
    }
    Some(match ip.parse::<IpAddr>() {
        Ok(addr) => addr.to_canonical().to_string(),
        Err(_) => ip,
    })
}

async fn hosts_list(s: S, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    let limit = match q.get("limit").map(|l| l.parse::<usize>()) {
        None => super::fleet::DEFAULT_LIMIT,
        Some(Ok(n)) => n,
        Some(Err(_)) => return text(StatusCode::BAD_REQUEST, "limit= must be a number"),
    };
    json_response(super::fleet::hosts_json(&s.hosts, limit))
}

async fn hostinfo(s: S, uri: Uri, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    match ip_param(&uri, "/api/hostinfo", &q) {
        Some(ip) => json_response(s.hosts.info_json(&ip)),
        None => text(StatusCode::BAD_REQUEST, "No ip given."),
    }
}

async fn hostlog(s: S, uri: Uri, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    match ip_param(&uri, "/api/hostlog", &q) {
        Some(ip) => json_response(s.hosts.log_json(&ip)),
        None => text(StatusCode::BAD_REQUEST, "No ip given."),
    }
}

async fn setnextupdate(
    s: S,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Response<Body> {
    let Some(ip) = ip_param(&uri, "/api/setnextupdate", &q) else {
        return text(StatusCode::BAD_REQUEST, "No ip given.");
    };
    let Ok(body) = body else {
        return text(StatusCode::BAD_REQUEST, "Cannot read the label.");
    };
    if body.len() > update::MAX_LABEL + 64 {
        return text(
            StatusCode::BAD_REQUEST,
            format!("Invalid label: longer than {} bytes.", update::MAX_LABEL),
        );
    }
    let Ok(label) = std::str::from_utf8(&body) else {
        return text(StatusCode::BAD_REQUEST, "Invalid label: not UTF-8.");
    };
    let label = label.trim();
    if label.is_empty() {
        return text(StatusCode::BAD_REQUEST, "No label provided.");
    }
    match update::check_label(label) {
        Ok(clean) if !clean.is_empty() => {
            s.hosts.set_next_update(&ip, &clean);
            text(StatusCode::OK, "")
        }
        Ok(_) => text(StatusCode::BAD_REQUEST, "No label provided."),
        Err(e) => text(StatusCode::BAD_REQUEST, format!("Invalid label: {e}.")),
    }
}

async fn fileinfo(s: S, uri: Uri) -> Response<Body> {
    let rel = uri.path().strip_prefix("/api/fileinfo/").unwrap_or("");
    let file = match percent_decode(rel).and_then(|r| s.roots.resolve(&r)) {
        Ok(f) => f,
        Err(e) => return path_error_response(&e),
    };
    if !file.is_file() {
        return text(StatusCode::NOT_FOUND, "Not a file");
    }
    match s.digests.get(&file).await {
        Ok(d) => json_response(json!({
            "size": d.size,
            "sha1": d.sha1_b64,
            "sha256": d.sha256_b64,
        })),
        Err(e) => text(StatusCode::NOT_FOUND, e),
    }
}

async fn controlfiles_handler(s: S, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    if q.is_empty() {
        let mut r = Response::new(Body::from(controlfiles::HELP_HTML));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        return r;
    }
    let Some(build) = q.get("build").cloned() else {
        return text(StatusCode::BAD_REQUEST, "Error: build= is required!");
    };
    let root = s.static_root.clone();
    let control_path = q.get("control_path").cloned();
    let result = tokio::task::spawn_blocking(move || match control_path {
        None => controlfiles::list(&root, &build).map(|l| {
            let mut t = l.join("\n");
            if !t.is_empty() {
                t.push('\n');
            }
            t.into_bytes()
        }),
        Some(p) => controlfiles::read(&root, &build, &p),
    })
    .await;
    match result {
        Ok(Ok(bytes)) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Ok(Err(e)) => {
            let status = match e {
                ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
                ControlError::Forbidden => StatusCode::FORBIDDEN,
                ControlError::NotFound(_) => StatusCode::NOT_FOUND,
            };
            text(status, e.to_string())
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn archive_url(q: &HashMap<String, String>) -> Result<ArchiveUrl, Box<Response<Body>>> {
    let Some(url) = q.get("archive_url").filter(|u| !u.trim().is_empty()) else {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "Error: archive_url= is required!",
        )));
    };
    ArchiveUrl::parse(url).map_err(|e| Box::new(text(StatusCode::BAD_REQUEST, e.to_string())))
}

async fn stage_handler(s: S, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    let url = match archive_url(&q) {
        Ok(u) => u,
        Err(r) => return *r,
    };
    let base = url.base.clone();
    match s.stager.stage(url).await {
        Ok(()) => text(StatusCode::OK, "Success"),
        Err(e) => {
            s.logs.error(format!("staging {base} failed: {e}"));
            let status = match e {
                StageError::BadUrl(_) => StatusCode::BAD_REQUEST,
                StageError::Fetch(_) => StatusCode::BAD_GATEWAY,
                StageError::Forbidden(_) => StatusCode::FORBIDDEN,
                StageError::BadArchive(_) => StatusCode::BAD_GATEWAY,
                StageError::Local(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            text(status, format!("Failed to stage {base}: {e}"))
        }
    }
}

async fn is_staged(s: S, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    match archive_url(&q) {
        Ok(url) => text(
            StatusCode::OK,
            if s.stager.is_staged(&url) {
                "True"
            } else {
                "False"
            },
        ),
        Err(r) => *r,
    }
}

async fn latestbuild(s: S, Query(q): Query<HashMap<String, String>>) -> Response<Body> {
    let Some(target) = q.get("target").filter(|t| !t.is_empty()) else {
        return text(StatusCode::BAD_REQUEST, "Error: target= is required!");
    };
    if !is_plain_name(target) {
        return text(
            StatusCode::BAD_REQUEST,
            format!("Invalid target {target:?}"),
        );
    }
    let prefix = q.get("milestone").filter(|m| !m.is_empty()).map(|m| {
        if m.starts_with('R') {
            format!("{m}-")
        } else {
            format!("R{m}-")
        }
    });
    // The target directory and every build in it must resolve inside the static root.
    let dir = match resolve_within(&s.static_root, target) {
        Ok(dir) => dir,
        Err(PathError::Escapes) => {
            return text(
                StatusCode::FORBIDDEN,
                format!("Forbidden: target {target} leads out of the static directory"),
            )
        }
        Err(_) => {
            return text(
                StatusCode::NOT_FOUND,
                format!("No builds found for target {target}"),
            )
        }
    };
    match versions::newest_dir_within(&s.static_root, &dir, prefix.as_deref()) {
        Ok(Some(name)) => text(StatusCode::OK, name),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            format!("No builds found for target {target}"),
        ),
        Err(_) => text(
            StatusCode::NOT_FOUND,
            format!("No builds found for target {target}"),
        ),
    }
}

async fn build_handler(
    s: S,
    method: Method,
    Query(q): Query<HashMap<String, String>>,
) -> Response<Body> {
    if method != Method::GET && method != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "Use GET or POST.");
    }
    let (Some(board), Some(pkg)) = (q.get("board"), q.get("pkg")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Error: board= and pkg= are required!",
        );
    };
    s.stats.builds.fetch_add(1, Ordering::Relaxed);
    match s
        .builder
        .build(
            board,
            pkg,
            q.get("use").map(String::as_str),
            q.get("features").map(String::as_str),
        )
        .await
    {
        BuildOutcome::Success(_) => text(StatusCode::OK, "Success"),
        BuildOutcome::Failed(output) => {
            s.logs.error(format!("build of {pkg} for {board} failed"));
            text(StatusCode::INTERNAL_SERVER_ERROR, output)
        }
        BuildOutcome::Missing(msg) => text(StatusCode::SERVICE_UNAVAILABLE, msg),
        BuildOutcome::BadInput(msg) => text(StatusCode::BAD_REQUEST, msg),
    }
}

fn free_disk(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = st.fragment_size() as u64;
    Some((
        st.blocks_available() as u64 * frsize,
        st.blocks() as u64 * frsize,
    ))
}

async fn check_health(s: S) -> Response<Body> {
    let (free, total) = free_disk(&s.static_root).unwrap_or((0, 0));
    let st = &s.stats;
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    json_response(json!({
        "free_disk": free,
        "total_disk": total,
        "static_dir": s.static_root.display().to_string(),
        "uptime_seconds": s.started.elapsed().as_secs(),
        "requests": load(&st.requests),
        "update_checks": load(&st.update_checks),
        "updates": load(&st.updates),
        "noupdates": load(&st.noupdates),
        "event_acks": load(&st.event_acks),
        "bad_requests": load(&st.bad_requests),
        "builds": load(&st.builds),
        "staged": s.stager.staged_count(),
        "hosts": s.hosts.count(),
        "hostlog_entries": s.hosts.log_len(),
        "log_lines_dropped": s.logs.dropped(),
    }))
}
