//! cibox's shared runtime: what more than one family of applets needs at run time.
//!
//! Above [`cibox_core`], below every family crate. Always built: the process helpers
//! ([`process`]: spawning daemons, pid files, run directories, free ports, waiting until a
//! server listens, stopping with a deadline), the servers' log set-up ([`logging`]) and
//! progress of long transfers ([`progress`]). With the `http` feature (the servers' families
//! turn it on; the container helper does not, so it builds without tokio, axum or rustls):
//! the HTTP front end ([`httpd`]), the one server start-up ([`server`]), the one error and
//! answer type of every handler ([`response`]), percent-decoding ([`percent`]) and the
//! Prometheus metrics every server exposes ([`metrics`]). With `tls` (the Arvados family): the self-signed certificate and the rustls
//! configurations ([`tls`]).

#[cfg(feature = "http")]
pub mod httpd;
pub mod logging;
#[cfg(feature = "http")]
pub mod metrics;
#[cfg(feature = "http")]
pub mod percent;
pub mod process;
pub mod progress;
#[cfg(feature = "http")]
pub mod response;
#[cfg(feature = "http")]
pub mod server;
#[cfg(feature = "tls")]
pub mod tls;
