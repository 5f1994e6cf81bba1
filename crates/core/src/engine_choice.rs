//! The `--engine auto|docker|podman` value: a global option of cibox's own (before the applet
//! name) as well as an option of every container applet, so it lives in the core; detecting
//! the engine it names is the container family's.

use std::str::FromStr;

/// What the caller asked for with `--engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineChoice {
    /// podman, then docker, then `sudo -n docker`: the first that answers.
    Auto,
    /// docker only (and `sudo -n docker` when plain docker does not answer).
    Docker,
    /// podman only.
    Podman,
}

impl FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "docker" => Ok(Self::Docker),
            "podman" => Ok(Self::Podman),
            _ => Err(format!("invalid engine {s:?}")),
        }
    }
}
