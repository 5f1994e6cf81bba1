//! The run directory's names and timings, shared by the servers, the API client and the stack
//! that starts them: where a run's state files are (`NAME.pid`, `NAME.port`, `keepN.*`, the
//! keepstores' key and token files), how they are read back (the keepstores a run records, the
//! API server running there), and how long starts and stops wait. It imports nothing of this
//! crate: everything else may use it.
//!
//! The default run directory is `$TMPDIR/cibox` ([`default_run_dir`]).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a server may take to accept connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long a start or stop waits for another one in the same run directory to finish.
pub const RUN_DIR_WAIT: Duration = Duration::from_secs(60);
/// The keepstores' signing key file name in the run directory.
pub const KEY_FILE: &str = "keep.blob_signing_key";
/// The keepstores' data manager token file name in the run directory.
pub const TOKEN_FILE: &str = "keep.data_manager_token";
/// The API server's service name: `api.pid`, `api.port`.
pub const API: &str = "api";

/// The default run directory: `$TMPDIR/cibox`.
pub fn default_run_dir() -> PathBuf {
    std::env::temp_dir().join("cibox")
}

/// `RUN_DIR/NAME.pid`.
pub fn pid_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.pid"))
}

/// `RUN_DIR/NAME.port`.
pub fn port_file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.port"))
}

/// The port recorded in `RUN_DIR/NAME.port`, if any.
pub fn recorded_port(run_dir: &Path, name: &str) -> Option<u16> {
    std::fs::read_to_string(port_file(run_dir, name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// `127.0.0.1:PORT` of the API server running in `run_dir` (its pid file held by a live
/// process, its port recorded), if one is.
pub fn running_api_host(run_dir: &Path) -> Option<String> {
    cibox_runtime::process::pid_file_owner(&pid_file(run_dir, API)).ok()??;
    let port = recorded_port(run_dir, API)?;
    Some(format!("127.0.0.1:{port}"))
}

/// `RUN_DIR/keepN.KIND`: a keepstore's `pid`, `port` or `volume` file.
pub fn keep_file(run_dir: &Path, n: usize, kind: &str) -> PathBuf {
    run_dir.join(format!("keep{n}.{kind}"))
}

/// The keepstore numbers with state files in `run_dir`.
pub fn keep_numbers(run_dir: &Path) -> io::Result<Vec<usize>> {
    let mut numbers = Vec::new();
    let entries = match std::fs::read_dir(run_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(numbers),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let name = entry?.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("keep") else {
            continue;
        };
        let Some((num, kind)) = rest.split_once('.') else {
            continue;
        };
        if matches!(kind, "pid" | "port" | "volume") {
            if let Ok(n) = num.parse::<usize>() {
                if !numbers.contains(&n) {
                    numbers.push(n);
                }
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// The keepstores recorded in `run_dir` with a port file: `(N, port)` for `keepN`, in order.
/// keepproxy uses this to find the keepstores of a run.
pub fn recorded_servers(run_dir: &Path) -> io::Result<Vec<(usize, u16)>> {
    let mut servers = Vec::new();
    for n in keep_numbers(run_dir)? {
        if let Ok(text) = std::fs::read_to_string(keep_file(run_dir, n, "port")) {
            if let Ok(port) = text.trim().parse::<u16>() {
                servers.push((n, port));
            }
        }
    }
    Ok(servers)
}

/// The keep service uuid of keepstore N, as the seed registers it.
pub fn server_uuid(n: usize) -> String {
    format!("zzzzz-bi6l4-keepdisk{n:07}")
}
