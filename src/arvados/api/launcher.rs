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
//! With `ARVADOS_TEST_API_HOST` set, a server given by the caller is used instead: `start`
//! only resets it to fixtures and `stop` leaves it alone, as the original does.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::fixtures;
use crate::arvados::apiclient::{ApiClient, Trust};
use crate::arvados::launcher::RUN_DIR_WAIT;
use crate::arvados::tls;
use crate::process::{self, Daemon, DaemonSpec, Ending, IfMissing, RunDir, WaitError};

/// Pid file name.
pub const PID_FILE: &str = "api.pid";
/// Port file name.
pub const PORT_FILE: &str = "api.port";
/// State file name.
pub const STATE_FILE: &str = "api.state.json";
/// The variable naming an API server started by someone else.
pub const EXTERNAL_HOST_VAR: &str = "ARVADOS_TEST_API_HOST";

const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_GRACE: Duration = Duration::from_secs(5);

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

/// The `export` lines `--auth NAME` prints: token, host, insecure.
pub fn auth_exports(host: &str, fixture: &str) -> anyhow::Result<String> {
    let token = fixtures::token(fixture).with_context(|| {
        format!(
            "--auth {fixture}: no such token fixture (one of: {})",
            fixtures::token_names().join(", ")
        )
    })?;
    Ok(format!(
        "export ARVADOS_API_TOKEN={}\nexport ARVADOS_API_HOST={}\nexport ARVADOS_API_HOST_INSECURE=true\n",
        crate::arvados::launcher::sh_quote(token),
        crate::arvados::launcher::sh_quote(host)
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
    if let Some(host) = running_host(run_dir) {
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

/// `127.0.0.1:PORT` of the server running in `run_dir`, if one is.
pub fn running_host(run_dir: &Path) -> Option<String> {
    process::pid_file_owner(&run_dir.join(PID_FILE)).ok()??;
    let port: u16 = std::fs::read_to_string(run_dir.join(PORT_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(format!("127.0.0.1:{port}"))
}

/// Starts the API server in `run_dir` (stopping one left there first), or resets the outside
/// server `ARVADOS_TEST_API_HOST` names.
pub fn start(run_dir: &Path) -> anyhow::Result<Started> {
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
    // Checked (ours, not writable by others) and locked for the whole start.
    let lock = RunDir::lock(run_dir, IfMissing::Create, RUN_DIR_WAIT)?
        .context("the run directory vanished")?;
    stop_locked(lock.path()).context("stopping the API server left from an earlier start")?;
    let run_dir = std::fs::canonicalize(lock.path())?;
    let cert = run_dir.join(tls::CERT_FILE);
    let key = run_dir.join(tls::KEY_FILE);
    if !(cert.exists() && key.exists()) {
        tls::write_self_signed(&cert, &key)?;
    }
    let program = std::env::current_exe().context("cannot find the cibox binary")?;
    let pid_path = run_dir.join(PID_FILE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = process::free_loopback_port().context("finding a free port")?;
        process::write_atomic(
            &run_dir.join(PORT_FILE),
            format!("{port}\n").as_bytes(),
            0o644,
        )?;
        let spec = DaemonSpec::new(&program, "api")
            .arg("apiserver")
            .arg(format!("-listen=127.0.0.1:{port}"))
            .arg(format!("-pid={}", pid_path.display()))
            .arg(format!("-tls-cert={}", cert.display()))
            .arg(format!("-tls-key={}", key.display()))
            .arg(format!("-state={}", run_dir.join(STATE_FILE).display()))
            .arg(format!(
                "-blob-signing-key-file={}",
                run_dir.join(crate::arvados::launcher::KEY_FILE).display()
            ));
        let mut daemon = Daemon::spawn(&spec)?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match daemon.wait_until_accepting(addr, START_TIMEOUT) {
            Ok(()) => {
                let pid = daemon.pid();
                daemon.detach();
                return Ok(Started {
                    host: format!("127.0.0.1:{port}"),
                    pid: Some(pid),
                    certificate: Some(cert),
                    external: false,
                });
            }
            Err(WaitError::Exited { last_lines, .. })
                if attempt < 3 && last_lines.iter().any(|l| l.contains("in use")) =>
            {
                continue;
            }
            Err(e) => {
                let _ = daemon.kill();
                remove_files(&run_dir);
                return Err(anyhow::Error::from(e).context("starting the API server"));
            }
        }
    }
}

fn remove_files(run_dir: &Path) {
    for name in [PORT_FILE, STATE_FILE, tls::CERT_FILE, tls::KEY_FILE] {
        let path = run_dir.join(name);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("cibox: cannot remove {}: {e}", path.display());
            }
        }
    }
    let pid = run_dir.join(PID_FILE);
    if !matches!(process::read_pid_file(&pid), Ok(Some(i)) if i.locked) {
        let _ = std::fs::remove_file(pid);
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
        Some(lock) => stop_locked(lock.path()),
        None => Ok(()),
    }
}

/// [`stop`] in a run directory the caller holds locked.
fn stop_locked(run_dir: &Path) -> anyhow::Result<()> {
    match process::pid_file_owner(&run_dir.join(PID_FILE)) {
        Ok(Some(pid)) => match process::terminate(&[pid], STOP_GRACE).first() {
            Some(Ending::Survived) => bail!("the API server (pid {pid}) survived SIGKILL"),
            Some(Ending::Killed) => {
                eprintln!("cibox: the API server (pid {pid}) ignored SIGTERM; killed")
            }
            _ => {}
        },
        Ok(None) => {}
        Err(e) => eprintln!("cibox: ignoring {e}"),
    }
    remove_files(run_dir);
    Ok(())
}
