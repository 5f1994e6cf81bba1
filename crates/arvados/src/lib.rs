//! The Arvados test stack: the API server, Keep block storage, the services beside them
//! (keepproxy, the git server, nginx for TLS) and the launchers that start them for a test run.
//!
//! * [`api`]: the API server behind the `apiserver` applet, and its launcher (`start_api`).
//! * [`digest`]: block hashing (MD5), through the machine's libcrypto when it has one.
//! * [`locator`]: `hash+size+Hints` parsing.
//! * [`signature`]: HMAC-SHA1 permission signatures, v1 and v2.
//! * [`volume`]: the directory volume layout, atomic writes, trash.
//! * [`keepstore`]: the Keep block server behind the `keepstore` applet.
//! * [`launcher`]: starting and stopping servers for a test run (`start_keep`, `stop_keep`).
//! * [`apiclient`]: the one blocking API server client (tokens, keep services, repositories,
//!   resets and keepstore registration).
//! * [`keepproxy`]: the Keep proxy behind the `keepproxy` applet, and its launcher.
//! * [`git`]: the git server behind `arv-git-httpd` (over `git http-backend`), and its launcher.
//! * [`nginx`]: the nginx config and launcher for TLS in front of both.
//! * [`services`]: pid and port files, start, stop and `stop_all` for single-process services.

pub mod api;
pub mod apiclient;
pub mod applets;
pub mod digest;
pub mod git;
pub mod keepproxy;
pub mod keepstore;
pub mod launcher;
pub mod locator;
pub mod nginx;
pub mod services;
pub mod signature;
pub mod volume;
