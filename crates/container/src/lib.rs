//! The container helper: the applets of QEMU's `tests/docker/docker.py` ([`applets`]) and the
//! shared container-engine layer they all stand on: which engine to use ([`detect`]), how to call it and
//! report its failures ([`exec`]), the containers a call starts ([`instances`]), and the image
//! lifecycle: one image's build ([`build`]), Dockerfiles and their inputs ([`dockerfile`]), executables put into images
//! ([`binfmt`]), build contexts ([`context`]) and questions about one image ([`image`]);
//! [`cache`] remembers a detection for the next calls of a build; [`pull`] pulls with progress; [`update`] adds a layer to an image.
//! [`engine`] is what a detected engine is; [`options`] the options, environment and files
//! every container applet shares. Every container applet goes through this layer; none calls
//! an engine on its own.

pub mod applets;
pub mod binfmt;
pub mod build;
pub mod cache;
pub mod context;
pub mod detect;
pub mod dockerfile;
pub mod engine;
pub mod exec;
pub mod image;
pub mod instances;
pub mod options;
pub mod pull;
pub mod update;

pub use detect::{detect, engine, remember, EngineChoice};
pub use engine::{Engine, EngineKind};
pub use exec::EngineError;
pub use options::EngineArgs;
