//! Pulling an image with progress a person can follow (`fetch --quiet`): the registry is asked
//! first which layers the image has and how large they are, then the engine's pull runs with
//! its output captured, and every layer it reports finished counts its size towards the
//! total ([`cibox_runtime::progress`]: a bar on a terminal, a few plain lines in a log).
//!
//! Asking the registry is best effort (anonymous bearer tokens, the manifest of this machine's
//! platform, short timeouts): when it fails the pull goes on, with progress in layers only
//! counted as they finish. The engine alone decides whether the pull succeeded.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use serde::Deserialize;

use super::exec::EngineError;
use super::Engine;
use cibox_runtime::progress::{Progress, Sink};

/// One layer of an image in a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Compressed size in bytes.
    pub size: u64,
}

/// Why the registry could not tell the layers.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The image reference has no registry host.
    #[error("{0} names no registry host")]
    Reference(String),
    /// An HTTP request failed.
    #[error("{url}: {reason}")]
    Http {
        /// What was asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The manifest is of a kind this does not read.
    #[error("manifest of {0}: {1}")]
    Manifest(String, String),
}

/// `host[:port]/repository[:tag|@digest]` split into its parts.
fn split_reference(image: &str) -> Result<(String, String, String), RegistryError> {
    let (host, rest) = image
        .split_once('/')
        .filter(|(host, _)| host.contains('.') || host.contains(':') || *host == "localhost")
        .ok_or_else(|| RegistryError::Reference(image.to_string()))?;
    let (repository, reference) = if let Some((repo, digest)) = rest.split_once('@') {
        (repo.to_string(), digest.to_string())
    } else {
        match rest.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo.to_string(), tag.to_string()),
            _ => (rest.to_string(), "latest".to_string()),
        }
    };
    Ok((host.to_string(), repository, reference))
}

/// The OCI/Docker name of this machine's architecture.
fn platform_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

struct Registry {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Registry {
    fn new(host: &str) -> Self {
        // Loopback registries are plain HTTP (both engines treat them as insecure).
        let loopback = ["localhost", "127.", "[::1]"]
            .iter()
            .any(|p| host.starts_with(p));
        let scheme = if loopback { "http" } else { "https" };
        Registry {
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(5))
                .timeout(Duration::from_secs(15))
                .build(),
            base: format!("{scheme}://{host}"),
            token: None,
        }
    }

    fn manifest(&mut self, repository: &str, reference: &str) -> Result<Manifest, RegistryError> {
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let http = |reason: String| RegistryError::Http {
            url: url.clone(),
            reason,
        };
        for attempt in 0..2 {
            let mut request = self.agent.get(&url).set("Accept", MANIFEST_TYPES);
            if let Some(token) = &self.token {
                request = request.set("Authorization", &format!("Bearer {token}"));
            }
            match request.call() {
                Ok(response) => {
                    let text = response.into_string().map_err(|e| http(e.to_string()))?;
                    return serde_json::from_str(&text).map_err(|e| http(e.to_string()));
                }
                Err(ureq::Error::Status(401, response)) if attempt == 0 => {
                    let challenge = response.header("WWW-Authenticate").unwrap_or_default();
                    self.token = Some(self.anonymous_token(challenge).map_err(http)?);
                }
                Err(e) => return Err(http(e.to_string())),
            }
        }
        Err(http("refused the token".into()))
    }

    /// An anonymous token from a `Bearer realm=..,service=..,scope=..` challenge.
    fn anonymous_token(&self, challenge: &str) -> Result<String, String> {
        let params = challenge
            .strip_prefix("Bearer ")
            .ok_or_else(|| format!("unsupported authentication {challenge:?}"))?;
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        for part in params.split(',') {
            if let Some((key, value)) = part.trim().split_once('=') {
                fields.insert(key.to_string(), value.trim_matches('"').to_string());
            }
        }
        let realm = fields.remove("realm").ok_or("no realm in the challenge")?;
        let mut request = self.agent.get(&realm);
        for (key, value) in &fields {
            request = request.query(key, value);
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let text = request
            .call()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|e| e.to_string())?;
        let token: Token = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        token
            .token
            .or(token.access_token)
            .ok_or_else(|| "the token answer holds no token".to_string())
    }
}

/// The layers of `image` (`host[:port]/repository[:tag]`) for this machine's platform.
pub fn layers(image: &str) -> Result<Vec<Layer>, RegistryError> {
    let (host, repository, reference) = split_reference(image)?;
    let mut registry = Registry::new(&host);
    let mut manifest = registry.manifest(&repository, &reference)?;
    if let Some(list) = manifest.manifests.take() {
        let arch = platform_architecture();
        let chosen = list
            .into_iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .ok_or_else(|| {
                RegistryError::Manifest(image.to_string(), format!("no linux/{arch} image"))
            })?;
        manifest = registry.manifest(&repository, &chosen.digest)?;
    }
    let layers = manifest
        .layers
        .ok_or_else(|| RegistryError::Manifest(image.to_string(), "no layers".into()))?;
    Ok(layers
        .into_iter()
        .map(|d| Layer {
            digest: d.digest,
            size: d.size,
        })
        .collect())
}

/// Follows an engine's pull output and counts finished layers.
struct PullTracker {
    /// Layer sizes by full hex digest (without `sha256:`), from the registry.
    sizes: BTreeMap<String, u64>,
    /// Layers seen finished (full hex, or docker's 12-digit short id).
    finished: Vec<String>,
    progress: Progress,
}

impl PullTracker {
    fn new(layers: &[Layer], progress_for: impl FnOnce(Option<u64>) -> Progress) -> Self {
        let sizes: BTreeMap<String, u64> = layers
            .iter()
            .map(|l| {
                let hex = l.digest.split_once(':').map_or(&*l.digest, |(_, h)| h);
                (hex.to_string(), l.size)
            })
            .collect();
        let total = (!sizes.is_empty()).then(|| sizes.values().sum());
        PullTracker {
            sizes,
            finished: Vec::new(),
            progress: progress_for(total),
        }
    }

    /// One line of the engine's output.
    fn line(&mut self, line: &str) {
        let line = line.trim();
        // docker: `3a4869bf7a5a: Pull complete` / `Already exists`.
        if let Some((id, state)) = line.split_once(": ") {
            if id.len() == 12
                && id.bytes().all(|b| b.is_ascii_hexdigit())
                && (state == "Pull complete" || state == "Already exists")
            {
                self.finish(id);
            }
            return;
        }
        // podman: `Copying blob sha256:<hex> [done|skipped: ...]`; the config comes after
        // every blob.
        if let Some(rest) = line.strip_prefix("Copying blob ") {
            let digest = rest.split_whitespace().next().unwrap_or("");
            let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
            if rest.contains("done") || rest.contains("skipped") {
                self.finish(hex);
            }
        } else if line.starts_with("Copying config") || line.starts_with("Writing manifest") {
            self.complete();
        }
    }

    /// Every layer is there.
    fn complete(&mut self) {
        let all: Vec<String> = self.sizes.keys().cloned().collect();
        for hex in all {
            self.finish(&hex);
        }
    }

    fn finish(&mut self, id: &str) {
        if id.is_empty()
            || self
                .finished
                .iter()
                .any(|f| f.starts_with(id) || id.starts_with(f.as_str()))
        {
            return;
        }
        self.finished.push(id.to_string());
        let size: u64 = self
            .sizes
            .iter()
            .filter(|(hex, _)| hex.starts_with(id))
            .map(|(_, size)| *size)
            .sum();
        self.progress.advance(size);
    }
}

/// `ENGINE pull ARGS IMAGE` with its output hidden and its progress shown on stderr
/// ([`cibox_runtime::progress`]); fails like [`Engine::stream`] does.
pub fn pull_with_progress(
    engine: &Engine,
    args: &[OsString],
    image: &str,
    label: &str,
) -> Result<(), EngineError> {
    let layers = match layers(image) {
        Ok(layers) => layers,
        Err(e) => {
            tracing::debug!("no layer sizes for {image}: {e}");
            Vec::new()
        }
    };
    let mut tracker = PullTracker::new(&layers, |total| {
        Progress::new(
            format!("pulling {image}"),
            total,
            Sink::Stderr(label.to_string()),
        )
    });
    engine.stream_lines(args, |line| tracker.line(line))?;
    // Layers the engine had already may never be reported: the image is complete now.
    tracker.complete();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_host_repository_and_reference() {
        let split = |s| split_reference(s).unwrap();
        assert_eq!(
            split("registry.gitlab.com/qemu-project/qemu/qemu/debian:latest"),
            (
                "registry.gitlab.com".into(),
                "qemu-project/qemu/qemu/debian".into(),
                "latest".into()
            )
        );
        assert_eq!(
            split("127.0.0.1:5000/qemu/fedora"),
            (
                "127.0.0.1:5000".into(),
                "qemu/fedora".into(),
                "latest".into()
            )
        );
        assert_eq!(
            split("localhost/a/b@sha256:00"),
            ("localhost".into(), "a/b".into(), "sha256:00".into())
        );
        assert!(split_reference("qemu/fedora").is_err());
    }

    fn tracker(layers: &[(&str, u64)]) -> PullTracker {
        let layers: Vec<Layer> = layers
            .iter()
            .map(|(d, s)| Layer {
                digest: format!("sha256:{d}"),
                size: *s,
            })
            .collect();
        PullTracker::new(&layers, |total| {
            assert_eq!(total, Some(layers.iter().map(|l| l.size).sum()));
            Progress::plain("x", total, Sink::Log, Duration::from_secs(3600))
        })
    }

    #[test]
    fn docker_layers_count_once_when_complete() {
        let a = "3a4869bf7a5a4a56dbff7ae0ba8e62c3c223152429e993415225bbceb8ed449e";
        let b = "aaaaaaaaaaaa4a56dbff7ae0ba8e62c3c223152429e993415225bbceb8ed449e";
        let mut t = tracker(&[(a, 100), (b, 20)]);
        t.line("3a4869bf7a5a: Pulling fs layer");
        t.line("3a4869bf7a5a: Download complete");
        assert_eq!(t.progress.done(), 0);
        t.line("3a4869bf7a5a: Pull complete");
        t.line("3a4869bf7a5a: Pull complete");
        assert_eq!(t.progress.done(), 100);
        t.line("aaaaaaaaaaaa: Already exists");
        assert_eq!(t.progress.done(), 120);
    }

    #[test]
    fn podman_layers_count_when_done_or_at_the_config() {
        let a = "3a4869bf7a5a4a56dbff7ae0ba8e62c3c223152429e993415225bbceb8ed449e";
        let b = "bbbbbbbbbbbb4a56dbff7ae0ba8e62c3c223152429e993415225bbceb8ed449e";
        let mut t = tracker(&[(a, 100), (b, 20)]);
        t.line(&format!("Copying blob sha256:{a}"));
        assert_eq!(t.progress.done(), 0);
        t.line(&format!("Copying blob sha256:{b} done"));
        assert_eq!(t.progress.done(), 20);
        t.line("Copying config sha256:1ccff4e8 done");
        assert_eq!(t.progress.done(), 120);
    }
}
