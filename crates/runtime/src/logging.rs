//! Logging for the servers (`serve`, `keepstore`): one `tracing` subscriber writing to stderr,
//! as text for people or as one JSON object a line for log collectors (`--log-format`).
//!
//! The level comes from `$CIBOX_LOG` (an `EnvFilter` directive such as `debug` or
//! `cibox=debug`), `info` when unset.

/// How log records are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line a record: time, level, message and fields
    #[default]
    Text,
    /// One JSON object a line: timestamp, level, target and the record's fields
    Json,
}

/// The `--log-format` option, for the servers' clap commands to flatten in.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// How records are written to stderr: text, or one JSON object a line
    #[arg(long = "log-format", visible_alias = "log_format", value_enum, value_name = "FORMAT",
          default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The variable that sets the level (`EnvFilter` syntax).
pub const LEVEL_VARIABLE: &str = "CIBOX_LOG";

/// The environment the servers' logging reads, for the manual pages.
pub const ENVIRONMENT: cibox_core::applet::Entries = &[(
    "CIBOX_LOG",
    "which log records are written: a level (error, warn, info, debug, trace) or tracing \
     directives such as cibox=debug (default info)",
)];

/// Whether [`init`] chose JSON: progress bars then stay off, so stderr stays JSON.
static JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the log format is JSON.
pub fn is_json() -> bool {
    JSON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Installs the process's subscriber. A second call (or one after another subscriber was
/// installed) changes nothing.
pub fn init(format: LogFormat) {
    JSON.store(
        format == LogFormat::Json,
        std::sync::atomic::Ordering::Relaxed,
    );
    let filter = tracing_subscriber::EnvFilter::try_from_env(LEVEL_VARIABLE)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
}
