//! What every container applet shares on its command line and in its manual page: the
//! `--quiet` and `--engine` options ([`EngineArgs`]), and the environment variables and files
//! the engine layer and Dockerfile handling read.

use crate::detect::{engine, Engine, EngineChoice};

/// The options every container applet shares: `--quiet` and `--engine` (also accepted after
/// the applet name).
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Run quietly: hide the engine's standard output
    #[arg(long)]
    pub quiet: bool,
    /// Container engine: auto (podman, docker, sudo docker), docker or podman
    #[arg(long, value_enum, value_name = "ENGINE")]
    pub engine: Option<EngineChoice>,
}

impl EngineArgs {
    /// The engine these options and the invocation ask for, detected.
    pub fn engine(&self, invocation: &cibox_core::applet::Invocation) -> anyhow::Result<Engine> {
        engine(invocation.engine_choice(self.engine)?)
    }
}

/// The environment every container applet reads, for the manual pages.
pub const ENVIRONMENT: cibox_core::applet::Entries = &[
    (
        "CIBOX_ENGINE",
        "auto, docker or podman: the engine when --engine is not given (default auto)",
    ),
    (
        "CIBOX_ENGINE_CACHE_SECONDS",
        "how long a detected engine is remembered (default 600; 0 turns the cache off)",
    ),
    (
        "PATH",
        "where podman, docker and sudo are looked for; part of the cache key",
    ),
    (
        "DOCKER_HOST, DOCKER_CONTEXT, DOCKER_CONFIG, CONTAINER_HOST, ...",
        "passed to the engine unchanged; part of the cache key",
    ),
];

/// The files every container applet uses, for the manual pages.
pub const FILES: cibox_core::applet::Entries = &[(
    "$XDG_RUNTIME_DIR/cibox/, else $XDG_CACHE_HOME/cibox/ or ~/.cache/cibox/, else $TMPDIR/cibox-UID/",
    "the engine-detection cache: one small file per set of conditions, readable only by the user",
)];

/// The variables and files Dockerfile handling reads (build and check), for the manual pages.
pub const DOCKERFILE_ENVIRONMENT: cibox_core::applet::Entries = &[(
    "CIBOX_DOCKERFILES",
    "colon-separated directories searched for NAME.docker when a Dockerfile says FROM qemu/NAME, \
     after the Dockerfile's own directory",
)];

/// Where the installed Dockerfiles are looked for, for the manual pages.
pub const DOCKERFILE_FILES: cibox_core::applet::Entries = &[(
    "/usr/share/cibox/dockerfiles/ (PREFIX/share/cibox/dockerfiles/ beside the binary's directory)",
    "installed Dockerfiles, searched last for NAME.docker",
)];
