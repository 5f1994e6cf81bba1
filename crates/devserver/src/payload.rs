//! Which payload answers an update check (the 2012 devserver's selection): factory config,
//! `--payload` (copied into the static directory, again whenever the source changes),
//! `--image` (generated, cached), serve-only mode, the latest image of `--board`, else the
//! `update.gz` of the static directory or of the label's directory under it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::generate::{GenInputs, Generator, STATEFUL_FILE, UPDATE_FILE};
use super::omaha::AppRequest;
use super::paths::{join_within, resolve_within};
use super::versions;

/// Version announced for payloads whose version is unknown: newer than any real one.
pub const DEFAULT_VERSION: &str = "9999.0.0";

/// The payload chosen for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// Directory of the payload relative to the static URL base ("" for the root).
    pub url_dir: String,
    /// File name (the URL's last component).
    pub name: String,
    /// The file.
    pub file: PathBuf,
    /// Version to announce.
    pub version: String,
    /// Whether it is a delta payload.
    pub is_delta: bool,
    /// Expected SHA-1 from a factory config (checked against the file).
    pub expected_sha1: Option<String>,
}

/// `--payload`: a payload outside the static directory, copied in.
pub struct ForcedPayload {
    source: PathBuf,
    dest_dir: PathBuf,
    copied: tokio::sync::Mutex<Option<(u64, i64, i64)>>,
}

fn stamp(path: &Path) -> std::io::Result<(u64, i64, i64)> {
    let m = std::fs::metadata(path)?;
    Ok((m.len(), m.mtime(), m.mtime_nsec()))
}

fn copy_atomic(from: &Path, to: &Path) -> std::io::Result<()> {
    let tmp = to.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = std::fs::copy(from, &tmp).and_then(|_| std::fs::rename(&tmp, to));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl ForcedPayload {
    /// `--payload PATH`: a directory holding `update.gz`, or the payload file itself.
    pub fn new(path: &Path, dest_dir: &Path) -> anyhow::Result<Self> {
        let source = if path.is_dir() {
            path.join(UPDATE_FILE)
        } else {
            path.to_path_buf()
        };
        if !source.is_file() {
            anyhow::bail!("--payload: no payload at {}", source.display());
        }
        Ok(ForcedPayload {
            source: std::fs::canonicalize(&source)?,
            dest_dir: dest_dir.to_path_buf(),
            copied: tokio::sync::Mutex::new(None),
        })
    }

    /// Where the payload is served from.
    pub fn dest(&self) -> PathBuf {
        self.dest_dir.join(UPDATE_FILE)
    }

    /// Copies the payload (and a `stateful.tgz` beside it) into the static directory unless
    /// the copy is current.
    pub async fn ensure_copied(&self) -> Result<PathBuf, String> {
        let dest = self.dest();
        if self.source == dest || self.source.parent() == Some(self.dest_dir.as_path()) {
            return Ok(self.source.clone());
        }
        let mut copied = self.copied.lock().await;
        let now = stamp(&self.source).map_err(|e| format!("{}: {e}", self.source.display()))?;
        if *copied == Some(now) && dest.is_file() {
            return Ok(dest);
        }
        let source = self.source.clone();
        let dest_dir = self.dest_dir.clone();
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            copy_atomic(&source, &dest_dir.join(UPDATE_FILE))?;
            if let Some(dir) = source.parent() {
                let stateful = dir.join(STATEFUL_FILE);
                if stateful.is_file() {
                    copy_atomic(&stateful, &dest_dir.join(STATEFUL_FILE))?;
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?;
        result.map_err(|e| format!("copying {}: {e}", self.source.display()))?;
        *copied = Some(now);
        Ok(dest)
    }
}

/// `--board`: where to look for built images.
#[derive(Debug, Clone)]
pub struct BoardImages {
    /// Root holding `<board>/<version>/` image directories.
    pub images_dir: PathBuf,
    /// `-t`: use the test image.
    pub test_image: bool,
    /// `--for_vm`: use the VM image.
    pub for_vm: bool,
}

impl BoardImages {
    /// The latest image of `board` and its version.
    pub fn latest(&self, board: &str) -> Option<(PathBuf, String)> {
        if !super::paths::is_plain_name(board) {
            return None;
        }
        let board_dir = self.images_dir.join(board);
        let latest = board_dir.join("latest");
        let dir = if latest.is_dir() {
            std::fs::canonicalize(&latest).ok()?
        } else {
            board_dir.join(versions::newest_dir(&board_dir, None).ok()??)
        };
        let name = if self.for_vm {
            "chromiumos_qemu_image.bin"
        } else if self.test_image {
            "chromiumos_test_image.bin"
        } else {
            "chromiumos_image.bin"
        };
        let image = dir.join(name);
        if !image.is_file() {
            return None;
        }
        let dir_name = dir.file_name()?.to_string_lossy().into_owned();
        // `0.9.74.2011_03_11-a1` -> `0.9.74.2011_03_11`
        let version = match dir_name.rsplit_once("-a") {
            Some((v, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => v,
            _ => dir_name.as_str(),
        };
        Some((image, version.to_string()))
    }
}

/// Everything payload selection needs from the configuration.
pub struct Selector {
    /// The effective static root (canonical).
    pub static_root: PathBuf,
    /// Serve-only mode (`--archive_dir`).
    pub serve_only: bool,
    /// `--payload`.
    pub forced: Option<ForcedPayload>,
    /// `--image` (with `--src_image`, `--private_key`, `--for_vm`).
    pub image: Option<GenInputs>,
    /// `--board` image lookup.
    pub board_images: Option<BoardImages>,
    /// Default board for requests naming none.
    pub default_board: Option<String>,
    /// `--factory_config`.
    pub factory: Option<super::factory::FactoryConfig>,
    /// The generator and its cache.
    pub generator: Generator,
}

fn in_static(
    static_root: &Path,
    url_dir: &str,
    name: &str,
    version: &str,
) -> Result<Option<Selected>, String> {
    let rel = if url_dir.is_empty() {
        name.to_string()
    } else {
        format!("{url_dir}/{name}")
    };
    match resolve_within(static_root, &rel) {
        Ok(file) if file.is_file() => Ok(Some(Selected {
            url_dir: url_dir.to_string(),
            name: name.to_string(),
            file,
            version: version.to_string(),
            is_delta: false,
            expected_sha1: None,
        })),
        Ok(_) => Err(format!("{rel} is not a file")),
        Err(e) => Err(format!("no payload {rel}: {e}")),
    }
}

impl Selector {
    /// The board a request is for: its own, else the default one, else `x86-generic`.
    pub fn board_of<'a>(&'a self, request: &'a AppRequest) -> &'a str {
        request
            .board
            .as_deref()
            .filter(|b| !b.is_empty())
            .or(self.default_board.as_deref())
            .unwrap_or("x86-generic")
    }

    /// The payload for `request` with `label` (already checked to be a clean relative path):
    /// `Ok(None)` is a deliberate noupdate, `Err` a failure (answered as noupdate, logged).
    pub async fn select(
        &self,
        request: &AppRequest,
        label: &str,
    ) -> Result<Option<Selected>, String> {
        if let Some(factory) = &self.factory {
            let board = self.board_of(request);
            let mut ids = vec![board];
            if let Some(hwc) = request.hardware_class.as_deref() {
                ids.push(hwc);
            }
            let track = request.track.as_deref().unwrap_or("");
            let Some(img) = factory.lookup(&ids, track) else {
                return Err(format!(
                    "factory config has no image for board {board} track {track:?}"
                ));
            };
            let (dir, name) = match img.image.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), img.image.clone()),
            };
            let mut selected = in_static(&self.static_root, &dir, &name, DEFAULT_VERSION)?;
            if let Some(s) = selected.as_mut() {
                s.expected_sha1 = Some(img.checksum.clone()).filter(|c| !c.is_empty());
            }
            return Ok(selected);
        }
        if let Some(forced) = &self.forced {
            let file = forced.ensure_copied().await?;
            return Ok(Some(Selected {
                url_dir: String::new(),
                name: UPDATE_FILE.to_string(),
                file,
                version: DEFAULT_VERSION.to_string(),
                is_delta: false,
                expected_sha1: None,
            }));
        }
        if let Some(inputs) = &self.image {
            let (digest, dir) = self.generator.generate(inputs).await?;
            return Ok(Some(Selected {
                url_dir: format!("cache/{digest}"),
                name: UPDATE_FILE.to_string(),
                file: dir.join(UPDATE_FILE),
                version: DEFAULT_VERSION.to_string(),
                is_delta: inputs.src_image.is_some(),
                expected_sha1: None,
            }));
        }
        if label.is_empty() && !self.serve_only {
            if let Some(images) = &self.board_images {
                let board = self.board_of(request);
                if let Some((image, version)) = images.latest(board) {
                    if !versions::can_update(request.version.as_deref(), &version) {
                        return Ok(None);
                    }
                    let inputs = GenInputs {
                        image,
                        src_image: None,
                        private_key: None,
                        for_vm: images.for_vm,
                    };
                    let (digest, dir) = self.generator.generate(&inputs).await?;
                    return Ok(Some(Selected {
                        url_dir: format!("cache/{digest}"),
                        name: UPDATE_FILE.to_string(),
                        file: dir.join(UPDATE_FILE),
                        version,
                        is_delta: false,
                        expected_sha1: None,
                    }));
                }
            }
        }
        // Serve-only mode and the default: the label's update.gz as it is.
        join_within(&self.static_root, label).map_err(|e| format!("label {label:?}: {e}"))?;
        in_static(&self.static_root, label, UPDATE_FILE, DEFAULT_VERSION)
    }
}
