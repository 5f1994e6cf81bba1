//! The file endpoints: `/static/...` (the static root, and the archive in serve-only mode),
//! `/payloads/...` and `/install-payloads/...` (files of the metadata directories),
//! `/xbuddy/...` (artifact names of local builds) and `/api/fileinfo/...` (size and hashes of
//! a static file). Paths are decoded strictly and must stay inside their root.

use std::collections::HashMap;

use axum::extract::{ConnectInfo, Query, Request, State as AxumState};
use axum::http::{StatusCode, Uri};
use cibox_runtime::httpd::Peer;
use cibox_runtime::response::{self, json, HttpError, HttpResult};
use serde_json::json;

use crate::paths::{percent_decode, PathError};
use crate::state::SharedState;
use crate::statics::{self, StaticRoots};
use crate::urls::{site_base, static_base};
use crate::xbuddy::{self, XbuddyError};

/// An xbuddy error's answer: 400, 501, 404 or 403.
impl From<XbuddyError> for HttpError {
    fn from(e: XbuddyError) -> HttpError {
        let status = match e {
            XbuddyError::BadPath(_) => StatusCode::BAD_REQUEST,
            XbuddyError::Remote => StatusCode::NOT_IMPLEMENTED,
            XbuddyError::NotFound(_) => StatusCode::NOT_FOUND,
            XbuddyError::Escapes => StatusCode::FORBIDDEN,
        };
        HttpError::new(status, e.to_string())
    }
}

/// `GET /static/PATH`.
pub async fn static_file(AxumState(state): SharedState, req: Request) -> HttpResult {
    let path = req.uri().path().to_string();
    // `/static//etc/passwd` names an absolute path: refuse it rather than strip it.
    if path.starts_with("/static//") {
        return Err(PathError::Escapes.into());
    }
    let relative = path
        .strip_prefix("/static")
        .unwrap_or("")
        .trim_start_matches('/');
    statics::serve(&state.roots, relative, req).await
}
/// `/xbuddy/PATH[?return_dir=true|relative_path=true|for_update=true]`.
pub async fn xbuddy(
    AxumState(state): SharedState,
    ConnectInfo(peer): ConnectInfo<Peer>,
    Query(query): Query<HashMap<String, String>>,
    req: Request,
) -> HttpResult {
    let raw = req.uri().path().strip_prefix("/xbuddy/").unwrap_or("");
    let path =
        percent_decode(raw).map_err(|e| HttpError::bad_request(format!("bad xbuddy path: {e}")))?;
    let root = state.static_root.clone();
    let resolved = tokio::task::spawn_blocking(move || xbuddy::resolve(&root, &path))
        .await
        .map_err(|e| HttpError::internal(e.to_string()))??;
    let flag = |name: &str| {
        query
            .get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    let headers = req.headers();
    if flag("for_update") {
        let base = site_base(&state, headers, &peer);
        return Ok(response::raw(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("{base}/update/{}", resolved.build),
        ));
    }
    if flag("return_dir") {
        let base = static_base(&state, headers, &peer);
        return Ok(response::raw(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            format!("{base}/{}", resolved.build),
        ));
    }
    if flag("relative_path") {
        // The build directory (`BOARD/BUILD`), as the later devserver's xbuddy answers.
        return Ok(response::raw(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            resolved.build.clone(),
        ));
    }
    Ok(statics::serve_file(&resolved.file, req).await)
}

/// `/payloads/PATH` and `/install-payloads/PATH`: files of the metadata directories.
pub async fn payload_file(AxumState(state): SharedState, req: Request) -> HttpResult {
    let path = req.uri().path();
    let (index, relative) = [&state.payloads, &state.install_payloads]
        .into_iter()
        .flatten()
        .find_map(|index| {
            path.strip_prefix(&format!("/{}/", index.url_prefix))
                .map(|rel| (index, rel.to_string()))
        })
        .ok_or_else(|| HttpError::not_found("Not found (no such metadata directory)"))?;
    let roots = StaticRoots {
        data_static: index.dir.clone(),
        archive: None,
    };
    statics::serve(&roots, &relative, req).await
}

/// `GET /api/fileinfo/PATH`: size, SHA-1 and SHA-256 of a file under `/static/` (JSON).
pub async fn fileinfo(AxumState(state): SharedState, uri: Uri) -> HttpResult {
    let relative = uri.path().strip_prefix("/api/fileinfo/").unwrap_or("");
    let file = state.roots.resolve(&percent_decode(relative)?)?;
    if !file.is_file() {
        return Err(HttpError::not_found("Not a file"));
    }
    let digests = state
        .digests
        .get(&file)
        .await
        .map_err(HttpError::not_found)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "size": digests.size,
            "sha1": digests.sha1_b64,
            "sha256": digests.sha256_b64,
        }),
    ))
}
