//! What every launcher applet shares: the `--run-dir` option ([`RunDirArg`]), shell quoting
//! for the `export` lines the start applets print ([`sh_quote`]), the exit status of a start
//! a signal interrupted ([`exit_if_interrupted`]), and quiet removal of state files
//! ([`remove_quietly`]). Starting and stopping the services themselves is
//! [`super::launcher`]'s.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cibox_runtime::process::Interrupted;

/// The `--run-dir` option of the start and stop applets.
#[derive(clap::Args, Debug, Clone)]
pub struct RunDirArg {
    /// Directory of the run's state files [default: $TMPDIR/cibox]
    #[arg(long = "run-dir", value_name = "DIR")]
    run_dir: Option<PathBuf>,
}

impl RunDirArg {
    /// The directory given, or the default.
    pub fn path(&self) -> PathBuf {
        self.run_dir
            .clone()
            .unwrap_or_else(crate::rundir::default_run_dir)
    }
}

/// What a start applet makes of its start's `result`: what was started, or, when a signal
/// interrupted the start (which stopped and removed what it had made), one line naming the
/// signal on stderr and the exit status 128 + N (`Err`). Other errors pass through.
pub fn exit_if_interrupted<T>(
    applet: &str,
    result: anyhow::Result<T>,
) -> anyhow::Result<Result<T, ExitCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(e) => match e.downcast_ref::<Interrupted>() {
            Some(interrupted) => {
                eprintln!("cibox {applet}: {interrupted}");
                Ok(Err(ExitCode::from(interrupted.exit_status())))
            }
            None => Err(e),
        },
    }
}

/// `value` quoted for a POSIX shell.
pub fn sh_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// Removes `path`; a missing file is fine, another failure is said on stderr.
pub fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            eprintln!("cibox: cannot remove {}: {e}", path.display());
        }
    }
}
