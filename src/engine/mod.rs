//! The shared container-engine layer: which engine to use ([`detect`]), how to call it and
//! report its failures ([`exec`]), and the containers a call starts ([`instances`]).

pub mod detect;

pub use detect::EngineChoice;
