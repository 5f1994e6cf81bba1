//! The one launcher every service of a test run starts and stops through: the API server,
//! the keepstores (several instances in one start), keepproxy, the git server and nginx.
//!
//! A start is a [`Launch`]: it catches SIGINT, SIGTERM and SIGHUP ([`InterruptGuard`]), locks
//! the run directory for its whole length ([`RunDir`]) and starts [`Instance`]s in it. Each
//! instance is spawned on a free loopback port, retried (three attempts) when someone takes
//! the port first, with its output relayed prefixed `[NAME]`, and waited for until its ports
//! accept connections ([`START_TIMEOUT`]). Its state files are the seed's: `NAME.port`,
//! written before the spawn (so a start killed outright leaves nothing the next stop cannot
//! find), and `NAME.pid`, written and locked by the daemon (cibox's servers, `-pid`) or by
//! the launcher for it (nginx, [`PidFileBy`]). [`Launch::finish`] ends the start: on success
//! the daemons are left running; on a failure, or when a signal came at any point of the start,
//! every instance it started is killed and stopped through its files like a stop would (what
//! is left of its process group too), its files removed, the caller's own clean-up run (its
//! manifest entries, volumes, repositories), and a signal becomes [`Interrupted`], which the
//! start applets turn into exit status 128 + N. Dropping a `Launch` unfinished rolls back too.
//!
//! A stop ([`stop`], [`stop_locked`], [`stop_instances`] for several at once) signals only a
//! process its pid file proves to be the daemon ([`process::pid_file_check`]): SIGTERM, then
//! SIGKILL after [`STOP_GRACE`], then what is left of its process group holding the pid file
//! (nginx's workers after a killed master). It removes the pid and port files, except those of
//! a survivor and a pid file a live process still holds.
//!
//! The file names and timings are [`crate::rundir`]'s; the run's manifest ([`super::owned`]) is
//! the callers' business, in the clean-up they give [`Launch::finish`].

use std::ffi::OsString;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::services::remove_quietly;
use crate::rundir::{pid_file, port_file, RUN_DIR_WAIT, START_TIMEOUT, STOP_GRACE};
use cibox_runtime::process::{
    self, Daemon, DaemonSpec, Ending, IfMissing, InterruptGuard, Interrupted, Ownership, Pid,
    RunDir, WaitError,
};

/// How many times a start spawns an instance whose port was taken before it could bind it.
const ATTEMPTS: u32 = 3;
/// How long a stop waits for the pid file of an instance whose start was cut short (its port
/// file is there), and for a stopped instance's pid file lock to go (a killed process's lock
/// can outlast it by a moment).
const PID_FILE_WAIT: Duration = Duration::from_secs(1);

/// Who writes an instance's pid file, `NAME.pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PidFileBy {
    /// The daemon writes and locks it itself (cibox's servers, `-pid FILE`). One that does
    /// not gets an unlocked one from the launcher, for readers (a stop cannot prove it ours).
    Daemon,
    /// The launcher locks it, writes the daemon's pid and hands the locked descriptor down
    /// ([`DaemonSpec::locked_pid_file`]): for programs that lock none (nginx), whose command
    /// line must name the file.
    Launcher,
}

/// The arguments of an instance for a given port.
pub type Args<'a> = Box<dyn Fn(u16) -> Vec<OsString> + Send + Sync + 'a>;

/// One daemon to start.
pub struct Instance<'a> {
    /// Its name: state files `NAME.pid`, `NAME.port`, log prefix `[NAME]`.
    pub name: String,
    /// The program.
    pub program: PathBuf,
    /// Its arguments for the port it gets.
    pub args: Args<'a>,
    /// Extra environment variables.
    pub env: Vec<(OsString, OsString)>,
    /// Ports it listens on besides the main one, which must accept too before it counts as
    /// started (nginx's further TLS ports).
    pub extra_ports: Vec<u16>,
    /// Who writes its pid file.
    pub pid_file_by: PidFileBy,
}

impl<'a> Instance<'a> {
    /// `program` as `name`, with `args` for a port; the daemon writes its pid file.
    pub fn new(
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: impl Fn(u16) -> Vec<OsString> + Send + Sync + 'a,
    ) -> Instance<'a> {
        Instance {
            name: name.into(),
            program: program.into(),
            args: Box::new(args),
            env: Vec::new(),
            extra_ports: Vec::new(),
            pid_file_by: PidFileBy::Daemon,
        }
    }

    /// The cibox daemon applet `applet` as `name`: `cibox APPLET -LISTEN_FLAG=127.0.0.1:PORT
    /// -pid=RUN_DIR/NAME.pid` and then `more`.
    pub fn applet(
        run_dir: &Path,
        name: &str,
        applet: &str,
        listen_flag: &str,
        more: Vec<OsString>,
    ) -> anyhow::Result<Instance<'static>> {
        let exe = std::env::current_exe().context("cannot find the cibox binary")?;
        let pid = format!("-pid={}", pid_file(run_dir, name).display());
        let (applet, listen_flag) = (applet.to_string(), listen_flag.to_string());
        Ok(Instance::new(name, exe, move |port| {
            let mut args: Vec<OsString> = vec![
                applet.clone().into(),
                format!("-{listen_flag}=127.0.0.1:{port}").into(),
                pid.clone().into(),
            ];
            args.extend(more.iter().cloned());
            args
        }))
    }

    /// With these environment variables.
    pub fn env(mut self, env: Vec<(OsString, OsString)>) -> Instance<'a> {
        self.env = env;
        self
    }
}

/// A started instance.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Started {
    /// Its pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

/// One start in a run directory: signals caught, the directory locked, the instances started
/// so far. End it with [`Launch::finish`].
pub struct Launch {
    interrupts: InterruptGuard,
    lock: RunDir,
    run_dir: PathBuf,
    spawned: Mutex<Vec<(String, Daemon)>>,
}

impl Launch {
    /// Catches SIGINT, SIGTERM and SIGHUP, then locks `run_dir` (made when missing; checked:
    /// ours, not writable by others) for the start.
    pub fn begin(run_dir: &Path) -> anyhow::Result<Launch> {
        let interrupts = InterruptGuard::install().context("catching signals")?;
        let lock = RunDir::lock(run_dir, IfMissing::Create, RUN_DIR_WAIT)?
            .context("the run directory vanished")?;
        let run_dir = std::fs::canonicalize(lock.path())
            .with_context(|| format!("run directory {}", lock.path().display()))?;
        Ok(Launch {
            interrupts,
            lock,
            run_dir,
            spawned: Mutex::new(Vec::new()),
        })
    }

    /// The run directory's lock, for the manifest ([`super::owned`]).
    pub fn lock(&self) -> &RunDir {
        &self.lock
    }

    /// The run directory, absolute.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// `Err(Interrupted)` once a signal came.
    pub fn check(&self) -> Result<(), Interrupted> {
        self.interrupts.check()
    }

    /// Whether a signal came.
    pub fn interrupted(&self) -> bool {
        self.interrupts.caught().is_some()
    }

    /// Starts `instance` and waits until it accepts connections (see the module's page). On
    /// failure, or a signal, it is stopped again and its files removed.
    pub fn start(&self, instance: &Instance) -> anyhow::Result<Started> {
        let name = instance.name.as_str();
        let pid_path = pid_file(&self.run_dir, name);
        let fail = |e: anyhow::Error| -> anyhow::Error {
            stop_all_of(&self.run_dir, &[name.to_string()], false);
            match self.interrupts.caught() {
                Some(signal) => Interrupted { signal }.into(),
                None => e,
            }
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.check().map_err(|e| fail(e.into()))?;
            let port = process::free_loopback_port()
                .context("finding a free port")
                .map_err(fail)?;
            write_port(&self.run_dir, name, port)
                .context("writing the port file")
                .map_err(fail)?;
            let mut spec = DaemonSpec::new(&instance.program, name).args((instance.args)(port));
            spec.env = instance.env.clone();
            if instance.pid_file_by == PidFileBy::Launcher {
                spec = spec.locked_pid_file(&pid_path);
            }
            let mut daemon = Daemon::spawn(&spec).map_err(|e| fail(e.into()))?;
            let mut waited = Ok(());
            for p in std::iter::once(port).chain(instance.extra_ports.iter().copied()) {
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, p));
                waited =
                    daemon.wait_until_accepting_unless(addr, START_TIMEOUT, || self.interrupted());
                if waited.is_err() {
                    break;
                }
            }
            match waited {
                Ok(()) => {
                    if instance.pid_file_by == PidFileBy::Daemon
                        && matches!(process::read_pid_file(&pid_path), Ok(None))
                    {
                        eprintln!(
                            "cibox: {name} did not write {}; its stop will not be able to stop it",
                            pid_path.display()
                        );
                        let written = process::write_atomic(
                            &pid_path,
                            format!("{}\n", daemon.pid()).as_bytes(),
                            0o644,
                        );
                        if let Err(e) = written {
                            let _ = daemon.kill();
                            return Err(fail(
                                anyhow::Error::from(e).context("writing the pid file"),
                            ));
                        }
                    }
                    let started = Started {
                        pid: daemon.pid(),
                        port,
                    };
                    self.spawned
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((name.to_string(), daemon));
                    return Ok(started);
                }
                // Someone took the port between our check and the daemon's bind: again.
                Err(WaitError::Exited { last_lines, .. })
                    if attempt < ATTEMPTS && last_lines.iter().any(|l| l.contains("in use")) => {}
                Err(e) => {
                    let _ = daemon.kill();
                    return Err(fail(e.into()));
                }
            }
        }
    }

    /// [`Launch::start`] for several instances at once; their results in order.
    pub fn start_all(&self, instances: &[Instance]) -> Vec<anyhow::Result<Started>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = instances
                .iter()
                .map(|instance| scope.spawn(move || self.start(instance)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("starting a server panicked")))
                })
                .collect()
        })
    }

    /// Ends the start with `result`. `Ok` with no signal caught: the instances are left
    /// running. Else every instance started is stopped and its files removed, then `undo`
    /// removes the rest of what the start made (skipped when something survived); a signal
    /// caught at any time of the start is the error then ([`Interrupted`]).
    pub fn finish<T>(
        self,
        result: anyhow::Result<T>,
        undo: impl FnOnce(&RunDir),
    ) -> anyhow::Result<T> {
        let signal = self.interrupts.caught();
        let error = match (result, signal) {
            (Ok(value), None) => {
                let spawned =
                    std::mem::take(&mut *self.spawned.lock().unwrap_or_else(|e| e.into_inner()));
                for (_, daemon) in spawned {
                    daemon.detach();
                }
                return Ok(value);
            }
            (_, Some(signal)) => Interrupted { signal }.into(),
            (Err(e), None) => e,
        };
        if self.roll_back() {
            undo(&self.lock);
        }
        Err(error)
    }

    /// Kills every instance started and stops what is left through its files; whether
    /// everything is gone.
    fn roll_back(&self) -> bool {
        let spawned = std::mem::take(&mut *self.spawned.lock().unwrap_or_else(|e| e.into_inner()));
        let mut names = Vec::new();
        for (name, daemon) in spawned {
            let _ = daemon.kill();
            names.push(name);
        }
        let mut gone = true;
        for (name, outcome) in names.iter().zip(stop_all_of(&self.run_dir, &names, false)) {
            match outcome {
                Stopped::Survived(what) => {
                    eprintln!("cibox: {what} still running after SIGKILL");
                    gone = false;
                }
                Stopped::Held => {
                    eprintln!("cibox: {}", held_message(&self.run_dir, name));
                    gone = false;
                }
                _ => {}
            }
        }
        gone
    }
}

impl Drop for Launch {
    /// An unfinished start (an early return, a panic) stops what it started.
    fn drop(&mut self) {
        let pending = !self
            .spawned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if pending {
            self.roll_back();
        }
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

/// How a stop found an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Nothing was recorded.
    NotRunning,
    /// The pid file was stale (no process any more).
    Stale,
    /// The pid file names a running process not proven to be the daemon: not signalled.
    NotOurs,
    /// It exited after SIGTERM.
    Terminated,
    /// It needed SIGKILL.
    Killed,
    /// What is still running after SIGKILL (`NAME (pid N)`, or its process group); its files
    /// are kept.
    Survived(String),
    /// Its pid file is still held by a live process not proven ours; the files are kept.
    Held,
}

fn held_message(run_dir: &Path, name: &str) -> String {
    format!(
        "{name}: {} is still held by a running process that is not proven ours; left alone",
        pid_file(run_dir, name).display()
    )
}

/// Stops the instance `name` recorded in `run_dir` (see the module's page). Nothing recorded,
/// or no run directory: nothing to do.
pub fn stop(run_dir: &Path, name: &str) -> anyhow::Result<Stopped> {
    match RunDir::lock(run_dir, IfMissing::Report, RUN_DIR_WAIT)? {
        Some(lock) => stop_locked(lock.path(), name),
        None => Ok(Stopped::NotRunning),
    }
}

/// [`stop`] in a run directory the caller holds locked. Something left running (a survivor of
/// SIGKILL, a pid file still held) is an error.
pub fn stop_locked(run_dir: &Path, name: &str) -> anyhow::Result<Stopped> {
    let outcome = stop_instances(run_dir, &[name.to_string()]).remove(0);
    match outcome {
        Stopped::Survived(what) => bail!("{what} still running after SIGKILL"),
        Stopped::Held => bail!("{}", held_message(run_dir, name)),
        outcome => Ok(outcome),
    }
}

/// Stops the instances `names` recorded in a run directory the caller holds locked, all at
/// once; how each was found, in order.
pub fn stop_instances(run_dir: &Path, names: &[String]) -> Vec<Stopped> {
    stop_all_of(run_dir, names, true)
}

/// [`stop_instances`]; with `wait_for_pid_files`, an instance with a port file but no pid file
/// yet (a start killed just after spawning it) gets a moment to write it.
fn stop_all_of(run_dir: &Path, names: &[String], wait_for_pid_files: bool) -> Vec<Stopped> {
    let mut checks = Vec::new();
    for name in names {
        let pid_path = pid_file(run_dir, name);
        if wait_for_pid_files && port_file(run_dir, name).exists() {
            let deadline = Instant::now() + PID_FILE_WAIT;
            while !pid_path.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let check = match process::pid_file_check(&pid_path) {
            Ok(check) => check,
            Err(e) => {
                eprintln!("cibox: ignoring {e}");
                Ownership::Missing
            }
        };
        if let Ownership::NotOurs { pid, reason } = &check {
            eprintln!(
                "cibox: {} names pid {pid}, not proven to be a server we started ({reason}): \
                 not signalled",
                pid_path.display()
            );
        }
        checks.push(check);
    }
    let ours: Vec<Pid> = checks
        .iter()
        .filter_map(|c| match c {
            Ownership::Ours(pid) => Some(*pid),
            _ => None,
        })
        .collect();
    let mut endings = process::terminate(&ours, STOP_GRACE).into_iter();
    let mut outcomes = Vec::new();
    for (name, check) in names.iter().zip(checks) {
        let pid_path = pid_file(run_dir, name);
        let (leader, mut outcome) = match check {
            Ownership::Missing if pid_path.exists() => (None, Stopped::Stale),
            Ownership::Missing => (None, Stopped::NotRunning),
            Ownership::NotOurs { .. } => (None, Stopped::NotOurs),
            Ownership::Gone(pid) => (Some(pid), Stopped::Stale),
            Ownership::Ours(pid) => {
                let outcome = match endings.next().unwrap_or(Ending::Survived) {
                    Ending::AlreadyGone => Stopped::Stale,
                    Ending::Terminated => Stopped::Terminated,
                    Ending::Killed => {
                        eprintln!(
                            "cibox: {name} (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}; killed"
                        );
                        Stopped::Killed
                    }
                    Ending::Survived => Stopped::Survived(format!("{name} (pid {pid})")),
                };
                (Some(pid), outcome)
            }
        };
        if matches!(outcome, Stopped::Survived(_)) {
            outcomes.push(outcome);
            continue;
        }
        if let Some(pgid) = leader {
            // What is left of its process group holding the pid file (nginx's workers).
            let rest = process::pid_file_group(&pid_path, pgid).unwrap_or_default();
            if !rest.is_empty() {
                let list = pid_list(&rest);
                eprintln!(
                    "cibox: {name}: stopping what is left of its process group {pgid}: {list}"
                );
                if process::terminate(&rest, STOP_GRACE).contains(&Ending::Survived) {
                    outcomes.push(Stopped::Survived(format!(
                        "{name}: process group {pgid} ({list})"
                    )));
                    continue;
                }
                if outcome == Stopped::Stale {
                    outcome = Stopped::Terminated;
                }
            }
        }
        if held_after(&pid_path, PID_FILE_WAIT) {
            outcomes.push(Stopped::Held);
            continue;
        }
        remove_quietly(&pid_path);
        remove_quietly(&port_file(run_dir, name));
        outcomes.push(outcome);
    }
    outcomes
}

fn pid_list(pids: &[Pid]) -> String {
    let list: Vec<String> = pids.iter().map(|p| format!("pid {p}")).collect();
    list.join(", ")
}

/// Whether some process still holds the lock of the pid file at `path` after up to `wait`.
fn held_after(path: &Path, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        match process::read_pid_file(path) {
            Ok(Some(info)) if info.locked => {}
            _ => return false,
        }
        if Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
