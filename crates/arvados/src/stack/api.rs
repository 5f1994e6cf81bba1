//! Starting and stopping the API server in a run directory (`start`/`stop` of the original
//! test launcher, the `start_api`/`stop_api` applets).
//!
//! | file | holds |
//! |---|---|
//! | `api.pid` | the server's pid (written and locked by the server) |
//! | `api.port` | its HTTPS port on 127.0.0.1 |
//! | `api.state.json` | its records |
//! | `self-signed.pem`, `self-signed.key` | the TLS certificate and key (made when missing) |
//!
//! The state file and a certificate the start made are claimed in the run's manifest
//! ([`owned`]): the stop removes them, never a certificate or state file it did not make.
//!
//! With `ARVADOS_TEST_API_HOST` set, a server given by the caller is used instead: `start`
//! only resets it to fixtures and `stop` leaves it alone, as the original does.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::launcher::{self, Instance, Launch};
use super::owned;
use super::services::sh_quote;
use crate::api::fixtures;
use crate::apiclient::{ApiClient, Trust};
use crate::rundir::{self, RUN_DIR_WAIT};
use cibox_runtime::process::{IfMissing, RunDir};
use cibox_runtime::tls;

/// The service name: its pid and port files are `api.pid` and `api.port`.
pub const NAME: &str = rundir::API;
/// State file name.
pub const STATE_FILE: &str = "api.state.json";
/// The variable naming an API server started by someone else.
pub const EXTERNAL_HOST_VAR: &str = "ARVADOS_TEST_API_HOST";

/// A running API server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    /// `HOST:PORT` for `ARVADOS_API_HOST`.
    pub host: String,
    /// Its pid (none for an outside server).
    pub pid: Option<u32>,
    /// The certificate clients may trust (none for an outside server).
    pub certificate: Option<PathBuf>,
    /// Whether it is an outside server (`ARVADOS_TEST_API_HOST`).
    pub external: bool,
}

/// The token fixtures `(name, token)` of the fixture files in `dir` (`--fixtures DIR`).
pub fn fixture_tokens(dir: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let tables = crate::api::fixture_files::load(dir)?;
    Ok(tables
        .get("api_client_authorizations")
        .into_iter()
        .flat_map(|t| t.values())
        .filter_map(|t| {
            Some((
                t["fixture_name"].as_str()?.to_string(),
                t["api_token"].as_str()?.to_string(),
            ))
        })
        .collect())
}

/// The `export` lines `--auth NAME` prints: token, host, insecure. `tokens` are the fixture
/// files' tokens with `--fixtures`, else the built-in ones are used.
pub fn auth_exports(
    host: &str,
    fixture: &str,
    tokens: Option<&[(String, String)]>,
) -> anyhow::Result<String> {
    let token = match tokens {
        Some(tokens) => tokens.iter().find(|t| t.0 == fixture).map(|t| t.1.clone()),
        None => fixtures::token(fixture).map(str::to_string),
    };
    let token = token.with_context(|| {
        let mut names: Vec<String> = match tokens {
            Some(tokens) => tokens.iter().map(|t| t.0.clone()).collect(),
            None => fixtures::token_names()
                .iter()
                .map(|n| n.to_string())
                .collect(),
        };
        names.sort();
        format!(
            "--auth {fixture}: no such token fixture (one of: {})",
            names.join(", ")
        )
    })?;
    Ok(format!(
        "export ARVADOS_API_TOKEN={}\nexport ARVADOS_API_HOST={}\nexport ARVADOS_API_HOST_INSECURE=true\n",
        sh_quote(&token),
        sh_quote(host)
    ))
}

fn admin_token() -> &'static str {
    fixtures::token("admin").unwrap_or_default()
}

/// The external server named by `ARVADOS_TEST_API_HOST`, if any.
pub fn external_host() -> Option<String> {
    std::env::var(EXTERNAL_HOST_VAR)
        .ok()
        .filter(|h| !h.trim().is_empty())
}

/// A client with admin rights on the API server of `run_dir` (when one is running there), or on
/// the one `ARVADOS_TEST_API_HOST` names.
pub fn admin_client(run_dir: &Path) -> anyhow::Result<Option<ApiClient>> {
    if let Some(host) = rundir::running_api_host(run_dir) {
        let cert = run_dir.join(tls::CERT_FILE);
        return Ok(Some(
            ApiClient::new(&host, &Trust::Certificate(cert))?.with_token(admin_token()),
        ));
    }
    if let Some(host) = external_host() {
        return Ok(Some(
            ApiClient::new(&host, &Trust::Insecure)?.with_token(admin_token()),
        ));
    }
    Ok(None)
}

/// Starts the API server in `run_dir` (stopping one left there first), from the fixture files
/// of `fixtures` (an Arvados checkout) when given, or resets the outside server
/// `ARVADOS_TEST_API_HOST` names. On failure or a signal ([`launcher::Launch`]) the server is
/// stopped and what this start made removed.
pub fn start(run_dir: &Path, fixtures: Option<&Path>) -> anyhow::Result<Started> {
    let fixtures = fixtures
        .map(|d| std::fs::canonicalize(d).with_context(|| format!("--fixtures {}", d.display())))
        .transpose()?;
    if let Some(host) = external_host() {
        let client = ApiClient::new(&host, &Trust::Insecure)?.with_token(admin_token());
        client
            .reset()
            .with_context(|| format!("resetting the API server {EXTERNAL_HOST_VAR}={host}"))?;
        return Ok(Started {
            host,
            pid: None,
            certificate: None,
            external: true,
        });
    }
    let launch = Launch::begin(run_dir)?;
    stop_locked(launch.lock()).context("stopping the API server left from an earlier start")?;
    let result = (|| {
        launch.check()?;
        let (lock, run_dir) = (launch.lock(), launch.run_dir());
        let cert = run_dir.join(tls::CERT_FILE);
        let key = run_dir.join(tls::KEY_FILE);
        if !(cert.exists() && key.exists()) {
            owned::claim(lock, tls::CERT_FILE)?;
            owned::claim(lock, tls::KEY_FILE)?;
            tls::write_self_signed(&cert, &key)?;
        }
        owned::claim(lock, STATE_FILE)?;
        let mut more = [
            format!("-tls-cert={}", cert.display()),
            format!("-tls-key={}", key.display()),
            format!("-state={}", run_dir.join(STATE_FILE).display()),
            format!(
                "-blob-signing-key-file={}",
                run_dir.join(rundir::KEY_FILE).display()
            ),
        ]
        .map(OsString::from)
        .to_vec();
        if let Some(dir) = &fixtures {
            let mut flag = OsString::from("-fixtures=");
            flag.push(dir.as_os_str());
            more.push(flag);
        }
        let instance = Instance::applet(run_dir, NAME, "apiserver", "listen", more)?;
        let started = launch.start(&instance).context("starting the API server")?;
        Ok(Started {
            host: format!("127.0.0.1:{}", started.port),
            pid: Some(started.pid),
            certificate: Some(cert),
            external: false,
        })
    })();
    launch.finish(result, remove_own_files)
}

/// Removes what the API server has beside its pid and port files (which [`launcher`] owns):
/// what the run recorded as its own of the state file and the certificate.
fn remove_own_files(lock: &RunDir) {
    for name in [STATE_FILE, tls::CERT_FILE, tls::KEY_FILE] {
        owned::remove(lock, name);
    }
}

/// Stops the API server of `run_dir` (SIGTERM, SIGKILL after 5 s; a stale or reused pid is
/// never signalled) and removes its files. Nothing running is not an error; with
/// `ARVADOS_TEST_API_HOST` set nothing is done.
pub fn stop(run_dir: &Path) -> anyhow::Result<()> {
    if external_host().is_some() {
        return Ok(());
    }
    match RunDir::lock(run_dir, IfMissing::Report, RUN_DIR_WAIT)? {
        Some(lock) => stop_locked(&lock),
        None => Ok(()),
    }
}

/// [`stop`] in a run directory the caller holds locked.
fn stop_locked(lock: &RunDir) -> anyhow::Result<()> {
    launcher::stop_locked(lock.path(), NAME)?;
    remove_own_files(lock);
    Ok(())
}
