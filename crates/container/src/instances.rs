//! The containers a call starts: the instance label, running one with cleanup, and removing
//! every labelled one.
//!
//! Each `run` labels its container `com.qemu.instance.uuid=<uuid>` (QEMU's label, so QEMU's
//! own `make docker-clean` and ours see the same containers). Unless kept, the container is
//! removed when cibox is stopped by SIGTERM, SIGINT or SIGHUP, after which cibox exits with
//! the conventional status 128 + signal. A container that finishes on its own is removed by
//! the engine (`--rm`), and cibox exits with the container command's own status.
//!
//! A signal handler cannot run when cibox is SIGKILLed, so each such run also starts a
//! reaper: cibox itself (`cibox --reap-instance ...`, in its own process group) holding the
//! read end of a pipe. cibox tells it the engine client's pid, and says `done` once the
//! container is gone; if the pipe closes without it, cibox died, and the reaper removes the
//! container.
//!
//! Removing is done the same way by the signal handler and the reaper ([`reap_instance`]): the
//! engine client is left to finish what it is doing (killing `podman run` while it creates a
//! container leaves a container behind in podman's storage), every container with the
//! instance's label is removed as soon as it shows, and the work ends only when the client has
//! exited and a look after that finds no container: then none can appear any more. A client
//! still running after [`SETTLE_LIMIT`] is killed.

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::detect::{Engine, EngineKind};
use super::exec::{status_code, EngineError};

/// The label every container cibox starts carries.
pub const INSTANCE_LABEL: &str = "com.qemu.instance.uuid";
/// How long a stopped run's engine client may take to finish on its own before it is killed.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(30);
/// How long the reaper keeps looking when cibox died without naming its engine client.
const UNNAMED_CLIENT_GRACE: Duration = Duration::from_secs(3);
/// How often [`reap_instance`] looks again.
const REAP_POLL: Duration = Duration::from_millis(100);

/// A fresh instance id: a v4 UUID as 32 hex digits, like the original helper's.
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// How to run one container.
#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    /// Leave the container alone when cibox is stopped.
    pub keep: bool,
    /// Send the container's stdout to /dev/null.
    pub quiet: bool,
    /// Run as the calling user's uid and gid (podman rootless also maps the user in).
    pub as_current_user: bool,
}

/// The arguments after `run` for one container: `--rm`, the label, the user mapping, then the
/// caller's arguments (options, image, command) in their order.
pub fn run_args(
    engine: &Engine,
    id: &str,
    options: &RunOptions,
    args: &[OsString],
) -> Vec<OsString> {
    let mut argv: Vec<OsString> = vec![
        "run".into(),
        "--rm".into(),
        "--label".into(),
        format!("{INSTANCE_LABEL}={id}").into(),
    ];
    if options.as_current_user {
        // keep-id maps the user into a rootless podman's user namespace; rootful podman
        // refuses it, and docker has no such option.
        if engine.kind == EngineKind::Podman && engine.is_rootless() {
            argv.push("--userns=keep-id".into());
        }
        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        argv.push("-u".into());
        argv.push(format!("{uid}:{gid}").into());
    }
    argv.extend(args.iter().cloned());
    argv
}

/// Runs a container and returns the container command's exit status (the engine's own
/// status when the engine itself fails, as `125` for a missing image).
///
/// While it runs, SIGTERM, SIGINT and SIGHUP stop the engine client, remove the container
/// (unless `keep`), and exit the process with 128 + the signal.
pub fn run_container(
    engine: &Engine,
    options: &RunOptions,
    args: &[OsString],
) -> anyhow::Result<i32> {
    let id = new_instance_id();
    let argv = run_args(engine, &id, options, args);
    let mut signals =
        Signals::new([SIGTERM, SIGINT, SIGHUP]).context("cannot install signal handlers")?;
    let handle = signals.handle();
    let reaper = Arc::new(Mutex::new(if options.keep {
        None
    } else {
        start_reaper(engine, &id)
    }));

    let mut expression = duct::cmd(
        &engine.argv[0],
        engine.argv[1..].iter().map(OsString::from).chain(argv),
    )
    .unchecked();
    if options.quiet {
        expression = expression.stdout_null();
    }
    let child = match expression.start() {
        Ok(child) => Arc::new(child),
        Err(source) => {
            dismiss_reaper(&reaper);
            return Err(EngineError::Spawn {
                command: engine.describe(&["run"]),
                source,
            }
            .into());
        }
    };
    tell_reaper(&reaper, &child.pids());

    let watcher = {
        let child = Arc::clone(&child);
        let engine_argv = engine.argv.clone();
        let kind = engine.kind;
        let keep = options.keep;
        let id = id.clone();
        let reaper = Arc::clone(&reaper);
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                if keep {
                    let _ = child.kill();
                } else {
                    let engine = Engine::assume(engine_argv, kind);
                    let alive = || matches!(child.try_wait(), Ok(None));
                    let kill = || {
                        let _ = child.kill();
                    };
                    let _ = reap_instance(&engine, &id, &alive, &kill);
                }
                dismiss_reaper(&reaper);
                std::process::exit(128 + signal);
            }
        })
    };

    let output = child.wait();
    handle.close();
    let _ = watcher.join();
    // The engine removed the container (--rm): the reaper has nothing to do.
    dismiss_reaper(&reaper);
    let output = output.map_err(|source| EngineError::Spawn {
        command: engine.describe(&["run"]),
        source,
    })?;
    Ok(status_code(output.status))
}

/// The hidden option that runs a reaper: `cibox --reap-instance ID KIND ENGINE-ARGV...`.
pub const REAPER_OPTION: &str = "--reap-instance";

/// Starts the reaper for instance `id`; `None` when it cannot be started (cleanup then
/// relies on the signal handler alone, as the original helper's did).
fn start_reaper(engine: &Engine, id: &str) -> Option<ChildStdin> {
    let exe = std::env::current_exe().ok()?;
    let kind = match engine.kind {
        EngineKind::Docker => "docker",
        EngineKind::Podman => "podman",
    };
    let mut child = Command::new(exe)
        .arg(REAPER_OPTION)
        .arg(id)
        .arg(kind)
        .args(&engine.argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Out of the terminal's foreground group: a Ctrl-C or hang-up meant for cibox and
        // its container must not take the reaper down too.
        .process_group(0)
        .spawn()
        .ok()?;
    child.stdin.take()
}

/// Tells the reaper the engine client's pids (`client PID` lines).
fn tell_reaper(reaper: &Mutex<Option<ChildStdin>>, pids: &[u32]) {
    if let Some(stdin) = reaper.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        for pid in pids {
            let _ = writeln!(stdin, "client {pid}");
        }
        let _ = stdin.flush();
    }
}

/// Tells the reaper the container is taken care of.
fn dismiss_reaper(reaper: &Mutex<Option<ChildStdin>>) {
    if let Some(mut stdin) = reaper.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = stdin.write_all(b"done\n");
    }
}

/// Whether process `pid` still runs (exists and is not a zombie), from `/proc`.
fn process_runs(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold anything.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Removes the containers of instance `id` and returns once they are known gone (see the
/// module comment): `client_alive` says whether the engine client still runs, `kill_client`
/// stops it when it is still running after [`SETTLE_LIMIT`]. Returns the ids removed.
pub fn reap_instance(
    engine: &Engine,
    id: &str,
    client_alive: &dyn Fn() -> bool,
    kill_client: &dyn Fn(),
) -> Result<Vec<String>, EngineError> {
    let start = Instant::now();
    let mut killed = false;
    let mut removed: Vec<String> = Vec::new();
    loop {
        // Whether the client runs is asked before looking: a client gone before an empty
        // look can no longer create anything.
        let alive = !killed && client_alive();
        let ids = match labelled(engine, Some(id)) {
            Ok(ids) => ids,
            // A busy engine may fail a listing now and then: ask again, within bounds.
            Err(e) if start.elapsed() > 2 * SETTLE_LIMIT => return Err(e),
            Err(_) => {
                std::thread::sleep(REAP_POLL);
                continue;
            }
        };
        if ids.is_empty() && !alive {
            return Ok(removed);
        }
        if !ids.is_empty() {
            // A container still being set up may refuse removal for a moment: look again.
            if remove(engine, &ids).is_ok() {
                for container in ids {
                    if !removed.contains(&container) {
                        removed.push(container);
                    }
                }
            }
        }
        if alive && start.elapsed() > SETTLE_LIMIT {
            kill_client();
            killed = true;
        }
        std::thread::sleep(REAP_POLL);
    }
}

/// `ENGINE rm -f` the containers (podman: without its 10 s grace period).
fn remove(engine: &Engine, ids: &[String]) -> Result<String, EngineError> {
    let mut args = vec!["rm".to_string(), "-f".to_string()];
    if engine.kind == EngineKind::Podman {
        // podman's rm -f first waits 10 s for the container to honour SIGTERM; the
        // container is being thrown away, so kill it at once as docker does.
        args.push("--time=0".to_string());
    }
    args.extend(ids.iter().cloned());
    engine.output(&args)
}

inventory::submit! {
    cibox_core::EntryPoint {
        option: REAPER_OPTION,
        run: reaper_main,
    }
}

/// The reaper's body: waits for its parent to say `done`; when the pipe closes without it,
/// removes the containers labelled `id` (see [`reap_instance`]), the engine client's pids
/// being those the parent sent. Arguments: `ID KIND ENGINE-ARGV...`.
pub fn reaper_main(args: &[OsString]) -> std::process::ExitCode {
    let text: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let [id, kind, argv @ ..] = text.as_slice() else {
        return std::process::ExitCode::from(2);
    };
    let kind = match kind.as_str() {
        "docker" => EngineKind::Docker,
        "podman" => EngineKind::Podman,
        _ => return std::process::ExitCode::from(2),
    };
    if argv.is_empty() {
        return std::process::ExitCode::from(2);
    }
    let mut clients: Vec<u32> = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        if line == "done" {
            return std::process::ExitCode::SUCCESS;
        }
        if let Some(pid) = line.strip_prefix("client ").and_then(|p| p.parse().ok()) {
            clients.push(pid);
        }
    }
    let engine = Engine::assume(argv.to_vec(), kind);
    // No client named: cibox died before it could say which one it had just started, if
    // any; give such a client the time a start-up takes to show its container.
    let unnamed_until = Instant::now() + UNNAMED_CLIENT_GRACE;
    let alive = || {
        if clients.is_empty() {
            Instant::now() < unnamed_until
        } else {
            clients.iter().any(|&pid| process_runs(pid))
        }
    };
    let kill = || {
        for &pid in &clients {
            if process_runs(pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    };
    match reap_instance(&engine, id, &alive, &kill) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(_) => std::process::ExitCode::from(1),
    }
}

/// The ids of the containers, running or not, that carry the instance label (with the given
/// value, or any value).
pub fn labelled(engine: &Engine, id: Option<&str>) -> Result<Vec<String>, EngineError> {
    let filter = match id {
        Some(id) => format!("--filter=label={INSTANCE_LABEL}={id}"),
        None => format!("--filter=label={INSTANCE_LABEL}"),
    };
    let listing = engine.output(&["ps", "-a", "-q", "--no-trunc", filter.as_str()])?;
    Ok(listing.split_whitespace().map(str::to_string).collect())
}

/// Removes, forcibly, the containers that carry the instance label (with the given value, or
/// any value) and returns their ids. Looks again after removing, so that a container whose
/// creation was under way at the first look is not missed.
pub fn remove_labelled(engine: &Engine, id: Option<&str>) -> Result<Vec<String>, EngineError> {
    let mut removed = Vec::new();
    for round in 0..3 {
        let ids = labelled(engine, id)?;
        if ids.is_empty() {
            if round > 0 || id.is_none() {
                break;
            }
            // A stopped client may have left a create request in flight: look once more.
            std::thread::sleep(Duration::from_millis(200));
            continue;
        }
        remove(engine, &ids)?;
        removed.extend(ids);
    }
    Ok(removed)
}
