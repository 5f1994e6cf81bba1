//! `run_test_server.py`: the name Arvados' test launcher goes by. Called as
//! `run_test_server.py ACTION`, cibox takes the seed's ten actions: `start` and `stop` run
//! `start_api` and `stop_api`, the others the applets of the same names.
//!
//! `cibox --install DIR` writes `DIR/run_test_server.py` as a Python module
//! (`run_test_server.py` beside this file, with this cibox's absolute path and the stub marker
//! filled in): imported, it is the helper the Arvados SDK's tests call (`run()`, `run_keep()`,
//! `fixture()`, `TestCaseWithServers`, ...), each function running the applet that serves it;
//! run as a program, it execs cibox under its own name, so the actions above work unchanged.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use cibox_core::pystub::{python_bytes_literal, EXEC_MAIN, MARKER};

/// The module's text, before the cibox path and the marker are filled in.
const MODULE: &str = include_str!("run_test_server.py");

/// `run_test_server.py` for the cibox at `cibox` (an absolute path).
pub fn module_text(cibox: &Path) -> String {
    MODULE
        .replacen("@MARKER@", MARKER, 1)
        .replacen(
            "@CIBOX@",
            &python_bytes_literal(cibox.as_os_str().as_bytes()),
            1,
        )
        .replacen("@EXEC_MAIN@", EXEC_MAIN, 1)
}

inventory::submit! {
    cibox_core::applet::Script {
        name: "run_test_server.py",
        actions: Some(&[
            ("start", "start_api"),
            ("stop", "stop_api"),
            ("start_keep", "start_keep"),
            ("stop_keep", "stop_keep"),
            ("start_keep_proxy", "start_keep_proxy"),
            ("stop_keep_proxy", "stop_keep_proxy"),
            ("start_arv-git-httpd", "start_arv-git-httpd"),
            ("stop_arv-git-httpd", "stop_arv-git-httpd"),
            ("start_nginx", "start_nginx"),
            ("stop_nginx", "stop_nginx"),
            ("stop_all", "stop_all"),
        ]),
        stub: Some(module_text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_this_cibox_and_carries_the_marker() {
        let text = module_text(Path::new("/opt/it's/cibox"));
        assert!(text.lines().any(|l| l == MARKER));
        assert!(text.contains("CIBOX = os.fsdecode(b'/opt/it\\x27s/cibox')"));
        for placeholder in ["@CIBOX@", "@MARKER@", "@EXEC_MAIN@"] {
            assert!(!text.contains(placeholder), "{placeholder} is left");
        }
        assert!(text.ends_with("    sys.exit(main())\n"));
    }
}
