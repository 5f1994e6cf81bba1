//! The cibox binary: everything happens in [`cibox_core::multicall`].
//!
//! Each family of applets is a crate behind a cargo feature. Naming a crate here links it, and
//! so its `inventory` submissions (its applets, their manual facts): an applet family that is
//! not named here is not in the binary.

#[cfg(feature = "arvados")]
extern crate cibox_arvados;
#[cfg(feature = "container")]
extern crate cibox_container;
#[cfg(feature = "devserver")]
extern crate cibox_devserver;

fn main() -> std::process::ExitCode {
    cibox_core::multicall::main_with(std::env::args_os().collect())
}
