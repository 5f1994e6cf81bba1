//! `GET|HEAD /static/...`: files under the static root (and, in serve-only mode, under the
//! archive directory for `/static/archive/...`), with ranges, conditional requests
//! (If-Modified-Since and ETag / If-None-Match) and HEAD through tower-http's `ServeFile`,
//! after the path has been resolved and checked to stay inside its root.
//!
//! The `Range` header is settled first, as RFC 9110 wants: only one `bytes` range is taken
//! (several ranges, other units or bad syntax are ignored: the whole file, 200), a suffix
//! longer than the file means the whole file (206), and an `If-Range` that does not match the
//! current version (strong ETag, or the exact Last-Modified date) drops the range.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode};
use axum::response::IntoResponse as _;
use cibox_runtime::response::{HttpError, HttpResult};
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

/// A path error's HTTP answer: 403 for an escape, 404, 400 for an invalid path.
impl From<PathError> for HttpError {
    fn from(e: PathError) -> HttpError {
        match e {
            PathError::Escapes => HttpError::forbidden("Forbidden: path escapes the root"),
            PathError::NotFound => HttpError::not_found("Not found"),
            PathError::Invalid => HttpError::bad_request("Invalid path"),
        }
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
pub async fn serve(roots: &StaticRoots, relative: &str, req: Request<Body>) -> HttpResult {
    let file = roots.resolve(&percent_decode(relative)?)?;
    Ok(serve_file(&file, req).await)
}

/// Serves one resolved file with ranges, conditional requests and HEAD.
pub async fn serve_file(file: &Path, req: Request<Body>) -> Response<Body> {
    let meta = match std::fs::metadata(file) {
        Ok(m) if m.is_file() => m,
        _ => return HttpError::from(PathError::NotFound).into_response(),
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
    let mut req = req;
    settle_range(&mut req, &meta, &etag);
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

/// Leaves a `Range` header that `ServeFile` should answer, rewritten where RFC 9110 asks for
/// it, and removes any other (see the module documentation).
fn settle_range(req: &mut Request<Body>, meta: &std::fs::Metadata, etag: &str) {
    let Some(range) = req.headers().get(header::RANGE) else {
        return;
    };
    let last_modified = meta.modified().ok().map(http_date);
    let settled = range
        .to_str()
        .ok()
        .filter(|_| if_range_allows(req.headers(), etag, last_modified.as_deref()))
        .and_then(|r| single_byte_range(r, meta.len()))
        .and_then(|r| HeaderValue::from_str(&r).ok());
    match settled {
        Some(value) => {
            req.headers_mut().insert(header::RANGE, value);
        }
        None => {
            req.headers_mut().remove(header::RANGE);
        }
    }
}

/// An HTTP date (IMF-fixdate), as `Last-Modified` carries it.
fn http_date(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// Whether `If-Range` (if any) names the current version: a strong ETag equal to ours, or a
/// date equal to our Last-Modified.
fn if_range_allows(
    headers: &axum::http::HeaderMap,
    etag: &str,
    last_modified: Option<&str>,
) -> bool {
    let Some(value) = headers.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        value == etag
    } else if value.starts_with("W/") {
        false
    } else {
        last_modified == Some(value)
    }
}

/// One `bytes` range, normalised for a file of `len` bytes; `None` when the header is to be
/// ignored (another unit, several ranges, bad syntax, last before first).
fn single_byte_range(range: &str, len: u64) -> Option<String> {
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (unit, spec) = range.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    let (first, last) = spec.trim().split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix = digits(last)?;
        if suffix >= len && len > 0 {
            return Some("bytes=0-".to_string());
        }
        return Some(format!("bytes=-{suffix}"));
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(format!("bytes={first}-"));
    }
    let last = digits(last)?;
    if last < first {
        return None;
    }
    Some(format!("bytes={first}-{last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_errors_answer_403_404_400() {
        for (error, status, message) in [
            (
                PathError::Escapes,
                StatusCode::FORBIDDEN,
                "Forbidden: path escapes the root",
            ),
            (PathError::NotFound, StatusCode::NOT_FOUND, "Not found"),
            (PathError::Invalid, StatusCode::BAD_REQUEST, "Invalid path"),
        ] {
            let answer = HttpError::from(error);
            assert_eq!(answer.status, status);
            assert_eq!(answer.message, message);
        }
    }

    #[test]
    fn byte_ranges_are_settled() {
        for (range, settled) in [
            ("bytes=-100", "bytes=0-"),
            ("bytes=-10", "bytes=-10"),
            ("BYTES = 2-", "bytes=2-"),
            ("bytes=2-5", "bytes=2-5"),
        ] {
            assert_eq!(
                single_byte_range(range, 36).as_deref(),
                Some(settled),
                "{range}"
            );
        }
        for ignored in [
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=5-2",
            "bytes=+1-2",
            "bytes=x",
            "bytes",
        ] {
            assert_eq!(single_byte_range(ignored, 36), None, "{ignored}");
        }
    }
}
