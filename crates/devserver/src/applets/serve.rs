//! `serve` (aliases `devserver`, and `devserver.py` for a link of that name, as the
//! devserver's integration test runs it): the ChromiumOS-style devserver. Parses the seed devserver's
//! options (underscore spellings, dashes accepted too) into a [`crate::config::Config`] (the
//! options are declared there), hands it to [`crate::startup::run`], and documents endpoints
//! and exit codes in `--help`.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::config::Config;
use cibox_core::applet::{Applet, Invocation, Manual};

const AFTER_HELP: &str = "\
Endpoints:
  GET  /                          Welcome text
  GET  /static/PATH               files under DATA/static (Range, ETag, If-Modified-Since, HEAD)
  POST /update[/LABEL]            Omaha 2.0/3.0 update check or event (text/xml):
                                  every <app> answered (platform, DLCs, miniOS, installs)
  POST /v1/update/                the same, at go-omaha's default path
  GET|POST /update_config         steer the next answers (JSON, nebraska's fields:
                                  critical_update, no_update, disable_payload_backoff,
                                  eol_date, is_rollback, failures_per_url, num_urls,
                                  full_payload, ignore_appid, return_noupdate_starting,
                                  invalidate_last_update, update_payloads_address,
                                  install_payloads_address); /update?FLAG=True steers
                                  one answer
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
  GET  /list_image_dir?archive_url=URL          what is staged for that build
  GET  /latestbuild?target=T[&milestone=M]      newest build directory of a target
  GET  /build?board=B&pkg=P[&use=..&features=..] run the builder command
  GET  /check_health              free disk space and counters (JSON)
  GET  /health_check              200 while serving (nebraska's check)
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
    #[command(flatten)]
    config: Config,
}

fn run(inv: Invocation) -> anyhow::Result<ExitCode> {
    let (ServeArgs { config }, _rest) = inv.parse::<ServeArgs>()?;
    cibox_runtime::logging::init(config.log.log_format);
    crate::startup::run(config)
}

inventory::submit! {
    Applet {
        name: "serve",
        about: "Devserver: hosts images and payloads, answers Omaha update checks",
        aliases: &["devserver", "devserver.py"],
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
    use crate::staging::StageLimits;
    use cibox_runtime::httpd;

    #[test]
    fn connection_limits_default_to_the_documented_ones() {
        let config = ServeArgs::try_parse_from(["serve"]).unwrap().config;
        let defaults = httpd::Limits::default();
        assert_eq!(config.connection_limits(), defaults);
        let staging = StageLimits::default();
        assert_eq!(config.download_timeout, staging.download_timeout);
        assert_eq!(config.download_max_bytes, staging.max_bytes);
        let derived = config.stage_limits();
        assert_eq!(derived.download_timeout, staging.download_timeout);
        assert_eq!(derived.max_bytes, staging.max_bytes);
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
