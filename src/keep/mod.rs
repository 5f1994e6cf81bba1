//! Keep block storage for test runs: a keepstore-compatible server and its launcher.
//!
//! * [`digest`]: block hashing (MD5), through the machine's libcrypto when it has one.
//! * [`locator`]: `hash+size+Hints` parsing.
//! * [`signature`]: HMAC-SHA1 permission signatures, v1 and v2.
//! * [`volume`]: the directory volume layout, atomic writes, trash.
//! * [`server`]: the HTTP server behind the `keepstore` applet.
//! * [`launcher`]: starting and stopping servers for a test run (`start_keep`, `stop_keep`).
//!
//! The protocol is described in `shared/protocols/keep.md`.

pub mod digest;
pub mod launcher;
pub mod locator;
pub mod server;
pub mod signature;
pub mod volume;
