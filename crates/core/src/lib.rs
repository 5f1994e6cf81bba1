//! cibox's core: what an applet is and how a call reaches one.
//!
//! The bottom layer of the workspace; every other crate stands on it and it stands on none of
//! them. It owns the applet registry ([`applet`]: applets and their manual facts register
//! themselves with [`inventory`]), multicall dispatch and cibox's own options ([`multicall`]),
//! argument helpers ([`args`]), the `--engine` value every container applet shares
//! ([`EngineChoice`]), manual pages ([`manual`]) and the Python stubs `--install` writes
//! ([`pystub`]).

pub mod applet;
pub mod args;
mod engine_choice;
pub mod manual;
pub mod multicall;
pub mod pystub;

pub use applet::{Applet, EntryPoint, Invocation};
pub use engine_choice::EngineChoice;
