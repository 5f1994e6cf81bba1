//! `GET|HEAD /static/...`: files under the static root (and, in serve-only mode, under the
//! archive directory for `/static/archive/...`), with ranges, conditional requests
//! (If-Modified-Since and ETag / If-None-Match) and HEAD through tower-http's `ServeFile`,
//! after the path has been resolved and checked to stay inside its root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

use super::paths::{clean_components, percent_decode, resolve_within, PathError};

/// Chunk size for streaming files (bigger than tower-http's default, for throughput).
const CHUNK: usize = 128 * 1024;

/// The roots `/static/` maps to.
#[derive(Debug, Clone)]
pub struct StaticRoots {
    /// `DATA/static`, canonical.
    pub data_static: PathBuf,
    /// Serve-only mode: the archive directory (canonical), served as `/static/archive/`.
    pub archive: Option<PathBuf>,
}

impl StaticRoots {
    /// The file a decoded path under `/static/` names.
    pub fn resolve(&self, relative: &str) -> Result<PathBuf, PathError> {
        if let Some(archive) = &self.archive {
            let parts = clean_components(relative)?;
            if parts.first() == Some(&"archive") {
                return resolve_within(archive, &parts[1..].join("/"));
            }
        }
        resolve_within(&self.data_static, relative)
    }
}

/// The ETag of a file version (size and modification time).
pub fn etag_of(meta: &std::fs::Metadata) -> String {
    format!(
        "\"{:x}-{:x}{:09x}\"",
        meta.len(),
        meta.mtime(),
        meta.mtime_nsec()
    )
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{text}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Maps a path error to its HTTP answer.
pub fn path_error_response(e: &PathError) -> Response<Body> {
    match e {
        PathError::Escapes => plain(StatusCode::FORBIDDEN, "Forbidden: path escapes the root"),
        PathError::NotFound => plain(StatusCode::NOT_FOUND, "Not found"),
        PathError::Invalid => plain(StatusCode::BAD_REQUEST, "Invalid path"),
    }
}

fn if_none_match_hits(req: &Request<Body>, etag: &str) -> bool {
    let Some(v) = req.headers().get(header::IF_NONE_MATCH) else {
        return false;
    };
    let Ok(v) = v.to_str() else {
        return false;
    };
    v.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag || t.strip_prefix("W/").is_some_and(|w| w == etag))
}

/// Serves `/static/<relative>` (relative still percent-encoded, as in the URI).
pub async fn serve(roots: &StaticRoots, relative: &str, req: Request<Body>) -> Response<Body> {
    let decoded = match percent_decode(relative) {
        Ok(d) => d,
        Err(e) => return path_error_response(&e),
    };
    let file = match roots.resolve(&decoded) {
        Ok(f) => f,
        Err(e) => return path_error_response(&e),
    };
    serve_file(&file, req).await
}

/// Serves one resolved file with ranges, conditional requests and HEAD.
pub async fn serve_file(file: &Path, req: Request<Body>) -> Response<Body> {
    let meta = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m,
        _ => return plain(StatusCode::NOT_FOUND, "Not found"),
    };
    let etag = etag_of(&meta);
    let etag_value = HeaderValue::from_str(&etag).ok();
    if if_none_match_hits(&req, &etag) {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        if let Some(v) = etag_value {
            r.headers_mut().insert(header::ETAG, v);
        }
        return r;
    }
    let service = ServeFile::new(file).with_buf_chunk_size(CHUNK);
    let mut response = match service.oneshot(req).await {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    };
    if let Some(v) = etag_value {
        if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
            response.headers_mut().insert(header::ETAG, v);
        }
    }
    response
}
