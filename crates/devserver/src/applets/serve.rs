//! `serve` (alias `devserver`): the ChromiumOS-style devserver. Parses the seed devserver's
//! options (underscore spellings, dashes accepted too), hands a [`crate::Config`] to
//! [`crate::run`], and documents options, endpoints and exit codes in `--help`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use crate::builder::DEFAULT_TEMPLATE;
use crate::omaha::Flavor;
use crate::staging::StageLimits;
use cibox_core::applet::{Applet, Invocation, Manual};
use cibox_runtime::httpd;

const AFTER_HELP: &str = "\
Endpoints:
  GET  /                          Welcome text
  GET  /static/PATH               files under DATA/static (Range, ETag, If-Modified-Since, HEAD)
  POST /update[/LABEL]            Omaha 2.0/3.0 update check or event (text/xml):
                                  every <app> answered (platform, DLCs, miniOS, installs)
  POST /v1/update/                the same, at go-omaha's default path
  GET|POST /update_config         steer the next answers (JSON: critical_update, no_update,
                                  disable_payload_backoff, eol_date, is_rollback,
                                  failures_per_url)
  GET  /payloads/PATH             payload files of --payload-metadata
  GET  /install-payloads/PATH     payload files of --install-metadata
  GET  /xbuddy/[local/]BUILD/ARTIFACT[?return_dir|relative_path|for_update=true]
                                  artifacts of a build under static (BUILD may end in
                                  latest; ARTIFACT: test dev base recovery signed
                                  factory_shim full_payload stateful autotest test_suites
                                  firmware; default test)
  GET  /hosts                     fleet page (HTML, refreshes itself): every device seen,
                                  board, version per app, last check and event, forced update
  GET  /api/hosts[?limit=N]       the same as JSON, newest first (default: 1000 hosts)
  GET  /api/hostinfo/IP           last event, version and forced label of a host (JSON)
  GET  /api/hostlog/IP|all        update requests of a host, kept with -l (JSON, bounded)
  POST /api/setnextupdate/IP      body = label the host's next update check uses (once);
                                  a path under static of at most 512 bytes
  GET  /api/fileinfo/PATH         size, sha1, sha256 of a file under static (JSON)
  GET  /controlfiles?build=B[&control_path=P]   autotest control files of a staged build
  GET  /download?archive_url=URL  stage a build into static/TARGET/BUILD (also /stage)
  GET  /is_staged?archive_url=URL True or False
  GET  /latestbuild?target=T[&milestone=M]      newest build directory of a target
  GET  /build?board=B&pkg=P[&use=..&features=..] run the builder command
  GET  /check_health              free disk space and counters (JSON)
  GET  /metrics                   Prometheus metrics (OpenMetrics text): update checks by
                                  answer, events by result, requests, bytes, latency

Each app of a request is answered on its own: an app whose appid has payloads in
--payload-metadata gets one of them (a delta from its version when it accepts
deltas, else the full payload; the full one for an install, i.e. apps at
0.0.0.0 while the platform app sends no update check, from --install-metadata
when given); the first (platform) app
otherwise gets the payload below; any other app noupdate. Pings and events are
acknowledged only for the apps that sent them. The answer's format follows the
client family (--omaha-flavor auto): CoreOS/Flatcar (updater go-omaha or
update_engine-*, os platform CoreOS/Flatcar/linux, or machineid/bootid on an
app) get every hash in base64 and IsDelta; ChromiumOS gets hash_sha256 in hex,
fp, MetadataSize, MetadataSignatureRsa, IsDeltaPayload and MaxDaysToScatter.

Limits: a request body of at most 1 MiB, 256 apps, 128 attributes per element,
32 events per app and 32 nested elements (past them: 400 with the reason); at
most 10000 hosts are remembered (the least recently seen dropped) and 10000
host-log entries with 64 events each.

Payload for the platform app, first that applies: --factory_config, --payload,
--image (generated into static/cache/DIGEST/), --archive_dir (serve-only:
ARCHIVE/[LABEL/]update.gz), --board (latest image, newer versions only), else
static/[LABEL/]update.gz. With none of these options and no static/update.gz,
a 36-byte demo payload is written there (--no-demo to skip).

The bound address is printed on stdout as
  cibox serve: listening on http://ADDR:PORT/
(useful with --port 0), and written to --portfile (the pid to --pidfile) once
listening; both files are removed on exit. Logs: devserver_access.log and
devserver_error.log in the data directory (or --log-dir, or both in --logfile),
and stderr.

Exit status:
  0  served until SIGINT/SIGTERM, or --exit / --validate_factory_config succeeded
  1  start-up failed (bad directory, missing generator, invalid factory config, ...)
  2  usage error";

#[derive(Parser, Debug)]
#[command(
    about = "Devserver: hosts images and payloads, answers Omaha update checks",
    after_help = AFTER_HELP
)]
struct ServeArgs {
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    port: u16,

    /// Address to listen on [default: :: dual-stack, or 0.0.0.0 without IPv6]
    #[arg(long, value_name = "ADDR")]
    host: Option<IpAddr>,

    /// Writable directory where static/ lives [default: the current directory]
    #[arg(long = "data_dir", visible_alias = "data-dir", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Serve archived builds only: static/archive links here and it is the static root
    #[arg(
        long = "archive_dir",
        visible_alias = "archive-dir",
        value_name = "DIR"
    )]
    archive_dir: Option<PathBuf>,

    /// Empty the payload cache (static/cache) at start-up
    #[arg(long = "clear_cache", visible_alias = "clear-cache")]
    clear_cache: bool,

    /// Do the start-up work (cache, pre-generation, links), then exit without serving
    #[arg(long)]
    exit: bool,

    /// Serve the update.gz of this directory (or this payload file), copied into static/
    #[arg(long, value_name = "DIR")]
    payload: Option<PathBuf>,

    /// Force updates to this image (payload generated with cros_generate_update_payload)
    #[arg(long, value_name = "IMAGE")]
    image: Option<PathBuf>,

    /// Source image for a delta payload
    #[arg(long = "src_image", visible_alias = "src-image", value_name = "IMAGE")]
    src_image: Option<PathBuf>,

    /// Default board; with it, the latest image of the board is served (see --images_dir)
    #[arg(long, value_name = "BOARD")]
    board: Option<String>,

    /// The update is for a VM image (no kernel patching; uses the qemu image with --board)
    #[arg(long = "for_vm", visible_alias = "for-vm")]
    for_vm: bool,

    /// Private key (PEM) to sign generated payloads with
    #[arg(
        long = "private_key",
        visible_alias = "private-key",
        value_name = "FILE"
    )]
    private_key: Option<PathBuf>,

    /// Pre-generate the update payload at start-up
    #[arg(
        short = 'p',
        long = "pregenerate_update",
        visible_alias = "pregenerate-update"
    )]
    pregenerate_update: bool,

    /// Base URL of the payloads, other than this server's /static
    #[arg(short = 'u', long, value_name = "URL")]
    urlbase: Option<String>,

    /// Port the clients should connect to (replaces the port in payload URLs)
    #[arg(long = "proxy_port", visible_alias = "proxy-port", value_name = "PORT")]
    proxy_port: Option<u16>,

    /// Use the test image of --board
    #[arg(short = 't')]
    test_image: bool,

    /// Present the update as critical (deadline="now")
    #[arg(long = "critical_update", visible_alias = "critical-update")]
    critical_update: bool,

    /// Factory-floor config: Python `config = [...]` literal or JSON (never executed)
    #[arg(
        long = "factory_config",
        visible_alias = "factory-config",
        value_name = "FILE"
    )]
    factory_config: Option<PathBuf>,

    /// Check every image and checksum of --factory_config, then exit
    #[arg(
        long = "validate_factory_config",
        visible_alias = "validate-factory-config",
        requires = "factory_config"
    )]
    validate_factory_config: bool,

    /// Production mode: access lines go to the log file only, not to stderr
    #[arg(long)]
    production: bool,

    /// Keep a log of update requests per host (/api/hostlog)
    #[arg(short = 'l', long)]
    logging: bool,

    /// Deprecated, accepted and ignored
    #[arg(
        long = "client_prefix",
        visible_alias = "client-prefix",
        value_name = "PREFIX"
    )]
    client_prefix: Option<String>,

    /// Directory for devserver_access.log and devserver_error.log [default: data dir]
    #[arg(long = "log-dir", visible_alias = "log_dir", value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Builder command for /build; {board} and {pkg} are replaced
    #[arg(long, value_name = "CMD", default_value = DEFAULT_TEMPLATE)]
    builder: String,

    /// Where --board finds images (BOARD/VERSION/chromiumos_image.bin)
    /// [default: $CROS_WORKON_SRCROOT/src/build/images, else ~/trunk/src/build/images]
    #[arg(long = "images_dir", visible_alias = "images-dir", value_name = "DIR")]
    images_dir: Option<PathBuf>,

    /// Don't write the demo payload when nothing is configured
    #[arg(long = "no-demo", visible_alias = "no_demo")]
    no_demo: bool,

    #[command(flatten)]
    log: cibox_runtime::logging::LogArgs,
    #[command(flatten)]
    limits: httpd::LimitArgs,

    /// Seconds one artifact of /download may take (HTTP, or gsutil stat + cp)
    #[arg(long = "download-timeout", value_name = "SECS", default_value = "1800",
          value_parser = httpd::parse_seconds)]
    download_timeout: Duration,

    /// Largest artifact /download accepts, downloaded or unpacked, in bytes [16 GiB]
    #[arg(long = "download-max-bytes", value_name = "BYTES", default_value = "17179869184",
          value_parser = clap::value_parser!(u64).range(1..))]
    download_max_bytes: u64,
    /// Directory of nebraska-style payload metadata (*.json beside each payload, per
    /// appid): DLC, miniOS and platform payloads, full and delta, served under /payloads/
    #[arg(
        long = "payload-metadata",
        visible_aliases = ["payload_metadata", "update-metadata"],
        value_name = "DIR"
    )]
    payload_metadata: Option<PathBuf>,

    /// Payload metadata for installs, as nebraska keeps them apart (served under
    /// /install-payloads/) [default: --payload-metadata serves installs too]
    #[arg(
        long = "install-metadata",
        visible_alias = "install_metadata",
        value_name = "DIR"
    )]
    install_metadata: Option<PathBuf>,

    /// The static directory itself [default: DATA/static]; also the data dir when
    /// --data_dir is not given
    #[arg(long = "static_dir", visible_alias = "static-dir", value_name = "DIR")]
    static_dir: Option<PathBuf>,

    /// Write our pid here once listening (removed on exit)
    #[arg(long, value_name = "FILE")]
    pidfile: Option<PathBuf>,

    /// Write the bound port here once listening (removed on exit; with --port 0)
    #[arg(long, value_name = "FILE")]
    portfile: Option<PathBuf>,

    /// Write the access and error logs to this one file
    #[arg(long, value_name = "FILE")]
    logfile: Option<PathBuf>,

    /// Response format: auto (decided from each request), chromeos or coreos
    #[arg(long = "omaha-flavor", visible_alias = "omaha_flavor", value_enum, default_value_t = FlavorArg::Auto)]
    omaha_flavor: FlavorArg,
}

/// `--omaha-flavor`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum FlavorArg {
    /// Decided from each request
    Auto,
    /// ChromiumOS update_engine
    Chromeos,
    /// CoreOS and Flatcar (go-omaha, Flatcar's update_engine)
    Coreos,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _rest) = inv.parse::<ServeArgs>()?;
    cibox_runtime::logging::init(args.log.log_format);
    let config = crate::Config {
        host: args.host,
        port: args.port,
        data_dir: args.data_dir.unwrap_or_default(),
        archive_dir: args.archive_dir,
        clear_cache: args.clear_cache,
        exit: args.exit,
        payload: args.payload,
        image: args.image,
        src_image: args.src_image.filter(|p| !p.as_os_str().is_empty()),
        board: args.board,
        for_vm: args.for_vm,
        private_key: args.private_key,
        pregenerate: args.pregenerate_update,
        urlbase: args.urlbase,
        proxy_port: args.proxy_port,
        test_image: args.test_image,
        critical_update: args.critical_update,
        factory_config: args.factory_config,
        validate_factory_config: args.validate_factory_config,
        production: args.production,
        logging: args.logging,
        client_prefix: args.client_prefix,
        log_dir: args.log_dir,
        builder: args.builder,
        images_dir: args.images_dir,
        no_demo: args.no_demo,
        limits: args.limits.limits(),
        stage_limits: StageLimits {
            download_timeout: args.download_timeout,
            max_bytes: args.download_max_bytes,
        },
        payload_metadata: args.payload_metadata,
        install_metadata: args.install_metadata,
        static_dir: args.static_dir,
        pidfile: args.pidfile,
        portfile: args.portfile,
        logfile: args.logfile,
        omaha_flavor: match args.omaha_flavor {
            FlavorArg::Auto => None,
            FlavorArg::Chromeos => Some(Flavor::ChromeOs),
            FlavorArg::Coreos => Some(Flavor::CoreOs),
        },
    };
    crate::run(config)
}

inventory::submit! {
    Applet {
        name: "serve",
        about: "Devserver: hosts images and payloads, answers Omaha update checks",
        aliases: &["devserver"],
        command: ServeArgs::command,
        run,
        passthrough: false,
    }
}

inventory::submit! {
    Manual {
        applet: "serve",
        environment: &[cibox_runtime::progress::ENVIRONMENT, cibox_runtime::logging::ENVIRONMENT, &[("CROS_WORKON_SRCROOT", "with --board, images are looked for in $CROS_WORKON_SRCROOT/src/build/images (else ~/trunk/src/build/images)"), ("HOME", "see CROS_WORKON_SRCROOT")]],
        files: &[&[("DATA/static/", "what is served under /static/ (DATA is --data_dir, default the current directory); the demo payload goes to DATA/static/update.gz"), ("DATA/devserver_access.log, DATA/devserver_error.log", "the access and error logs (or in --log-dir)"), ("DATA/static/cache/", "payloads generated from --image")]],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_limits_default_to_the_documented_ones() {
        let args = ServeArgs::try_parse_from(["serve"]).unwrap();
        let defaults = httpd::Limits::default();
        assert_eq!(args.limits.limits(), defaults);
        let staging = StageLimits::default();
        assert_eq!(args.download_timeout, staging.download_timeout);
        assert_eq!(args.download_max_bytes, staging.max_bytes);
    }

    #[test]
    fn bad_connection_limits_are_usage_errors() {
        for bad in [
            ["serve", "--header-timeout", "0", "--port=8080"],
            ["serve", "--body-timeout", "soon", "--port=8080"],
            ["serve", "--idle-timeout=-1", "--port", "8080"],
            ["serve", "--max-connections", "0", "--port=8080"],
        ] {
            let err = ServeArgs::try_parse_from(bad).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::ValueValidation,
                "{bad:?}"
            );
        }
    }
}
