//! The build endpoints: `/download` and `/stage` (stage a build from an archive URL),
//! `/is_staged`, `/latestbuild` (newest build directory of a target), `/controlfiles`
//! (autotest control files of a staged build) and `/build` (run the builder command).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::extract::{Query, State as AxumState};
use axum::http::{Method, StatusCode};
use cibox_runtime::response::{raw, text, HttpError, HttpResult};

use crate::builder::BuildOutcome;
use crate::controlfiles::{self, ControlError};
use crate::paths::{is_plain_name, resolve_within, PathError};
use crate::staging::{ArchiveUrl, StageError};
use crate::state::SharedState;
use crate::versions;

/// A control-file error's answer: 400, 403 or 404.
impl From<ControlError> for HttpError {
    fn from(e: ControlError) -> HttpError {
        let status = match e {
            ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ControlError::Forbidden => StatusCode::FORBIDDEN,
            ControlError::NotFound(_) => StatusCode::NOT_FOUND,
        };
        HttpError::new(status, e.to_string())
    }
}
/// `GET /controlfiles[?build=B[&control_path=P]]`: help without parameters, else the list of
/// a build's control files, or one of them.
pub async fn controlfiles(
    AxumState(state): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    if query.is_empty() {
        return Ok(raw(
            StatusCode::OK,
            "text/html; charset=utf-8",
            controlfiles::HELP_HTML,
        ));
    }
    let build = query
        .get("build")
        .cloned()
        .ok_or_else(|| HttpError::bad_request("Error: build= is required!"))?;
    let root = state.static_root.clone();
    let control_path = query.get("control_path").cloned();
    let bytes = tokio::task::spawn_blocking(move || match control_path {
        None => controlfiles::list(&root, &build).map(|names| {
            let mut listing = names.join("\n");
            if !listing.is_empty() {
                listing.push('\n');
            }
            listing.into_bytes()
        }),
        Some(path) => controlfiles::read(&root, &build, &path),
    })
    .await
    .map_err(|e| HttpError::internal(e.to_string()))??;
    Ok(raw(StatusCode::OK, "text/plain; charset=utf-8", bytes))
}

/// The `archive_url=` of a staging request, parsed.
fn archive_url(query: &HashMap<String, String>) -> Result<ArchiveUrl, HttpError> {
    let url = query
        .get("archive_url")
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| HttpError::bad_request("Error: archive_url= is required!"))?;
    ArchiveUrl::parse(url).map_err(|e| HttpError::bad_request(e.to_string()))
}

/// `/download?archive_url=URL` (also `/stage`): stages a build into `static/TARGET/BUILD`.
pub async fn stage(
    AxumState(state): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    let url = archive_url(&query)?;
    let base = url.base.clone();
    state.stager.stage(url).await.map_err(|e| {
        state.logs.error(format!("staging {base} failed: {e}"));
        let status = match e {
            StageError::BadUrl(_) => StatusCode::BAD_REQUEST,
            StageError::Fetch(_) => StatusCode::BAD_GATEWAY,
            StageError::Forbidden(_) => StatusCode::FORBIDDEN,
            StageError::BadArchive(_) => StatusCode::BAD_GATEWAY,
            StageError::Local(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        HttpError::new(status, format!("Failed to stage {base}: {e}"))
    })?;
    Ok(bare("Success"))
}

/// A bare `text/plain` answer without a newline, as cherrypy sent the devserver's strings
/// (harnesses compare them whole: `response == 'True'`).
fn bare(body: &str) -> axum::response::Response {
    raw(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        body.to_string(),
    )
}

/// `GET /is_staged?archive_url=URL`: `True` or `False`, without a newline.
pub async fn is_staged(
    AxumState(state): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    let url = archive_url(&query)?;
    let staged = if state.stager.is_staged(&url) {
        "True"
    } else {
        "False"
    };
    Ok(bare(staged))
}

/// `GET /list_image_dir?archive_url=URL`: what is staged for that build, one entry a line
/// with its access and modification times and size; a line saying so when nothing is.
pub async fn list_image_dir(
    AxumState(state): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    let url = archive_url(&query)?;
    let stager = state.stager.clone();
    let key = url.key();
    let listing = tokio::task::spawn_blocking(move || stager.list_build_dir(&url))
        .await
        .map_err(|e| HttpError::internal(e.to_string()))?
        .map_err(|e| match e {
            StageError::Forbidden(m) => HttpError::new(StatusCode::FORBIDDEN, m),
            other => HttpError::bad_request(other.to_string()),
        })?;
    let body = match listing {
        None => format!("{key} has not been staged on this devserver\n"),
        Some(entries) => {
            let mut out = format!("Current contents of build directory {key}:\n");
            for e in entries {
                out.push_str(&format!(
                    "Name: {} Accessed: {} Modified: {} Size: {} bytes\n",
                    e.name, e.accessed, e.modified, e.size
                ));
            }
            out
        }
    };
    Ok(text(StatusCode::OK, body))
}

/// `GET /latestbuild?target=T[&milestone=M]`: the newest build directory of a target.
pub async fn latestbuild(
    AxumState(state): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    let target = query
        .get("target")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| HttpError::bad_request("Error: target= is required!"))?;
    if !is_plain_name(target) {
        return Err(HttpError::bad_request(format!("Invalid target {target:?}")));
    }
    let prefix = query.get("milestone").filter(|m| !m.is_empty()).map(|m| {
        if m.starts_with('R') {
            format!("{m}-")
        } else {
            format!("R{m}-")
        }
    });
    let no_builds = || HttpError::not_found(format!("No builds found for target {target}"));
    // The target directory and every build in it must resolve inside the static root.
    let dir = resolve_within(&state.static_root, target).map_err(|e| match e {
        PathError::Escapes => HttpError::forbidden(format!(
            "Forbidden: target {target} leads out of the static directory"
        )),
        _ => no_builds(),
    })?;
    let newest = versions::newest_dir_within(&state.static_root, &dir, prefix.as_deref())
        .ok()
        .flatten()
        .ok_or_else(no_builds)?;
    Ok(text(StatusCode::OK, newest))
}

/// `GET|POST /build?board=B&pkg=P[&use=..&features=..]`: runs the builder command.
pub async fn build(
    AxumState(state): SharedState,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    if method != Method::GET && method != Method::POST {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "Use GET or POST.",
        ));
    }
    let (Some(board), Some(pkg)) = (query.get("board"), query.get("pkg")) else {
        return Err(HttpError::bad_request(
            "Error: board= and pkg= are required!",
        ));
    };
    state.stats.builds.fetch_add(1, Ordering::Relaxed);
    let outcome = state
        .builder
        .build(
            board,
            pkg,
            query.get("use").map(String::as_str),
            query.get("features").map(String::as_str),
        )
        .await;
    match outcome {
        BuildOutcome::Success(_) => Ok(text(StatusCode::OK, "Success")),
        BuildOutcome::Failed(output) => {
            state
                .logs
                .error(format!("build of {pkg} for {board} failed"));
            Err(HttpError::internal(output))
        }
        BuildOutcome::Missing(message) => {
            Err(HttpError::new(StatusCode::SERVICE_UNAVAILABLE, message))
        }
        BuildOutcome::BadInput(message) => Err(HttpError::bad_request(message)),
    }
}
