//! Integration tests of `cibox serve`, through the binary over loopback HTTP. Each test runs
//! its own server in its own temp dir on its own port.

mod support;

mod devserver;
mod fleet;
mod omaha;
mod ops;
mod setup;
mod statics;
mod update;
