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
//! read end of a pipe. cibox says `done` on the pipe once the container is gone; if the pipe
//! closes without it, cibox died, and the reaper removes the container.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use super::detect::{Engine, EngineKind};
use super::exec::{status_code, EngineError};

/// The label every container cibox starts carries.
pub const INSTANCE_LABEL: &str = "com.qemu.instance.uuid";

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

    let watcher = {
        let child = Arc::clone(&child);
        let engine_argv = engine.argv.clone();
        let kind = engine.kind;
        let keep = options.keep;
        let id = id.clone();
        let reaper = Arc::clone(&reaper);
        std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let _ = child.kill();
                if !keep {
                    let engine = Engine::assume(engine_argv, kind);
                    let _ = remove_labelled(&engine, Some(&id));
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

/// Tells the reaper the container is taken care of.
fn dismiss_reaper(reaper: &Mutex<Option<ChildStdin>>) {
    if let Some(mut stdin) = reaper.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = stdin.write_all(b"done\n");
    }
}

/// The reaper's body: waits for its parent to say `done`; when the pipe closes without it,
/// removes the containers labelled `id`. Arguments: `ID KIND ENGINE-ARGV...`.
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
    let mut said = String::new();
    let _ = std::io::stdin().read_to_string(&mut said);
    if said.starts_with("done") {
        return std::process::ExitCode::SUCCESS;
    }
    let engine = Engine::assume(argv.to_vec(), kind);
    match remove_labelled(&engine, Some(id)) {
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
        let mut args = vec!["rm".to_string(), "-f".to_string()];
        if engine.kind == EngineKind::Podman {
            // podman's rm -f first waits 10 s for the container to honour SIGTERM; the
            // container is being thrown away, so kill it at once as docker does.
            args.push("--time=0".to_string());
        }
        args.extend(ids.iter().cloned());
        engine.output(&args)?;
        removed.extend(ids);
    }
    Ok(removed)
}
