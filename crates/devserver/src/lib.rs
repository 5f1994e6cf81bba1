//! The devserver behind the `serve` applet: a ChromiumOS-style server that hosts images and
//! payloads under `DATA/static` and answers Omaha update checks (see `docs/omaha.md`).
//! [`startup::run`] does the start-up work (static directory, archive link, cache pruning,
//! factory config, payload generation or copy, demo payload), then serves HTTP with tokio +
//! axum until SIGINT/SIGTERM.
//!
//! Modules: [`config`] (the command line), [`startup`] (start-up steps and serving),
//! [`state`] (what handlers share), [`router`] (the route table), [`handlers`] (the
//! endpoints), [`update`] + [`omaha`] (the protocol), [`urls`] (URLs handed out),
//! [`metadata`] (payloads described per appid), [`fleet`] (the fleet page), [`metrics`],
//! [`xbuddy`] (artifact names), [`runfiles`] (pid and port files),
//! [`payload`] + [`generate`] + [`digests`] (which payload, its generation cache and hashes),
//! [`statics`] + [`paths`] (safe static files), [`hosts`], [`staging`], [`controlfiles`],
//! [`builder`], [`factory`] + [`pylit`], [`versions`], [`logs`], [`trust`] (what may be
//! written on disk: directories, log files), [`applets`].

pub mod applets;
pub mod builder;
pub mod config;
pub mod controlfiles;
pub mod digests;
pub mod factory;
pub mod fleet;
pub mod generate;
pub mod handlers;
pub mod hosts;
pub mod logs;
pub mod metadata;
pub mod metrics;
pub mod omaha;
pub mod paths;
pub mod payload;
pub mod pylit;
pub mod router;
pub mod runfiles;
pub mod staging;
pub mod startup;
pub mod state;
pub mod statics;
pub mod trust;
pub mod update;
pub mod urls;
pub mod versions;
pub mod xbuddy;
