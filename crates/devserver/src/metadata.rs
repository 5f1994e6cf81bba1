//! Payloads described per appid by nebraska-style metadata: `--payload-metadata DIR` holds
//! one JSON file per payload (`*.json`, beside the payload it describes) naming the appid,
//! the payload file, target and source version, delta or full, size, SHA-256 and the
//! metadata size and signature update_engine checks. Loaded once at start-up; the payload
//! files are served under `/payloads/` (`--install-metadata`, nebraska's separate
//! directory for installs: `/install-payloads/`). Chooses the payload answering one app.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use serde::Deserialize;

use super::omaha::AppRequest;
use super::paths::{clean_components, resolve_within};

/// Largest metadata file read.
const MAX_FILE: u64 = 64 * 1024;
/// Most metadata files read from the directory.
const MAX_FILES: usize = 10_000;

/// One metadata file, as nebraska writes them.
#[derive(Debug, Deserialize)]
struct MetadataFile {
    appid: String,
    name: String,
    target_version: String,
    #[serde(default)]
    source_version: Option<String>,
    #[serde(default)]
    is_delta: bool,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    sha256_hex: Option<String>,
    #[serde(default)]
    metadata_size: Option<u64>,
    #[serde(default)]
    metadata_signature: Option<String>,
}

/// A payload described by metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadMeta {
    /// The app it updates or installs.
    pub appid: String,
    /// The payload file (inside the metadata directory, canonical).
    pub file: PathBuf,
    /// Its path relative to the directory, as it appears under `/payloads/`.
    pub url_path: String,
    /// The version it brings.
    pub target_version: String,
    /// For a delta: the version it applies to.
    pub source_version: Option<String>,
    /// Delta or full.
    pub is_delta: bool,
    /// Size from the metadata (the file's own size wins when it exists).
    pub size: Option<u64>,
    /// Hex SHA-256 from the metadata.
    pub sha256_hex: Option<String>,
    /// Size of the payload's metadata block.
    pub metadata_size: Option<u64>,
    /// Base64 signature of the metadata block.
    pub metadata_signature: Option<String>,
}

/// Every payload of the metadata directory, by appid.
#[derive(Debug, Default)]
pub struct PayloadIndex {
    /// The directory (canonical), served under [`PayloadIndex::url_prefix`].
    pub dir: PathBuf,
    /// The URL path the directory is served at (`payloads` or `install-payloads`).
    pub url_prefix: &'static str,
    by_appid: HashMap<String, Vec<PayloadMeta>>,
}

impl PayloadIndex {
    /// Reads every `*.json` of `dir` (not recursive), given by `option`, served at
    /// `url_prefix`. A file that is not valid metadata, or names a payload outside `dir`, is
    /// an error naming the file.
    pub fn load(option: &str, dir: &Path, url_prefix: &'static str) -> anyhow::Result<Self> {
        let dir = std::fs::canonicalize(dir)
            .with_context(|| format!("{option} {} must exist", dir.display()))?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read {option} {}", dir.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        if names.len() > MAX_FILES {
            bail!(
                "{option} {}: more than {MAX_FILES} metadata files",
                dir.display()
            );
        }
        names.sort();
        let mut index = PayloadIndex {
            dir: dir.clone(),
            url_prefix,
            by_appid: HashMap::new(),
        };
        for path in names {
            let meta = load_one(&dir, &path).with_context(|| format!("{}", path.display()))?;
            index
                .by_appid
                .entry(meta.appid.clone())
                .or_default()
                .push(meta);
        }
        Ok(index)
    }

    /// Number of payloads described.
    pub fn len(&self) -> usize {
        self.by_appid.values().map(Vec::len).sum()
    }

    /// Whether no payload is described.
    pub fn is_empty(&self) -> bool {
        self.by_appid.is_empty()
    }

    /// Whether some payload is described for `appid`.
    pub fn knows(&self, appid: &str) -> bool {
        self.by_appid.contains_key(appid)
    }

    /// The payload answering `app`: for an install, its full payload; for an update, a
    /// delta from the app's version when it accepts deltas, else the full payload, unless
    /// the app already runs the target version. `None`: noupdate.
    pub fn choose(&self, app: &AppRequest, install: bool) -> Option<&PayloadMeta> {
        let candidates = self.by_appid.get(app.appid.as_deref()?)?;
        let full = candidates.iter().find(|m| !m.is_delta);
        if install {
            return full;
        }
        let current = app.version.as_deref();
        if app.delta_okay {
            if let Some(delta) = candidates
                .iter()
                .find(|m| m.is_delta && m.source_version.as_deref() == current)
            {
                return Some(delta);
            }
        }
        full.filter(|m| Some(m.target_version.as_str()) != current)
    }
}

fn load_one(dir: &Path, path: &Path) -> anyhow::Result<PayloadMeta> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE {
        bail!("metadata file over {MAX_FILE} bytes");
    }
    let raw: MetadataFile = serde_json::from_slice(&std::fs::read(path)?)
        .context("not valid payload metadata (JSON with appid, name, target_version, ...)")?;
    if raw.appid.is_empty() {
        bail!("empty appid");
    }
    let parts = clean_components(&raw.name)
        .map_err(|e| anyhow::anyhow!("payload name {:?}: {e}", raw.name))?;
    if parts.is_empty() {
        bail!("empty payload name");
    }
    let url_path = parts.join("/");
    let file = match resolve_within(dir, &url_path) {
        Ok(f) => f,
        Err(super::paths::PathError::NotFound) => dir.join(&url_path),
        Err(e) => bail!("payload {url_path}: {e}"),
    };
    if raw.is_delta && raw.source_version.is_none() {
        bail!("a delta payload needs source_version");
    }
    Ok(PayloadMeta {
        appid: raw.appid,
        file,
        url_path,
        target_version: raw.target_version,
        source_version: raw.source_version,
        is_delta: raw.is_delta,
        size: raw.size,
        sha256_hex: raw.sha256_hex,
        metadata_size: raw.metadata_size,
        metadata_signature: raw.metadata_signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(appid: &str, version: &str, delta_okay: bool) -> AppRequest {
        AppRequest {
            appid: Some(appid.into()),
            version: Some(version.into()),
            delta_okay,
            update_check: true,
            ..AppRequest::default()
        }
    }

    #[test]
    fn chooses_full_delta_and_install() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, json: &str| std::fs::write(dir.path().join(name), json).unwrap();
        write(
            "full.json",
            r#"{"appid":"dlc","name":"full.bin","target_version":"2","is_delta":false,"size":3,"sha256_hex":"ab"}"#,
        );
        write(
            "delta.json",
            r#"{"appid":"dlc","name":"delta.bin","target_version":"2","source_version":"1","is_delta":true,"metadata_size":7,"metadata_signature":"c2ln"}"#,
        );
        let index = PayloadIndex::load("--payload-metadata", dir.path(), "payloads").unwrap();
        assert_eq!(index.len(), 2);
        let pick = |a: &AppRequest, install| index.choose(a, install).map(|m| m.url_path.clone());
        assert_eq!(
            pick(&app("dlc", "1", true), false).as_deref(),
            Some("delta.bin")
        );
        assert_eq!(
            pick(&app("dlc", "1", false), false).as_deref(),
            Some("full.bin")
        );
        assert_eq!(
            pick(&app("dlc", "0.0.0.0", true), true).as_deref(),
            Some("full.bin")
        );
        assert_eq!(pick(&app("dlc", "2", false), false), None);
        assert_eq!(pick(&app("other", "1", false), false), None);
        assert_eq!(pick(&app("../dlc", "1", false), false), None);
    }

    #[test]
    fn refuses_bad_metadata() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.json"),
            r#"{"appid":"a","name":"../../etc/passwd","target_version":"1"}"#,
        )
        .unwrap();
        let err = format!(
            "{:#}",
            PayloadIndex::load("--payload-metadata", dir.path(), "payloads").unwrap_err()
        );
        assert!(
            err.contains("x.json") && err.contains("../../etc/passwd"),
            "{err}"
        );
        std::fs::write(dir.path().join("x.json"), "{").unwrap();
        let err = format!(
            "{:#}",
            PayloadIndex::load("--payload-metadata", dir.path(), "payloads").unwrap_err()
        );
        assert!(err.contains("not valid payload metadata"), "{err}");
    }
}
