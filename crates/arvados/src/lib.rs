//! The Arvados test stack: the API server, Keep block storage, the services beside them
//! (keepproxy, the git server, nginx for TLS) and the launchers that start them for a test run.
//! This file only declares the modules. They are layered, each importing only those below it:
//!
//! 1. Bottom, shared by everything:
//!    * [`digest`]: block hashing (MD5), through the machine's libcrypto when it has one.
//!    * [`locator`]: `hash+size+Hints` parsing.
//!    * [`signature`]: HMAC-SHA1 permission signatures, v1 and v2.
//!    * [`volume`]: the directory volume layout, atomic writes, trash.
//!    * [`rundir`]: the run directory's file names, readers and timings, shared by the servers,
//!      the client and the stack.
//! 2. The servers and the one API client:
//!    * [`api`]: the API server behind the `apiserver` applet.
//!    * [`apiclient`]: the one blocking API server client (tokens, keep services, repositories,
//!      resets and keepstore registration).
//!    * [`keepstore`]: the Keep block server behind the `keepstore` applet.
//!    * [`keepproxy`]: the Keep proxy behind the `keepproxy` applet.
//!    * [`git`]: the git server behind `arv-git-httpd` (over `git http-backend`), and the
//!      fixture repositories it serves.
//! 3. [`stack`]: starting and stopping every service of a test run (`start_*`, `stop_*`,
//!    `stop_all`), nginx's config and launch among them.
//! 4. [`applets`]: the command lines of all of the above.

pub mod api;
pub mod apiclient;
pub mod applets;
pub mod digest;
pub mod git;
pub mod keepproxy;
pub mod keepstore;
pub mod locator;
pub mod rundir;
pub mod signature;
pub mod stack;
pub mod volume;
