//! `keepstore`: a Keep block storage server compatible with Arvados' keepstore, for test runs.
//! It owns only the command line: Go-style flags (`-volume=DIR`, `-volume DIR`, `--volume=DIR`,
//! `-enforce-permissions`, `-enforce-permissions=false`) are normalised for clap, the
//! per-volume modifiers `-readonly` and `-serialize` are resolved, key and token files are
//! read, and [`crate::keepstore::run`] does the rest.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::BoolishValueParser;
use clap::{ArgMatches, CommandFactory, Parser};

use crate::keepstore::{self as server, Config, VolumeConfig};
use crate::signature::DEFAULT_TTL;
use crate::volume::DEFAULT_MIN_FREE;
use cibox_core::applet::{Applet, Invocation, Manual};
use cibox_runtime::httpd;
use cibox_runtime::logging::LogFormat;

#[derive(Parser, Debug)]
#[command(
    about = "Keep block storage server (Arvados keepstore compatible)",
    args_override_self = true,
    after_help = "GET /metrics answers Prometheus metrics (OpenMetrics text: requests by status \
class, response bytes, latency histogram).\n\nFlags may be spelled Go style: -flag=value, -flag value, --flag=value; boolean \
flags take -flag or -flag=true|false. -readonly and -serialize apply to the volumes given after \
them (given after every volume, to all of them).\n\n\
Slow and greedy clients are bounded: a request head must arrive within -header-timeout, each \
piece of a body within -body-timeout (else 408), an idle connection or one whose client stops \
reading is closed after -idle-timeout, and past -max-connections connections are answered 503. \
On SIGTERM or SIGINT requests in flight get 30 s to finish.\n\n\
Exit status:\n  0  stopped by SIGTERM or SIGINT after finishing requests in flight\n  \
1  cannot start (bad volume, pid file in use, cannot listen, unreadable key file)\n  2  usage error"
)]
struct KeepstoreArgs {
    /// A volume directory; repeat for several (PUT uses the first writable one with room)
    #[arg(long, value_name = "DIR", action = clap::ArgAction::Append)]
    volume: Vec<PathBuf>,
    /// Volume directories, comma separated (older spelling of -volume)
    #[arg(long, value_name = "DIR,...", value_delimiter = ',', action = clap::ArgAction::Append)]
    volumes: Vec<PathBuf>,
    /// Address to listen on
    #[arg(long, value_name = "[HOST]:PORT", default_value = ":25107")]
    listen: String,
    /// Write our pid here, locked while running, removed on exit
    #[arg(long, value_name = "FILE")]
    pid: Option<PathBuf>,
    /// File holding the permission signing key
    #[arg(long, value_name = "FILE", visible_alias = "blob-signing-key-file")]
    permission_key_file: Option<PathBuf>,
    /// Refuse GETs without a valid permission signature
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    enforce_permissions: bool,
    /// Lifetime of permission signatures, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TTL,
          visible_alias = "blob-signature-ttl")]
    permission_ttl: u64,
    /// File holding the token that may index, delete, trash and untrash
    #[arg(long, value_name = "FILE")]
    data_manager_token_file: Option<PathBuf>,
    /// Token required by /_health/ping (open when not given)
    #[arg(long, value_name = "TOKEN")]
    management_token: Option<String>,
    /// Refuse DELETE and ignore trash lists
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "true", default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    never_delete: bool,
    /// No writes, deletes or touches on the volumes that follow
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Append,
          value_parser = BoolishValueParser::new())]
    readonly: Vec<bool>,
    /// One request at a time on the volumes that follow
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", action = clap::ArgAction::Append,
          value_parser = BoolishValueParser::new())]
    serialize: Vec<bool>,
    /// Block transfers served at once (more wait their turn); bounds memory
    #[arg(long, value_name = "N", default_value_t = 128,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_buffers: u64,
    /// (cibox) Bytes per second a PUT body must average once its grace is over; a slower one
    /// is answered 408 and gives its buffer back
    #[arg(long, value_name = "BYTES", default_value_t = 16384,
          value_parser = clap::value_parser!(u64).range(1..))]
    put_min_rate: u64,
    /// (cibox) Seconds a PUT body may take before the minimum rate applies
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = httpd::parse_seconds)]
    put_rate_grace: std::time::Duration,
    /// Seconds a deleted block stays in trash (0: delete at once)
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    trash_lifetime: u64,
    /// Seconds between runs that empty expired trash
    #[arg(long, value_name = "SECONDS", default_value_t = 86400)]
    trash_check_interval: u64,
    /// (cibox) A volume with less free space than this is full
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MIN_FREE)]
    min_free_space: u64,
    #[command(flatten)]
    http: httpd::LimitArgs,

    #[command(flatten)]
    log: cibox_runtime::logging::LogArgs,
}

/// The value of a per-volume modifier for each volume position: the last occurrence before
/// it; when every occurrence comes after the last volume, the last one applies to all.
fn modifier_per_volume(matches: &ArgMatches, name: &str, volume_positions: &[usize]) -> Vec<bool> {
    let occurrences: Vec<(usize, bool)> =
        match (matches.indices_of(name), matches.get_many::<bool>(name)) {
            (Some(indices), Some(values)) => indices.zip(values.copied()).collect(),
            _ => Vec::new(),
        };
    let last_volume = volume_positions.iter().copied().max().unwrap_or(0);
    if !occurrences.is_empty() && occurrences.iter().all(|&(i, _)| i > last_volume) {
        let value = occurrences.last().map(|&(_, v)| v).unwrap_or(false);
        return vec![value; volume_positions.len()];
    }
    volume_positions
        .iter()
        .map(|&pos| {
            occurrences
                .iter()
                .rev()
                .find(|&&(i, _)| i < pos)
                .map(|&(_, v)| v)
                .unwrap_or(false)
        })
        .collect()
}

fn read_trimmed(path: &Path, what: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(text.trim().to_string())
}

fn config_from(matches: &ArgMatches, args: KeepstoreArgs) -> anyhow::Result<Config> {
    // Volume positions, in command-line order, from both spellings.
    let mut positioned: Vec<(usize, PathBuf)> = Vec::new();
    for name in ["volume", "volumes"] {
        if let (Some(indices), Some(values)) =
            (matches.indices_of(name), matches.get_many::<PathBuf>(name))
        {
            positioned.extend(indices.zip(values.cloned()));
        }
    }
    positioned.sort_by_key(|(i, _)| *i);
    let positions: Vec<usize> = positioned.iter().map(|(i, _)| *i).collect();
    let readonly = modifier_per_volume(matches, "readonly", &positions);
    let serialize = modifier_per_volume(matches, "serialize", &positions);
    let volumes = positioned
        .into_iter()
        .zip(readonly.into_iter().zip(serialize))
        .map(|((_, path), (readonly, serialize))| VolumeConfig {
            path,
            readonly,
            serialize,
        })
        .collect();
    let signing_key = match &args.permission_key_file {
        Some(path) => {
            let key = read_trimmed(path, "permission key file")?;
            anyhow::ensure!(
                !key.is_empty(),
                "permission key file {} is empty",
                path.display()
            );
            Some(key.into_bytes())
        }
        None => None,
    };
    let data_manager_token = match &args.data_manager_token_file {
        Some(path) => {
            Some(read_trimmed(path, "data manager token file")?).filter(|t| !t.is_empty())
        }
        None => None,
    };
    Ok(Config {
        volumes,
        listen: args.listen,
        pid_file: args.pid,
        signing_key,
        enforce_permissions: args.enforce_permissions,
        ttl: args.permission_ttl,
        data_manager_token,
        management_token: args.management_token,
        never_delete: args.never_delete,
        max_buffers: args.max_buffers as usize,
        put_min_rate: args.put_min_rate,
        put_rate_grace: args.put_rate_grace,
        trash_lifetime: args.trash_lifetime,
        trash_check_interval: args.trash_check_interval,
        min_free: args.min_free_space,
        http: httpd::Limits {
            shutdown_grace: server::SHUTDOWN_GRACE,
            ..args.http.limits()
        },
    })
}

fn parse(inv: &Invocation) -> anyhow::Result<(Config, LogFormat)> {
    let (args, matches): (KeepstoreArgs, _) = inv.parse_go_flags_with_matches()?;
    let log_format = args.log.log_format;
    Ok((config_from(&matches, args)?, log_format))
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (config, log_format) = parse(&inv)?;
    cibox_runtime::logging::init(log_format);
    server::run(config)?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "keepstore",
        about: "Keep block storage server (Arvados keepstore compatible)",
        aliases: &[],
        command: KeepstoreArgs::command,
        run,
        passthrough: false,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use clap::FromArgMatches;

    use super::*;
    use cibox_core::args::normalize_go_flags;

    fn parse_args(args: &[&str]) -> Result<Config, String> {
        let argv: Vec<OsString> = args.iter().map(OsString::from).collect();
        let command = KeepstoreArgs::command().name("keepstore");
        let full = std::iter::once(OsString::from("keepstore")).chain(normalize_go_flags(&argv));
        let matches = command
            .try_get_matches_from(full)
            .map_err(|e| e.to_string())?;
        let parsed = KeepstoreArgs::from_arg_matches(&matches).map_err(|e| e.to_string())?;
        config_from(&matches, parsed).map_err(|e| e.to_string())
    }

    #[test]
    fn go_spellings() {
        let c = parse_args(&[
            "-volume=/a",
            "-volume",
            "/b",
            "--volume=/c",
            "-listen=:1234",
            "-enforce-permissions",
            "-never-delete=false",
            "-max-buffers",
            "4",
            "-blob-signature-ttl=60",
        ])
        .unwrap();
        let paths: Vec<_> = c.volumes.iter().map(|v| v.path.to_str().unwrap()).collect();
        assert_eq!(paths, ["/a", "/b", "/c"]);
        assert_eq!(c.listen, ":1234");
        assert!(c.enforce_permissions);
        assert!(!c.never_delete);
        assert_eq!(c.max_buffers, 4);
        assert_eq!(c.ttl, 60);
        assert!(c.volumes.iter().all(|v| !v.readonly && !v.serialize));

        let c = parse_args(&["-volume=/a", "-enforce-permissions=false"]).unwrap();
        assert!(!c.enforce_permissions);
        assert!(c.never_delete);
        assert_eq!(c.max_buffers, 128);
        assert_eq!(c.ttl, DEFAULT_TTL);
        // Last one wins, as with Go's flag package.
        let c = parse_args(&["-volume=/a", "-listen=:1", "-listen=:2"]).unwrap();
        assert_eq!(c.listen, ":2");
    }

    #[test]
    fn modifiers_apply_to_following_volumes() {
        let c = parse_args(&[
            "-volume=/a",
            "-readonly",
            "-volume=/b",
            "-serialize",
            "-volume=/c",
        ])
        .unwrap();
        let ro: Vec<bool> = c.volumes.iter().map(|v| v.readonly).collect();
        let se: Vec<bool> = c.volumes.iter().map(|v| v.serialize).collect();
        assert_eq!(ro, [false, true, true]);
        assert_eq!(se, [false, false, true]);
        let c = parse_args(&["-readonly", "-volume=/a", "-readonly=false", "-volume=/b"]).unwrap();
        let ro: Vec<bool> = c.volumes.iter().map(|v| v.readonly).collect();
        assert_eq!(ro, [true, false]);
        let c = parse_args(&["-volume=/a", "-volumes=/b,/c", "-readonly"]).unwrap();
        let ro: Vec<bool> = c.volumes.iter().map(|v| v.readonly).collect();
        assert_eq!(ro, [true, true, true]);
    }

    #[test]
    fn usage_errors() {
        assert!(parse_args(&["-volume=/a", "-no-such-flag"]).is_err());
        assert!(parse_args(&["-volume=/a", "-enforce-permissions=maybe"]).is_err());
        assert!(parse_args(&["-volume=/a", "-max-buffers=0"]).is_err());
        // A bool flag does not swallow the next argument.
        assert!(parse_args(&["-enforce-permissions", "/a"]).is_err());
    }
}

inventory::submit! {
    Manual {
        applet: "keepstore",
        environment: &[cibox_runtime::logging::ENVIRONMENT],
        files: &[&[("VOLUME/XXX/LOCATOR", "blocks, in a directory named after the first three hex digits of their hash"), ("-pid FILE", "the pid file, locked while the server runs and removed on exit")]],
    }
}
