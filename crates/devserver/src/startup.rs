//! The devserver's start-up and life, as a sequence of named steps: resolve the data and
//! static directories, open the logs, link the archive directory (serve-only mode), prepare
//! the payload cache, load (or validate) the factory config, choose the platform payload
//! (generator checks, pre-generation, `--payload` copy), write the demo payload, load the
//! payload metadata, build the shared [`State`], bind and announce the address, and serve
//! until SIGINT or SIGTERM. [`run`] is the entry point; each step is a function here.
//!
//! What start-up writes goes only where no other user can plant links: the data and static
//! directories and the payload cache must pass [`trust::check_dir`], the logs are opened
//! without following links, and the demo payload is created only where nothing, not even a
//! dangling link, is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _};

use crate::builder::Builder;
use crate::config::Config;
use crate::digests::DigestCache;
use crate::factory::FactoryConfig;
use crate::generate::{self, GenInputs, Generator, CACHED_ENTRIES, UPDATE_FILE};
use crate::hosts::Hosts;
use crate::logs::Logs;
use crate::metadata::PayloadIndex;
use crate::metrics::ServeMetrics;
use crate::omaha::Steering;
use crate::payload::{BoardImages, ForcedPayload, Selector};
use crate::router::router;
use crate::runfiles::RunFiles;
use crate::staging::Stager;
use crate::state::{State, Stats};
use crate::statics::StaticRoots;
use crate::trust;

/// The demo payload written when nothing else is configured: the protocol's test vector.
pub const DEMO_PAYLOAD: &[u8] = b"Developers, developers, developers!\n";

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
    let dirs = Directories::resolve(&config)?;
    let logs = open_logs(&config, &dirs)?;
    let result = setup_and_serve(&config, &dirs, &logs).await;
    if let Err(e) = &result {
        logs.error(format!("{e:#}"));
    }
    logs.close();
    result
}

/// The steps after the logs are open; an error ends up in the error log.
async fn setup_and_serve(
    config: &Config,
    dirs: &Directories,
    logs: &Arc<Logs>,
) -> anyhow::Result<ExitCode> {
    if config.client_prefix.is_some() {
        logs.error("--client_prefix is deprecated and ignored");
    }
    logs.error(format!("data dir is {}", dirs.data.display()));
    let served = ServedRoot::choose(config, dirs, logs)?;
    prepare_cache(config, &served, logs)?;
    let factory = match load_factory_config(config, &served)? {
        FactoryStep::Validated => return Ok(ExitCode::SUCCESS),
        FactoryStep::Loaded(factory) => factory,
    };
    let has_factory_config = factory.is_some();
    let selector = choose_payload(config, &served, factory, logs).await?;
    write_demo_payload(config, &served, has_factory_config, logs)?;
    let payloads = load_payload_index(
        "--payload-metadata",
        &config.payload_metadata,
        "payloads",
        logs,
    )?;
    let install_payloads = load_payload_index(
        "--install-metadata",
        &config.install_metadata,
        "install-payloads",
        logs,
    )?;
    if config.exit {
        logs.error("set-up done; exiting (--exit)");
        return Ok(ExitCode::SUCCESS);
    }
    let state = build_state(
        config,
        dirs,
        &served,
        selector,
        (payloads, install_payloads),
        logs,
    );
    let bound = bind_and_announce(config, logs).await?;
    serve_until_signal(config, state, bound, logs).await
}

/// The data directory and `DATA/static`, created and canonical.
struct Directories {
    /// `--data_dir`, else `--static_dir`, else the current directory.
    data: PathBuf,
    /// `--static_dir`, else `DATA/static`.
    static_dir: PathBuf,
}

impl Directories {
    /// Step 1: resolves (and creates, mode 0755) the data and static directories; each must
    /// be owned by the caller or root and writable by no one else ([`trust::check_dir`]),
    /// `--static_dir` as much as `--data_dir`: serve writes into both.
    fn resolve(config: &Config) -> anyhow::Result<Directories> {
        let data = match (&config.data_dir, &config.static_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(dir)) => dir.clone(),
            (None, None) => std::env::current_dir().context("cannot find the current directory")?,
        };
        trust::create_dir("data dir", &data)?;
        let data = std::fs::canonicalize(&data)
            .with_context(|| format!("cannot resolve {}", data.display()))?;
        trust::check_dir("data dir", &data)?;
        let static_dir = config
            .static_dir
            .clone()
            .unwrap_or_else(|| data.join("static"));
        trust::create_dir("static dir", &static_dir)?;
        let static_dir = std::fs::canonicalize(&static_dir)
            .with_context(|| format!("cannot resolve {}", static_dir.display()))?;
        trust::check_dir("static dir", &static_dir)?;
        Ok(Directories { data, static_dir })
    }
}

/// Step 2: opens the access and error logs (`--logfile`, else in `--log-dir`, else in the
/// data directory); access lines go to stderr too unless `--production`.
fn open_logs(config: &Config, dirs: &Directories) -> anyhow::Result<Arc<Logs>> {
    match &config.logfile {
        Some(file) => Logs::open_files(file, file, !config.production),
        None => {
            let log_dir = config.log_dir.as_ref().unwrap_or(&dirs.data);
            Logs::open(log_dir, !config.production)
        }
    }
}

/// What `/static/` serves from: the static directory, or in serve-only mode the archive
/// directory (linked as `static/archive`).
struct ServedRoot {
    /// The effective static root (canonical).
    static_root: PathBuf,
    /// `--archive_dir`, canonical: serve-only mode.
    archive: Option<PathBuf>,
}

impl ServedRoot {
    /// Step 3: the static directory, or the archive directory, linked.
    fn choose(config: &Config, dirs: &Directories, logs: &Logs) -> anyhow::Result<ServedRoot> {
        let served = match &config.archive_dir {
            Some(dir) => {
                let archive = std::fs::canonicalize(dir)
                    .with_context(|| format!("archive dir {} must exist", dir.display()))?;
                if !archive.is_dir() {
                    bail!("archive dir {} is not a directory", archive.display());
                }
                logs.error("preparing to serve updates only (serve-only mode)");
                link_archive(&dirs.static_dir, &archive, logs)?;
                ServedRoot {
                    static_root: archive.clone(),
                    archive: Some(archive),
                }
            }
            None => ServedRoot {
                static_root: dirs.static_dir.clone(),
                archive: None,
            },
        };
        logs.error(format!("serving from {}", served.static_root.display()));
        Ok(served)
    }

    fn cache_dir(&self) -> PathBuf {
        self.static_root.join("cache")
    }
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

/// Whether start-up or update checks generate payloads (`--image`, `-p`).
fn needs_generator(config: &Config) -> bool {
    config.image.is_some() || config.pregenerate_update
}

/// Step 4: the payload cache (`static/cache`), cleared with `--clear_cache`, else pruned to
/// the newest entries. It must not be a symbolic link and must pass [`trust::check_dir`]:
/// nothing is removed through a link. A read-only archive directory needs no cache unless
/// something is generated: then a failure is only a warning.
fn prepare_cache(config: &Config, served: &ServedRoot, logs: &Logs) -> anyhow::Result<()> {
    match prepare_cache_dir(&served.cache_dir(), config.clear_cache, logs) {
        Ok(()) => Ok(()),
        Err(e) if served.archive.is_some() && !needs_generator(config) => {
            logs.error(format!("warning: {e:#}"));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn prepare_cache_dir(cache_dir: &Path, clear: bool, logs: &Logs) -> anyhow::Result<()> {
    trust::refuse_link("payload cache", cache_dir)?;
    if !cache_dir.exists() {
        return trust::create_dir("payload cache", cache_dir);
    }
    trust::check_dir("payload cache", cache_dir)?;
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
    Ok(())
}

/// What the factory-config step decided.
enum FactoryStep {
    /// `--validate_factory_config` found nothing wrong: the run is over.
    Validated,
    /// Go on, with the factory config if there is one.
    Loaded(Option<FactoryConfig>),
}

/// Step 5: loads `--factory_config`; with `--validate_factory_config`, checks it instead
/// (problems printed on stdout, an error when there are any).
fn load_factory_config(config: &Config, served: &ServedRoot) -> anyhow::Result<FactoryStep> {
    let Some(path) = &config.factory_config else {
        if config.validate_factory_config {
            bail!("--validate_factory_config needs --factory_config FILE");
        }
        return Ok(FactoryStep::Loaded(None));
    };
    let factory = FactoryConfig::load(path)?;
    if !config.validate_factory_config {
        return Ok(FactoryStep::Loaded(Some(factory)));
    }
    let problems = factory.validate(&served.static_root);
    if problems.is_empty() {
        println!("Config file looks good.");
        return Ok(FactoryStep::Validated);
    }
    for p in &problems {
        println!("Error: {p}");
    }
    bail!(
        "factory config {}: {} problem(s) found",
        path.display(),
        problems.len()
    )
}

fn must_exist(what: &str, path: &Option<PathBuf>) -> anyhow::Result<()> {
    if let Some(p) = path {
        if !p.exists() {
            bail!("{what} {} does not exist", p.display());
        }
    }
    Ok(())
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

/// Step 6: the platform payload's selection: the inputs are checked (files exist, generators
/// installed), the update pre-generated with `-p`, the `--payload` copied in (unless
/// `--exit`).
async fn choose_payload(
    config: &Config,
    served: &ServedRoot,
    factory: Option<FactoryConfig>,
    logs: &Logs,
) -> anyhow::Result<Selector> {
    must_exist("--image", &config.image)?;
    must_exist("--src_image", &config.src_image)?;
    must_exist("--private_key", &config.private_key)?;
    if config.pregenerate_update && config.image.is_none() && config.board.is_none() {
        bail!("-p/--pregenerate_update needs --image IMAGE or --board BOARD");
    }
    if needs_generator(config) {
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
    let generator = Generator::new(served.cache_dir());
    if config.pregenerate_update {
        pregenerate(config, &image_inputs, &board_images, &generator, logs).await?;
    }
    let forced = match &config.payload {
        Some(p) => {
            let forced = ForcedPayload::new(p, &served.static_root)?;
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
    Ok(Selector {
        static_root: served.static_root.clone(),
        serve_only: served.archive.is_some(),
        forced,
        image: image_inputs,
        board_images,
        default_board: config.board.clone(),
        factory,
        generator,
    })
}

/// `-p`: generates the update of `--image` (or of the board's latest image) into the cache.
async fn pregenerate(
    config: &Config,
    image_inputs: &Option<GenInputs>,
    board_images: &Option<BoardImages>,
    generator: &Generator,
    logs: &Logs,
) -> anyhow::Result<()> {
    let inputs = match (image_inputs, board_images, &config.board) {
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
    Ok(())
}

/// Step 7: with no payload configured at all (and no `--no-demo`, no `--exit`), writes the
/// demo payload to `static/update.gz` unless something is there: a symbolic link, even a
/// dangling one, is never written through.
fn write_demo_payload(
    config: &Config,
    served: &ServedRoot,
    has_factory_config: bool,
    logs: &Logs,
) -> anyhow::Result<()> {
    let nothing_configured = config.payload.is_none()
        && config.image.is_none()
        && served.archive.is_none()
        && !has_factory_config
        && config.board.is_none();
    let demo = served.static_root.join(UPDATE_FILE);
    if !nothing_configured || config.no_demo || config.exit {
        return Ok(());
    }
    match std::fs::symlink_metadata(&demo) {
        Ok(meta) => {
            if meta.file_type().is_symlink() && !demo.exists() {
                logs.error(format!(
                    "warning: {} is a symbolic link to nothing; no demo payload written",
                    demo.display()
                ));
            }
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", demo.display()));
        }
    }
    let written = trust::create_new(&demo, DEMO_PAYLOAD)
        .with_context(|| format!("cannot write the demo payload {}", demo.display()))?;
    if !written {
        return Ok(());
    }
    logs.error(format!(
        "no payload configured: wrote a {}-byte demo payload to {} (replace it with a real \
         update.gz, or start with --payload DIR)",
        DEMO_PAYLOAD.len(),
        demo.display()
    ));
    Ok(())
}

/// Step 8: the payload metadata of `option` (`--payload-metadata`, `--install-metadata`),
/// served under `/prefix/`.
fn load_payload_index(
    option: &str,
    dir: &Option<PathBuf>,
    prefix: &'static str,
    logs: &Logs,
) -> anyhow::Result<Option<PayloadIndex>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let index = PayloadIndex::load(option, dir, prefix)?;
    logs.error(format!(
        "{} payload(s) described in {}",
        index.len(),
        index.dir.display()
    ));
    Ok(Some(index))
}

/// Step 9: the state the handlers share.
fn build_state(
    config: &Config,
    dirs: &Directories,
    served: &ServedRoot,
    selector: Selector,
    (payloads, install_payloads): (Option<PayloadIndex>, Option<PayloadIndex>),
    logs: &Arc<Logs>,
) -> Arc<State> {
    Arc::new(State {
        static_root: served.static_root.clone(),
        roots: StaticRoots {
            data_static: dirs.static_dir.clone(),
            archive: served.archive.clone(),
        },
        serve_only: served.archive.is_some(),
        urlbase: config.urlbase.clone(),
        proxy_port: config.proxy_port,
        flavor: config.flavor(),
        payloads,
        install_payloads,
        steering: std::sync::RwLock::new(Steering {
            critical_update: config.critical_update,
            ..Steering::default()
        }),
        selector,
        digests: DigestCache::default(),
        hosts: Hosts::new(config.logging),
        logs: logs.clone(),
        stats: Stats::default(),
        metrics: ServeMetrics::default(),
        stager: Arc::new(Stager::new(
            served.static_root.clone(),
            config.stage_limits(),
        )),
        builder: Builder::new(&config.builder),
        started: Instant::now(),
    })
}

/// A bound socket, announced, with the signal handlers in place and the run files written
/// (removed when this is dropped).
struct Bound {
    listener: tokio::net::TcpListener,
    signals: cibox_runtime::httpd::ShutdownSignals,
    _run_files: RunFiles,
}

/// Step 10: signal handlers, the listening socket, `--pidfile` and `--portfile`, then the
/// address in the log and on stdout.
async fn bind_and_announce(config: &Config, logs: &Logs) -> anyhow::Result<Bound> {
    // Signal handlers go in before the address is announced, so that a SIGTERM right after
    // start-up is a clean shutdown, not the default death.
    let signals = cibox_runtime::httpd::ShutdownSignals::install()
        .context("cannot handle SIGINT and SIGTERM")?;
    let listener = cibox_runtime::server::bind(config.host, config.port).await?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let run_files = RunFiles::write(
        config.pidfile.as_deref(),
        config.portfile.as_deref(),
        addr.port(),
    )?;
    logs.error(format!("listening on http://{addr}/"));
    println!("cibox serve: listening on http://{addr}/");
    Ok(Bound {
        listener,
        signals,
        _run_files: run_files,
    })
}

/// Step 11: serves until SIGINT or SIGTERM, then lets requests in progress finish for the
/// shutdown grace. The server ending on its own (it cannot serve) is a failure.
async fn serve_until_signal(
    config: &Config,
    state: Arc<State>,
    bound: Bound,
    logs: &Logs,
) -> anyhow::Result<ExitCode> {
    let Bound {
        listener,
        mut signals,
        _run_files,
    } = bound;
    let limits = config.connection_limits();
    let grace = limits.shutdown_grace;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut server = tokio::spawn(cibox_runtime::httpd::serve(
        router(state),
        vec![listener],
        limits,
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
    let _ = tokio::time::timeout(grace * 2, server).await;
    Ok(ExitCode::SUCCESS)
}
