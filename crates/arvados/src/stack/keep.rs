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
//! | `keep.blob_signing_key` | the signing key (the test cluster's unless `--blob-signing-key`) |
//! | `keep.enforce_permissions` | present when the servers refuse unsigned GETs (the API server then checks signatures too) |
//! | `keep.data_manager_token` | the token that may index and delete |
//!
//! The run directory must be ours and not writable by others (the default is under `/tmp`),
//! and is locked for the whole of a start or stop, so two of them never interleave. The
//! servers are instances `keepN` of the one launcher ([`launcher`]), started concurrently;
//! each one's volume file is written before its volume is created and (by the launcher) its
//! port file before it is spawned, so a start killed outright is cleaned up by the next `stop`.
//! SIGINT, SIGTERM and SIGHUP during a start stop what it started and remove its files. When an
//! API server runs in the same run directory (`start_api`), or `ARVADOS_TEST_API_HOST` names
//! one, the servers are registered with it as its keep services and disks.
//!
//! The servers always sign the locators a PUT answers, as Arvados' keepstores do whenever
//! they have a key; enforcing signatures on GETs is a separate choice.
//!
//! The key, marker and token files are claimed in the run's manifest ([`owned`]): `stop` removes them,
//! and the temporary files an interrupted start left, only when the run made them.
//!
//! `stop` signals only processes proven to be the servers
//! ([`pid_file_check`](cibox_runtime::process::pid_file_check)); anything else a pid file names is
//! left alone, its state files removed.

use std::ffi::OsString;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::launcher::{self, Instance, Launch, Stopped};
use super::owned;
use super::services::remove_quietly;
use crate::api::cluster::ENFORCE_FILE;
use crate::rundir::{keep_file, keep_numbers, server_uuid, KEY_FILE, RUN_DIR_WAIT, TOKEN_FILE};
use cibox_runtime::process::{self, IfMissing, RunDir};

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
/// SIGTERM or SIGHUP meanwhile ([`Interrupted`](cibox_runtime::process::Interrupted), from
/// [`launcher::Launch`]), every server started here is stopped and its files removed.
pub fn start(opts: &StartOptions) -> anyhow::Result<Started> {
    anyhow::ensure!(opts.servers >= 1, "--num-keep-servers must be at least 1");
    let launch = Launch::begin(&opts.run_dir)?;
    stop_locked(launch.lock()).context("stopping servers left from an earlier start")?;
    launch.check()?;
    let run_dir = launch.run_dir().to_path_buf();
    let (program, lead) = keepstore_command(opts)?;

    let key = match &opts.blob_signing_key {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read signing key {}", path.display()))?;
            let text = text.trim().to_string();
            anyhow::ensure!(!text.is_empty(), "signing key {} is empty", path.display());
            text
        }
        // The cluster's key, which the API server signs manifests with.
        None => crate::api::cluster::BLOB_SIGNING_KEY.to_string(),
    };
    let key_file = run_dir.join(KEY_FILE);
    let token = random_hex();
    let token_file = run_dir.join(TOKEN_FILE);
    // Each volume's name is recorded before the directory is made, so a start killed between
    // the two leaves nothing `stop` does not know about.
    let volumes: Vec<PathBuf> = (0..opts.servers)
        .map(|n| {
            std::env::temp_dir().join(format!(
                "keep{n}-{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ))
        })
        .collect();
    let result = (|| {
        let lock = launch.lock();
        owned::claim(lock, KEY_FILE)?;
        if opts.enforce_permissions {
            owned::claim(lock, ENFORCE_FILE)?;
        }
        owned::claim(lock, TOKEN_FILE)?;
        (|| -> io::Result<()> {
            process::write_atomic(&key_file, key.as_bytes(), 0o600)?;
            if opts.enforce_permissions {
                process::write_atomic(&run_dir.join(ENFORCE_FILE), b"true\n", 0o644)?;
            }
            process::write_atomic(&token_file, token.as_bytes(), 0o600)
        })()
        .context("writing the key and token files")?;
        let mut common: Vec<OsString> = lead;
        common.push(format!("-data-manager-token-file={}", token_file.display()).into());
        common.push(format!("-permission-key-file={}", key_file.display()).into());
        if opts.enforce_permissions {
            common.push("-enforce-permissions=true".into());
        }
        for (n, volume) in volumes.iter().enumerate() {
            process::write_atomic(
                &keep_file(&run_dir, n, "volume"),
                volume.to_string_lossy().as_bytes(),
                0o644,
            )?;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(volume)
                .with_context(|| format!("creating the volume directory {}", volume.display()))?;
        }
        let instances: Vec<Instance> = volumes
            .iter()
            .enumerate()
            .map(|(n, volume)| {
                let pid_path = keep_file(&run_dir, n, "pid");
                let common = &common;
                Instance::new(instance_name(n), &program, move |port: u16| {
                    let mut args = common.clone();
                    args.push(format!("-volume={}", volume.display()).into());
                    args.push(format!("-listen=127.0.0.1:{port}").into());
                    args.push(format!("-pid={}", pid_path.display()).into());
                    args.extend(opts.extra_args.iter().cloned());
                    args
                })
            })
            .collect();
        let mut servers = Vec::new();
        let mut errors = Vec::new();
        for (n, result) in launch.start_all(&instances).into_iter().enumerate() {
            match result {
                Ok(started) => servers.push(Server {
                    index: n,
                    pid: started.pid,
                    port: started.port,
                    url: format!("http://127.0.0.1:{}", started.port),
                    volume: volumes[n].clone(),
                    uuid: server_uuid(n),
                }),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        if !errors.is_empty() {
            bail!("{}", errors.join("; "));
        }
        register(&run_dir, &servers)?;
        Ok(servers)
    })();
    let servers = launch.finish(result, |lock| {
        for (n, volume) in volumes.iter().enumerate() {
            remove_volume(&run_dir, n, Some(volume));
        }
        owned::sweep_temporaries(lock);
        owned::remove(lock, KEY_FILE);
        owned::remove(lock, ENFORCE_FILE);
        owned::remove(lock, TOKEN_FILE);
    })?;
    Ok(Started {
        run_dir,
        servers,
        blob_signing_key_file: Some(key_file),
        blob_signing_key: Some(key),
        enforce_permissions: opts.enforce_permissions,
        data_manager_token: token,
    })
}

/// The launcher's name of keepstore N: `keepN` (its files `keepN.pid`, `keepN.port`).
fn instance_name(n: usize) -> String {
    format!("keep{n}")
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

/// Removes keepstore N's volume directory (when given) and its volume file; its pid and port
/// files are the launcher's.
fn remove_volume(run_dir: &Path, n: usize, volume: Option<&Path>) {
    if let Some(volume) = volume {
        if let Err(e) = std::fs::remove_dir_all(volume) {
            if e.kind() != io::ErrorKind::NotFound {
                eprintln!("cibox: cannot remove volume {}: {e}", volume.display());
            }
        }
    }
    remove_quietly(&keep_file(run_dir, n, "volume"));
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
    let names: Vec<String> = numbers.iter().map(|&n| instance_name(n)).collect();
    let mut report = StopReport::default();
    let mut survivors = Vec::new();
    for (&n, outcome) in numbers
        .iter()
        .zip(launcher::stop_instances(run_dir, &names))
    {
        match outcome {
            Stopped::NotRunning => {}
            Stopped::Stale => report.stale.push(n),
            Stopped::Terminated => report.terminated.push(n),
            Stopped::Killed => report.killed.push(n),
            Stopped::NotOurs => report.not_ours.push(n),
            Stopped::Held => {
                // Its pid file is left to the process holding it; the rest goes.
                report.not_ours.push(n);
                remove_quietly(&keep_file(run_dir, n, "port"));
            }
            Stopped::Survived(what) => {
                survivors.push(what);
                continue; // its volume may still be in use
            }
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
        remove_volume(run_dir, n, volume.as_deref());
    }
    owned::sweep_temporaries(lock);
    if !survivors.is_empty() {
        bail!("still running after SIGKILL: {}", survivors.join(", "));
    }
    owned::remove(lock, KEY_FILE);
    owned::remove(lock, ENFORCE_FILE);
    owned::remove(lock, TOKEN_FILE);
    Ok(report)
}
