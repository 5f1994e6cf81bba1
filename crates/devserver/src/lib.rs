//! The devserver behind the `serve` applet: a ChromiumOS-style server that hosts images and
//! payloads under `DATA/static` and answers Omaha update checks (see
//! `docs/omaha.md`). [`run`] does the start-up work (static directory, archive
//! link, cache pruning, factory config, payload generation or copy, demo payload), then
//! serves HTTP with tokio + axum until SIGINT/SIGTERM.
//!
//! Modules: [`router`] (routes and small endpoints), [`update`] + [`omaha`] (the protocol),
//! [`metadata`] (payloads described per appid), [`fleet`] (the fleet page), [`metrics`],
//! [`xbuddy`] (artifact names), [`runfiles`] (pid and port files),
//! [`payload`] + [`generate`] + [`digests`] (which payload, its generation cache and hashes),
//! [`statics`] + [`paths`] (safe static files), [`hosts`], [`staging`], [`controlfiles`],
//! [`builder`], [`factory`] + [`pylit`], [`versions`], [`logs`].

pub mod applets;
pub mod builder;
pub mod controlfiles;
pub mod digests;
pub mod factory;
pub mod fleet;
pub mod generate;
pub mod handlers;
pub mod hosts;
pub mod logs;
pub mod metadata;
pub mod metrics;
pub mod omaha;
pub mod paths;
pub mod payload;
pub mod pylit;
pub mod router;
pub mod runfiles;
pub mod staging;
pub mod state;
pub mod statics;
pub mod update;
pub mod urls;
pub mod versions;
pub mod xbuddy;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};

use self::generate::{GenInputs, Generator, CACHED_ENTRIES, UPDATE_FILE};
use self::logs::Logs;
use self::payload::{BoardImages, ForcedPayload, Selector};

/// The demo payload written when nothing else is configured: the protocol's test vector.
pub const DEMO_PAYLOAD: &[u8] = b"Developers, developers, developers!\n";

/// Everything the command line configures.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Address to listen on (`None`: `::` dual-stack, else 0.0.0.0).
    pub host: Option<IpAddr>,
    /// Port (0: any free port; the bound address is printed).
    pub port: u16,
    /// Data directory (`static/` lives here).
    pub data_dir: PathBuf,
    /// `--archive_dir`: serve-only mode.
    pub archive_dir: Option<PathBuf>,
    /// `--clear_cache`.
    pub clear_cache: bool,
    /// `--exit`: set up, don't serve.
    pub exit: bool,
    /// `--payload`.
    pub payload: Option<PathBuf>,
    /// `--image`.
    pub image: Option<PathBuf>,
    /// `--src_image`.
    pub src_image: Option<PathBuf>,
    /// `--board`.
    pub board: Option<String>,
    /// `--for_vm`.
    pub for_vm: bool,
    /// `--private_key`.
    pub private_key: Option<PathBuf>,
    /// `-p`.
    pub pregenerate: bool,
    /// `--urlbase`.
    pub urlbase: Option<String>,
    /// `--proxy_port`.
    pub proxy_port: Option<u16>,
    /// `-t`.
    pub test_image: bool,
    /// `--critical_update`.
    pub critical_update: bool,
    /// `--factory_config`.
    pub factory_config: Option<PathBuf>,
    /// `--validate_factory_config`.
    pub validate_factory_config: bool,
    /// `--production`.
    pub production: bool,
    /// `-l`.
    pub logging: bool,
    /// `--client_prefix` (ignored).
    pub client_prefix: Option<String>,
    /// `--log-dir` (default: the data directory).
    pub log_dir: Option<PathBuf>,
    /// `--builder` template.
    pub builder: String,
    /// `--images_dir` (for `--board`).
    pub images_dir: Option<PathBuf>,
    /// `--no-demo`: don't write the demo payload.
    pub no_demo: bool,
    /// Connection bounds (`--header-timeout`, `--body-timeout`, `--idle-timeout`,
    /// `--max-connections`).
    pub limits: cibox_runtime::httpd::Limits,
    /// Staging bounds (`--download-timeout`, `--download-max-bytes`).
    pub stage_limits: staging::StageLimits,
    /// `--payload-metadata`: nebraska-style payload metadata, per appid.
    pub payload_metadata: Option<PathBuf>,
    /// `--install-metadata`: the same for installs (else `--payload-metadata` serves them).
    pub install_metadata: Option<PathBuf>,
    /// `--omaha-flavor`: force the response format (else decided per request).
    pub omaha_flavor: Option<omaha::Flavor>,
    /// `--static_dir`: the static directory itself (default: DATA/static).
    pub static_dir: Option<PathBuf>,
    /// `--pidfile`: our pid, written once listening, removed on exit.
    pub pidfile: Option<PathBuf>,
    /// `--portfile`: the bound port, written once listening, removed on exit.
    pub portfile: Option<PathBuf>,
    /// `--logfile`: one file for the access and error logs.
    pub logfile: Option<PathBuf>,
}

/// Where `--board` looks for images: `--images_dir`, else the ChromiumOS SDK's
/// `$CROS_WORKON_SRCROOT/src/build/images`, else `~/trunk/src/build/images`.
fn default_images_dir() -> PathBuf {
    if let Some(root) = std::env::var_os("CROS_WORKON_SRCROOT") {
        return PathBuf::from(root).join("src/build/images");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join("trunk/src/build/images")
}

/// `static/archive` -> `archive`: created, kept when right, replaced when stale.
fn link_archive(static_dir: &Path, archive: &Path, logs: &Logs) -> anyhow::Result<()> {
    let link = static_dir.join("archive");
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let target = std::fs::read_link(&link)?;
            if target == archive {
                return Ok(());
            }
            logs.error(format!(
                "removing stale symlink {} -> {}",
                link.display(),
                target.display()
            ));
            std::fs::remove_file(&link)
                .with_context(|| format!("cannot remove stale link {}", link.display()))?;
        }
        Ok(_) => bail!(
            "{} exists and is not a symbolic link; move it away to use --archive_dir",
            link.display()
        ),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(archive, &link)
        .with_context(|| format!("cannot link {} -> {}", link.display(), archive.display()))?;
    Ok(())
}

/// Prepares the cache directory: cleared with `--clear_cache`, else pruned to the newest
/// entries.
fn prepare_cache(cache_dir: &Path, clear: bool, logs: &Logs) -> anyhow::Result<()> {
    if cache_dir.is_dir() {
        if clear {
            let n = generate::clear(cache_dir)
                .with_context(|| format!("cannot clear the cache {}", cache_dir.display()))?;
            logs.error(format!(
                "cleared {n} cache entries in {}",
                cache_dir.display()
            ));
        } else {
            let removed = generate::prune(cache_dir, CACHED_ENTRIES)
                .with_context(|| format!("cannot prune the cache {}", cache_dir.display()))?;
            if !removed.is_empty() {
                logs.error(format!(
                    "pruned {} old cache entries (keeping the newest {CACHED_ENTRIES})",
                    removed.len()
                ));
            }
        }
    } else {
        std::fs::create_dir_all(cache_dir)
            .with_context(|| format!("cannot create the cache {}", cache_dir.display()))?;
    }
    Ok(())
}

fn must_exist(what: &str, path: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(p) = path {
        if !p.exists() {
            bail!("{what} {} does not exist", p.display());
        }
    }
    Ok(())
}

/// Runs the devserver: start-up work, then (unless `--exit`) serving until a signal.
pub fn run(config: Config) -> anyhow::Result<ExitCode> {
    let mut exit = ExitCode::SUCCESS;
    cibox_runtime::server::block_on_locked("serve", None, None, async {
        exit = run_async(config).await?;
        Ok(())
    })?;
    Ok(exit)
}

async fn run_async(config: Config) -> anyhow::Result<ExitCode> {
    let data_dir = if config.data_dir.as_os_str().is_empty() {
        match &config.static_dir {
            Some(dir) => dir.clone(),
            None => std::env::current_dir().context("cannot find the current directory")?,
        }
    } else {
        config.data_dir.clone()
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data dir {}", data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&data_dir)
        .with_context(|| format!("cannot resolve {}", data_dir.display()))?;
    let static_dir = config
        .static_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("static"));
    std::fs::create_dir_all(&static_dir)
        .with_context(|| format!("cannot create {}", static_dir.display()))?;
    let static_dir = std::fs::canonicalize(&static_dir)
        .with_context(|| format!("cannot resolve {}", static_dir.display()))?;
    let log_dir = config.log_dir.clone().unwrap_or_else(|| data_dir.clone());
    let logs = match &config.logfile {
        Some(file) => Logs::open_files(file, file, !config.production)?,
        None => Logs::open(&log_dir, !config.production)?,
    };
    let result = setup_and_serve(&config, &data_dir, &static_dir, &logs).await;
    if let Err(e) = &result {
        logs.error(format!("{e:#}"));
    }
    logs.close();
    result
}

async fn setup_and_serve(
    config: &Config,
    data_dir: &Path,
    static_dir: &Path,
    logs: &Arc<Logs>,
) -> anyhow::Result<ExitCode> {
    if config.client_prefix.is_some() {
        logs.error("--client_prefix is deprecated and ignored");
    }
    logs.error(format!("data dir is {}", data_dir.display()));

    let (static_root, archive) = match &config.archive_dir {
        Some(dir) => {
            let archive = std::fs::canonicalize(dir)
                .with_context(|| format!("archive dir {} must exist", dir.display()))?;
            if !archive.is_dir() {
                bail!("archive dir {} is not a directory", archive.display());
            }
            logs.error("preparing to serve updates only (serve-only mode)");
            link_archive(static_dir, &archive, logs)?;
            (archive.clone(), Some(archive))
        }
        None => (static_dir.to_path_buf(), None),
    };
    logs.error(format!("serving from {}", static_root.display()));

    let cache_dir = static_root.join("cache");
    let needs_generator = config.image.is_some() || config.pregenerate;
    match prepare_cache(&cache_dir, config.clear_cache, logs) {
        Ok(()) => {}
        // A read-only archive directory needs no cache unless something is generated.
        Err(e) if archive.is_some() && !needs_generator => {
            logs.error(format!("warning: {e:#}"));
        }
        Err(e) => return Err(e),
    }

    let factory = match &config.factory_config {
        Some(path) => {
            let cfg = factory::FactoryConfig::load(path)?;
            if config.validate_factory_config {
                let problems = cfg.validate(&static_root);
                if problems.is_empty() {
                    println!("Config file looks good.");
                    return Ok(ExitCode::SUCCESS);
                }
                for p in &problems {
                    println!("Error: {p}");
                }
                bail!(
                    "factory config {}: {} problem(s) found",
                    path.display(),
                    problems.len()
                );
            }
            Some(cfg)
        }
        None if config.validate_factory_config => {
            bail!("--validate_factory_config needs --factory_config FILE")
        }
        None => None,
    };

    must_exist("--image", &config.image)?;
    must_exist("--src_image", &config.src_image)?;
    must_exist("--private_key", &config.private_key)?;
    if config.pregenerate && config.image.is_none() && config.board.is_none() {
        bail!("-p/--pregenerate_update needs --image IMAGE or --board BOARD");
    }
    if needs_generator {
        generate::check_generators()?;
    }
    let image_inputs = config.image.as_ref().map(|image| GenInputs {
        image: image.clone(),
        src_image: config.src_image.clone(),
        private_key: config.private_key.clone(),
        for_vm: config.for_vm,
    });
    let board_images = config.board.as_ref().map(|_| BoardImages {
        images_dir: config.images_dir.clone().unwrap_or_else(default_images_dir),
        test_image: config.test_image,
        for_vm: config.for_vm,
    });
    let generator = Generator::new(cache_dir.clone());
    if config.pregenerate {
        let inputs = match (&image_inputs, &board_images, &config.board) {
            (Some(inputs), _, _) => inputs.clone(),
            (None, Some(images), Some(board)) => {
                let Some((image, _)) = images.latest(board) else {
                    bail!(
                        "no image for board {board} under {}",
                        images.images_dir.display()
                    );
                };
                GenInputs {
                    image,
                    src_image: None,
                    private_key: config.private_key.clone(),
                    for_vm: config.for_vm,
                }
            }
            _ => bail!("-p/--pregenerate_update needs --image IMAGE or --board BOARD"),
        };
        let (digest, _) = generator
            .generate(&inputs)
            .await
            .map_err(|e| anyhow::anyhow!("cannot pre-generate the update: {e}"))?;
        logs.error(format!(
            "pre-generated update: static/cache/{digest}/{UPDATE_FILE}"
        ));
        println!("Pre-generated update: cache/{digest}/{UPDATE_FILE}");
    }

    let forced = match &config.payload {
        Some(p) => {
            let forced = ForcedPayload::new(p, &static_root)?;
            if !config.exit {
                forced
                    .ensure_copied()
                    .await
                    .map_err(|e| anyhow::anyhow!("--payload: {e}"))?;
            }
            Some(forced)
        }
        None => None,
    };

    let nothing_configured = config.payload.is_none()
        && config.image.is_none()
        && archive.is_none()
        && factory.is_none()
        && config.board.is_none();
    let demo = static_root.join(UPDATE_FILE);
    if nothing_configured && !config.no_demo && !config.exit && !demo.exists() {
        std::fs::write(&demo, DEMO_PAYLOAD)
            .with_context(|| format!("cannot write the demo payload {}", demo.display()))?;
        logs.error(format!(
            "no payload configured: wrote a {}-byte demo payload to {} (replace it with a real \
             update.gz, or start with --payload DIR)",
            DEMO_PAYLOAD.len(),
            demo.display()
        ));
    }

    let load_index = |option: &str, dir: &Option<PathBuf>, prefix: &'static str| {
        dir.as_ref()
            .map(|dir| {
                let index = metadata::PayloadIndex::load(option, dir, prefix)?;
                logs.error(format!(
                    "{} payload(s) described in {}",
                    index.len(),
                    index.dir.display()
                ));
                anyhow::Ok(index)
            })
            .transpose()
    };
    let payloads = load_index("--payload-metadata", &config.payload_metadata, "payloads")?;
    let install_payloads = load_index(
        "--install-metadata",
        &config.install_metadata,
        "install-payloads",
    )?;

    if config.exit {
        logs.error("set-up done; exiting (--exit)");
        return Ok(ExitCode::SUCCESS);
    }

    let state = Arc::new(state::State {
        static_root: static_root.clone(),
        roots: statics::StaticRoots {
            data_static: static_dir.to_path_buf(),
            archive: archive.clone(),
        },
        serve_only: archive.is_some(),
        urlbase: config.urlbase.clone(),
        proxy_port: config.proxy_port,
        flavor: config.omaha_flavor,
        payloads,
        install_payloads,
        steering: std::sync::RwLock::new(omaha::Steering {
            critical_update: config.critical_update,
            ..omaha::Steering::default()
        }),
        selector: Selector {
            static_root: static_root.clone(),
            serve_only: archive.is_some(),
            forced,
            image: image_inputs,
            board_images,
            default_board: config.board.clone(),
            factory,
            generator,
        },
        digests: digests::DigestCache::default(),
        hosts: hosts::Hosts::new(config.logging),
        logs: logs.clone(),
        stats: state::Stats::default(),
        metrics: metrics::ServeMetrics::default(),
        stager: Arc::new(staging::Stager::new(
            static_root.clone(),
            config.stage_limits.clone(),
        )),
        builder: builder::Builder::new(&config.builder),
        started: Instant::now(),
    });

    // Signal handlers go in before the address is announced, so that a SIGTERM right after
    // start-up is a clean shutdown, not the default death.
    let mut signals = cibox_runtime::httpd::ShutdownSignals::install()
        .context("cannot handle SIGINT and SIGTERM")?;
    let listener = cibox_runtime::server::bind(config.host, config.port).await?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let _run_files = runfiles::RunFiles::write(
        config.pidfile.as_deref(),
        config.portfile.as_deref(),
        addr.port(),
    )?;
    logs.error(format!("listening on http://{addr}/"));
    println!("cibox serve: listening on http://{addr}/");

    let app = router::router(state);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(cibox_runtime::httpd::serve(
        app,
        vec![listener],
        config.limits.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    tokio::select! {
        _ = signals.recv() => {}
        result = &mut server => {
            // The server only ends on its own if it cannot serve at all.
            result
                .context("the HTTP server failed")?
                .context("the HTTP server failed")?;
            return Ok(ExitCode::FAILURE);
        }
    }
    logs.error("shutting down");
    let _ = stop_tx.send(());
    // Requests in progress get the shutdown grace; the server returns once it is over.
    let _ = tokio::time::timeout(config.limits.shutdown_grace * 2, server).await;
    Ok(ExitCode::SUCCESS)
}
