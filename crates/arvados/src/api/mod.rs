//! The built-in Arvados-compatible API server for test runs, over HTTPS.
//!
//! * [`fixtures`]: the users, tokens and repositories it starts with.
//! * [`state`]: the records, saved to a JSON file in the run directory on every change.
//! * [`query`]: list parameters (filters, where, order, limit, offset, select).
//! * [`manifest`]: collection manifests: signatures, portable data hashes.
//! * [`resources`]: what each resource's methods do and who may call them.
//! * [`discovery`]: the discovery document the SDK builds its client from.
//! * [`router`]: paths, authentication, errors.
//! * [`launcher`]: `start`/`stop` of the server in a run directory.
//!
//! This module serves it: TLS with rustls through the shared front end [`cibox_runtime::httpd`], which
//! bounds the TLS handshake, request heads, bodies and idle connections and caps how many
//! connections are served at once, so slow clients cannot hold connections forever.

pub mod discovery;
pub mod fixtures;
pub mod launcher;
pub mod manifest;
pub mod query;
pub mod resources;
pub mod router;
pub mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};

/// What the `apiserver` applet was given.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Pid file, locked while running.
    pub pid_file: Option<PathBuf>,
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Where the records are saved (none: in memory only).
    pub state_file: Option<PathBuf>,
    /// The keepstores' blob signing key file, shared for locator signatures.
    pub blob_signing_key_file: Option<PathBuf>,
    /// Timeouts and the connection cap (the header read timeout also bounds the TLS handshake).
    pub http: cibox_runtime::httpd::Limits,
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    let tls = cibox_runtime::tls::server_config(&config.cert, &config.key)?;
    let store = state::Store::open(config.state_file.clone())?;
    let server = Arc::new(router::Server {
        store: Mutex::new(store),
        key_file: config.blob_signing_key_file.clone(),
    });
    cibox_runtime::server::block_on_locked(
        "apiserver",
        config.pid_file.as_deref(),
        Some(2),
        serve(server, &config, Arc::new(tls)),
    )
}

async fn serve(
    server: Arc<router::Server>,
    config: &Config,
    tls: Arc<rustls::ServerConfig>,
) -> anyhow::Result<()> {
    let listen = config.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!("listening on https://{}", listener.local_addr()?);
    let signals =
        cibox_runtime::httpd::ShutdownSignals::install().context("watching for signals")?;
    let app = axum::Router::new().fallback(handle).with_state(server);
    cibox_runtime::httpd::serve_tls(
        app,
        vec![listener],
        tokio_rustls::TlsAcceptor::from(tls),
        config.http.clone(),
        signals.logged(),
    )
    .await
    .context("serving")?;
    tracing::info!("stopped");
    Ok(())
}

fn json_response(status: u16, body: &serde_json::Value) -> Response<Body> {
    let mut text = serde_json::to_vec(body).unwrap_or_default();
    text.push(b'\n');
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(text))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Answers every request: the body read whole (a stalled one is answered 408 by
/// [`cibox_runtime::httpd`]), then [`router::answer`] on a blocking thread.
async fn handle(State(server): State<Arc<router::Server>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let body = match Limited::new(body, router::MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(e) => {
            let (status, message) = if e.is::<http_body_util::LengthLimitError>() {
                (
                    413,
                    format!("request body larger than {} bytes", router::MAX_BODY),
                )
            } else {
                (400, format!("cannot read the request body: {e}"))
            };
            return json_response(status, &router::ApiError::new(status, message).body());
        }
    };
    let request = router::Request {
        method: method.clone(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        authorization: header("authorization"),
        host: header("host").unwrap_or_else(|| "localhost".into()),
        external: header("x-external-client").as_deref() == Some("1"),
        method_override: header("x-http-method-override"),
        form_body: header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded")),
        body,
    };
    let answered = tokio::task::spawn_blocking(move || router::answer(&server, request)).await;
    let (status, value) = answered.unwrap_or_else(|e| {
        let e = router::ApiError::new(500, format!("request handler failed: {e}"));
        (500, e.body())
    });
    tracing::info!("{method} {path} {status}");
    json_response(status, &value)
}
