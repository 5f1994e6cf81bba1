//! The factory-floor configuration (`--factory_config`): per-board stanzas naming, for each
//! kind of track (`factory`, `release`, ...), an image file under the static directory and
//! its SHA-1 checksum. Read as literal data (Python `config = [...]` or JSON), never run;
//! `--validate_factory_config` checks every image and checksum it names.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;

use super::digests::sha1_b64_of;
use super::paths::{resolve_within, PathError};
use super::pylit::read_assignment;

/// The largest factory config read (a real one is a few KiB).
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// One image named by a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactoryImage {
    /// Path under the static directory.
    pub image: String,
    /// Expected base64 SHA-1 (empty when the stanza names none).
    pub checksum: String,
}

/// One stanza: the boards it serves and an image per track kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    /// Boards (or hardware classes) the stanza serves (`qual_ids`).
    pub qual_ids: Vec<String>,
    /// Images by kind (`factory` for `factory_image`).
    pub images: BTreeMap<String, FactoryImage>,
}

/// The whole configuration, stanzas in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FactoryConfig {
    /// Stanzas, first match wins.
    pub stanzas: Vec<Stanza>,
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl FactoryConfig {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        use std::io::Read as _;
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot read factory config {}", path.display()))?;
        let mut text = String::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("cannot read factory config {}", path.display()))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            anyhow::bail!(
                "factory config {} is larger than {MAX_CONFIG_BYTES} bytes",
                path.display()
            );
        }
        Self::parse(&text).with_context(|| format!("factory config {}", path.display()))
    }

    /// Parses configuration text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let value = read_assignment(text, "config")?;
        let Value::Array(list) = value else {
            anyhow::bail!("'config' must be a list of stanzas");
        };
        let mut stanzas = Vec::new();
        for (i, stanza) in list.iter().enumerate() {
            let Value::Object(map) = stanza else {
                anyhow::bail!("stanza {} is not a dict", i + 1);
            };
            let qual_ids = match map.get("qual_ids") {
                Some(Value::Array(ids)) => ids.iter().filter_map(text_of).collect(),
                Some(v) => text_of(v).into_iter().collect(),
                None => anyhow::bail!("stanza {} has no qual_ids", i + 1),
            };
            let mut images = BTreeMap::new();
            for (key, value) in map {
                let Some(kind) = key.strip_suffix("_image") else {
                    continue;
                };
                let Some(image) = text_of(value) else {
                    anyhow::bail!("stanza {}: {key} is not a string", i + 1);
                };
                let checksum = map
                    .get(&format!("{kind}_checksum"))
                    .and_then(text_of)
                    .unwrap_or_default();
                images.insert(kind.to_string(), FactoryImage { image, checksum });
            }
            stanzas.push(Stanza { qual_ids, images });
        }
        Ok(FactoryConfig { stanzas })
    }

    /// The image for a board id and a track (`factory-channel` -> kind `factory`): the first
    /// stanza naming the board decides; `None` when it has no image of that kind.
    pub fn lookup(&self, board_ids: &[&str], track: &str) -> Option<&FactoryImage> {
        let kind = track.rsplit_once('-').map_or(track, |(k, _)| k);
        let stanza = self
            .stanzas
            .iter()
            .find(|s| s.qual_ids.iter().any(|q| board_ids.contains(&q.as_str())))?;
        stanza.images.get(kind)
    }

    /// Checks every image exists under `static_root` (canonical) and matches its checksum;
    /// returns the problems found (empty: the config is good).
    pub fn validate(&self, static_root: &Path) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, stanza) in self.stanzas.iter().enumerate() {
            for (kind, img) in &stanza.images {
                let where_ = format!("stanza {} {kind}_image {:?}", i + 1, img.image);
                let path = match resolve_within(static_root, &img.image) {
                    Ok(p) => p,
                    Err(PathError::NotFound) => {
                        problems.push(format!("{where_}: no such file"));
                        continue;
                    }
                    Err(e) => {
                        problems.push(format!("{where_}: {e}"));
                        continue;
                    }
                };
                if img.checksum.is_empty() {
                    problems.push(format!("{where_}: no {kind}_checksum"));
                    continue;
                }
                match sha1_b64_of(&path) {
                    Ok(sum) if sum == img.checksum => {}
                    Ok(sum) => problems.push(format!(
                        "{where_}: checksum mismatch: expected {:?}, file has {sum:?}",
                        img.checksum
                    )),
                    Err(e) => problems.push(format!("{where_}: {e}")),
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_board_and_track_kind() {
        let cfg = FactoryConfig::parse(
            "config = [{'qual_ids': set([1, 'x86-generic']), 'factory_image': 'f.gz', \
             'factory_checksum': 'abc'}, {'qual_ids': set(['x86-generic']), \
             'release_image': 'r.gz'}]",
        )
        .unwrap();
        let img = cfg.lookup(&["x86-generic"], "factory-channel").unwrap();
        assert_eq!(img.image, "f.gz");
        assert_eq!(img.checksum, "abc");
        assert!(cfg.lookup(&["1"], "factory").is_some());
        // The first stanza naming the board decides, even without that kind.
        assert!(cfg.lookup(&["x86-generic"], "release-channel").is_none());
        assert!(cfg.lookup(&["other"], "factory-channel").is_none());
    }
}
