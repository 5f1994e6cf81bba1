//! The route table: which handler answers which path (the handlers live in
//! [`crate::update`] and [`crate::handlers`]), the 404 for everything else, and the layers
//! around them all (request body limit, access log, HTTP metrics).

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State as AxumState};
use axum::http::{header, HeaderMap, Response};
use axum::middleware::Next;
use axum::routing::{any, get, post};
use axum::Router;
use cibox_runtime::httpd::Peer;
use cibox_runtime::response::HttpError;

use crate::handlers::{builds, files, hosts, status};
use crate::logs::AccessRecord;
use crate::state::{SharedState, State};
use crate::{fleet, update};

/// The route table.
pub fn router(state: Arc<State>) -> Router {
    Router::new()
        .route("/", get(|| async { "Welcome to the Dev Server!" }))
        .route("/static", get(files::static_file))
        .route("/static/", get(files::static_file))
        .route("/static/{*path}", get(files::static_file))
        .route("/update", post(update::handle))
        .route("/update/", post(update::handle))
        .route("/update/{*label}", post(update::handle))
        .route("/v1/update", post(update::handle))
        .route("/v1/update/", post(update::handle))
        .route("/v1/update/{*label}", post(update::handle))
        .route(
            "/update_config",
            get(status::update_config).post(status::update_config),
        )
        .route("/payloads/{*path}", get(files::payload_file))
        .route("/install-payloads/{*path}", get(files::payload_file))
        .route("/xbuddy/{*path}", get(files::xbuddy))
        .route("/hosts", get(|| async { fleet::page() }))
        .route("/api/hosts", get(hosts::hosts_list))
        .route("/api/hostinfo", get(hosts::hostinfo))
        .route("/api/hostinfo/{*ip}", get(hosts::hostinfo))
        .route("/api/hostlog", get(hosts::hostlog))
        .route("/api/hostlog/{*ip}", get(hosts::hostlog))
        .route("/api/setnextupdate", post(hosts::setnextupdate))
        .route("/api/setnextupdate/{*ip}", post(hosts::setnextupdate))
        .route("/api/fileinfo/{*path}", get(files::fileinfo))
        .route("/controlfiles", get(builds::controlfiles))
        .route("/download", any(builds::stage))
        .route("/stage", any(builds::stage))
        .route("/is_staged", get(builds::is_staged))
        .route("/list_image_dir", get(builds::list_image_dir))
        .route("/latestbuild", get(builds::latestbuild))
        .route("/build", any(builds::build))
        .route("/check_health", get(status::check_health))
        .route("/health_check", get(status::health_check))
        .route("/metrics", get(status::metrics))
        .fallback(|| async { HttpError::not_found("Not found") })
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

/// Counts every request and writes its access-log line once it is answered.
async fn access_log(AxumState(state): SharedState, req: Request, next: Next) -> Response<Body> {
    let time = SystemTime::now();
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let client = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
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
    state.logs.access(AccessRecord {
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
