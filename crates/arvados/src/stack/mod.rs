//! The stack layer: starting and stopping the servers of a test run in a run directory, the
//! `start_*`/`stop_*` actions of `run_test_server.py`. It sits above the servers
//! ([`crate::api`], [`crate::keepstore`], [`crate::keepproxy`], [`crate::git`]) and the API
//! client ([`crate::apiclient`]), which never import it; the names and timings both layers
//! share are [`crate::rundir`]'s. This module only declares its parts.
//!
//! * [`launcher`]: the one launcher every service starts and stops through: free loopback
//!   ports with the retry, waiting until accepting, pid and port files, the interrupt clean-up
//!   (SIGINT, SIGTERM, SIGHUP during a start), stops with the grace and SIGKILL.
//! * [`services`]: what every launcher applet shares (`--run-dir`, shell quoting, the exit
//!   status of an interrupted start).
//! * [`api`]: the API server (`start_api`/`stop_api`), and an admin client for it.
//! * [`keep`]: a set of keepstores (`start_keep`/`stop_keep`), registered with the API server.
//! * [`keepproxy`]: keepproxy (`start_keep_proxy`/`stop_keep_proxy`).
//! * [`git`]: the git server and its fixture repositories (`start_arv-git-httpd`).
//! * [`nginx`]: nginx's config, start and stop, TLS in front of keepproxy and the git server.
//! * [`owned`]: the run directory's manifest, what a run made there and the stops may remove.
//! * [`all`]: the start order and `stop_all`.

pub mod all;
pub mod api;
pub mod git;
pub mod keep;
pub mod keepproxy;
pub mod launcher;
pub mod nginx;
pub mod owned;
pub mod services;
