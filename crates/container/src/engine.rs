//! What a container engine is once detected: [`Engine`] (its command prefix, docker or
//! podman, its version, and the facts later steps ask for lazily: rootless podman, usable
//! BuildKit) and [`EngineKind`]. Detection ([`crate::detect`]) makes engines; calling one
//! ([`crate::exec`]) and remembering one ([`crate::cache`]) use them. This module calls nothing
//! of its own crate.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde::Serialize;

/// Which program family an engine is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    Docker,
    Podman,
}

/// A container engine that answered `version`.
#[derive(Debug)]
pub struct Engine {
    /// The command prefix: `["podman"]`, `["docker"]` or `["sudo", "-n", "docker"]`.
    pub argv: Vec<String>,
    /// docker or podman.
    pub kind: EngineKind,
    /// The server's version where the engine reports one, else the client's.
    pub version: Option<String>,
    rootless: OnceLock<bool>,
    buildkit: OnceLock<bool>,
}

impl Engine {
    /// An engine that answered `version` (detection makes these).
    pub(crate) fn answered(argv: &[&str], kind: EngineKind, version: Option<String>) -> Engine {
        Engine {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            kind,
            version,
            rootless: OnceLock::new(),
            buildkit: OnceLock::new(),
        }
    }

    /// An engine taken as it is, without asking it anything (for tests of the layers above).
    pub fn assume(argv: Vec<String>, kind: EngineKind) -> Engine {
        Engine {
            argv,
            kind,
            version: None,
            rootless: OnceLock::new(),
            buildkit: OnceLock::new(),
        }
    }

    /// The name `probe` prints and QEMU's configure parses: `podman`, `docker` or `sudo docker`.
    pub fn probe_name(&self) -> &'static str {
        match (self.kind, self.argv.first().map(String::as_str)) {
            (EngineKind::Podman, _) => "podman",
            (EngineKind::Docker, Some("sudo")) => "sudo docker",
            (EngineKind::Docker, _) => "docker",
        }
    }

    /// Whether this is podman running rootless. Local podman is rootless exactly when we are
    /// not root; a remote one (`CONTAINER_HOST`, `--remote`) is asked.
    pub fn is_rootless(&self) -> bool {
        *self.rootless.get_or_init(|| {
            if self.kind != EngineKind::Podman {
                return false;
            }
            let remote = std::env::var_os("CONTAINER_HOST").is_some_and(|v| !v.is_empty());
            if !remote {
                return !nix::unistd::geteuid().is_root();
            }
            self.command(["info", "--format", "{{.Host.Security.Rootless}}"])
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
                .unwrap_or(false)
        })
    }

    /// Whether BuildKit can be used: docker with a working buildx plugin. Builds set
    /// `DOCKER_BUILDKIT` from this, never forcing it on a client that would refuse.
    pub fn buildkit(&self) -> bool {
        *self.buildkit.get_or_init(|| {
            self.kind == EngineKind::Docker
                && self
                    .command(["buildx", "version"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        })
    }

    /// A `Command` running the engine with `args` after its prefix.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = Command::new(&self.argv[0]);
        command.args(&self.argv[1..]).args(args);
        command
    }
}
