//! The Arvados test stack: the API server, Keep block storage and the launchers that start
//! them for a test run.
//!
//! * [`api`]: the API server behind the `apiserver` applet, and its launcher (`start_api`).
//! * [`tls`]: the self-signed certificate and the rustls configurations.
//! * [`digest`]: block hashing (MD5), through the machine's libcrypto when it has one.
//! * [`locator`]: `hash+size+Hints` parsing.
//! * [`signature`]: HMAC-SHA1 permission signatures, v1 and v2.
//! * [`volume`]: the directory volume layout, atomic writes, trash.
//! * [`keepstore`]: the Keep block server behind the `keepstore` applet.
//! * [`launcher`]: starting and stopping servers for a test run (`start_keep`, `stop_keep`).

pub mod api;
pub mod digest;
pub mod keepstore;
pub mod launcher;
pub mod locator;
pub mod signature;
pub mod tls;
pub mod volume;
