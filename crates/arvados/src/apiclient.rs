//! The one blocking client for the Arvados API server, for everything in cibox that calls it:
//! the services that stand beside it (keepproxy, the git server: token checks, keep service
//! discovery, repository lookup, each call with the token it is about) and the launchers
//! (`start_api`'s reset, `start_keep`'s registration, with a default token the client holds).
//! A client trusts the system roots, one certificate (the run directory's self-signed one) or
//! anything ([`Trust`]). [`RunApi::find`] picks the server: `ARVADOS_API_HOST` (certificate
//! checks skipped when `ARVADOS_API_HOST_INSECURE` is true), else the one `start_api` runs in
//! the run directory. Answers to token checks are kept for a short while in a [`TokenCache`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a request to the API server may take.
const API_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("API server answered {status} for {what}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// Which call.
        what: String,
        /// The server's error text.
        message: String,
    },
    /// The server could not be reached.
    #[error("cannot reach the API server at {host} for {what}: {message}")]
    Transport {
        /// `ARVADOS_API_HOST`.
        host: String,
        /// Which call.
        what: String,
        /// The cause.
        message: String,
    },
    /// The answer was not the JSON expected.
    #[error("API server gave a bad answer for {what}: {message}")]
    BadAnswer {
        /// Which call.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] cibox_runtime::tls::TlsError),
}

/// Which server certificates a client accepts.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Those the system's roots vouch for.
    System,
    /// Only this certificate (the run directory's self-signed one).
    Certificate(PathBuf),
    /// Anything (`ARVADOS_API_HOST_INSECURE`).
    Insecure,
}

impl ApiError {
    /// The HTTP status the server answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Where the API server is and how to talk to it.
#[derive(Clone)]
pub struct ApiClient {
    host: String,
    agent: ureq::Agent,
    /// The token of the calls that name none ([`ApiClient::with_token`]).
    token: String,
}

impl std::fmt::Debug for ApiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiClient")
            .field("host", &self.host)
            .finish()
    }
}

/// Whether an environment value means true, as the Arvados SDKs read `*_INSECURE`.
pub fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// A ureq agent with `timeout` per request; with `insecure`, server certificates are not
/// checked (self-signed test certificates).
pub fn http_agent(timeout: Duration, insecure: bool) -> ureq::Agent {
    let mut builder = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout(timeout);
    if insecure {
        if let Ok(config) = cibox_runtime::tls::client_config_insecure() {
            builder = builder.tls_config(Arc::new(config));
        }
    }
    builder.build()
}

/// The API server a run's services talk to, with the token they act with.
#[derive(Debug, Clone)]
pub struct RunApi {
    /// The client.
    pub client: ApiClient,
    /// `HOST:PORT`, for `ARVADOS_API_HOST`.
    pub host: String,
    /// The token: `ARVADOS_API_TOKEN`, or the admin fixture for the run directory's server.
    pub token: String,
}

impl RunApi {
    /// `ARVADOS_API_HOST` when set (with `ARVADOS_API_TOKEN`), else the API server running in
    /// `run_dir` (with the admin fixture token), else none.
    pub fn find(run_dir: &std::path::Path) -> Option<RunApi> {
        if let Some(client) = ApiClient::from_env() {
            let host = std::env::var("ARVADOS_API_HOST").unwrap_or_default();
            return Some(RunApi {
                client,
                host: host.trim().to_string(),
                token: std::env::var("ARVADOS_API_TOKEN").unwrap_or_default(),
            });
        }
        let host = crate::rundir::running_api_host(run_dir)?;
        Some(RunApi {
            client: ApiClient::new(&host, &Trust::Insecure).ok()?,
            token: crate::api::fixtures::token("admin")?.to_string(),
            host,
        })
    }

    /// The environment a daemon needs to reach this API server (`ARVADOS_API_HOST`,
    /// `ARVADOS_API_HOST_INSECURE`, and with `with_token` `ARVADOS_API_TOKEN`).
    pub fn env(&self, with_token: bool) -> Vec<(std::ffi::OsString, std::ffi::OsString)> {
        let mut env = vec![
            ("ARVADOS_API_HOST".into(), self.host.clone().into()),
            ("ARVADOS_API_HOST_INSECURE".into(), "true".into()),
        ];
        if with_token {
            env.push(("ARVADOS_API_TOKEN".into(), self.token.clone().into()));
        }
        env
    }
}

impl ApiClient {
    /// A client for `host` (`HOST:PORT`, or a full `https://` URL) accepting the certificates
    /// `trust` names, without a default token.
    pub fn new(host: &str, trust: &Trust) -> Result<ApiClient, ApiError> {
        let host = host.trim_end_matches('/');
        let host = if host.contains("://") {
            host.to_string()
        } else {
            format!("https://{host}")
        };
        let agent = match trust {
            Trust::System => http_agent(API_TIMEOUT, false),
            Trust::Insecure => http_agent(API_TIMEOUT, true),
            Trust::Certificate(path) => ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(API_TIMEOUT)
                .tls_config(Arc::new(cibox_runtime::tls::client_config_trusting(path)?))
                .build(),
        };
        Ok(ApiClient {
            host,
            agent,
            token: String::new(),
        })
    }

    /// This client with `token` for the calls that name none.
    pub fn with_token(mut self, token: &str) -> ApiClient {
        self.token = token.to_string();
        self
    }

    /// The client `ARVADOS_API_HOST` and `ARVADOS_API_HOST_INSECURE` describe, if the first
    /// is set.
    pub fn from_env() -> Option<ApiClient> {
        let host = std::env::var("ARVADOS_API_HOST").ok()?;
        if host.trim().is_empty() {
            return None;
        }
        let insecure = std::env::var("ARVADOS_API_HOST_INSECURE")
            .map(|v| truthy(&v))
            .unwrap_or(false);
        let trust = if insecure {
            Trust::Insecure
        } else {
            Trust::System
        };
        ApiClient::new(host.trim(), &trust).ok()
    }

    /// The base URL, `https://HOST:PORT`.
    pub fn base_url(&self) -> &str {
        &self.host
    }

    /// One call: `method` on `/arvados/v1/{path}` with `token`, optional query pairs and JSON
    /// body; the answer's JSON (`null` for an empty body).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        self.request(method, &format!("/arvados/v1/{path}"), token, query, body)
    }

    /// `method` on the server path `path` (from its root, `/...`); as [`ApiClient::call`].
    fn request(
        &self,
        method: &str,
        path: &str,
        token: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        // Errors name API calls as `GET users/current`, other paths whole.
        let what = format!(
            "{method} {}",
            path.strip_prefix("/arvados/v1/").unwrap_or(path)
        );
        let url = format!("{}{path}", self.host);
        let mut request = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("OAuth2 {token}"))
            .set("Accept", "application/json");
        for (k, v) in query {
            request = request.query(k, v);
        }
        let result = match body {
            Some(body) => request
                .set("Content-Type", "application/json")
                .send_string(&body.to_string()),
            None => request.call(),
        };
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.get("errors").and_then(|e| e.as_array()).map(|errors| {
                            errors
                                .iter()
                                .map(|e| e.as_str().map(str::to_string).unwrap_or(e.to_string()))
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                    })
                    .unwrap_or_else(|| text.trim().chars().take(200).collect());
                return Err(ApiError::Status {
                    status,
                    what,
                    message,
                });
            }
            Err(e) => {
                return Err(ApiError::Transport {
                    host: self.host.clone(),
                    what,
                    message: e.to_string(),
                })
            }
        };
        let text = response.into_string().map_err(|e| ApiError::Transport {
            host: self.host.clone(),
            what: what.clone(),
            message: e.to_string(),
        })?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ApiError::BadAnswer {
            what,
            message: e.to_string(),
        })
    }

    /// `users/current` for `token`.
    pub fn current_user(&self, token: &str) -> Result<User, ApiError> {
        let value = self.call("GET", "users/current", token, &[], None)?;
        User::from_json(&value).ok_or_else(|| ApiError::BadAnswer {
            what: "GET users/current".into(),
            message: "no uuid in the answer".into(),
        })
    }

    /// The user of `token` when the token may write: its user is active and its scopes are
    /// `all` (`api_client_authorizations/current`), not a few paths.
    pub fn writer(&self, token: &str) -> Result<User, WriteRefusal> {
        let user = self.current_user(token)?;
        if !user.is_active {
            return Err(WriteRefusal::Inactive(user.uuid));
        }
        let record = self.call("GET", "api_client_authorizations/current", token, &[], None)?;
        let scopes = record.get("scopes").cloned().unwrap_or(Value::Null);
        if !scopes
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "all"))
        {
            return Err(WriteRefusal::Scoped(scopes.to_string()));
        }
        Ok(user)
    }

    /// The `items` of a list call with `filters`.
    pub fn list(
        &self,
        resource: &str,
        token: &str,
        filters: &Value,
    ) -> Result<Vec<Value>, ApiError> {
        let filters = filters.to_string();
        let value = self.call("GET", resource, token, &[("filters", &filters)], None)?;
        items(&value, resource)
    }

    /// `keep_services/accessible`: the services `token` may use.
    pub fn accessible_keep_services(&self, token: &str) -> Result<Vec<Value>, ApiError> {
        let value = self.call("GET", "keep_services/accessible", token, &[], None)?;
        items(&value, "keep_services/accessible")
    }

    /// `POST /database/reset` with the default token: the server back to its fixtures.
    pub fn reset(&self) -> Result<(), ApiError> {
        self.request(
            "POST",
            "/database/reset",
            &self.token,
            &[],
            Some(&json!({})),
        )
        .map(|_| ())
    }

    /// The uuids of up to 1000 `resource` records, with the default token.
    fn uuids(&self, resource: &str) -> Result<Vec<String>, ApiError> {
        let list = self.call("GET", resource, &self.token, &[("limit", "1000")], None)?;
        Ok(items(&list, resource)?
            .iter()
            .filter_map(|i| i["uuid"].as_str().map(str::to_string))
            .collect())
    }

    /// With the default token, replaces every keep service (of type `service_type`) and, for
    /// `disk`, every keep disk with the given servers: `(uuid, host, port)`.
    pub fn register_keep_services(
        &self,
        service_type: &str,
        servers: &[(String, String, u16)],
    ) -> Result<(), ApiError> {
        let token = self.token.as_str();
        let services = self.call("GET", "keep_services", token, &[("limit", "1000")], None)?;
        for item in items(&services, "keep_services")? {
            if item["service_type"] == service_type {
                if let Some(uuid) = item["uuid"].as_str() {
                    self.call("DELETE", &format!("keep_services/{uuid}"), token, &[], None)?;
                }
            }
        }
        if service_type == "disk" {
            for uuid in self.uuids("keep_disks")? {
                self.call("DELETE", &format!("keep_disks/{uuid}"), token, &[], None)?;
            }
        }
        for (uuid, host, port) in servers {
            let body = json!({"keep_service": {
                "uuid": uuid,
                "service_host": host,
                "service_port": port,
                "service_type": service_type,
                "service_ssl_flag": false,
            }});
            let service = self.call("POST", "keep_services", token, &[], Some(&body))?;
            if service_type == "disk" {
                let body = json!({"keep_disk": {"keep_service_uuid": service["uuid"]}});
                self.call("POST", "keep_disks", token, &[], Some(&body))?;
            }
        }
        Ok(())
    }
}

fn items(value: &Value, what: &str) -> Result<Vec<Value>, ApiError> {
    value
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .ok_or_else(|| ApiError::BadAnswer {
            what: what.to_string(),
            message: "no items list in the answer".into(),
        })
}

/// What the services need to know about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its uuid.
    pub uuid: String,
    /// Whether it is an admin.
    pub is_admin: bool,
    /// Whether it is active (an inactive user may look itself up, nothing more).
    pub is_active: bool,
}

/// Why a token may not write (push, store blocks).
#[derive(Debug, thiserror::Error)]
pub enum WriteRefusal {
    /// The API server refused the token or could not be asked.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The token's user is not active.
    #[error("user {0} is not active")]
    Inactive(String),
    /// The token is limited to some paths (a read-only or sharing token).
    #[error("the token's scopes {0} do not allow writing")]
    Scoped(String),
}

impl User {
    fn from_json(value: &Value) -> Option<User> {
        Some(User {
            uuid: value.get("uuid")?.as_str()?.to_string(),
            is_admin: value
                .get("is_admin")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            is_active: value
                .get("is_active")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Answers remembered for a short time, keyed by token (and whatever else the caller puts in
/// the key). Failures are not remembered.
pub struct TokenCache<T> {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, T)>>,
}

/// Most entries kept; the cache is emptied when it grows past this.
const CACHE_ENTRIES: usize = 1000;

impl<T: Clone> TokenCache<T> {
    /// An empty cache whose entries live `ttl`.
    pub fn new(ttl: Duration) -> TokenCache<T> {
        TokenCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered answer for `key`, or `fetch()`'s (remembered when it is `Ok`).
    pub fn get_or_try<E>(&self, key: &str, fetch: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        {
            let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            if let Some((at, value)) = entries.get(key) {
                if at.elapsed() < self.ttl {
                    return Ok(value.clone());
                }
            }
        }
        let value = fetch()?;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), (Instant::now(), value.clone()));
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_remembers_successes_only() {
        let cache: TokenCache<u32> = TokenCache::new(Duration::from_secs(60));
        let mut calls = 0;
        let r: Result<u32, ()> = cache.get_or_try("a", || {
            calls += 1;
            Err(())
        });
        assert!(r.is_err());
        for _ in 0..3 {
            let r: Result<u32, ()> = cache.get_or_try("a", || {
                calls += 1;
                Ok(7)
            });
            assert_eq!(r, Ok(7));
        }
        assert_eq!(calls, 2);
        let short: TokenCache<u32> = TokenCache::new(Duration::ZERO);
        let _: Result<u32, ()> = short.get_or_try("a", || Ok(1));
        let r: Result<u32, ()> = short.get_or_try("a", || Ok(2));
        assert_eq!(r, Ok(2));
    }

    #[test]
    fn hosts_and_flags() {
        assert_eq!(
            ApiClient::new("127.0.0.1:1234/", &Trust::Insecure)
                .unwrap()
                .base_url(),
            "https://127.0.0.1:1234"
        );
        assert_eq!(
            ApiClient::new("http://h:1", &Trust::System)
                .unwrap()
                .base_url(),
            "http://h:1"
        );
        assert!(truthy("True") && truthy("1") && !truthy("") && !truthy("false"));
    }

    #[test]
    fn a_certificate_that_cannot_be_read_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("no-such.pem");
        let err = ApiClient::new("127.0.0.1:1", &Trust::Certificate(missing.clone())).unwrap_err();
        assert!(matches!(err, ApiError::Tls(_)), "{err:?}");
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        assert!(ApiClient::new("127.0.0.1:1", &Trust::Certificate(garbage)).is_err());
    }

    #[test]
    fn a_default_token_is_kept_apart_from_the_host() {
        let client = ApiClient::new("127.0.0.1:1", &Trust::Insecure)
            .unwrap()
            .with_token("secret");
        assert_eq!(client.token, "secret");
        assert!(!format!("{client:?}").contains("secret"));
    }
}
