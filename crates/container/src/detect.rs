//! Engine detection: `--engine auto|docker|podman` to a working [`Engine`].
//!
//! Auto tries podman, then docker, then `sudo -n docker`, and takes the first whose `version`
//! succeeds (the order QEMU's docker.py uses and its callers depend on). Auto costs about one
//! engine call, not three in a row: the first candidate starts at once, and each next one as soon as the one before
//! fails or is slow to answer, so a healthy first choice costs exactly one engine call and a
//! broken one does not make the others wait in a row. The answer is still taken in order. An
//! explicit choice checks only that engine (docker: docker, then `sudo -n docker`).
//!
//! What later steps need is recorded on the [`Engine`], the costly parts only when asked:
//! rootless or rootful podman (`--userns=keep-id` is for rootless only), whether BuildKit is
//! usable (`docker buildx version` answers), and the engine's version. `DOCKER_HOST` and
//! `CONTAINER_HOST` pass through to the engine untouched, so remote engines work.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use cibox_core::EngineChoice;

pub use crate::engine::{Engine, EngineKind};

/// One engine command detection may try.
#[derive(Debug, Clone)]
struct Candidate {
    argv: &'static [&'static str],
    kind: EngineKind,
}

const PODMAN: Candidate = Candidate {
    argv: &["podman"],
    kind: EngineKind::Podman,
};
const DOCKER: Candidate = Candidate {
    argv: &["docker"],
    kind: EngineKind::Docker,
};
const SUDO_DOCKER: Candidate = Candidate {
    argv: &["sudo", "-n", "docker"],
    kind: EngineKind::Docker,
};

fn candidates(choice: EngineChoice) -> &'static [Candidate] {
    match choice {
        EngineChoice::Auto => &[PODMAN, DOCKER, SUDO_DOCKER],
        EngineChoice::Docker => &[DOCKER, SUDO_DOCKER],
        EngineChoice::Podman => &[PODMAN],
    }
}

/// What happened to one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The command tried, as one string (`sudo -n docker`).
    pub command: String,
    /// Whether its `version` succeeded.
    pub ok: bool,
    /// Why it was not taken, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of detection: the engine taken, if any, and every attempt.
#[derive(Debug)]
pub struct Detection {
    pub engine: Option<Engine>,
    pub attempts: Vec<Attempt>,
}

impl Detection {
    /// The engine, or an error naming every command tried and why each failed.
    pub fn into_engine(self) -> anyhow::Result<Engine> {
        match self.engine {
            Some(engine) => Ok(engine),
            None => {
                let tried: Vec<String> = self
                    .attempts
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({})",
                            a.command,
                            a.error.as_deref().unwrap_or("did not answer")
                        )
                    })
                    .collect();
                anyhow::bail!("no working container engine; tried: {}", tried.join("; "))
            }
        }
    }
}

/// How long a candidate may take to answer before the next one is started beside it.
/// podman answers `version` in about 25 ms and docker in about 30 ms: a healthy first
/// choice costs exactly one engine call, and a slow or hung one delays the others by this
/// much at most. A candidate that fails, or whose program is missing, hands over at once.
const HEDGE: Duration = Duration::from_millis(40);
/// How long a candidate may take at most; past it, it counts as failed (a hung engine).
const DEADLINE: Duration = Duration::from_secs(15);
/// How often running candidates are looked at.
const POLL: Duration = Duration::from_micros(500);

/// Where one candidate stands.
enum Slot {
    NotStarted,
    Running(Child, Instant),
    Done(Result<Option<String>, String>),
}

/// Detects the engine for `choice`: the first candidate, in order, whose `version` succeeds.
/// With `all`, every candidate is started at once and waited for (for `probe --json`);
/// otherwise later candidates start only when an earlier one fails or is slow (see
/// [`HEDGE`]), and those still running when the answer is known are stopped unheard.
pub fn detect(choice: EngineChoice, all: bool) -> Detection {
    let list = candidates(choice);
    let mut slots: Vec<Slot> = list.iter().map(|_| Slot::NotStarted).collect();
    let mut last_start: Option<Instant> = None;
    let winner = loop {
        // Start the next candidate when nothing is running, or the running ones are slow.
        let running = slots.iter().any(|s| matches!(s, Slot::Running(..)));
        let slow = last_start.is_some_and(|t| t.elapsed() >= HEDGE);
        if all || !running || slow {
            if let Some(i) = slots.iter().position(|s| matches!(s, Slot::NotStarted)) {
                slots[i] = match start_version(list[i].argv) {
                    Ok(child) => Slot::Running(child, Instant::now()),
                    Err(reason) => Slot::Done(Err(reason)),
                };
                last_start = Some(Instant::now());
                continue;
            }
        }
        // Collect the ones that finished.
        for slot in slots.iter_mut() {
            if let Slot::Running(child, started) = slot {
                if let Ok(Some(_)) = child.try_wait() {
                    *slot = Slot::Done(finish_version(child));
                } else if started.elapsed() >= DEADLINE {
                    let _ = child.kill();
                    let _ = child.wait();
                    *slot = Slot::Done(Err(format!(
                        "version did not answer within {} s",
                        DEADLINE.as_secs()
                    )));
                }
            }
        }
        // The answer is the first candidate, in order, that did not fail.
        let first_open = slots.iter().position(|s| !matches!(s, Slot::Done(Err(_))));
        match first_open.map(|i| (i, &slots[i])) {
            None => break None,
            Some((i, Slot::Done(Ok(_))))
                if !all || slots.iter().all(|s| matches!(s, Slot::Done(_))) =>
            {
                break Some(i)
            }
            _ => std::thread::sleep(POLL),
        }
    };

    let mut engine = None;
    let mut attempts = Vec::with_capacity(list.len());
    for (i, (candidate, slot)) in list.iter().zip(slots.iter_mut()).enumerate() {
        let command = candidate.argv.join(" ");
        let attempt = match slot {
            Slot::Done(Ok(version)) => {
                if winner == Some(i) {
                    engine = Some(Engine::answered(
                        candidate.argv,
                        candidate.kind,
                        version.take(),
                    ));
                }
                Attempt {
                    command,
                    ok: true,
                    error: None,
                }
            }
            Slot::Done(Err(error)) => Attempt {
                command,
                ok: false,
                error: Some(error.clone()),
            },
            Slot::Running(child, _) => {
                let _ = child.kill();
                let _ = child.wait();
                Attempt {
                    command,
                    ok: false,
                    error: Some("not checked: an earlier engine answered".into()),
                }
            }
            Slot::NotStarted => Attempt {
                command,
                ok: false,
                error: Some("not checked: an earlier engine answered".into()),
            },
        };
        attempts.push(attempt);
    }
    Detection { engine, attempts }
}

/// The programs whose presence decides detection for `choice`.
fn programs(choice: EngineChoice) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for candidate in candidates(choice) {
        for program in candidate.argv.iter().filter(|a| !a.starts_with('-')) {
            if !names.contains(program) {
                names.push(program);
            }
        }
    }
    names
}

/// The engine for `choice`: from the detection cache when a recent detection under the
/// same conditions is there (see [`super::cache`]), else detected and remembered. Fails
/// with the list of what was tried.
pub fn engine(choice: EngineChoice) -> anyhow::Result<Engine> {
    if let Some(cached) = super::cache::load(choice, &programs(choice)) {
        let mut engine = Engine::assume(cached.argv, cached.kind);
        engine.version = cached.version;
        return Ok(engine);
    }
    let engine = detect(choice, false).into_engine()?;
    remember(choice, &engine);
    Ok(engine)
}

/// Puts a fresh detection for `choice` in the cache.
pub fn remember(choice: EngineChoice, engine: &Engine) {
    super::cache::store(
        choice,
        &programs(choice),
        &engine.argv,
        engine.kind,
        engine.version.as_deref(),
    );
}

fn start_version(argv: &[&str]) -> Result<Child, String> {
    let program = argv[0];
    which::which(program).map_err(|_| format!("{program} not found on PATH"))?;
    if argv.len() > 2 {
        // `sudo -n docker`: docker must exist too, or sudo's answer means nothing.
        which::which(argv[2]).map_err(|_| format!("{} not found on PATH", argv[2]))?;
    }
    Command::new(program)
        .args(&argv[1..])
        .args(["version", "--format", "{{json .}}"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))
}

fn finish_version(child: &mut Child) -> Result<Option<String>, String> {
    // The answers are small: reading both pipes to the end cannot block on a full pipe.
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if status.success() {
        Ok(parse_version(&stdout))
    } else {
        let tail = crate::exec::tail(&stderr);
        Err(match status.code() {
            Some(code) if tail.is_empty() => format!("version exited {code}"),
            Some(code) => format!("version exited {code}: {tail}"),
            None => "version was killed".to_string(),
        })
    }
}

/// The server version from `version --format '{{json .}}'`, else the client's.
fn parse_version(json: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
    let server = value
        .pointer("/Server/Version")
        .and_then(|v| v.as_str())
        .filter(|v| !v.is_empty());
    server
        .or_else(|| value.pointer("/Client/Version").and_then(|v| v.as_str()))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefers_server() {
        let docker = r#"{"Client":{"Version":"28.2.2"},"Server":{"Version":"20.10.24"}}"#;
        assert_eq!(parse_version(docker).as_deref(), Some("20.10.24"));
        let podman = r#"{"Client":{"APIVersion":"4.3.1","Version":"4.3.1"}}"#;
        assert_eq!(parse_version(podman).as_deref(), Some("4.3.1"));
        assert_eq!(parse_version("not json"), None);
    }

    #[test]
    fn probe_names_match_configure() {
        let names: Vec<&str> = [PODMAN, DOCKER, SUDO_DOCKER]
            .iter()
            .map(|c| Engine::answered(c.argv, c.kind, None).probe_name())
            .collect();
        assert_eq!(names, ["podman", "docker", "sudo docker"]);
    }

    #[test]
    fn choice_parses_case_insensitively() {
        assert_eq!("PODMAN".parse::<EngineChoice>(), Ok(EngineChoice::Podman));
        assert!("lxc".parse::<EngineChoice>().is_err());
    }
}
