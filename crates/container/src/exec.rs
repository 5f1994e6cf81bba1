//! Calling the engine: capture its output, stream it, feed it stdin, and turn its failures
//! into one clear line.
//!
//! Every failure becomes an [`EngineError`] whose message reads
//! `podman build failed (exit 125): <the last lines of its stderr>`; the applet adds its own
//! name in front (`cibox build: ...`). Streaming calls show the engine's stderr live and keep
//! its tail for that message; `quiet` sends the engine's stdout to /dev/null.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStdin, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::engine::Engine;

/// How many stderr lines an error message keeps.
const TAIL_LINES: usize = 3;
/// How many characters of them, at most.
const TAIL_CHARS: usize = 600;

/// A failed engine call.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The engine ran and exited non-zero.
    #[error("{command} failed (exit {code}){}", colon_tail(.tail))]
    Failed {
        command: String,
        code: i32,
        tail: String,
    },
    /// The engine was killed by a signal.
    #[error("{command} was killed by signal {signal}")]
    Killed { command: String, signal: i32 },
    /// The engine could not be started at all.
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
}

fn colon_tail(tail: &str) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}

/// The last few non-empty lines of an engine's stderr, joined into one line.
pub fn tail(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(TAIL_LINES);
    let joined = lines[start..].join(" | ");
    if joined.chars().count() > TAIL_CHARS {
        let skip = joined.chars().count() - TAIL_CHARS;
        format!("...{}", joined.chars().skip(skip).collect::<String>())
    } else {
        joined
    }
}

/// Appends `text` to the stderr kept for an error message, dropping the oldest part when it
/// grows past a few tails' worth.
fn keep_tail(kept: &mut String, text: &str) {
    kept.push_str(text);
    if kept.len() > 8 * TAIL_CHARS {
        let cut = kept.len() - 4 * TAIL_CHARS;
        let cut = (cut..kept.len())
            .find(|i| kept.is_char_boundary(*i))
            .unwrap_or(kept.len());
        kept.drain(..cut);
    }
}

/// The pid of the child running in the foreground (a streamed engine call, a build's `.pre`
/// script), 0 when there is none: what a signal handler stops before cleaning up.
static FOREGROUND: AtomicU32 = AtomicU32::new(0);

/// The child running in the foreground, if any (see [`set_foreground`]).
pub fn foreground_child() -> Option<u32> {
    match FOREGROUND.load(Ordering::SeqCst) {
        0 => None,
        pid => Some(pid),
    }
}

/// Records the foreground child (`Some(pid)` after spawning it, `None` once it was waited for).
pub fn set_foreground(pid: Option<u32>) {
    FOREGROUND.store(pid.unwrap_or(0), Ordering::SeqCst);
}

/// The exit status as a shell would report it: the code, or 128 + the signal.
pub fn status_code(status: ExitStatus) -> i32 {
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

impl Engine {
    /// `podman build`: the engine and the first argument, for messages.
    pub fn describe<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let mut text = self.argv.join(" ");
        if let Some(first) = args.first() {
            text.push(' ');
            text.push_str(&first.as_ref().to_string_lossy());
        }
        text
    }

    fn failure<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        status: ExitStatus,
        stderr: &str,
    ) -> EngineError {
        let command = self.describe(args);
        match status.code() {
            Some(code) => EngineError::Failed {
                command,
                code,
                tail: tail(stderr),
            },
            None => EngineError::Killed {
                command,
                signal: status.signal().unwrap_or(0),
            },
        }
    }

    /// Runs the engine and returns its stdout; a non-zero exit is an error with its stderr tail.
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, EngineError> {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| EngineError::Spawn {
                command: self.describe(args),
                source,
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            return Err(self.failure(args, output.status, &stderr));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs the engine and returns its stdout, or `None` when it exits non-zero (for questions
    /// whose "no" is an ordinary answer, such as inspecting an image that does not exist).
    /// Failing to start the engine at all is still an error.
    pub fn output_if_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Option<String>, EngineError> {
        let output = self
            .command(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|source| EngineError::Spawn {
                command: self.describe(args),
                source,
            })?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// Runs the engine with our stdin, stdout (to /dev/null when `quiet`) and stderr, and
    /// returns its exit status as a shell would report it. Only failing to start is an error.
    pub fn status<S: AsRef<OsStr>>(&self, args: &[S], quiet: bool) -> Result<i32, EngineError> {
        let mut command = self.command(args);
        if quiet {
            command.stdout(Stdio::null());
        }
        let status = command.status().map_err(|source| EngineError::Spawn {
            command: self.describe(args),
            source,
        })?;
        Ok(status_code(status))
    }

    /// Runs the engine showing its output live (stdout hidden when `quiet`, stderr always
    /// shown) and fails with the tail of its stderr when it exits non-zero. `envs` are set for
    /// the engine only; `feed`, when given, writes the engine's stdin from another thread.
    pub fn stream<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        quiet: bool,
        envs: &[(OsString, OsString)],
        feed: Option<Box<dyn FnOnce(ChildStdin) -> io::Result<()> + Send>>,
    ) -> Result<(), EngineError> {
        let mut command = self.command(args);
        command
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .stdout(if quiet {
                Stdio::null()
            } else {
                Stdio::inherit()
            })
            .stderr(Stdio::piped())
            .stdin(if feed.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            });
        let spawn_error = |source| EngineError::Spawn {
            command: self.describe(args),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        set_foreground(Some(child.id()));
        let feeder = match (feed, child.stdin.take()) {
            (Some(feed), Some(stdin)) => Some(std::thread::spawn(move || feed(stdin))),
            _ => None,
        };
        // Forward stderr line by line, keeping what the error message needs.
        let mut kept = String::new();
        if let Some(stderr) = child.stderr.take() {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            let mut err_out = io::stderr();
            while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
                let _ = err_out.write_all(&line);
                keep_tail(&mut kept, &String::from_utf8_lossy(&line));
                line.clear();
            }
        }
        let status = child.wait();
        set_foreground(None);
        let status = status.map_err(spawn_error)?;
        let fed = feeder.map(|f| f.join());
        if !status.success() {
            return Err(self.failure(args, status, &kept));
        }
        match fed {
            Some(Ok(Err(e))) => Err(EngineError::Spawn {
                command: format!("{} (writing its input)", self.describe(args)),
                source: e,
            }),
            Some(Err(_)) => Err(EngineError::Spawn {
                command: format!("{} (writing its input)", self.describe(args)),
                source: io::Error::other("the writer thread panicked"),
            }),
            _ => Ok(()),
        }
    }
}

impl Engine {
    /// Runs the engine with its stdout and stderr captured, handing `on_line` every line of
    /// both as it comes (for progress), and fails with the tail of its stderr when it exits
    /// non-zero. Its stdin is `/dev/null`.
    pub fn stream_lines<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        mut on_line: impl FnMut(&str),
    ) -> Result<(), EngineError> {
        let mut command = self.command(args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn_error = |source| EngineError::Spawn {
            command: self.describe(args),
            source,
        };
        let mut child = command.spawn().map_err(spawn_error)?;
        set_foreground(Some(child.id()));
        let (tx, rx) = std::sync::mpsc::channel::<(bool, String)>();
        let readers: Vec<_> = [
            child
                .stdout
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|r| Box::new(r) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .enumerate()
        .filter_map(|(i, reader)| reader.map(|r| (i == 1, r)))
        .map(|(is_stderr, reader)| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(reader).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((is_stderr, line)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
        drop(tx);
        let mut kept = String::new();
        for (is_stderr, line) in rx {
            on_line(&line);
            if is_stderr {
                keep_tail(&mut kept, &line);
                kept.push('\n');
            }
        }
        for reader in readers {
            let _ = reader.join();
        }
        let status = child.wait();
        set_foreground(None);
        let status = status.map_err(spawn_error)?;
        if !status.success() {
            return Err(self.failure(args, status, &kept));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::EngineKind;

    #[test]
    fn tail_keeps_last_lines_on_one_line() {
        assert_eq!(tail("a\n\nb\nc\n  d  \n"), "b | c | d");
        assert_eq!(tail(""), "");
        let long = "x".repeat(2000);
        let t = tail(&long);
        assert!(t.starts_with("...") && t.len() == TAIL_CHARS + 3);
    }

    #[test]
    fn failure_message_names_engine_command_status_and_stderr() {
        let engine = Engine::assume(vec!["sh".into()], EngineKind::Docker);
        let err = engine
            .output(&["-c", "echo oops >&2; echo detail >&2; exit 3"])
            .unwrap_err();
        assert_eq!(err.to_string(), "sh -c failed (exit 3): oops | detail");
    }

    #[test]
    fn stream_feeds_stdin_and_reports_failure() {
        let engine = Engine::assume(vec!["sh".into()], EngineKind::Docker);
        let feed: Box<dyn FnOnce(ChildStdin) -> io::Result<()> + Send> =
            Box::new(|mut stdin| stdin.write_all(b"exit 4\n"));
        let err = engine.stream(&["-s"], true, &[], Some(feed)).unwrap_err();
        assert!(matches!(err, EngineError::Failed { code: 4, .. }), "{err}");
        let missing = Engine::assume(vec!["/nonexistent/engine".into()], EngineKind::Podman);
        assert!(matches!(
            missing.output(&["version"]),
            Err(EngineError::Spawn { .. })
        ));
    }
}
