//! What each resource's methods do: who may call them (with Arvados' permissions,
//! [`super::permissions`]), which attributes they accept (times normalised as Arvados writes
//! them), the records they answer with, and the log record each change leaves (`logs`, which
//! the SDK's event poller reads). The HTTP side (parsing, authentication, errors on the wire)
//! is [`super::router`] and [`super::answer`]; storage is [`super::state`]. This module only
//! declares its parts, lowest first:
//!
//! * [`schema`]: the resources, their columns and writable attributes.
//! * [`caller`]: who calls, and one call.
//! * [`common`]: reading attributes, the usual refusals, defaults and stamps.
//! * [`lifecycle`]: the trash, past versions, unique names.
//! * [`visibility`]: what a caller may read, and how a record is shown to it.
//! * [`authority`]: who may create, change or delete what.
//! * [`persist`]: attributes sent, new records, saving with a log record.
//! * [`checks`]: each kind's own rules (manifests and versions, groups, links, users, tokens).
//! * [`lists`]: lists, group contents, shared projects, permissions, accessible services.
//! * [`methods`]: get, create, update, delete, trash, untrash, current user and token, reset.

pub mod authority;
pub mod caller;
pub mod checks;
pub mod common;
pub mod lifecycle;
pub mod lists;
pub mod methods;
pub mod persist;
pub mod schema;
pub mod visibility;

pub use caller::{Call, Caller};
pub use lists::{
    contents, contents_tables, get_permissions, keep_services_accessible, list, shared,
};
pub use methods::{
    create, delete, get, reset, tokens_current, trash, untrash, update, users_current,
};
pub use schema::{resource, Resource, NOT_IMPLEMENTED, RESOURCES, TIME_ATTRIBUTES};
