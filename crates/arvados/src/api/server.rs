//! The API server's process: its configuration ([`Config`]), TLS with rustls through the shared
//! front end [`cibox_runtime::httpd`] (which bounds the TLS handshake, request heads, bodies and
//! idle connections and caps how many connections are served at once, so slow clients cannot
//! hold connections forever), and the one handler that hands each request, its body still
//! unread ([`super::body::RequestBody`]), to [`router::answer`]; `/websocket` goes to the event
//! server ([`events`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::answer::{ApiError, MAX_BODY};
use super::body::RequestBody;
use super::{events, router, state};
use anyhow::Context;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use cibox_runtime::response::HttpError;

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
    /// An Arvados checkout (or its fixture directory) whose fixture files replace the
    /// built-in fixtures.
    pub fixtures: Option<PathBuf>,
    /// Timeouts and the connection cap (the header read timeout also bounds the TLS handshake).
    pub http: cibox_runtime::httpd::Limits,
}

/// Runs the server until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    let tls = cibox_runtime::tls::server_config(&config.cert, &config.key)?;
    let fixtures = match &config.fixtures {
        Some(dir) => super::fixture_files::load(dir)?,
        None => state::builtin_fixtures(),
    };
    let store = state::Store::open(config.state_file.clone(), fixtures)?;
    let server = Arc::new(router::Server {
        records: Mutex::new(store),
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
    let app = axum::Router::new()
        .route(events::PATH, axum::routing::any(events::upgrade))
        .fallback(handle)
        .with_state(server);
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

/// Answers every request: a `Content-Length` past [`MAX_BODY`] at once with 413, anything
/// else by [`router::answer`] on a blocking thread, which authenticates the caller before it
/// reads the body (a stalled body is answered 408 by [`cibox_runtime::httpd`]).
async fn handle(
    State(server): State<Arc<router::Server>>,
    req: Request<Body>,
) -> Result<Response<Body>, HttpError> {
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
    let declared = header("content-length").and_then(|l| l.trim().parse::<u64>().ok());
    if declared.is_some_and(|l| l > MAX_BODY as u64) {
        tracing::info!("{method} {path} 413");
        return Err(
            ApiError::new(413, format!("request body larger than {MAX_BODY} bytes")).into(),
        );
    }
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
        body: RequestBody::new(body, MAX_BODY),
    };
    let answered = tokio::task::spawn_blocking(move || router::answer(&server, request))
        .await
        .unwrap_or_else(|e| Err(ApiError::new(500, format!("request handler failed: {e}"))));
    match answered {
        Ok(value) => {
            tracing::info!("{method} {path} 200");
            Ok(cibox_runtime::response::json_line(StatusCode::OK, &value))
        }
        Err(e) => {
            tracing::info!("{method} {path} {}", e.status);
            Err(e.into())
        }
    }
}
