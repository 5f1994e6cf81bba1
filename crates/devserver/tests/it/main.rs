//! Integration tests of `cibox serve`, through the binary over loopback HTTP. Each test runs
//! its own server in its own temp dir on its own port.

mod support;

mod attacks;
mod devserver;
mod fleet;
mod hostile_staging;
mod omaha;
mod ops;
mod ranges;
mod security;
mod serve_props;
mod setup;
mod statics;
mod update;
