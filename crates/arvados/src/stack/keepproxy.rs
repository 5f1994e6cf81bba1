//! Starting and stopping keepproxy for a test run (`start_keep_proxy`, `stop_keep_proxy`): the
//! `cibox keepproxy` daemon as service [`NAME`] in the run directory, registered with the API
//! server as the run's `proxy` keep service when there is one. The proxy itself is
//! [`crate::keepproxy`].

use std::ffi::OsString;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::launcher::{self, Instance, Launch};
use crate::apiclient::{ApiClient, RunApi};
pub use crate::keepproxy::NAME;

/// What `start_keep_proxy` started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedProxy {
    /// The proxy's pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:PORT`, for `ARVADOS_KEEP_PROXY`.
    pub url: String,
    /// The uuid it was registered as with the API server, when one runs.
    pub service_uuid: Option<String>,
}

/// Starts `cibox keepproxy` for the run in `run_dir` (stopping an earlier one), waits until
/// it accepts, and registers it with the API server as the `proxy` keep service (replacing
/// older proxy records) when there is one (`ARVADOS_API_HOST`, or the run directory's). On
/// failure or a signal ([`launcher::Launch`]) the proxy is stopped again.
pub fn start(run_dir: &Path, extra: &[OsString]) -> anyhow::Result<StartedProxy> {
    let launch = Launch::begin(run_dir)?;
    launcher::stop_locked(launch.run_dir(), NAME)
        .with_context(|| format!("stopping the {NAME} left from an earlier start"))?;
    let result = (|| {
        launch.check()?;
        let run_dir = launch.run_dir();
        let api = RunApi::find(run_dir);
        let mut more: Vec<OsString> = vec![format!("-run-dir={}", run_dir.display()).into()];
        more.extend(extra.iter().cloned());
        let env = api.as_ref().map(|a| a.env(true)).unwrap_or_default();
        let instance = Instance::applet(run_dir, NAME, "keepproxy", "listen", more)?.env(env);
        let started = launch.start(&instance)?;
        let service_uuid = match &api {
            Some(api) => Some(
                register(&api.client, &api.token, started.port)
                    .context("registering keepproxy with the API server")?,
            ),
            None => None,
        };
        Ok(StartedProxy {
            pid: started.pid,
            port: started.port,
            url: format!("http://127.0.0.1:{}", started.port),
            service_uuid,
        })
    })();
    launch.finish(result, |_| {})
}

/// Replaces the API server's `proxy` keep services with one for `port`; its uuid.
fn register(api: &ApiClient, token: &str, port: u16) -> anyhow::Result<String> {
    let old = api.list(
        "keep_services",
        token,
        &serde_json::json!([["service_type", "=", "proxy"]]),
    )?;
    for service in old {
        if let Some(uuid) = service.get("uuid").and_then(Value::as_str) {
            api.call("DELETE", &format!("keep_services/{uuid}"), token, &[], None)?;
        }
    }
    let body = serde_json::json!({"keep_service": {
        "service_host": "127.0.0.1",
        "service_port": port,
        "service_type": "proxy",
        "service_ssl_flag": false,
    }});
    let created = api.call("POST", "keep_services", token, &[], Some(&body))?;
    created
        .get("uuid")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the API server's answer has no uuid"))
}

/// `stop_keep_proxy`.
pub fn stop(run_dir: &Path) -> anyhow::Result<()> {
    launcher::stop(run_dir, NAME).map(|_| ())
}
