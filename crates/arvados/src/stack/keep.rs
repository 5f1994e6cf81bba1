//! Starting and stopping a set of keepstore servers for a test run (`start_keep`,
//! `stop_keep`). The file names are [`crate::rundir`]'s.
//!
//! State lives in a run directory (default `$TMPDIR/cibox`):
//!
//! | file | holds |
//! |---|---|
//! | `keepN.pid` | the server's pid (written and locked by the server, `-pid`) |
//! | `keepN.port` | its port on 127.0.0.1 |
//! | `keepN.volume` | its volume directory (a fresh temporary directory) |
//! | `keep.blob_signing_key` | the signing key, when one is used |
//! | `keep.data_manager_token` | the token that may index and delete |
//!
//! The run directory must be ours and not writable by others (the default is under `/tmp`),
//! and is locked for the whole of a start or stop, so two of them never interleave. Servers
//! start concurrently; each one's volume file is written before its volume is created and its
//! port file before it is spawned, so a start killed outright is cleaned up by the next `stop`.
//! SIGINT, SIGTERM and SIGHUP during a start stop what it started and remove its files. When an
//! API server runs in the same run directory (`start_api`), or `ARVADOS_TEST_API_HOST` names
//! one, the servers are registered with it as its keep services and disks.
//!
//! The key and token files are claimed in the run's manifest ([`owned`]): `stop` removes them,
//! and the temporary files an interrupted start left, only when the run made them.
//!
//! `stop` signals only processes proven to be the servers
//! ([`pid_file_check`](cibox_runtime::process::pid_file_check)); anything else a pid file names is
//! left alone, its state files removed.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::owned;
use super::services::remove_quietly;
use crate::rundir::{
    keep_file, keep_numbers, server_uuid, KEY_FILE, RUN_DIR_WAIT, START_TIMEOUT, STOP_GRACE,
    TOKEN_FILE,
};
use cibox_runtime::process::{
    self, Daemon, DaemonSpec, Ending, IfMissing, InterruptGuard, Interrupted, Ownership, RunDir,
    WaitError,
};

/// How long `stop` waits for the pid file of a server whose start was cut short.
const PID_FILE_WAIT: Duration = Duration::from_secs(1);

/// What `start_keep` was asked for.
#[derive(Debug, Clone)]
pub struct StartOptions {
    /// How many servers.
    pub servers: usize,
    /// Pass `-enforce-permissions=true`.
    pub enforce_permissions: bool,
    /// A signing key file to use (copied into the run directory); when enforcing without it,
    /// the test cluster's key, the one the API server signs manifests with.
    pub blob_signing_key: Option<PathBuf>,
    /// Where the state files go.
    pub run_dir: PathBuf,
    /// A keepstore program to run instead of `cibox keepstore`.
    pub keepstore: Option<PathBuf>,
    /// More keepstore flags, appended to ours.
    pub extra_args: Vec<OsString>,
}

/// One started server.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Server {
    /// N in `keepN`.
    pub index: usize,
    /// Its pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its volume directory.
    pub volume: PathBuf,
    /// The keep service uuid the seed registered it as.
    pub uuid: String,
}

/// What `start` started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    /// The run directory.
    pub run_dir: PathBuf,
    /// The servers, in order.
    pub servers: Vec<Server>,
    /// The signing key file, when signing.
    pub blob_signing_key_file: Option<PathBuf>,
    /// The signing key, when signing.
    pub blob_signing_key: Option<String>,
    /// Whether GETs need signatures.
    pub enforce_permissions: bool,
    /// The data manager token (index, delete, trash).
    pub data_manager_token: String,
}

impl Started {
    /// The service URLs, space separated (`ARVADOS_KEEP_SERVICES`).
    pub fn keep_services(&self) -> String {
        self.servers
            .iter()
            .map(|s| s.url.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn random_hex() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The program and leading arguments that run a keepstore.
fn keepstore_command(opts: &StartOptions) -> anyhow::Result<(PathBuf, Vec<OsString>)> {
    match &opts.keepstore {
        Some(p) if p.components().count() > 1 || p.is_absolute() => Ok((p.clone(), vec![])),
        Some(name) => {
            let found = which::which(name)
                .with_context(|| format!("--keepstore {}: not found in PATH", name.display()))?;
            Ok((found, vec![]))
        }
        None => {
            let exe = std::env::current_exe().context("cannot find the cibox binary")?;
            Ok((exe, vec!["keepstore".into()]))
        }
    }
}

/// Starts `opts.servers` keepstores (stopping those of an earlier start in the same run
/// directory first) and waits until each accepts connections. On failure, or on SIGINT,
/// SIGTERM or SIGHUP meanwhile ([`Interrupted`]), every server started here is killed and its
/// files removed.
pub fn start(opts: &StartOptions) -> anyhow::Result<Started> {
    anyhow::ensure!(opts.servers >= 1, "--num-keep-servers must be at least 1");
    let interrupts = InterruptGuard::install().context("catching signals")?;
    let lock = RunDir::lock(&opts.run_dir, IfMissing::Create, RUN_DIR_WAIT)?
        .context("the run directory vanished")?;
    stop_locked(&lock).context("stopping servers left from an earlier start")?;
    let run_dir = std::fs::canonicalize(lock.path())
        .with_context(|| format!("run directory {}", lock.path().display()))?;
    interrupts.check()?;
    let (program, lead) = keepstore_command(opts)?;

    let key = match &opts.blob_signing_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read signing key {}", path.display()))?;
            let text = text.trim().to_string();
            anyhow::ensure!(!text.is_empty(), "signing key {} is empty", path.display());
            Some(text)
        }
        // The cluster's key, which the API server signs manifests with.
        None if opts.enforce_permissions => Some(crate::api::cluster::BLOB_SIGNING_KEY.to_string()),
        None => None,
    };
    let key_file = run_dir.join(KEY_FILE);
    let token = random_hex();
    let token_file = run_dir.join(TOKEN_FILE);
    let cleanup_shared = || {
        owned::remove(&lock, KEY_FILE);
        owned::remove(&lock, TOKEN_FILE);
    };
    if key.is_some() {
        owned::claim(&lock, KEY_FILE)?;
    }
    owned::claim(&lock, TOKEN_FILE)?;
    let written = (|| -> io::Result<()> {
        if let Some(key) = &key {
            process::write_atomic(&key_file, key.as_bytes(), 0o600)?;
        }
        process::write_atomic(&token_file, token.as_bytes(), 0o600)
    })();
    if let Err(e) = written {
        cleanup_shared();
        return Err(e).context("writing the key and token files");
    }

    let mut common: Vec<OsString> = lead;
    common.push(format!("-data-manager-token-file={}", token_file.display()).into());
    if key.is_some() {
        common.push(format!("-permission-key-file={}", key_file.display()).into());
    }
    if opts.enforce_permissions {
        common.push("-enforce-permissions=true".into());
    }

    let results: Vec<anyhow::Result<(Daemon, Server)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..opts.servers)
            .map(|n| {
                let (program, common, run_dir) = (&program, &common, &run_dir);
                let interrupts = &interrupts;
                scope.spawn(move || {
                    start_one(n, program, common, &opts.extra_args, run_dir, interrupts)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("starting a server panicked")))
            })
            .collect()
    });

    let mut servers = Vec::new();
    let mut daemons = Vec::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((daemon, server)) => {
                daemons.push(daemon);
                servers.push(server);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let interrupted = interrupts.caught();
    if !errors.is_empty() || interrupted.is_some() {
        for (daemon, server) in daemons.into_iter().zip(&servers) {
            let _ = daemon.kill();
            clean_server_files(&run_dir, server.index, Some(&server.volume));
        }
        owned::sweep_temporaries(&lock);
        cleanup_shared();
        if let Some(signal) = interrupted {
            return Err(Interrupted { signal }.into());
        }
        bail!("{}", errors.join("; "));
    }
    for daemon in daemons {
        daemon.detach();
    }
    if let Err(e) = register(&run_dir, &servers) {
        let _ = stop(&run_dir);
        return Err(e);
    }
    Ok(Started {
        run_dir,
        servers,
        blob_signing_key_file: key.as_ref().map(|_| key_file.clone()),
        blob_signing_key: key,
        enforce_permissions: opts.enforce_permissions,
        data_manager_token: token,
    })
}

/// Registers the servers with the API server of the run directory (or the one
/// `ARVADOS_TEST_API_HOST` names) as its keep services and disks, replacing the old ones, as
/// the seed does. Without an API server there is nothing to do.
fn register(run_dir: &Path, servers: &[Server]) -> anyhow::Result<()> {
    let Some(client) = super::api::admin_client(run_dir)? else {
        return Ok(());
    };
    let services: Vec<(String, String, u16)> = servers
        .iter()
        .map(|s| (s.uuid.clone(), "127.0.0.1".to_string(), s.port))
        .collect();
    client
        .register_keep_services("disk", &services)
        .with_context(|| {
            format!(
                "registering the keepstores with the API server {}",
                client.base_url()
            )
        })
}

fn clean_server_files(run_dir: &Path, n: usize, volume: Option<&Path>) {
    if let Some(volume) = volume {
        if let Err(e) = std::fs::remove_dir_all(volume) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("cibox: cannot remove volume {}: {e}", volume.display());
            }
        }
    }
    for kind in ["port", "volume", "pid"] {
        let path = keep_file(run_dir, n, kind);
        // Never remove a pid file a live process still holds. A killed server's lock can
        // outlast its main thread by a moment (its other threads are still exiting): wait.
        if kind == "pid" && held_after(&path, PID_FILE_WAIT) {
            continue;
        }
        remove_quietly(&path);
    }
}

/// Whether some process still holds the lock of the pid file at `path` after up to `wait`.
fn held_after(path: &Path, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match process::read_pid_file(path) {
            Ok(Some(info)) if info.locked => {}
            _ => return false,
        }
        if std::time::Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn start_one(
    n: usize,
    program: &Path,
    common: &[OsString],
    extra: &[OsString],
    run_dir: &Path,
    interrupts: &InterruptGuard,
) -> anyhow::Result<(Daemon, Server)> {
    let label = format!("keep{n}");
    // The volume's name is recorded before the directory is made, so a start killed between
    // the two leaves nothing `stop` does not know about.
    let volume = std::env::temp_dir().join(format!(
        "{label}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ));
    let pid_path = keep_file(run_dir, n, "pid");
    let fail = |e: anyhow::Error| {
        clean_server_files(run_dir, n, Some(&volume));
        Err(e)
    };
    if let Err(e) = process::write_atomic(
        &keep_file(run_dir, n, "volume"),
        volume.to_string_lossy().as_bytes(),
        0o644,
    ) {
        return fail(e.into());
    }
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&volume) {
        return fail(anyhow::Error::from(e).context(format!(
            "creating the volume directory {}",
            volume.display()
        )));
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        if let Err(e) = interrupts.check() {
            return fail(e.into());
        }
        let port = match process::free_loopback_port() {
            Ok(p) => p,
            Err(e) => return fail(anyhow::Error::from(e).context("finding a free port")),
        };
        if let Err(e) = process::write_atomic(
            &keep_file(run_dir, n, "port"),
            format!("{port}\n").as_bytes(),
            0o644,
        ) {
            return fail(e.into());
        }
        let spec = DaemonSpec::new(program, &label)
            .args(common.iter().cloned())
            .arg(format!("-volume={}", volume.display()))
            .arg(format!("-listen=127.0.0.1:{port}"))
            .arg(format!("-pid={}", pid_path.display()))
            .args(extra.iter().cloned());
        let mut daemon = match Daemon::spawn(&spec) {
            Ok(d) => d,
            Err(e) => return fail(e.into()),
        };
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        match daemon
            .wait_until_accepting_unless(addr, START_TIMEOUT, || interrupts.caught().is_some())
        {
            Ok(()) => {
                // A keepstore that does not write its pid file gets one from us, for readers;
                // unlocked, it proves nothing, so `stop` will not signal that server.
                if matches!(process::read_pid_file(&pid_path), Ok(None)) {
                    eprintln!(
                        "cibox: {label} did not write {}; stop_keep will not be able to stop it",
                        pid_path.display()
                    );
                    let _ = process::write_atomic(
                        &pid_path,
                        format!("{}\n", daemon.pid()).as_bytes(),
                        0o644,
                    );
                }
                let server = Server {
                    index: n,
                    pid: daemon.pid(),
                    port,
                    url: format!("http://127.0.0.1:{port}"),
                    volume,
                    uuid: server_uuid(n),
                };
                return Ok((daemon, server));
            }
            Err(WaitError::Exited { last_lines, .. })
                if attempt < 3 && last_lines.iter().any(|l| l.contains("in use")) =>
            {
                // Someone took the port between our check and the server's bind: retry.
                continue;
            }
            Err(e) => {
                let _ = daemon.kill();
                return fail(e.into());
            }
        }
    }
}

/// What `stop` did.
#[derive(Debug, Default, Clone)]
pub struct StopReport {
    /// Servers that exited after SIGTERM.
    pub terminated: Vec<usize>,
    /// Servers that needed SIGKILL.
    pub killed: Vec<usize>,
    /// Servers whose pid file was stale (no process any more).
    pub stale: Vec<usize>,
    /// Pid files naming a running process not proven to be the server: not signalled.
    pub not_ours: Vec<usize>,
}

/// Stops every server recorded in `run_dir`: SIGTERM to all at once (only to processes proven
/// to be the servers, see [`process::pid_file_check`]), SIGKILL after 5 s, then removes their
/// volumes and state files, the key and token files, and temporary files a killed start left.
/// Nothing recorded, or no run directory: does nothing.
pub fn stop(run_dir: &Path) -> anyhow::Result<StopReport> {
    match RunDir::lock(run_dir, IfMissing::Report, RUN_DIR_WAIT)? {
        Some(lock) => stop_locked(&lock),
        None => Ok(StopReport::default()),
    }
}

fn stop_locked(lock: &RunDir) -> anyhow::Result<StopReport> {
    let run_dir = lock.path();
    let numbers = keep_numbers(run_dir)
        .with_context(|| format!("cannot read run directory {}", run_dir.display()))?;
    let mut report = StopReport::default();
    let mut targets = Vec::new();
    for &n in &numbers {
        let path = keep_file(run_dir, n, "pid");
        if keep_file(run_dir, n, "port").exists() {
            // A start killed just after spawning a server: give it a moment to write its pid
            // file, so it is stopped rather than left running without a volume.
            let deadline = std::time::Instant::now() + PID_FILE_WAIT;
            while !path.exists() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        match process::pid_file_check(&path) {
            Ok(Ownership::Ours(pid)) => targets.push((n, pid)),
            Ok(Ownership::Missing) => {}
            Ok(Ownership::Gone(_)) => report.stale.push(n),
            Ok(Ownership::NotOurs { pid, reason }) => {
                eprintln!(
                    "cibox: {} names pid {pid}, not proven to be a server we started ({reason}): \
                     not signalled",
                    path.display()
                );
                report.not_ours.push(n);
            }
            Err(e) => {
                eprintln!("cibox: ignoring {e}");
                report.stale.push(n);
            }
        }
    }
    let pids: Vec<_> = targets.iter().map(|&(_, pid)| pid).collect();
    let endings = process::terminate(&pids, STOP_GRACE);
    let mut survivors = Vec::new();
    for (&(n, pid), ending) in targets.iter().zip(endings) {
        match ending {
            Ending::AlreadyGone => report.stale.push(n),
            Ending::Terminated => report.terminated.push(n),
            Ending::Killed => {
                eprintln!("cibox: keep{n} (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}; killed");
                report.killed.push(n);
            }
            Ending::Survived => survivors.push((n, pid)),
        }
    }
    for &n in &numbers {
        if survivors.iter().any(|&(s, _)| s == n) {
            continue; // its volume may still be in use
        }
        let volume = std::fs::read_to_string(keep_file(run_dir, n, "volume"))
            .ok()
            .map(|s| PathBuf::from(s.trim()))
            // Only directories we made (`keepN-XXXXXX`): a damaged or foreign volume file
            // must not make us delete anything else.
            .filter(|p| {
                p.is_absolute()
                    && p.file_name().is_some_and(|name| {
                        name.to_string_lossy().starts_with(&format!("keep{n}-"))
                    })
            });
        clean_server_files(run_dir, n, volume.as_deref());
    }
    owned::sweep_temporaries(lock);
    if survivors.is_empty() {
        owned::remove(lock, KEY_FILE);
        owned::remove(lock, TOKEN_FILE);
    } else {
        let names: Vec<String> = survivors
            .iter()
            .map(|(n, pid)| format!("keep{n} (pid {pid})"))
            .collect();
        bail!("still running after SIGKILL: {}", names.join(", "));
    }
    Ok(report)
}
