//! The devserver's access and error logs (`devserver_access.log`, `devserver_error.log`, and
//! stderr through `tracing`, see `cibox_runtime::logging`), written by one background thread so that
//! request handling never waits on disk or terminal I/O: records go through a bounded channel (dropped and counted when it is full)
//! and are formatted and written buffered, flushed whenever the channel runs empty.
//! The log files are opened through [`crate::trust::open_log`]: never through a symbolic
//! link, never a file of another user's.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// One served request, formatted later by the log thread.
#[derive(Debug)]
pub struct AccessRecord {
    /// When the request arrived.
    pub time: SystemTime,
    /// Client address.
    pub client: IpAddr,
    /// Request line parts.
    pub method: String,
    /// Path and query.
    pub uri: String,
    /// HTTP version (`HTTP/1.1`).
    pub version: &'static str,
    /// Response status.
    pub status: u16,
    /// Response length when known.
    pub length: Option<u64>,
    /// `Referer` header.
    pub referer: String,
    /// `User-Agent` header.
    pub user_agent: String,
}

enum Msg {
    Access(AccessRecord),
    Error(SystemTime, String),
    Flush(SyncSender<()>),
    Stop,
}

/// Handle to the log thread. Cheap to share (`Arc`).
pub struct Logs {
    tx: SyncSender<Msg>,
    dropped: AtomicU64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Records waiting for the log thread; past this they are dropped (and counted).
const QUEUE: usize = 16_384;

fn open(path: &Path) -> anyhow::Result<File> {
    crate::trust::open_log(path)
}

impl Logs {
    /// Opens (appending) the two log files in `dir`, created mode 0755 when missing;
    /// `access_to_stderr` also copies access lines to stderr (error lines always go there).
    pub fn open(dir: &Path, access_to_stderr: bool) -> anyhow::Result<Arc<Logs>> {
        crate::trust::create_dir("log directory", dir)?;
        Self::open_files(
            &dir.join("devserver_access.log"),
            &dir.join("devserver_error.log"),
            access_to_stderr,
        )
    }

    /// Opens (appending) the access and error logs at these paths (they may be one file:
    /// the later devserver's `--logfile`); a symbolic link, or a file another user owns, is
    /// refused.
    pub fn open_files(
        access: &Path,
        error: &Path,
        access_to_stderr: bool,
    ) -> anyhow::Result<Arc<Logs>> {
        use anyhow::Context as _;
        let access = BufWriter::with_capacity(64 * 1024, open(access)?);
        let error = BufWriter::new(open(error)?);
        let (tx, rx) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("serve-logs".into())
            .spawn(move || writer(rx, access, error, access_to_stderr))
            .context("cannot start the log thread")?;
        Ok(Arc::new(Logs {
            tx,
            dropped: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
        }))
    }

    fn send(&self, msg: Msg) {
        match self.tx.try_send(msg) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Logs one served request.
    pub fn access(&self, record: AccessRecord) {
        self.send(Msg::Access(record));
    }

    /// Logs a message to the error log (and stderr), like CherryPy's `DEVSERVER` lines.
    pub fn error(&self, message: impl Into<String>) {
        self.send(Msg::Error(SystemTime::now(), message.into()));
    }

    /// Log records lost because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until everything logged so far is written.
    pub fn flush(&self) {
        let (done_tx, done_rx) = sync_channel(1);
        if self.tx.send(Msg::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv();
        }
    }

    /// Flushes and stops the log thread.
    pub fn close(&self) {
        self.flush();
        let _ = self.tx.send(Msg::Stop);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

fn clf_time(time: SystemTime) -> String {
    let t: chrono::DateTime<chrono::Local> = time.into();
    t.format("%d/%b/%Y:%H:%M:%S %z").to_string()
}

fn format_access(r: &AccessRecord) -> String {
    let length = r.length.map_or_else(|| "-".to_string(), |l| l.to_string());
    format!(
        "{} - - [{}] \"{} {} {}\" {} {} \"{}\" \"{}\"\n",
        r.client,
        clf_time(r.time),
        r.method,
        r.uri,
        r.version,
        r.status,
        length,
        r.referer.replace('"', "\\\""),
        r.user_agent.replace('"', "\\\""),
    )
}

struct Sinks {
    access: BufWriter<File>,
    error: BufWriter<File>,
    access_to_stderr: bool,
}

/// A served request on stderr, through `tracing` (`--log-format`), with its parts as fields.
fn access_event(r: &AccessRecord) {
    tracing::info!(
        client = %r.client,
        method = %r.method,
        uri = %r.uri,
        version = r.version,
        status = r.status,
        length = r.length,
        user_agent = %r.user_agent,
        "request"
    );
}

/// What handling one message asks of the loop.
enum Then {
    Continue,
    Ack(SyncSender<()>),
    Stop,
}

impl Sinks {
    fn handle(&mut self, msg: Msg) -> Then {
        match msg {
            Msg::Access(r) => {
                let line = format_access(&r);
                let _ = self.access.write_all(line.as_bytes());
                if self.access_to_stderr {
                    access_event(&r);
                }
                Then::Continue
            }
            Msg::Error(time, text) => {
                let t: chrono::DateTime<chrono::Local> = time.into();
                let line = format!("[{}] DEVSERVER {}\n", t.format("%d/%b/%Y:%H:%M:%S"), text);
                let _ = self.error.write_all(line.as_bytes());
                tracing::info!("{text}");
                Then::Continue
            }
            Msg::Flush(done) => Then::Ack(done),
            Msg::Stop => Then::Stop,
        }
    }

    fn flush(&mut self) {
        let _ = self.access.flush();
        let _ = self.error.flush();
    }
}

fn writer(
    rx: Receiver<Msg>,
    access: BufWriter<File>,
    error: BufWriter<File>,
    access_to_stderr: bool,
) {
    let mut sinks = Sinks {
        access,
        error,
        access_to_stderr,
    };
    let mut stop = false;
    while let Ok(msg) = rx.recv() {
        let mut waiting = Vec::new();
        let mut next = Some(msg);
        while let Some(msg) = next {
            match sinks.handle(msg) {
                Then::Ack(done) => waiting.push(done),
                Then::Stop => stop = true,
                Then::Continue => {}
            }
            next = if stop { None } else { rx.try_recv().ok() };
        }
        sinks.flush();
        for done in waiting {
            let _ = done.send(());
        }
        if stop {
            break;
        }
    }
    sinks.flush();
}
