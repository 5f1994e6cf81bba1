//! Integration tests of the Arvados stack, through the binary over real HTTP and HTTPS on
//! loopback: keepstore ([`keep_server`], [`keep_hostile`]), start_keep/stop_keep ([`keep`]),
//! the API server ([`arvados_api`]; its websocket events: [`arvados_events`]; its groups,
//! links, logs, permissions and fixtures: [`arvados_resources`]), the real Python SDK and
//! its tools ([`arvados_sdk`]),
//! what the SDK's own test suite needs ([`arvados_sdk_gaps`]; collection versions:
//! [`arvados_versions`]),
//! keepproxy, the git server and nginx ([`arvados_services`]), what the launchers own (the
//! files a stop may remove, nginx's process group, the git server's repositories:
//! [`stack_ownership`]), the launchers' clean-up on SIGINT and SIGTERM ([`launcher_signals`]),
//! and property tests of the Keep parsers ([`keep_properties`]).
//! [`support`] runs a private stack in a temp run directory.

mod support;

mod arvados_api;
mod arvados_events;
mod arvados_hostile;
mod arvados_resources;
mod arvados_sdk;
mod arvados_sdk_gaps;
mod arvados_services;
mod arvados_sharing;
mod arvados_tokens;
mod arvados_trash;
mod arvados_versions;
mod keep;
mod keep_hostile;
mod keep_properties;
mod keep_server;
mod launcher_signals;
mod run_test_server_module;
mod stack_ownership;
