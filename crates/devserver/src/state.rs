//! The state every handler shares: [`State`] (the static roots, payload selection and
//! metadata, steering, hosts, logs, staging, builder, metrics) and its request counters
//! ([`Stats`]). Built once at start-up ([`crate::startup`]), read by the router and the
//! endpoint modules; it imports none of them.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use crate::builder::Builder;
use crate::digests::DigestCache;
use crate::hosts::Hosts;
use crate::logs::Logs;
use crate::metadata::PayloadIndex;
use crate::metrics::ServeMetrics;
use crate::omaha::{Flavor, Steering};
use crate::payload::Selector;
use crate::staging::Stager;
use crate::statics::StaticRoots;

/// Request counters for `/check_health`.
#[derive(Default)]
pub struct Stats {
    /// Every request.
    pub requests: AtomicU64,
    /// Update checks answered.
    pub update_checks: AtomicU64,
    /// ... with an update.
    pub updates: AtomicU64,
    /// ... with noupdate.
    pub noupdates: AtomicU64,
    /// Event-only requests acknowledged.
    pub event_acks: AtomicU64,
    /// Requests refused as bad input (4xx from /update).
    pub bad_requests: AtomicU64,
    /// Builds run.
    pub builds: AtomicU64,
}

/// Everything the handlers share.
pub struct State {
    /// The effective static root (canonical; the archive directory in serve-only mode).
    pub static_root: PathBuf,
    /// What `/static/` maps to.
    pub roots: StaticRoots,
    /// Serve-only mode.
    pub serve_only: bool,
    /// `--urlbase`.
    pub urlbase: Option<String>,
    /// `--proxy_port`.
    pub proxy_port: Option<u16>,
    /// `--omaha-flavor`: the response format forced (else decided per request).
    pub flavor: Option<Flavor>,
    /// `--payload-metadata`: payloads described per appid.
    pub payloads: Option<PayloadIndex>,
    /// `--install-metadata`: payloads for installs, described per appid.
    pub install_payloads: Option<PayloadIndex>,
    /// How answers are steered (`--critical_update`, then `/update_config`).
    pub steering: RwLock<Steering>,
    /// Payload selection.
    pub selector: Selector,
    /// Payload digests.
    pub digests: DigestCache,
    /// Hosts.
    pub hosts: Hosts,
    /// Logs.
    pub logs: Arc<Logs>,
    /// Counters.
    pub stats: Stats,
    /// Prometheus metrics (`/metrics`).
    pub metrics: ServeMetrics,
    /// Staging.
    pub stager: Arc<Stager>,
    /// Builder.
    pub builder: Builder,
    /// Start time.
    pub started: Instant,
}

impl State {
    /// The current steering of answers.
    pub fn steering(&self) -> Steering {
        self.steering
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// How handlers take the shared state.
pub type SharedState = axum::extract::State<Arc<State>>;
