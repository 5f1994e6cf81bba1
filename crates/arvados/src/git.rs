//! The git server behind the `arv-git-httpd` applet: git's smart HTTP protocol through the
//! machine's real `git http-backend` (run as a CGI program), behind Arvados' permission
//! checks, as Arvados' arv-git-httpd answers:
//!
//! * credentials: HTTP Basic (the password is an API token; the user name is ignored), or
//!   `Authorization: OAuth2 TOKEN`. None: 401 with `WWW-Authenticate: Basic realm="git"`.
//! * `/NAME.git/...` and `/NAME/.git/...` belong to the repository called NAME, looked up with
//!   the client's token through the API server (`repositories` filtered by name). A token the
//!   API server refuses: 401 as above; no such repository (or not visible): 404 `not found`.
//! * pushes (`.../git-receive-pack`) need write permission: the token may write (its user is
//!   active and its scopes are `all`, not a read-only or sharing token's few paths:
//!   [`ApiClient::writer`]) and its user is an admin, owns the repository or is in its
//!   `writable_by`; else 403.
//! * answers that let a request through are remembered for 10 seconds (a clone is several
//!   requests); refusals are not.
//! * the repository's directory under the repo root is `UUID.git`, `UUID/.git`, `NAME.git` or
//!   `NAME/.git`, the first that exists; none: 404 `content not found`.
//!
//! [`make_fixture_repositories`] creates a bare repository, with one commit, for each
//! repository the API server lists, so a test run has something to clone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::Context;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;
use cibox_runtime::response::{HttpError, HttpResult};
use serde_json::Value;

use super::apiclient::{ApiClient, TokenCache, User};

/// The state name (`arv-git-httpd.pid`, `arv-git-httpd.port`).
pub const NAME: &str = "arv-git-httpd";
/// Largest request body (a push) accepted.
const MAX_BODY: usize = 512 << 20;

/// How the server runs, from arv-git-httpd's flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-address`: `[HOST]:PORT`.
    pub address: String,
    /// `-repo-root`: the directory holding the repositories.
    pub repo_root: PathBuf,
    /// `-pid`: pid file, locked while running.
    pub pid_file: Option<PathBuf>,
    /// Client timeouts and the connection cap.
    pub limits: cibox_runtime::httpd::Limits,
    /// `-git-command`: the git program (`git http-backend` is run).
    pub git_command: PathBuf,
}

struct GitServer {
    config: Config,
    api: ApiClient,
    /// Permission answers (`read:NAME:TOKEN` or `write:...`) for a little while: one `git
    /// clone` makes several requests.
    allowed: TokenCache<(String, String)>,
}

/// How long a permission answer is remembered.
const PERMISSION_TTL: std::time::Duration = std::time::Duration::from_secs(10);

/// 401 with `WWW-Authenticate: Basic realm="git"`, so git asks for credentials.
fn unauthorized(body: &str) -> HttpError {
    HttpError::unauthorized(body).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"git\""),
    )
}

/// The API token a git client sent: the Basic password, or an OAuth2/Bearer token.
pub fn request_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let token = if scheme.eq_ignore_ascii_case("Basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split_once(':')?.1.to_string()
    } else if scheme == "OAuth2" || scheme == "Bearer" {
        rest.trim().to_string()
    } else {
        return None;
    };
    (!token.is_empty()).then_some(token)
}

/// Splits `/NAME.git/REST` (or `/NAME/.git/REST`) into the repository name and REST.
pub fn split_repo_path(path: &str) -> Option<(String, String)> {
    let (name, rest) = path.strip_prefix('/')?.split_once(".git/")?;
    let name = name.trim_end_matches('/');
    (!name.is_empty() && !name.split('/').any(|p| p == ".." || p.is_empty()))
        .then(|| (name.to_string(), rest.to_string()))
}

/// Whether `user` may push to `repository`: an admin, its owner, or a uuid in its
/// `writable_by`.
fn may_write(user: &User, repository: &Value) -> bool {
    let me = Value::from(user.uuid.as_str());
    user.is_admin
        || repository.get("owner_uuid") == Some(&me)
        || repository
            .get("writable_by")
            .and_then(Value::as_array)
            .is_some_and(|w| w.contains(&me))
}

/// The directory of repository `uuid`/`name` under `root`, relative to it.
fn repo_dir(root: &Path, uuid: &str, name: &str) -> Option<String> {
    [
        format!("{uuid}.git"),
        format!("{uuid}/.git"),
        format!("{name}.git"),
        format!("{name}/.git"),
    ]
    .into_iter()
    .find(|dir| root.join(dir).is_dir())
}

/// A request let through: the repository's directory under the root and its uuid.
type Allowed = (String, String);

impl GitServer {
    /// Blocking: asks the API server whether `token` may read (or write) repository `name`.
    fn check(&self, token: &str, name: &str, write: bool) -> Result<Allowed, HttpError> {
        let filters = serde_json::json!([["name", "=", name]]);
        let items = self
            .api
            .list("repositories", token, &filters)
            .map_err(|e| match e.status() {
                Some(401) => unauthorized("invalid token"),
                Some(403) => HttpError::forbidden(e.to_string()),
                _ => HttpError::internal(e.to_string()),
            })?;
        let uuid = match items.as_slice() {
            [] => return Err(HttpError::not_found("not found")),
            [one] => one
                .get("uuid")
                .and_then(Value::as_str)
                .ok_or_else(|| HttpError::internal("bad list response from API"))?
                .to_string(),
            _ => return Err(HttpError::internal("name collision")),
        };
        if write {
            let user = self
                .api
                .writer(token)
                .map_err(|e| HttpError::forbidden(e.to_string()))?;
            if !may_write(&user, &items[0]) {
                return Err(HttpError::forbidden(format!(
                    "{} may not push to {name}",
                    user.uuid
                )));
            }
        }
        match repo_dir(&self.config.repo_root, &uuid, name) {
            Some(dir) => Ok((dir, uuid)),
            None => {
                tracing::warn!(
                    "{uuid}: no git directory in {}",
                    self.config.repo_root.display()
                );
                Err(HttpError::not_found("content not found"))
            }
        }
    }
}

/// The answer to a CORS preflight: 200 with what may follow for GET and POST, else 405; no
/// body either way.
fn preflight(req: &Request) -> Response {
    let wanted = req
        .headers()
        .get("Access-Control-Request-Method")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let allowed = wanted == "GET" || wanted == "POST";
    let status = if allowed {
        StatusCode::OK
    } else {
        StatusCode::METHOD_NOT_ALLOWED
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "",
    )
        .into_response();
    if allowed {
        let h = response.headers_mut();
        h.insert(
            "Access-Control-Allow-Headers",
            HeaderValue::from_static("Authorization, Content-Type"),
        );
        h.insert(
            "Access-Control-Allow-Methods",
            HeaderValue::from_static("GET, POST"),
        );
        h.insert("Access-Control-Allow-Origin", HeaderValue::from_static("*"));
        h.insert("Access-Control-Max-Age", HeaderValue::from_static("86400"));
    }
    response
}

async fn handle(
    State(server): State<Arc<GitServer>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
) -> HttpResult {
    if req.method() == Method::OPTIONS {
        return Ok(preflight(&req));
    }
    let token =
        request_token(req.headers()).ok_or_else(|| unauthorized("no credentials provided"))?;
    let (name, rest) =
        split_repo_path(req.uri().path()).ok_or_else(|| HttpError::not_found("not found"))?;
    let write = req.uri().path().ends_with("/git-receive-pack")
        || req
            .uri()
            .query()
            .is_some_and(|q| q.contains("service=git-receive-pack"));
    let worker_failed = |_| HttpError::internal("worker failed");
    let (dir, user) = {
        let (server, token, name) = (server.clone(), token.clone(), name.clone());
        tokio::task::spawn_blocking(move || {
            let op = if write { "write" } else { "read" };
            let key = format!("{op}:{name}:{token}");
            server
                .allowed
                .get_or_try(&key, || server.check(&token, &name, write))
        })
        .await
        .map_err(worker_failed)??
    };
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|l| l > MAX_BODY as u64) {
        return Err(HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY} bytes"),
        ));
    }
    let cgi = Cgi {
        git: server.config.git_command.clone(),
        root: server.config.repo_root.clone(),
        path_info: format!("/{dir}/{rest}"),
        method: parts.method.to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        content_length: declared,
        headers: parts.headers,
        remote_user: user,
        remote_addr: peer.ip().to_string(),
    };
    cgi.run(body)
        .await
        .map_err(|e| HttpError::internal(format!("git http-backend: {e:#}")))
}

/// Largest CGI header block read from `git http-backend`.
const MAX_CGI_HEAD: usize = 64 << 10;

/// One `git http-backend` run, streamed both ways: the request body goes to its stdin as it
/// arrives (at most [`MAX_BODY`]), and its output, once the CGI header block is read, goes to
/// the client as git writes it. Neither is ever held whole.
struct Cgi {
    git: PathBuf,
    root: PathBuf,
    path_info: String,
    method: String,
    query: String,
    content_length: Option<u64>,
    headers: HeaderMap,
    remote_user: String,
    remote_addr: String,
}

impl Cgi {
    async fn run(&self, body: Body) -> anyhow::Result<Response> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let header = |name: &str| {
            self.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let mut command = tokio::process::Command::new(&self.git);
        command
            .arg("http-backend")
            .env("GIT_PROJECT_ROOT", &self.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("PATH_INFO", &self.path_info)
            .env("QUERY_STRING", &self.query)
            .env("REQUEST_METHOD", &self.method)
            .env("REMOTE_USER", &self.remote_user)
            .env("REMOTE_ADDR", &self.remote_addr)
            .env("SERVER_PROTOCOL", "HTTP/1.1")
            .env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("CONTENT_TYPE", header("content-type"))
            .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
            .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // A chunked body has no length: git then reads until the end of its input.
        match self.content_length {
            Some(n) => {
                command.env("CONTENT_LENGTH", n.to_string());
            }
            None if self.method == "POST" => {
                command.env_remove("CONTENT_LENGTH");
            }
            None => {
                command.env("CONTENT_LENGTH", "0");
            }
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot run {} http-backend", self.git.display()))?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let mut stdout = child.stdout.take().context("no stdout")?;
        // The request body, piece by piece, into git (which may stop reading early).
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            let mut total = 0usize;
            while let Some(Ok(piece)) = futures_util::StreamExt::next(&mut stream).await {
                total += piece.len();
                if total > MAX_BODY {
                    tracing::warn!("request body past {MAX_BODY} bytes: cut off");
                    break;
                }
                if stdin.write_all(&piece).await.is_err() {
                    break;
                }
            }
        });
        // The CGI header block.
        let mut head = Vec::new();
        let mut piece = vec![0u8; 16 << 10];
        let (text, rest) = loop {
            if let Some((text, rest)) = split_cgi_output(&head) {
                break (text, rest.to_vec());
            }
            anyhow::ensure!(head.len() <= MAX_CGI_HEAD, "CGI header block too long");
            let n = stdout.read(&mut piece).await?;
            if n == 0 {
                let status = child.wait().await?;
                anyhow::bail!("no CGI header in its output ({status})");
            }
            head.extend_from_slice(&piece[..n]);
        };
        // The rest as git writes it; the child is reaped when its output ends.
        let first =
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(rest)) });
        let more = futures_util::stream::unfold(Some((stdout, child)), |state| async move {
            let (mut stdout, mut child) = state?;
            let mut buf = vec![0u8; 64 << 10];
            match stdout.read(&mut buf).await {
                Ok(0) => {
                    let _ = child.wait().await;
                    None
                }
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some((stdout, child))))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let mut response = Response::new(Body::from_stream(futures_util::StreamExt::chain(
            first, more,
        )));
        for line in text.lines() {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("Status") {
                let code: u16 = value
                    .split_whitespace()
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(500);
                *response.status_mut() =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            } else if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.trim().as_bytes()),
                HeaderValue::from_str(value),
            ) {
                response.headers_mut().append(n, v);
            }
        }
        Ok(response)
    }
}

/// The CGI header block (as text) and the body after it.
fn split_cgi_output(output: &[u8]) -> Option<(String, &[u8])> {
    let (end, skip) = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))?;
    let head = String::from_utf8_lossy(&output[..end]).replace('\r', "");
    Some((head, &output[end + skip..]))
}

/// The git program: `-git-command`, else `git` in `PATH`.
pub fn find_git(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    match given {
        Some(p) => Ok(p.to_path_buf()),
        None => which::which("git").context("git not found in PATH: install git"),
    }
}

/// Runs the git server until SIGTERM or SIGINT. Blocking.
pub fn run(config: Config) -> anyhow::Result<()> {
    let api = ApiClient::from_env().context(
        "the git server checks tokens with the API server: set ARVADOS_API_HOST (and \
         ARVADOS_API_HOST_INSECURE=true for a self-signed certificate)",
    )?;
    anyhow::ensure!(
        config.repo_root.is_dir(),
        "-repo-root {}: not a directory",
        config.repo_root.display()
    );
    tracing::info!(
        "repositories in {}, tokens checked at {}",
        config.repo_root.display(),
        api.base_url()
    );
    let listen = cibox_runtime::server::Listen {
        name: "arv-git-httpd",
        listen: config.address.clone(),
        pid_file: config.pid_file.clone(),
        limits: config.limits.clone(),
    };
    let server = Arc::new(GitServer {
        config,
        api,
        allowed: TokenCache::new(PERMISSION_TTL),
    });
    let router = axum::Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(server);
    cibox_runtime::server::run(&listen, router)
}

/// The directory of a run's repositories in the run directory (`RUN_DIR/git`, removed by
/// `stop_arv-git-httpd` when the run made it).
pub const REPO_BASE: &str = "git";

/// Where a run's repositories live: `RUN_DIR/git`.
pub fn repo_base(run_dir: &Path) -> PathBuf {
    run_dir.join(REPO_BASE)
}

/// The repository root of a run: `RUN_DIR/git/test`, as the seed lays it out.
pub fn repo_root(run_dir: &Path) -> PathBuf {
    repo_base(run_dir).join("test")
}

fn git_in(git: &Path, dir: &Path, args: &[&str], stdin: Option<&str>) -> anyhow::Result<String> {
    let mut command = Command::new(git);
    command
        .arg("--git-dir")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "cibox")
        .env("GIT_AUTHOR_EMAIL", "cibox@localhost")
        .env("GIT_COMMITTER_NAME", "cibox")
        .env("GIT_COMMITTER_EMAIL", "cibox@localhost")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", git.display()))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or("").as_bytes())?;
    }
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Makes `DIR` a bare repository with one commit (a README naming the repository) on
/// `master`, pushable over HTTP.
pub fn make_bare_repository(git: &Path, dir: &Path, name: &str) -> anyhow::Result<()> {
    let out = Command::new(git)
        .args(["init", "--quiet", "--bare", "--initial-branch=master"])
        .arg(dir)
        .output()
        .with_context(|| format!("cannot run {}", git.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "git init {} failed: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    git_in(git, dir, &["config", "http.receivepack", "true"], None)?;
    let blob = git_in(
        git,
        dir,
        &["hash-object", "-w", "--stdin"],
        Some(&format!("{name}: a test repository made by cibox\n")),
    )?;
    let tree = git_in(
        git,
        dir,
        &["mktree"],
        Some(&format!("100644 blob {blob}\tREADME\n")),
    )?;
    let commit = git_in(
        git,
        dir,
        &["commit-tree", &tree, "-m", "initial commit"],
        None,
    )?;
    git_in(
        git,
        dir,
        &["update-ref", "refs/heads/master", &commit],
        None,
    )?;
    Ok(())
}

/// Creates `ROOT/UUID.git` for each repository the API server lists (with `token`) that has
/// none yet. Each is built whole in a temporary directory beside it (`ROOT/.tmp-UUID-...`)
/// and renamed into place, so a repository is there complete or not at all. `cancelled` is
/// asked between repositories; once it says so, the rest are not made. Returns the directory
/// names made (`UUID.git`) with the repositories' names; on an error, those made so far are
/// returned with it, for the caller to remove.
pub fn make_fixture_repositories(
    api: &ApiClient,
    token: &str,
    git: &Path,
    root: &Path,
    cancelled: &dyn Fn() -> bool,
) -> (Vec<(String, String)>, anyhow::Result<()>) {
    let mut made = Vec::new();
    let result = (|| {
        std::fs::create_dir_all(root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let items = api
            .list("repositories", token, &serde_json::json!([]))
            .context("listing the API server's repositories")?;
        for item in items {
            if cancelled() {
                return Ok(());
            }
            let (Some(uuid), Some(name)) = (
                item.get("uuid").and_then(Value::as_str),
                item.get("name").and_then(Value::as_str),
            ) else {
                continue;
            };
            if repo_dir(root, uuid, name).is_some() {
                continue;
            }
            let dir = format!("{uuid}.git");
            anyhow::ensure!(
                !dir.contains('/') && !uuid.starts_with('.'),
                "the API server lists a repository with a bad uuid {uuid:?}"
            );
            let building = tempfile::Builder::new()
                .prefix(&format!(".tmp-{uuid}-"))
                .tempdir_in(root)
                .with_context(|| format!("cannot create a directory in {}", root.display()))?;
            make_bare_repository(git, &building.path().join("repo"), name)?;
            std::fs::rename(building.path().join("repo"), root.join(&dir)).with_context(|| {
                format!("cannot move repository {name} into {}", root.display())
            })?;
            made.push((dir, name.to_string()));
        }
        Ok(())
    })();
    (made, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_paths() {
        assert_eq!(
            split_repo_path("/foo.git/info/refs"),
            Some(("foo".into(), "info/refs".into()))
        );
        assert_eq!(
            split_repo_path("/active/foo/.git/git-upload-pack"),
            Some(("active/foo".into(), "git-upload-pack".into()))
        );
        assert_eq!(split_repo_path("/foo/info/refs"), None);
        assert_eq!(split_repo_path("/../x.git/HEAD"), None);
        assert_eq!(split_repo_path("/.git/HEAD"), None);
    }

    #[test]
    fn tokens_from_basic_and_oauth2() {
        let mut h = HeaderMap::new();
        assert_eq!(request_token(&h), None);
        let basic = base64::engine::general_purpose::STANDARD.encode("none:tok3n");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        assert_eq!(request_token(&h).as_deref(), Some("tok3n"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("OAuth2 abc"),
        );
        assert_eq!(request_token(&h).as_deref(), Some("abc"));
        let empty = base64::engine::general_purpose::STANDARD.encode("user:");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {empty}")).unwrap(),
        );
        assert_eq!(request_token(&h), None);
    }

    #[test]
    fn cgi_output_split() {
        let (head, body) =
            split_cgi_output(b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nno")
                .unwrap();
        assert_eq!(head, "Status: 404 Not Found\nContent-Type: text/plain");
        assert_eq!(body, b"no");
        assert!(split_cgi_output(b"garbage").is_none());
    }

    #[test]
    fn bare_repository_with_a_commit() {
        let git = find_git(None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("r.git");
        make_bare_repository(&git, &repo, "r").unwrap();
        let log = git_in(&git, &repo, &["log", "--format=%s", "master"], None).unwrap();
        assert_eq!(log, "initial commit");
        assert_eq!(repo_dir(dir.path(), "x", "r").as_deref(), Some("r.git"));
    }
}
