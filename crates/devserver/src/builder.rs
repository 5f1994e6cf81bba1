//! `/build?board=B&pkg=P`: runs the builder command (default `emerge-{board} {pkg}`, changed
//! with `--builder`) with `USE` / `FEATURES` from the request, one build at a time.

use std::process::Stdio;

/// The default builder command template.
pub const DEFAULT_TEMPLATE: &str = "emerge-{board} {pkg}";

/// How a build ended.
#[derive(Debug, PartialEq, Eq)]
pub enum BuildOutcome {
    /// Exit status 0; the command's output.
    Success(String),
    /// Non-zero exit; the command's output.
    Failed(String),
    /// The builder program cannot be run.
    Missing(String),
    /// The board or package is not acceptable.
    BadInput(String),
}

/// The builder command and the lock serialising builds.
pub struct Builder {
    words: Vec<String>,
    lock: tokio::sync::Mutex<()>,
}

fn valid_board(board: &str) -> bool {
    !board.is_empty()
        && !board.starts_with('-')
        && board
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

fn valid_pkg(pkg: &str) -> bool {
    !pkg.is_empty()
        && !pkg.starts_with('-')
        && pkg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.+-/=:<>~*@".contains(&b))
}

impl Builder {
    /// A builder from a template: words split on whitespace, `{board}` and `{pkg}` replaced.
    pub fn new(template: &str) -> Self {
        Builder {
            words: template.split_whitespace().map(str::to_string).collect(),
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The command line for a board and package.
    pub fn command_line(&self, board: &str, pkg: &str) -> Vec<String> {
        self.words
            .iter()
            .map(|w| w.replace("{board}", board).replace("{pkg}", pkg))
            .collect()
    }

    /// Runs one build.
    pub async fn build(
        &self,
        board: &str,
        pkg: &str,
        use_flags: Option<&str>,
        features: Option<&str>,
    ) -> BuildOutcome {
        if !valid_board(board) {
            return BuildOutcome::BadInput(format!("invalid board {board:?}"));
        }
        if !valid_pkg(pkg) {
            return BuildOutcome::BadInput(format!("invalid package {pkg:?}"));
        }
        let argv = self.command_line(board, pkg);
        let Some((program, args)) = argv.split_first() else {
            return BuildOutcome::Missing("no builder command configured".into());
        };
        if which::which(program).is_err() {
            return BuildOutcome::Missing(format!(
                "builder {program} is not available on this server (install it, or choose \
                 another command with --builder)"
            ));
        }
        let _guard = self.lock.lock().await;
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        if let Some(u) = use_flags {
            cmd.env("USE", u);
        }
        if let Some(f) = features {
            cmd.env("FEATURES", f);
        }
        match cmd.output().await {
            Err(e) => BuildOutcome::Missing(format!("cannot run builder {program}: {e}")),
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                if out.status.success() {
                    BuildOutcome::Success(text)
                } else {
                    BuildOutcome::Failed(format!(
                        "Could not build {pkg} for {board} ({}):\n{text}",
                        out.status
                    ))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_and_validation() {
        let b = Builder::new(DEFAULT_TEMPLATE);
        assert_eq!(
            b.command_line("x86", "chromeos-base/foo"),
            vec!["emerge-x86", "chromeos-base/foo"]
        );
        assert!(valid_pkg(">=dev-lang/python-2.6:2.6"));
        assert!(!valid_pkg("foo; rm -rf /"));
        assert!(!valid_board("--root=/"));
    }
}
