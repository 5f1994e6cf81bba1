//! The API server's HTTP side: which path and method reach which resource method, who the
//! caller is (`Authorization: OAuth2 TOKEN` or `Bearer TOKEN`, or `api_token` in the query
//! string, v2 tokens included, checked for expiry and scopes), and which error each refusal is
//! ([`super::answer::ApiError`]). Anything this test server does not implement is a 404 or 501
//! naming it.
//!
//! The caller is authenticated before a byte of the body is read, and the body is parsed as it
//! arrives ([`super::body`]). The store's lock is held only to look records up or change them:
//! list calls take a snapshot of the table and filter, sort and sign after letting it go, and
//! a panic while it was held (which poisons a `Mutex`) does not make later requests fail
//! ([`Server::store`] recovers the guard; the store's changes are single map operations, so it
//! is never left half changed).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::Value;

use super::answer::ApiError;
use super::body::RequestBody;
use super::client_json::Budget;
use super::permissions::{self, Access};
use super::query::Params;
use super::resources::{self, Call, Caller};
use super::state::Store;

/// The server: its records and where the blob signing key shared with the keepstores is.
pub struct Server {
    /// The records (take them with [`Server::store`]).
    pub records: Mutex<Store>,
    /// The keepstores' signing key file (read on every collection call, since `start_keep`
    /// may write or remove it while the server runs).
    pub key_file: Option<PathBuf>,
}

impl Server {
    /// The records, locked; a lock poisoned by a panic is taken over, not refused.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One HTTP request, reduced to what routing needs.
pub struct Request {
    /// The method (after `X-Http-Method-Override`).
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string.
    pub query: String,
    /// The `Authorization` header.
    pub authorization: Option<String>,
    /// The `Host` header (for the discovery document's URLs).
    pub host: String,
    /// `X-External-Client: 1`.
    pub external: bool,
    /// `X-Http-Method-Override`, when sent.
    pub method_override: Option<String>,
    /// The body, read only once the caller is authenticated.
    pub body: RequestBody,
    /// The body is `application/x-www-form-urlencoded`.
    pub form_body: bool,
}

/// Answers a request: its JSON answer, or the error it gets.
pub fn answer(server: &Server, req: Request) -> Result<Value, ApiError> {
    route(server, req)
}

/// The keepstores' key from the key file, when there is one.
fn read_key(server: &Server) -> Option<Vec<u8>> {
    let file = server.key_file.as_ref()?;
    let text = std::fs::read_to_string(file).ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| key.as_bytes().to_vec())
}

/// The signing key and whether signatures are enforced: the key file's key when `start_keep`
/// wrote one, else the cluster's (locators are signed either way); enforced when `start_keep`
/// wrote the marker beside the key file (its keepstores check signatures, so the server does
/// too).
fn signing(server: &Server) -> (Vec<u8>, bool) {
    let enforce = server
        .key_file
        .as_ref()
        .is_some_and(|f| f.with_file_name(super::cluster::ENFORCE_FILE).exists());
    let key =
        read_key(server).unwrap_or_else(|| super::cluster::BLOB_SIGNING_KEY.as_bytes().to_vec());
    (key, enforce)
}

/// The parameters a list or a method reads as JSON, which clients may send as JSON text.
const JSON_PARAMS: &[&str] = &["filters", "where", "order", "select", "include"];

fn route(server: &Server, mut req: Request) -> Result<Value, ApiError> {
    // One budget of JSON values for everything the request brings.
    let budget = Budget::default();
    let mut params = Params::from_pairs(&req.query, &budget)?;
    let mut form_body = false;
    if let Some(method) = req.method_override.take() {
        if req.method == "POST" {
            req.method = method.to_ascii_uppercase();
            form_body = req.form_body;
        }
    }
    let path = req.path.trim_end_matches('/').to_string();
    if path == "/discovery/v1/apis/arvados/v1/rest" {
        return Ok(super::discovery::document(&req.host));
    }
    if path == "/arvados/v1/config" && req.method == "GET" {
        return Ok(super::cluster::config());
    }
    let decoded: Vec<String> = match path.strip_prefix("/arvados/v1/") {
        Some(rest) => rest
            .split('/')
            .map(|segment| cibox_runtime::percent::decode_lenient(segment, false))
            .collect(),
        None if path == "/database/reset" => vec![],
        None => {
            return Err(ApiError::new(
                404,
                format!(
                    "not found: {} (this is a cibox test API server: /arvados/v1/...)",
                    req.path
                ),
            ))
        }
    };
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    if let Some(res) = segments.first() {
        if resources::resource(res).is_none() {
            return Err(if resources::NOT_IMPLEMENTED.contains(res) {
                ApiError::new(
                    501,
                    format!("resource {res:?} is not implemented by this cibox test API server"),
                )
            } else {
                ApiError::new(404, format!("no resource named {res:?}"))
            });
        }
    }

    // Who calls, before anything of the body is read.
    let caller = authenticate(server, &req, &params)?;
    check_scopes(&caller, &req.method, &req.path)?;
    let inactive_allowed = matches!(
        segments.as_slice(),
        ["users", "current"] | ["api_client_authorizations", "current"]
    );
    if !caller.is_active() && !inactive_allowed {
        return Err(ApiError::new(403, "Forbidden: user is not active"));
    }
    let body = if form_body {
        let form = Params::from_pairs(&req.body.read_text()?, &budget)?;
        params.0.extend(form.0);
        None
    } else {
        req.body.read_json(&budget)?
    };
    params.decode_json(JSON_PARAMS, &budget)?;

    let (key, enforce) = signing(server);
    let method = req.method.as_str();
    // Lists: a snapshot under the lock, the work (filters, order, signing) after it.
    match (method, segments.as_slice()) {
        ("GET", ["keep_services", "accessible"]) => {
            let records = server.store().snapshot("keep_services");
            return resources::keep_services_accessible(&params, req.external, records);
        }
        ("GET", ["groups", "contents"]) => {
            let tables = resources::contents_tables(&server.store());
            return resources::contents(&caller, &params, &key, None, tables);
        }
        ("GET", ["groups", "shared"]) => {
            let tables = resources::contents_tables(&server.store());
            return resources::shared(&caller, &params, &key, tables);
        }
        ("GET", ["links", uuid, "get_permissions"]) => {
            let links = server.store().snapshot("links");
            return resources::get_permissions(&caller, &params, &key, uuid, links);
        }
        ("GET", ["groups", uuid, "contents"]) => {
            let tables = resources::contents_tables(&server.store());
            return resources::contents(&caller, &params, &key, Some(uuid), tables);
        }
        ("GET", ["computed_permissions"]) => {
            let rows = permissions::computed(&server.store());
            let records = rows.into_iter().map(std::sync::Arc::new).collect();
            return resources::list(&caller, &params, &key, "computed_permissions", records);
        }
        ("GET", [res]) => {
            let records = server.store().snapshot(res);
            return resources::list(&caller, &params, &key, res, records);
        }
        _ => {}
    }
    let mut store = server.store();
    let mut call = Call {
        store: &mut store,
        caller,
        params,
        body,
        key,
        enforce,
        external: req.external,
    };
    match (method, segments.as_slice()) {
        ("POST", []) => resources::reset(&mut call),
        ("GET", ["users", "current"]) => resources::users_current(&call),
        ("GET", ["api_client_authorizations", "current"]) => resources::tokens_current(&call),
        ("POST", [res]) => resources::create(&mut call, res),
        ("GET", [res, uuid]) => resources::get(&call, res, uuid),
        ("PUT" | "PATCH", [res, uuid]) => resources::update(&mut call, res, uuid),
        ("DELETE", [res, uuid]) => resources::delete(&mut call, res, uuid),
        ("POST", [res @ ("collections" | "groups"), uuid, "trash"]) => {
            resources::trash(&mut call, res, uuid)
        }
        ("POST", [res @ ("collections" | "groups"), uuid, "untrash"]) => {
            resources::untrash(&mut call, res, uuid)
        }
        (_, []) => Err(ApiError::new(404, "not found: /database/reset takes POST")),
        (m, [res, ..]) => Err(ApiError::new(
            501,
            format!(
                "{m} {} is not implemented for {res} by this cibox test API server",
                req.path
            ),
        )),
    }
}

/// Who `req` comes from (its `Authorization` header, else the `api_token` in `params`): 401
/// for a missing, unknown or expired token or a token whose user is gone. Scopes and an
/// inactive user are the caller's to check.
pub fn authenticate(server: &Server, req: &Request, params: &Params) -> Result<Caller, ApiError> {
    let from_header = req.authorization.as_deref().and_then(|h| {
        let (scheme, token) = h.trim().split_once(' ')?;
        matches!(scheme.to_ascii_lowercase().as_str(), "oauth2" | "bearer")
            .then(|| token.trim().to_string())
    });
    let token = from_header
        .or_else(|| {
            params
                .get("api_token")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new(401, "Not logged in: no API token given"))?;
    let (uuid, secret) = match token.strip_prefix("v2/") {
        Some(rest) => {
            let (uuid, secret) = rest
                .split_once('/')
                .ok_or_else(|| ApiError::new(401, "Not logged in: malformed v2 token"))?;
            (Some(uuid.to_string()), secret.to_string())
        }
        None => (None, token),
    };
    let store = server.store();
    let record = store
        .token(&secret)
        .filter(|t| uuid.as_deref().is_none_or(|u| t["uuid"] == u))
        .cloned()
        .ok_or_else(|| ApiError::new(401, "Not logged in: the API token is not valid"))?;
    let expires = record["expires_at"].as_str().unwrap_or_default();
    let expired = chrono::DateTime::parse_from_rfc3339(expires)
        .map(|t| t < chrono::Utc::now())
        .unwrap_or(false);
    if expired {
        return Err(ApiError::new(
            401,
            "Not logged in: the API token has expired",
        ));
    }
    let owner = record["owner_uuid"].as_str().unwrap_or_default();
    let user = store
        .get("users", owner)
        .cloned()
        .ok_or_else(|| ApiError::new(401, "Not logged in: the token's user does not exist"))?;
    let access = Access::compute(&store, &user);
    Ok(Caller {
        token: record,
        secret,
        user,
        access,
    })
}

/// A token's scopes: `all`, or `METHOD /path` entries, exact, or a prefix when they end in `/`.
fn check_scopes(caller: &Caller, method: &str, path: &str) -> Result<(), ApiError> {
    let scopes = caller.token["scopes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let request = format!("{method} {path}");
    let allowed = scopes
        .iter()
        .filter_map(Value::as_str)
        .any(|s| s == "all" || s == request || (s.ends_with('/') && request.starts_with(s)));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            format!("Forbidden: the token's scopes do not allow {request}"),
        ))
    }
}
