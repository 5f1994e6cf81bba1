//! Starting and stopping the single-process services of a test run (keepproxy, the git
//! server, nginx) with the seed's state files in the run directory: `NAME.pid` and
//! `NAME.port`. Each service is spawned on a free loopback port (retried when someone takes it
//! first), its output relayed with a `[NAME]` prefix, waited for until the port accepts, and
//! stopped through its pid file with the same pid-reuse check `stop_keep` uses, together with
//! what is left of its process group holding that file (nginx's workers when the master was
//! killed); a stop that leaves the pid file held by a live process fails.
//!
//! Also what every launcher shares: the `--run-dir` option ([`RunDirArg`]), shell quoting for
//! the `export` lines the start applets print ([`sh_quote`]), quiet removal of state files.
//! The file names are [`crate::rundir`]'s; `all` stops a whole run.

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::rundir::{pid_file, port_file};
use crate::rundir::{RUN_DIR_WAIT, START_TIMEOUT, STOP_GRACE};
use cibox_runtime::process::{
    self, Daemon, DaemonSpec, Ending, IfMissing, InterruptGuard, Interrupted, Ownership, Pid,
    RunDir, WaitError,
};

/// How long a stop waits for a stopped service's pid file lock to go (a killed process's lock
/// can outlast it by a moment).
const LOCK_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The `--run-dir` option of the start and stop applets.
#[derive(clap::Args, Debug, Clone)]
pub struct RunDirArg {
    /// Directory of the run's state files [default: $TMPDIR/cibox]
    #[arg(long = "run-dir", value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

impl RunDirArg {
    /// The directory given, or the default.
    pub fn path(&self) -> PathBuf {
        self.run_dir
            .clone()
            .unwrap_or_else(crate::rundir::default_run_dir)
    }
}

/// Writes `RUN_DIR/NAME.port`.
pub fn write_port(run_dir: &Path, name: &str, port: u16) -> io::Result<()> {
    process::write_atomic(
        &port_file(run_dir, name),
        format!("{port}\n").as_bytes(),
        0o644,
    )
}

/// The program and leading arguments that run a cibox applet.
pub fn cibox_applet(applet: &str) -> anyhow::Result<(PathBuf, Vec<OsString>)> {
    let exe = std::env::current_exe().context("cannot find the cibox binary")?;
    Ok((exe, vec![applet.into()]))
}

/// Starts the cibox daemon applet `applet` as service `name` (see [`start`]): its arguments
/// are `-LISTEN_FLAG=127.0.0.1:PORT -pid=RUN_DIR/NAME.pid` and then `more`.
pub fn start_applet(
    run_dir: &Path,
    name: &str,
    applet: &str,
    listen_flag: &str,
    more: &[OsString],
    env: Vec<(OsString, OsString)>,
) -> anyhow::Result<Started> {
    let lock = RunDir::lock(run_dir, IfMissing::Create, RUN_DIR_WAIT)?
        .context("the run directory vanished")?;
    stop_locked(lock.path(), name)
        .with_context(|| format!("stopping the {name} left from an earlier start"))?;
    start_applet_locked(lock.path(), name, applet, listen_flag, more, env, None)
}

/// [`start_applet`] in a run directory the caller holds locked and has cleared of an earlier
/// `name`; with `cancel`, a signal it catches ends the wait ([`Interrupted`]).
pub fn start_applet_locked(
    run_dir: &Path,
    name: &str,
    applet: &str,
    listen_flag: &str,
    more: &[OsString],
    env: Vec<(OsString, OsString)>,
    cancel: Option<&InterruptGuard>,
) -> anyhow::Result<Started> {
    let (program, lead) = cibox_applet(applet)?;
    let pid_path = pid_file(run_dir, name);
    let args = |port: u16| {
        let mut args = lead.clone();
        args.push(format!("-{listen_flag}=127.0.0.1:{port}").into());
        args.push(format!("-pid={}", pid_path.display()).into());
        args.extend(more.iter().cloned());
        args
    };
    start_locked(
        run_dir,
        &ServiceSpec {
            name,
            program,
            args: &args,
            env,
            extra_ports: Vec::new(),
            writes_pid_file: true,
            cancel,
        },
    )
}

/// A run directory, created and made absolute.
pub fn prepare_run_dir(run_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(run_dir)
        .with_context(|| format!("cannot create run directory {}", run_dir.display()))?;
    Ok(std::fs::canonicalize(run_dir)?)
}

/// What to start.
pub struct ServiceSpec<'a> {
    /// The service's name: state files `NAME.pid`, `NAME.port`, log prefix `[NAME]`.
    pub name: &'a str,
    /// The program.
    pub program: PathBuf,
    /// The arguments for a given port (the pid file path is known: [`pid_file`]).
    pub args: &'a dyn Fn(u16) -> Vec<OsString>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// The ports it listens on besides the main one, which must accept too before it counts
    /// as started (nginx's TLS ports).
    pub extra_ports: Vec<u16>,
    /// Whether the program writes and locks `NAME.pid` itself (cibox's daemons, `-pid`); else
    /// the launcher provides it (nginx, whose command line names the file).
    pub writes_pid_file: bool,
    /// Signals caught during the start: one ends the wait for the port ([`Interrupted`]).
    pub cancel: Option<&'a InterruptGuard>,
}

/// A started service.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    /// Its pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// Starts `spec` (stopping one of the same name left in `run_dir` first), waits until it
/// accepts connections, and writes its pid and port files. On failure it is killed and its
/// files removed.
pub fn start(run_dir: &Path, spec: &ServiceSpec) -> anyhow::Result<Started> {
    // Checked (ours, not writable by others) and locked for the whole start.
    let lock = RunDir::lock(run_dir, IfMissing::Create, RUN_DIR_WAIT)?
        .context("the run directory vanished")?;
    let run_dir = lock.path();
    stop_locked(run_dir, spec.name)
        .with_context(|| format!("stopping the {} left from an earlier start", spec.name))?;
    start_locked(run_dir, spec)
}

/// [`start`] in a run directory the caller holds locked and has cleared of an earlier
/// `spec.name` (with [`stop_locked`]).
pub fn start_locked(run_dir: &Path, spec: &ServiceSpec) -> anyhow::Result<Started> {
    let pid_path = pid_file(run_dir, spec.name);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let port = process::free_loopback_port().context("finding a free port")?;
        let mut daemon_spec = DaemonSpec::new(&spec.program, spec.name).args((spec.args)(port));
        if !spec.writes_pid_file {
            // We hold the pid file's lock for it, so `stop` can prove the process ours.
            daemon_spec = daemon_spec.locked_pid_file(&pid_path);
        }
        daemon_spec.env = spec.env.clone();
        let mut daemon = Daemon::spawn(&daemon_spec)?;
        let mut waited = Ok(());
        for p in std::iter::once(port).chain(spec.extra_ports.iter().copied()) {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, p));
            waited = daemon.wait_until_accepting_unless(addr, START_TIMEOUT, || {
                spec.cancel.is_some_and(|c| c.caught().is_some())
            });
            if waited.is_err() {
                break;
            }
        }
        match waited {
            Ok(()) => {
                let written = (|| -> io::Result<()> {
                    if matches!(process::read_pid_file(&pid_path), Ok(None)) {
                        process::write_atomic(
                            &pid_path,
                            format!("{}\n", daemon.pid()).as_bytes(),
                            0o644,
                        )?;
                    }
                    write_port(run_dir, spec.name, port)
                })();
                if let Err(e) = written {
                    let _ = daemon.kill();
                    remove_files(run_dir, spec.name);
                    return Err(e).context("writing the pid and port files");
                }
                let started = Started {
                    pid: daemon.pid(),
                    port,
                };
                daemon.detach();
                return Ok(started);
            }
            Err(WaitError::Exited { last_lines, .. })
                if attempt < 3 && last_lines.iter().any(|l| l.contains("in use")) =>
            {
                continue;
            }
            Err(e) => {
                let _ = daemon.kill();
                remove_files(run_dir, spec.name);
                if let Some(signal) = spec.cancel.and_then(InterruptGuard::caught) {
                    return Err(Interrupted { signal }.into());
                }
                return Err(e.into());
            }
        }
    }
}

/// `value` quoted for a POSIX shell.
pub fn sh_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// Removes `path`; a missing file is fine, another failure is said on stderr.
pub fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("cibox: cannot remove {}: {e}", path.display());
        }
    }
}

fn remove_files(run_dir: &Path, name: &str) {
    let pid_path = pid_file(run_dir, name);
    // Never remove a pid file a live process still holds.
    if !matches!(process::read_pid_file(&pid_path), Ok(Some(i)) if i.locked) {
        remove_quietly(&pid_path);
    }
    remove_quietly(&port_file(run_dir, name));
}

/// How [`stop`] found a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was recorded.
    NotRunning,
    /// The pid file was stale (no process, or the pid now names another process).
    Stale,
    /// It exited after SIGTERM.
    Terminated,
    /// It needed SIGKILL.
    Killed,
}

/// Stops the service `name` recorded in `run_dir` (SIGTERM, SIGKILL after 5 s; only a process
/// that passes the pid file identity check is signalled) and removes its pid and port files.
pub fn stop(run_dir: &Path, name: &str) -> anyhow::Result<Stopped> {
    match RunDir::lock(run_dir, IfMissing::Report, RUN_DIR_WAIT)? {
        Some(lock) => stop_locked(lock.path(), name),
        None => Ok(Stopped::NotRunning),
    }
}

/// [`stop`] in a run directory the caller holds locked.
///
/// The daemon leads a process group of its own ([`Daemon::spawn`]); what is left of that group
/// holding the pid file (nginx's workers, when their master was killed) is stopped too. A pid
/// file still held by a live process afterwards is an error (the files are kept).
pub fn stop_locked(run_dir: &Path, name: &str) -> anyhow::Result<Stopped> {
    let pid_path = pid_file(run_dir, name);
    let check = match process::pid_file_check(&pid_path) {
        Ok(check) => check,
        Err(e) => {
            eprintln!("cibox: ignoring {e}");
            Ownership::Missing
        }
    };
    let (leader, mut outcome) = match check {
        Ownership::Missing if pid_path.exists() => (None, Stopped::Stale),
        Ownership::Missing => (None, Stopped::NotRunning),
        Ownership::NotOurs { .. } => (None, Stopped::Stale),
        Ownership::Gone(pid) => (Some(pid), Stopped::Stale),
        Ownership::Ours(pid) => {
            let outcome = match process::terminate(&[pid], STOP_GRACE)[0] {
                Ending::AlreadyGone => Stopped::Stale,
                Ending::Terminated => Stopped::Terminated,
                Ending::Killed => {
                    eprintln!(
                        "cibox: {name} (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}; killed"
                    );
                    Stopped::Killed
                }
                Ending::Survived => bail!("{name} (pid {pid}) still running after SIGKILL"),
            };
            (Some(pid), outcome)
        }
    };
    if let Some(pgid) = leader {
        let rest = process::pid_file_group(&pid_path, pgid).unwrap_or_default();
        if !rest.is_empty() {
            let list = pid_list(&rest);
            eprintln!("cibox: {name}: stopping what is left of its process group {pgid}: {list}");
            let endings = process::terminate(&rest, STOP_GRACE);
            if endings.contains(&Ending::Survived) {
                bail!("{name}: process group {pgid} ({list}) still running after SIGKILL");
            }
            if outcome == Stopped::Stale {
                outcome = Stopped::Terminated;
            }
        }
    }
    if held_after(&pid_path, LOCK_RELEASE_WAIT) {
        bail!(
            "{name}: {} is still held by a running process that is not proven ours; left alone",
            pid_path.display()
        );
    }
    remove_files(run_dir, name);
    Ok(outcome)
}

fn pid_list(pids: &[Pid]) -> String {
    let list: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
    list.join(", ")
}

/// Whether some process still holds the lock of the pid file at `path` after up to `wait`.
fn held_after(path: &Path, wait: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match process::read_pid_file(path) {
            Ok(Some(info)) if info.locked => {}
            _ => return false,
        }
        if std::time::Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
