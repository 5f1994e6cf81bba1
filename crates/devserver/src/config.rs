//! The serve applet's command line as the devserver's configuration: [`Config`] is the clap
//! argument struct itself (every option, its spelling, help text and default), flattened into
//! the applet's parser; the values derived from it (the connection and staging limits, the
//! forced Omaha flavor) are its methods. Path options are never empty: clap refuses an empty
//! path as a usage error.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use cibox_runtime::httpd;

use crate::builder::DEFAULT_TEMPLATE;
use crate::omaha::Flavor;
use crate::staging::StageLimits;

/// Everything the command line configures.
#[derive(clap::Args, Debug, Clone)]
pub struct Config {
    /// Port to listen on (0: any free port)
    #[arg(long, default_value_t = 8080, value_name = "PORT")]
    pub port: u16,

    /// Address to listen on [default: :: dual-stack, or 0.0.0.0 without IPv6]
    #[arg(long, value_name = "ADDR")]
    pub host: Option<IpAddr>,

    /// Writable directory where static/ lives [default: the current directory]
    #[arg(long = "data_dir", visible_alias = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Serve archived builds only: static/archive links here and it is the static root
    #[arg(
        long = "archive_dir",
        visible_alias = "archive-dir",
        value_name = "DIR"
    )]
    pub archive_dir: Option<PathBuf>,

    /// Empty the payload cache (static/cache) at start-up
    #[arg(long = "clear_cache", visible_alias = "clear-cache")]
    pub clear_cache: bool,

    /// Do the start-up work (cache, pre-generation, links), then exit without serving
    #[arg(long)]
    pub exit: bool,

    /// Serve the update.gz of this directory (or this payload file), copied into static/
    #[arg(long, value_name = "DIR")]
    pub payload: Option<PathBuf>,

    /// Force updates to this image (payload generated with cros_generate_update_payload)
    #[arg(long, value_name = "IMAGE")]
    pub image: Option<PathBuf>,

    /// Source image for a delta payload
    #[arg(long = "src_image", visible_alias = "src-image", value_name = "IMAGE")]
    pub src_image: Option<PathBuf>,

    /// Default board; with it, the latest image of the board is served (see --images_dir)
    #[arg(long, value_name = "BOARD")]
    pub board: Option<String>,

    /// The update is for a VM image (no kernel patching; uses the qemu image with --board)
    #[arg(long = "for_vm", visible_alias = "for-vm")]
    pub for_vm: bool,

    /// Private key (PEM) to sign generated payloads with
    #[arg(
        long = "private_key",
        visible_alias = "private-key",
        value_name = "FILE"
    )]
    pub private_key: Option<PathBuf>,

    /// Pre-generate the update payload at start-up
    #[arg(
        short = 'p',
        long = "pregenerate_update",
        visible_alias = "pregenerate-update"
    )]
    pub pregenerate_update: bool,

    /// Base URL of the payloads, other than this server's /static
    #[arg(short = 'u', long, value_name = "URL")]
    pub urlbase: Option<String>,

    /// Port the clients should connect to (replaces the port in payload URLs)
    #[arg(long = "proxy_port", visible_alias = "proxy-port", value_name = "PORT")]
    pub proxy_port: Option<u16>,

    /// Use the test image of --board
    #[arg(short = 't')]
    pub test_image: bool,

    /// Present the update as critical (deadline="now")
    #[arg(long = "critical_update", visible_alias = "critical-update")]
    pub critical_update: bool,

    /// Factory-floor config: Python `config = [...]` literal or JSON (never executed)
    #[arg(
        long = "factory_config",
        visible_alias = "factory-config",
        value_name = "FILE"
    )]
    pub factory_config: Option<PathBuf>,

    /// Check every image and checksum of --factory_config, then exit
    #[arg(
        long = "validate_factory_config",
        visible_alias = "validate-factory-config",
        requires = "factory_config"
    )]
    pub validate_factory_config: bool,

    /// Production mode: access lines go to the log file only, not to stderr
    #[arg(long)]
    pub production: bool,

    /// Keep a log of update requests per host (/api/hostlog)
    #[arg(short = 'l', long)]
    pub logging: bool,

    /// Deprecated, accepted and ignored
    #[arg(
        long = "client_prefix",
        visible_alias = "client-prefix",
        value_name = "PREFIX"
    )]
    pub client_prefix: Option<String>,

    /// Directory for devserver_access.log and devserver_error.log [default: data dir]
    #[arg(long = "log-dir", visible_alias = "log_dir", value_name = "DIR")]
    pub log_dir: Option<PathBuf>,

    /// Builder command for /build; {board} and {pkg} are replaced
    #[arg(long, value_name = "CMD", default_value = DEFAULT_TEMPLATE)]
    pub builder: String,

    /// Where --board finds images (BOARD/VERSION/chromiumos_image.bin)
    /// [default: $CROS_WORKON_SRCROOT/src/build/images, else ~/trunk/src/build/images]
    #[arg(long = "images_dir", visible_alias = "images-dir", value_name = "DIR")]
    pub images_dir: Option<PathBuf>,

    /// Don't write the demo payload when nothing is configured
    #[arg(long = "no-demo", visible_alias = "no_demo")]
    pub no_demo: bool,

    #[command(flatten)]
    pub log: cibox_runtime::logging::LogArgs,
    #[command(flatten)]
    pub limits: httpd::LimitArgs,

    /// Seconds one artifact of /download may take (HTTP, or gsutil stat + cp)
    #[arg(long = "download-timeout", value_name = "SECS", default_value = "1800",
          value_parser = httpd::parse_seconds)]
    pub download_timeout: Duration,

    /// Largest artifact /download accepts, downloaded or unpacked, in bytes [16 GiB]
    #[arg(long = "download-max-bytes", value_name = "BYTES", default_value = "17179869184",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub download_max_bytes: u64,
    /// Directory of nebraska-style payload metadata (*.json beside each payload, per
    /// appid): DLC, miniOS and platform payloads, full and delta, served under /payloads/
    #[arg(
        long = "payload-metadata",
        visible_aliases = ["payload_metadata", "update-metadata"],
        value_name = "DIR"
    )]
    pub payload_metadata: Option<PathBuf>,

    /// Payload metadata for installs, as nebraska keeps them apart (served under
    /// /install-payloads/) [default: --payload-metadata serves installs too]
    #[arg(
        long = "install-metadata",
        visible_alias = "install_metadata",
        value_name = "DIR"
    )]
    pub install_metadata: Option<PathBuf>,

    /// The static directory itself [default: DATA/static]; also the data dir when
    /// --data_dir is not given
    #[arg(long = "static_dir", visible_alias = "static-dir", value_name = "DIR")]
    pub static_dir: Option<PathBuf>,

    /// Write our pid here once listening (removed on exit)
    #[arg(long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Write the bound port here once listening (removed on exit; with --port 0)
    #[arg(long, value_name = "FILE")]
    pub portfile: Option<PathBuf>,

    /// Write the access and error logs to this one file
    #[arg(long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// Response format: auto (decided from each request), chromeos or coreos
    #[arg(long = "omaha-flavor", visible_alias = "omaha_flavor", value_enum, default_value_t = FlavorArg::Auto)]
    pub omaha_flavor: FlavorArg,

    /// Positional arguments: accepted and ignored, as the devserver's optparse did (its
    /// integration test runs `devserver.py devserver.py --static_dir ...`)
    #[arg(hide = true, value_name = "IGNORED")]
    pub ignored: Vec<std::ffi::OsString>,
}

/// `--omaha-flavor`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlavorArg {
    /// Decided from each request
    Auto,
    /// ChromiumOS update_engine
    Chromeos,
    /// CoreOS and Flatcar (go-omaha, Flatcar's update_engine)
    Coreos,
}

impl Config {
    /// Connection bounds (`--header-timeout`, `--body-timeout`, `--idle-timeout`,
    /// `--max-connections`).
    pub fn connection_limits(&self) -> httpd::Limits {
        self.limits.limits()
    }

    /// Staging bounds (`--download-timeout`, `--download-max-bytes`).
    pub fn stage_limits(&self) -> StageLimits {
        StageLimits {
            download_timeout: self.download_timeout,
            max_bytes: self.download_max_bytes,
        }
    }

    /// The response format `--omaha-flavor` forces (`None`: decided per request).
    pub fn flavor(&self) -> Option<Flavor> {
        match self.omaha_flavor {
            FlavorArg::Auto => None,
            FlavorArg::Chromeos => Some(Flavor::ChromeOs),
            FlavorArg::Coreos => Some(Flavor::CoreOs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    fn parse(args: &[&str]) -> Config {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .config
    }

    #[test]
    fn derived_values() {
        let config = parse(&[]);
        assert_eq!(config.flavor(), None);
        assert_eq!(config.data_dir, None);
        assert_eq!(config.port, 8080);
        assert_eq!(config.builder, DEFAULT_TEMPLATE);

        let config = parse(&["--omaha-flavor", "coreos", "--data-dir", "/srv/data"]);
        assert_eq!(config.flavor(), Some(Flavor::CoreOs));
        assert_eq!(config.data_dir, Some(PathBuf::from("/srv/data")));
        let config = parse(&["--omaha_flavor=chromeos", "--src-image", "old.bin"]);
        assert_eq!(config.flavor(), Some(Flavor::ChromeOs));
        assert_eq!(config.src_image, Some(PathBuf::from("old.bin")));
    }

    #[test]
    fn empty_paths_are_usage_errors() {
        for bad in [["serve", "--data_dir", ""], ["serve", "--src_image", ""]] {
            let err = Cli::try_parse_from(bad).err().expect("refused");
            assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{bad:?}");
        }
    }
}
