//! The server's own state over HTTP: `/update_config` (how answers are steered, read and
//! changed), `/check_health` (free disk space and counters), nebraska's `/health_check`
//! (alive) and `/metrics` (Prometheus).

use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::State as AxumState;
use axum::http::{Method, Response, StatusCode};
use cibox_runtime::response::{json, HttpError, HttpResult};
use serde_json::json;

use crate::omaha::Steering;
use crate::state::SharedState;

/// nebraska's configuration fields that name metadata directories or Python objects: refused,
/// since a request must not make the server serve another directory.
const NOT_OVER_HTTP: &[&str] = &[
    "update_metadata",
    "install_metadata",
    "update_app_index",
    "install_app_index",
];

/// `GET /update_config`: the steering as JSON; `POST` with a JSON object of some fields
/// changes them for the next answers (unknown fields are refused, and so are nebraska's
/// metadata directories: they are chosen at start-up).
pub async fn update_config(
    AxumState(state): SharedState,
    method: Method,
    body: Bytes,
) -> HttpResult {
    if method == Method::POST {
        let change = match serde_json::from_slice(&body) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err(HttpError::bad_request("Expected a JSON object.")),
            Err(e) => return Err(HttpError::bad_request(format!("Invalid JSON: {e}"))),
        };
        if let Some(field) = NOT_OVER_HTTP.iter().find(|f| change.contains_key(**f)) {
            return Err(HttpError::bad_request(format!(
                "Invalid configuration: {field} cannot be changed over HTTP; \
                 give --payload-metadata or --install-metadata at start-up"
            )));
        }
        let mut current = serde_json::to_value(state.steering()).unwrap_or_default();
        if let Some(current) = current.as_object_mut() {
            current.extend(change);
        }
        let steering = serde_json::from_value::<Steering>(current)
            .map_err(|e| HttpError::bad_request(format!("Invalid configuration: {e}")))?;
        *state.steering.write().unwrap_or_else(|e| e.into_inner()) = steering;
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::to_value(state.steering()).unwrap_or_default(),
    ))
}

/// Free and total bytes of the file system holding `path`.
fn free_disk(path: &std::path::Path) -> Option<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(path).ok()?;
    let frsize = st.fragment_size() as u64;
    Some((
        st.blocks_available() as u64 * frsize,
        st.blocks() as u64 * frsize,
    ))
}

/// `GET /check_health`: free disk space and counters (JSON).
pub async fn check_health(AxumState(state): SharedState) -> Response<Body> {
    let (free, total) = free_disk(&state.static_root).unwrap_or((0, 0));
    let stats = &state.stats;
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    json(
        StatusCode::OK,
        &json!({
            "free_disk": free,
            "total_disk": total,
            "static_dir": state.static_root.display().to_string(),
            "uptime_seconds": state.started.elapsed().as_secs(),
            "requests": load(&stats.requests),
            "update_checks": load(&stats.update_checks),
            "updates": load(&stats.updates),
            "noupdates": load(&stats.noupdates),
            "event_acks": load(&stats.event_acks),
            "bad_requests": load(&stats.bad_requests),
            "builds": load(&stats.builds),
            "staged": state.stager.staged_count(),
            "hosts": state.hosts.count(),
            "hostlog_entries": state.hosts.log_len(),
            "log_lines_dropped": state.logs.dropped(),
        }),
    )
}

/// `GET /health_check`: nebraska's liveness check, 200 while the server answers.
pub async fn health_check() -> Response<Body> {
    cibox_runtime::response::text(StatusCode::OK, "cibox serve is alive!")
}

/// `GET /metrics`: Prometheus metrics (OpenMetrics text).
pub async fn metrics(AxumState(state): SharedState) -> Response<Body> {
    state.metrics.http.response()
}
