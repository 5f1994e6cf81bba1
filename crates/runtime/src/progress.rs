//! Progress of long transfers (`fetch`, `serve`'s staging downloads): a bar with bytes, rate and
//! ETA (indicatif) when stderr is a terminal; otherwise plain lines at most every
//! [`PLAIN_INTERVAL`] (or `$CIBOX_PROGRESS_INTERVAL` seconds), so logs stay readable. A transfer that ends before the first plain line
//! is due leaves no line at all.
//!
//! Plain lines go to stderr prefixed with a label (`cibox fetch: ...`), or, for servers whose
//! stderr is a log, through `tracing` ([`Sink::Log`]).

use std::io::{IsTerminal, Read};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, HumanDuration, ProgressBar, ProgressStyle};

/// The shortest time between two plain progress lines.
pub const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// The variable that changes [`PLAIN_INTERVAL`] (seconds, fractions allowed).
pub const INTERVAL_VARIABLE: &str = "CIBOX_PROGRESS_INTERVAL";

/// The environment progress reporting reads, for the manual pages.
pub const ENVIRONMENT: cibox_core::applet::Entries = &[(
    "CIBOX_PROGRESS_INTERVAL",
    "seconds between two plain progress lines when stderr is not a terminal (default 5)",
)];

fn plain_interval() -> Duration {
    std::env::var(INTERVAL_VARIABLE)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .unwrap_or(PLAIN_INTERVAL)
}

/// Where progress goes when there is no terminal to draw a bar on.
#[derive(Debug, Clone)]
pub enum Sink {
    /// Lines on stderr, each starting with this prefix (`cibox fetch`).
    Stderr(String),
    /// `tracing` records at info level (for servers, whose stderr is their log).
    Log,
}

/// The progress of one transfer. Finishes (and clears its bar) when dropped.
pub struct Progress {
    what: String,
    total: Option<u64>,
    done: u64,
    started: Instant,
    shown: Shown,
}

enum Shown {
    Bar(ProgressBar),
    Plain {
        sink: Sink,
        last: Instant,
        lines: u32,
        interval: Duration,
    },
}

impl Progress {
    /// Progress of `what` (`pulling qemu/fedora`), `total` bytes when known: a bar when stderr
    /// is a terminal, plain lines to `sink` otherwise.
    pub fn new(what: impl Into<String>, total: Option<u64>, sink: Sink) -> Self {
        if std::io::stderr().is_terminal() && !crate::logging::is_json() {
            Self::bar(what, total)
        } else {
            Self::plain(what, total, sink, plain_interval())
        }
    }

    /// Always plain lines, at most every `interval` (tests use a short one).
    pub fn plain(
        what: impl Into<String>,
        total: Option<u64>,
        sink: Sink,
        interval: Duration,
    ) -> Self {
        let now = Instant::now();
        Progress {
            what: what.into(),
            total,
            done: 0,
            started: now,
            shown: Shown::Plain {
                sink,
                last: now,
                lines: 0,
                interval,
            },
        }
    }

    fn bar(what: impl Into<String>, total: Option<u64>) -> Self {
        let what = what.into();
        let bar = match total {
            Some(len) => ProgressBar::new(len).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            ),
            None => ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{msg} {spinner} {bytes} {bytes_per_sec} {elapsed}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            ),
        };
        bar.set_message(what.clone());
        bar.enable_steady_tick(Duration::from_millis(200));
        Progress {
            what,
            total,
            done: 0,
            started: Instant::now(),
            shown: Shown::Bar(bar),
        }
    }

    /// The total became known (or changed).
    pub fn set_total(&mut self, total: u64) {
        self.total = Some(total);
        if let Shown::Bar(bar) = &self.shown {
            bar.set_length(total);
        }
    }

    /// `n` more bytes are done.
    pub fn advance(&mut self, n: u64) {
        self.set_done(self.done.saturating_add(n));
    }

    /// `done` bytes are done in all.
    pub fn set_done(&mut self, done: u64) {
        self.done = done;
        match &mut self.shown {
            Shown::Bar(bar) => bar.set_position(done),
            Shown::Plain {
                sink,
                last,
                lines,
                interval,
            } => {
                let now = Instant::now();
                if now.duration_since(*last) >= *interval {
                    *last = now;
                    *lines += 1;
                    let line = status_line(&self.what, done, self.total, self.started.elapsed());
                    emit(sink, &line);
                }
            }
        }
    }

    /// Bytes done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// A reader that counts what passes through it into this progress.
    pub fn reader<R: Read>(self, inner: R) -> ProgressReader<R> {
        ProgressReader {
            inner,
            progress: self,
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        match &self.shown {
            Shown::Bar(bar) => bar.finish_and_clear(),
            // A summary only after progress lines: a short transfer stays silent.
            Shown::Plain { sink, lines, .. } if *lines > 0 => {
                let elapsed = self.started.elapsed();
                let rate = per_second(self.done, elapsed);
                let line = format!(
                    "{}: {} in {} ({}/s)",
                    self.what,
                    HumanBytes(self.done),
                    HumanDuration(elapsed),
                    HumanBytes(rate)
                );
                emit(sink, &line);
            }
            Shown::Plain { .. } => {}
        }
    }
}

fn per_second(bytes: u64, elapsed: Duration) -> u64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        (bytes as f64 / seconds) as u64
    } else {
        0
    }
}

/// `pulling x: 12.00 MiB of 100.00 MiB (12%), 5.00 MiB/s, ETA 18 seconds`.
fn status_line(what: &str, done: u64, total: Option<u64>, elapsed: Duration) -> String {
    let rate = per_second(done, elapsed);
    match total {
        Some(total) if total > 0 => {
            let percent = done.min(total) * 100 / total;
            let eta = total
                .saturating_sub(done)
                .checked_div(rate)
                .map(|seconds| format!(", ETA {}", HumanDuration(Duration::from_secs(seconds))))
                .unwrap_or_default();
            format!(
                "{what}: {} of {} ({percent}%), {}/s{eta}",
                HumanBytes(done),
                HumanBytes(total),
                HumanBytes(rate)
            )
        }
        _ => format!("{what}: {}, {}/s", HumanBytes(done), HumanBytes(rate)),
    }
}

fn emit(sink: &Sink, line: &str) {
    match sink {
        Sink::Stderr(prefix) => eprintln!("{prefix}: {line}"),
        Sink::Log => tracing::info!("{line}"),
    }
}

/// A reader that reports the bytes read through it ([`Progress::reader`]).
pub struct ProgressReader<R> {
    inner: R,
    progress: Progress,
}

impl<R> ProgressReader<R> {
    /// The progress, for a last look.
    pub fn progress(&self) -> &Progress {
        &self.progress
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_give_bytes_rate_and_eta() {
        let line = status_line("x", 10 << 20, Some(100 << 20), Duration::from_secs(2));
        assert_eq!(
            line,
            "x: 10.00 MiB of 100.00 MiB (10%), 5.00 MiB/s, ETA 18 seconds"
        );
        let line = status_line("x", 3 << 10, None, Duration::from_secs(3));
        assert_eq!(line, "x: 3.00 KiB, 1.00 KiB/s");
        // No rate yet: no ETA rather than a division by zero.
        let line = status_line("x", 0, Some(5), Duration::ZERO);
        assert_eq!(line, "x: 0 B of 5 B (0%), 0 B/s");
    }

    #[test]
    fn a_reader_counts_every_byte() {
        let data = vec![7u8; 100_000];
        let progress = Progress::plain("t", Some(100_000), Sink::Log, Duration::from_secs(3600));
        let mut reader = progress.reader(&data[..]);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        assert_eq!(reader.progress().done(), 100_000);
    }
}
