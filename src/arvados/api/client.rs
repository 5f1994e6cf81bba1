//! cibox's own calls to an Arvados API server: resetting it to fixtures and registering the
//! keepstores `start_keep` started (replacing whatever keep services and disks were there, as
//! the original test launcher does). HTTPS through ureq, trusting either the run directory's
//! certificate or, for an outside server, any certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{method} {url}: HTTP {status}: {message}")]
    Status {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// The server's `errors`, or its body.
        message: String,
    },
    /// No answer (connection, TLS, timeout).
    #[error("{method} {url}: {message}")]
    Transport {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::arvados::tls::TlsError),
}

/// Which server certificates to accept.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only this certificate (the run directory's self-signed one).
    Certificate(PathBuf),
    /// Anything (`ARVADOS_API_HOST_INSECURE`).
    Insecure,
}

/// A client for one API server and token.
pub struct ApiClient {
    agent: ureq::Agent,
    host: String,
    token: String,
}

impl ApiClient {
    /// A client for `https://HOST/` calling with `token`.
    pub fn new(host: &str, token: &str, trust: &Trust) -> Result<ApiClient, ClientError> {
        let tls = match trust {
            Trust::Certificate(path) => crate::arvados::tls::client_config_trusting(path)?,
            Trust::Insecure => crate::arvados::tls::client_config_insecure()?,
        };
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout(Duration::from_secs(30))
            .build();
        Ok(ApiClient {
            agent,
            host: host.to_string(),
            token: token.to_string(),
        })
    }

    /// The host this client calls.
    pub fn host(&self) -> &str {
        &self.host
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, ClientError> {
        let url = format!("https://{}{path}", self.host);
        let request = self
            .agent
            .request(method, &url)
            .set("Authorization", &format!("OAuth2 {}", self.token));
        let result = match body {
            Some(b) => request
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => request.call(),
        };
        match result {
            Ok(response) => {
                let text = response.into_string().unwrap_or_default();
                Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Err(ureq::Error::Status(status, response)) => {
                let text = response.into_string().unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["errors"][0].as_str().map(str::to_string))
                    .unwrap_or_else(|| text.trim().chars().take(200).collect());
                Err(ClientError::Status {
                    method: method.into(),
                    url,
                    status,
                    message,
                })
            }
            Err(e) => Err(ClientError::Transport {
                method: method.into(),
                url,
                message: e.to_string(),
            }),
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call("POST", path, Some(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call("DELETE", path, None)
    }

    /// `POST /database/reset`.
    pub fn reset(&self) -> Result<(), ClientError> {
        self.post("/database/reset", &json!({})).map(|_| ())
    }

    fn uuids(&self, resource: &str) -> Result<Vec<String>, ClientError> {
        let list = self.get(&format!("/arvados/v1/{resource}?limit=1000"))?;
        Ok(list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["uuid"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Replaces every keep service (of type `service_type`) and every keep disk with the
    /// given servers: `(uuid, host, port)`.
    pub fn register_keep_services(
        &self,
        service_type: &str,
        servers: &[(String, String, u16)],
    ) -> Result<(), ClientError> {
        let services = self.get("/arvados/v1/keep_services?limit=1000")?;
        for item in services["items"].as_array().into_iter().flatten() {
            if item["service_type"] == service_type {
                if let Some(uuid) = item["uuid"].as_str() {
                    self.delete(&format!("/arvados/v1/keep_services/{uuid}"))?;
                }
            }
        }
        if service_type == "disk" {
            for uuid in self.uuids("keep_disks")? {
                self.delete(&format!("/arvados/v1/keep_disks/{uuid}"))?;
            }
        }
        for (uuid, host, port) in servers {
            let service = self.post(
                "/arvados/v1/keep_services",
                &json!({"keep_service": {
                    "uuid": uuid,
                    "service_host": host,
                    "service_port": port,
                    "service_type": service_type,
                    "service_ssl_flag": false,
                }}),
            )?;
            if service_type == "disk" {
                self.post(
                    "/arvados/v1/keep_disks",
                    &json!({"keep_disk": {"keep_service_uuid": service["uuid"]}}),
                )?;
            }
        }
        Ok(())
    }
}
