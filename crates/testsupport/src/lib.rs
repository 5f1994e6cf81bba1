//! What cibox's integration tests share, so no test binary carries its own copy: the binary
//! under test ([`cibox_bin`]), free loopback ports, container engines and per-test images
//! ([`engines`], [`engine_tests!`]), keepstores and plain HTTP ([`keep`]), and what `/proc`
//! says about a server ([`procfs`]).
//!
//! The tests run the real `cibox` binary as its callers do. Tests of a family crate cannot
//! name it through `CARGO_BIN_EXE_cibox` (that variable exists only for the binary's own
//! package), so [`cibox_bin`] finds it beside the test executable, in the same target
//! directory and profile: `cargo test` and `cargo nextest run` from the workspace root build it
//! first (the root package's own tests need it). `CIBOX_BIN` names another binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

pub mod engines;
pub mod keep;
pub mod procfs;

/// The path of the cibox binary under test: `$CIBOX_BIN`, else `cibox` in the target
/// directory the test executable was built in (`target/PROFILE/deps/TEST-HASH` ->
/// `target/PROFILE/cibox`).
pub fn cibox_bin() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("CIBOX_BIN").filter(|p| !p.is_empty()) {
            return path.to_string_lossy().into_owned();
        }
        let exe = std::env::current_exe().expect("the test executable's path");
        let mut dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        if dir.ends_with("deps") {
            dir.pop();
        }
        let bin = dir.join("cibox");
        assert!(
            bin.is_file(),
            "the cibox binary is not at {} (run the tests from the workspace root, which builds \
             it, or `cargo build` first, or set CIBOX_BIN)",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}

/// The workspace's root directory (where `target/`, `dockerfiles/` and `scripts/` are).
pub fn workspace_root() -> PathBuf {
    // This crate sits at `crates/testsupport` of the workspace.
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    std::fs::canonicalize(root).unwrap_or_else(|_| PathBuf::from(root))
}
