//! The shared container-engine layer: which engine to use ([`detect`]), how to call it and
//! report its failures ([`exec`]), the containers a call starts ([`instances`]), and the image
//! lifecycle: one image's build ([`build`]), Dockerfiles and their inputs ([`dockerfile`]), executables put into images
//! ([`binfmt`]), build contexts ([`context`]) and questions about one image ([`image`]);
//! [`cache`] remembers a detection for the next calls of a build.
//! Every container applet goes through it; none calls an engine on its own.

pub mod binfmt;
pub mod build;
pub mod cache;
pub mod context;
pub mod detect;
pub mod dockerfile;
pub mod exec;
pub mod image;
pub mod instances;

pub use detect::{detect, engine, remember, Engine, EngineChoice, EngineKind};
pub use exec::EngineError;

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
    pub fn engine(&self, invocation: &crate::applet::Invocation) -> anyhow::Result<Engine> {
        engine(invocation.engine_choice(self.engine)?)
    }
}
