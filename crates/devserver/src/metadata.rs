//! Payloads described per appid by nebraska-style metadata: `--payload-metadata DIR` holds
//! one JSON file per payload (`*.json`, beside the payload it describes, as paygen writes
//! them) naming the appid, target and source version, delta or full, size, SHA-256, the
//! metadata size and signature update_engine checks and the public key; the payload is the
//! file's own name without `.json` unless a `name` field says otherwise. Loaded once at
//! start-up; the payload files are served under `/payloads/` (`--install-metadata`,
//! nebraska's separate directory for installs: `/install-payloads/`). Chooses the payload
//! answering one app, matching appids as nebraska does (exact, then the canary appid, then a
//! part of the requested appid, then, when asked, any).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use base64::Engine as _;
use serde::Deserialize;

use super::omaha::AppRequest;
use super::paths::{clean_components, resolve_within};

/// Largest metadata file read.
const MAX_FILE: u64 = 64 * 1024;
/// Most metadata files read from the directory.
const MAX_FILES: usize = 10_000;

/// The appid every ChromeOS image of the canary channel sends, whatever the board: nebraska
/// answers it with the payload described for the release appid (the part after the braces,
/// such as a DLC's `_dlc` suffix, must match).
pub const CANARY_APPID: &str = "{90F229CE-83E2-4FAF-8479-E368A34938B1}";

/// One metadata file, as paygen writes it and nebraska reads it. Every field nebraska reads;
/// `name` is cibox's own (nebraska takes the file's name).
#[derive(Debug, Deserialize)]
struct MetadataFile {
    appid: String,
    #[serde(default)]
    name: Option<String>,
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
    #[serde(default)]
    public_key: Option<String>,
}

/// A payload described by metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadMeta {
    /// The app it updates or installs (may be empty or a part: nebraska's wildcards).
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
    /// SHA-256 from the metadata, lower-case hex (paygen writes base64 under `sha256_hex`;
    /// hex is taken too).
    pub sha256_hex: Option<String>,
    /// The same SHA-256, base64.
    pub sha256_b64: Option<String>,
    /// Size of the payload's metadata block.
    pub metadata_size: Option<u64>,
    /// Base64 signature of the metadata block (empty for an unsigned payload).
    pub metadata_signature: String,
    /// Base64 public key (`PublicKeyRsa`).
    pub public_key: Option<String>,
}

/// Every payload of the metadata directory.
#[derive(Debug, Default)]
pub struct PayloadIndex {
    /// The directory (canonical), served under [`PayloadIndex::url_prefix`].
    pub dir: PathBuf,
    /// The URL path the directory is served at (`payloads` or `install-payloads`).
    pub url_prefix: &'static str,
    payloads: Vec<PayloadMeta>,
}

/// How one app's payload is chosen: the steering that applies and the payloads already
/// given to other apps of the same request (nebraska never gives one payload twice).
#[derive(Debug, Default)]
pub struct Choice<'a> {
    /// An install (full payloads only).
    pub install: bool,
    /// `Some(true)`: full only; `Some(false)`: deltas only; `None`: a delta when taken.
    pub full_payload: Option<bool>,
    /// Take any payload when none matches the appid.
    pub ignore_appid: bool,
    /// Files already offered in this request.
    pub used: Option<&'a HashSet<PathBuf>>,
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
        let mut payloads = Vec::with_capacity(names.len());
        for path in names {
            payloads.push(load_one(&dir, &path).with_context(|| format!("{}", path.display()))?);
        }
        Ok(PayloadIndex {
            dir,
            url_prefix,
            payloads,
        })
    }

    /// Number of payloads described.
    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    /// Whether no payload is described.
    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    /// The payloads that may answer `appid`, in nebraska's order of preference: the exact
    /// appid; else the release appid a canary appid stands for; else nebraska's partial
    /// appids: an empty one (every app) or one starting with `_` that ends the requested
    /// one (a DLC of any platform); else, with `ignore_appid`, all of them.
    fn candidates(&self, appid: &str, ignore_appid: bool) -> Vec<&PayloadMeta> {
        let stages: [&dyn Fn(&PayloadMeta) -> bool; 3] = [
            &|m| m.appid == appid,
            &|m| is_canary_of(appid, &m.appid),
            &|m| m.appid.is_empty() || (m.appid.starts_with('_') && appid.ends_with(&m.appid)),
        ];
        for stage in stages {
            let found: Vec<&PayloadMeta> = self.payloads.iter().filter(|m| stage(m)).collect();
            if !found.is_empty() {
                return found;
            }
        }
        if ignore_appid {
            self.payloads.iter().collect()
        } else {
            Vec::new()
        }
    }

    /// Whether some payload is described for `appid` (see [`PayloadIndex::candidates`]).
    pub fn knows(&self, appid: &str, ignore_appid: bool) -> bool {
        !self.candidates(appid, ignore_appid).is_empty()
    }

    /// The payload answering `app`: for an install, its full payload; for an update, a
    /// delta from the app's version when it accepts deltas, else the full payload, unless
    /// the app already runs the target version; `full_payload` forces one kind. `None`:
    /// noupdate.
    pub fn choose(&self, app: &AppRequest, how: &Choice<'_>) -> Option<&PayloadMeta> {
        let appid = app.appid.as_deref()?;
        let candidates: Vec<&PayloadMeta> = self
            .candidates(appid, how.ignore_appid)
            .into_iter()
            .filter(|m| !how.used.is_some_and(|u| u.contains(&m.file)))
            .collect();
        let full = candidates.iter().copied().find(|m| !m.is_delta);
        if how.install {
            return full;
        }
        let current = app.version.as_deref();
        let full = full.filter(|m| Some(m.target_version.as_str()) != current);
        let delta = || {
            candidates
                .iter()
                .copied()
                .find(|m| m.is_delta && m.source_version.as_deref() == current)
        };
        match how.full_payload {
            Some(true) => full,
            Some(false) => app.delta_okay.then(delta).flatten(),
            None if app.delta_okay => delta().or(full),
            None => full,
        }
    }
}

/// Whether `requested` is the canary appid standing for `described` (its first 38
/// characters replaced by [`CANARY_APPID`]).
fn is_canary_of(requested: &str, described: &str) -> bool {
    let n = CANARY_APPID.len();
    requested.len() >= n
        && described.len() >= n
        && requested.get(..n) == Some(CANARY_APPID)
        && requested.get(n..) == described.get(n..)
}

/// The SHA-256 of a metadata file's `sha256_hex` as (lower-case hex, base64): paygen writes
/// base64 there, older files hex.
fn sha256_forms(value: &str) -> anyhow::Result<(String, String)> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bytes = if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(value)?
    } else {
        b64.decode(value)
            .map_err(|_| anyhow::anyhow!("sha256_hex {value:?} is neither hex nor base64"))?
    };
    if bytes.len() != 32 {
        bail!(
            "sha256_hex {value:?} is not a SHA-256 ({} bytes)",
            bytes.len()
        );
    }
    Ok((hex::encode(&bytes), b64.encode(&bytes)))
}

fn load_one(dir: &Path, path: &Path) -> anyhow::Result<PayloadMeta> {
    let size = std::fs::metadata(path)?.len();
    if size > MAX_FILE {
        bail!("metadata file over {MAX_FILE} bytes");
    }
    let raw: MetadataFile = serde_json::from_slice(&std::fs::read(path)?)
        .context("not valid payload metadata (JSON with appid, target_version, ...)")?;
    // nebraska's rule: the payload is the metadata file's name without `.json`.
    let name = match raw.name {
        Some(name) => name,
        None => path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("file name is not UTF-8"))?,
    };
    let parts =
        clean_components(&name).map_err(|e| anyhow::anyhow!("payload name {name:?}: {e}"))?;
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
    let (sha256_hex, sha256_b64) = match raw.sha256_hex.as_deref() {
        Some(v) if !v.is_empty() => {
            let (h, b) = sha256_forms(v)?;
            (Some(h), Some(b))
        }
        _ => (None, None),
    };
    Ok(PayloadMeta {
        appid: raw.appid,
        file,
        url_path,
        target_version: raw.target_version,
        // As nebraska: a full payload has no source version.
        source_version: raw.source_version.filter(|_| raw.is_delta),
        is_delta: raw.is_delta,
        size: raw.size,
        sha256_hex,
        sha256_b64,
        metadata_size: raw.metadata_size,
        metadata_signature: raw.metadata_signature.unwrap_or_default(),
        public_key: raw.public_key,
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
            r#"{"appid":"dlc","name":"full.bin","target_version":"2","is_delta":false,"size":3}"#,
        );
        write(
            "delta.json",
            r#"{"appid":"dlc","name":"delta.bin","target_version":"2","source_version":"1","is_delta":true,"metadata_size":7,"metadata_signature":"c2ln"}"#,
        );
        let index = PayloadIndex::load("--payload-metadata", dir.path(), "payloads").unwrap();
        assert_eq!(index.len(), 2);
        let pick = |a: &AppRequest, install| {
            let how = Choice {
                install,
                ..Choice::default()
            };
            index.choose(a, &how).map(|m| m.url_path.clone())
        };
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
