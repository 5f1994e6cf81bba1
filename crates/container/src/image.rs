//! Questions about one image, each answered by one engine call: does it exist, its labels,
//! when it was created; and how image names are spelled for podman.
//!
//! [`inspect`] asks `ENGINE inspect --type image --format '{...}' NAME` for just the creation
//! time and the labels, as JSON, so the up-to-date decision of `build` and `check` costs one
//! engine call. [`parse_created`] reads every creation-time form the engines print: RFC 3339
//! with or without fractional seconds, `Z` or an offset (both engines' JSON), and Go's
//! `2006-01-02 15:04:05.999999999 -0700 MST` (podman's `{{.Created}}`), always as UTC.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::HashMap;

use std::ffi::OsString;
use std::process::ChildStdin;

use super::detect::{Engine, EngineKind};
use super::exec::EngineError;

/// What [`inspect`] learns about an image.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageInfo {
    /// The image's id.
    #[serde(rename = "Id", default)]
    pub id: String,
    /// The creation time as the engine printed it.
    #[serde(rename = "Created", default)]
    pub created: String,
    /// The image's labels (none: empty).
    #[serde(rename = "Labels", default, deserialize_with = "null_as_empty")]
    pub labels: HashMap<String, String>,
}

fn null_as_empty<'de, D>(d: D) -> Result<HashMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Ok(Option::<HashMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// The `--format` template: id, creation time and labels as one JSON object.
pub const INSPECT_FORMAT: &str =
    r#"{"Id":{{json .ID}},"Created":{{json .Created}},"Labels":{{json .Config.Labels}}}"#;

/// The image's id, creation time and labels, or `None` when there is no such image.
pub fn inspect(engine: &Engine, name: &str) -> Result<Option<ImageInfo>, EngineError> {
    // `image inspect` rather than `inspect --type image`: podman answers it about 10% sooner.
    let Some(text) =
        engine.output_if_ok(&["image", "inspect", "--format", INSPECT_FORMAT, name])?
    else {
        return Ok(None);
    };
    // One line per matching image; the first is the one the name resolves to.
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    match serde_json::from_str::<ImageInfo>(line) {
        Ok(info) => Ok(Some(info)),
        Err(e) => Err(EngineError::Failed {
            command: engine.describe(&["image"]),
            code: 0,
            tail: format!("unexpected answer {line:?}: {e}"),
        }),
    }
}

/// Whether the image exists (one engine call).
pub fn exists(engine: &Engine, name: &str) -> Result<bool, EngineError> {
    Ok(engine
        .output_if_ok(&["image", "inspect", "--format", "{{.Id}}", name])?
        .is_some())
}

/// The environment for `ENGINE build` and whether BuildKit is on. BuildKit only where the
/// buildx plugin answers (`DOCKER_BUILDKIT=1`); where it does not, an inherited
/// `DOCKER_BUILDKIT` is overridden with 0, since a client without buildx refuses every build
/// with it set. podman needs nothing.
pub fn builder_env(engine: &Engine) -> (Vec<(OsString, OsString)>, bool) {
    if engine.kind != EngineKind::Docker {
        return (Vec::new(), false);
    }
    if engine.buildkit() {
        return (vec![("DOCKER_BUILDKIT".into(), "1".into())], true);
    }
    match std::env::var_os("DOCKER_BUILDKIT") {
        Some(v) if v != "0" => (vec![("DOCKER_BUILDKIT".into(), "0".into())], false),
        _ => (Vec::new(), false),
    }
}

/// Feeds a build's context to the engine's stdin (for `build -`).
pub type Feed = Box<dyn FnOnce(ChildStdin) -> std::io::Result<()> + Send>;

/// How often a build is tried when podman trips over its own storage.
const BUILD_TRIES: u32 = 6;

/// Runs `ENGINE build ARGV` (see [`Engine::stream`]); `feed` makes the stdin feeder anew for
/// each try. podman 4.3 fails a build whose layer-cache lookup meets an image being removed
/// at the same moment ("getting top layer info: layer not known"), and sometimes cannot find
/// the base image it has just been handed while another process rewrites the image store
/// ("creating build container: NAME: image not known"); such a build is tried again after a
/// pause that doubles each time (0.2 s to 3.2 s), since nothing about it was wrong.
pub fn run_build(
    engine: &Engine,
    argv: &[OsString],
    quiet: bool,
    envs: &[(OsString, OsString)],
    feed: &dyn Fn() -> Option<Feed>,
) -> Result<(), EngineError> {
    let mut tries = 0;
    loop {
        tries += 1;
        match engine.stream(argv, quiet, envs, feed()) {
            Err(EngineError::Failed { tail, .. })
                if engine.kind == EngineKind::Podman
                    && is_storage_race(&tail)
                    && tries < BUILD_TRIES =>
            {
                eprintln!("cibox: podman tripped over a concurrent change of its image store; building again");
                std::thread::sleep(std::time::Duration::from_millis(100 << tries));
            }
            other => return other,
        }
    }
}

/// Whether a podman build failed on its storage race rather than on anything in the build.
fn is_storage_race(stderr_tail: &str) -> bool {
    stderr_tail.contains("layer not known")
        || (stderr_tail.contains("creating build container")
            && stderr_tail.contains("image not known"))
}

/// A creation time as the engines print it, in UTC; `None` when it is none of their forms.
pub fn parse_created(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    // Go's time.String(): "2026-11-21 14:21:00.760107971 +0000 UTC", the zone name optional,
    // and a monotonic-clock suffix (" m=+0.001") possible.
    let text = text.split(" m=").next().unwrap_or(text);
    let mut parts: Vec<&str> = text.split_whitespace().collect();
    if parts.len() == 4 {
        parts.pop();
    }
    if parts.len() == 3 {
        let joined = parts.join(" ");
        if let Ok(t) = DateTime::parse_from_str(&joined, "%Y-%m-%d %H:%M:%S%.f %z") {
            return Some(t.with_timezone(&Utc));
        }
    }
    // "2026-11-21T14:21:00" with no zone at all: the engines mean UTC.
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// Whether an image name has no registry part (`qemu/foo`, `debian:12`), so that podman would
/// resolve it through its short-name rules.
pub fn is_short_name(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((first, _)) => !(first.contains('.') || first.contains(':') || first == "localhost"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_races_are_told_from_build_failures() {
        assert!(is_storage_race(
            "Error: getting top layer info: layer not known"
        ));
        assert!(is_storage_race(
            "Error: creating build container: cibox-test/x-1-0: image not known"
        ));
        assert!(!is_storage_race(
            "Error: error building at STEP \"RUN false\": exit status 1"
        ));
        assert!(!is_storage_race(
            "Error: repository localhost/qemu/x not found: image not known"
        ));
    }
    use chrono::TimeZone;

    #[test]
    fn parses_every_engine_form_as_utc() {
        let want = Utc.with_ymd_and_hms(2026, 11, 21, 14, 21, 0).unwrap();
        for text in [
            "2026-11-21T14:21:00Z",
            "2026-11-21T14:21:00.760107971Z",
            "2026-11-21T23:21:00.5+09:00",
            "2026-11-21T06:21:00-08:00",
            "2026-11-21 14:21:00.760107971 +0000 UTC",
            "2026-11-21 23:21:00 +0900 JST",
            "2026-11-21 14:21:00.1 +0000 UTC m=+0.000000001",
            "2026-11-21T14:21:00",
        ] {
            let got = parse_created(text).unwrap_or_else(|| panic!("{text} did not parse"));
            assert_eq!(got.timestamp(), want.timestamp(), "{text}");
        }
        assert_eq!(parse_created("yesterday"), None);
    }

    #[test]
    fn inspect_answer_with_and_without_labels() {
        let info: ImageInfo =
            serde_json::from_str(r#"{"Created":"2026-11-21T14:21:00Z","Labels":null}"#).unwrap();
        assert!(info.labels.is_empty());
        let info: ImageInfo =
            serde_json::from_str(r#"{"Created":"x","Labels":{"a":"b"}}"#).unwrap();
        assert_eq!(info.labels["a"], "b");
    }

    #[test]
    fn short_names() {
        assert!(is_short_name("qemu/debian"));
        assert!(is_short_name("debian:12"));
        assert!(!is_short_name("localhost/qemu/debian"));
        assert!(!is_short_name("127.0.0.1:5000/qemu/debian"));
        assert!(!is_short_name("registry.gitlab.com/qemu-project/qemu/x"));
    }
}
