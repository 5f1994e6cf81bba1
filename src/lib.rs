//! cibox: one busybox-style binary for the infrastructure around test and CI work.
//!
//! The library holds every applet and the shared layers they stand on; `src/main.rs` only
//! dispatches. Applets register themselves with [`inventory`] (see [`applet`]), so nothing
//! lists them by hand.

pub mod applet;
pub mod applets;
pub mod args;
pub mod arvados;
pub mod engine;
pub mod httpd;
pub mod multicall;
pub mod process;
pub mod serve;

pub use applet::{Applet, Invocation};
