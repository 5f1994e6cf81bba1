//! The Python stub `cibox --install` writes for a script whose callers run it through Python
//! (the container helper submits it for `docker.py`, see [`crate::applet::Script`]).
//!
//! QEMU's configure runs its container helper as `$python .../tests/docker/docker.py ...` and
//! writes cross-compiler lines that do the same, so `docker.py` has to be a program Python
//! accepts: a symbolic link to the cibox binary is refused ("source code cannot contain null
//! bytes"). The stub is a few lines of Python that exec cibox, by the absolute path recorded
//! when it was written, with the stub's own name as `argv[0]` (so multicall dispatch still
//! sees `docker.py`) and every argument unchanged. It works run directly (`./docker.py`) and
//! through an interpreter (`python3 docker.py`). A stub whose cibox is gone says so on stderr
//! and exits 1.
//!
//! [`MARKER`] is a line in every stub: `--install` replaces a file carrying it, and leaves any
//! other file alone.

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The line that marks a file as a cibox stub (that `--install` may replace).
pub const MARKER: &str = "# cibox-script-stub: written by `cibox --install`, which may replace it";

/// How much of a file is read to look for the marker (a stub is well under this).
const MARKER_WINDOW: u64 = 4096;

/// A Python bytes literal for any byte string: printable ASCII as is, everything else
/// (quotes, backslashes, non-UTF-8 bytes) escaped.
pub fn python_bytes_literal(bytes: &[u8]) -> String {
    let mut out = String::from("b'");
    for &b in bytes {
        match b {
            b'\'' | b'\\' => out.push_str(&format!("\\x{b:02x}")),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
}

/// The end of every Python program `--install` writes that runs cibox (the stub below, and a
/// family's own, such as the Arvados stack's `run_test_server.py`): `main()` execs `CIBOX`
/// (which the program defines, with `os` and `sys` imported) under the program's own name, with
/// every argument unchanged, or says in one line why it cannot; run as a program, it does.
pub const EXEC_MAIN: &str = r#"def main():
    if not (os.path.isfile(CIBOX) and os.access(CIBOX, os.X_OK)):
        sys.stderr.write(
            "%s: no executable cibox at %s any more; run 'cibox --install DIR' again\n"
            % (os.path.basename(sys.argv[0]), CIBOX)
        )
        return 1
    try:
        os.execv(CIBOX, [sys.argv[0]] + sys.argv[1:])
    except OSError as error:
        sys.stderr.write(
            "%s: cannot run %s: %s\n"
            % (os.path.basename(sys.argv[0]), CIBOX, error.strerror)
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
"#;

/// The stub's text: a Python program that execs `cibox` (an absolute path).
pub fn text(cibox: &Path) -> String {
    let path = python_bytes_literal(cibox.as_os_str().as_bytes());
    format!(
        r#"#!/usr/bin/env python3
{MARKER}
"""Served by cibox: runs cibox under this script's name."""
import os
import sys

CIBOX = os.fsdecode({path})


{EXEC_MAIN}"#
    )
}

/// Whether the file at `path` is a stub (a regular file carrying [`MARKER`]).
pub fn is_stub(path: &Path) -> bool {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = Vec::new();
    if file.take(MARKER_WINDOW).read_to_end(&mut head).is_err() {
        return false;
    }
    String::from_utf8_lossy(&head)
        .lines()
        .any(|line| line == MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_literal_escapes_what_python_would_misread() {
        assert_eq!(python_bytes_literal(b"/usr/bin/cibox"), "b'/usr/bin/cibox'");
        assert_eq!(
            python_bytes_literal(b"/a'b\\c\xff\n"),
            "b'/a\\x27b\\x5cc\\xff\\x0a'"
        );
    }

    #[test]
    fn stub_is_recognised_by_its_marker_only() {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("docker.py");
        std::fs::write(&stub, text(Path::new("/opt/cibox"))).unwrap();
        assert!(is_stub(&stub));
        let other = dir.path().join("other.py");
        std::fs::write(&other, "#!/usr/bin/env python3\nprint('mine')\n").unwrap();
        assert!(!is_stub(&other));
        assert!(!is_stub(&dir.path().join("missing")));
    }
}
