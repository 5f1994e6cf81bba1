//! The built-in Arvados-compatible API server for test runs, over HTTPS. This module only
//! declares its parts; [`run`] and [`Config`] are [`server`]'s.
//!
//! * [`fixtures`]: the users, tokens, repositories, collections, groups and links it starts
//!   with.
//! * [`cluster`]: the test cluster's signing key and exported configuration.
//! * [`erb`], [`fixture_files`]: `--fixtures DIR`, an Arvados checkout's fixture files (the
//!   small ERB they hold, then YAML) instead of the built-in set.
//! * [`permissions`]: who may read, write and manage what (links, group ownership).
//! * [`record`]: timestamps and etags every record carries.
//! * [`state`]: the records, saved to a journal file in the run directory on every change.
//! * [`answer`]: errors and JSON answers on the wire, the request size limit.
//! * [`body`]: the request body, read only when wanted, bounded, parsed as it arrives.
//! * [`client_json`]: JSON from clients, within a budget of values per request.
//! * [`query`]: list parameters (filters, where, order, limit, offset, select).
//! * [`manifest`]: collection manifests: signatures, portable data hashes.
//! * [`resources`]: what each resource's methods do and who may call them.
//! * [`discovery`]: the discovery document the SDK builds its client from.
//! * [`events`]: the websocket event server (`/websocket`), new `logs` records to subscribers.
//! * [`router`]: paths, authentication, which error each refusal is.
//! * [`server`]: the process: configuration, TLS, the handler.
//!
//! Starting and stopping it in a run directory is the stack's (`stack::api`), above it.

pub mod answer;
pub mod body;
pub mod client_json;
pub mod cluster;
pub mod discovery;
pub mod erb;
pub mod events;
pub mod fixture_files;
pub mod fixtures;
pub mod manifest;
pub mod permissions;
pub mod query;
pub mod record;
pub mod resources;
pub mod router;
pub mod server;
pub mod state;

pub use server::{run, Config};
