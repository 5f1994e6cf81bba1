//! Integration tests of the binary as a whole: multicall dispatch, links and global options,
//! manual pages and completions ([`cli`]), the servers' shared log format ([`logging`]) and the
//! Debian package ([`package`]). The families' own tests live beside their crates.

// Link every family, so the registry these tests read holds every applet.
extern crate cibox_arvados;
extern crate cibox_container;
extern crate cibox_devserver;

mod cli;
mod logging;
mod package;
