//! Starting and stopping the git server for a test run (`start_arv-git-httpd`,
//! `stop_arv-git-httpd`): the fixture repositories made under the run directory
//! ([`git::repo_root`]), then `cibox arv-git-httpd` as service [`NAME`], pointed at the API
//! server of the run. The server itself is [`crate::git`].

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::services;
use crate::apiclient::RunApi;
pub use crate::git::NAME;
use crate::git::{self, find_git, make_fixture_repositories, repo_root};

/// What `start_arv-git-httpd` started.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StartedGit {
    /// Its pid.
    pub pid: u32,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The repository root.
    pub repo_root: PathBuf,
    /// Repositories made from the API server's fixtures by this start.
    pub made: Vec<String>,
}

/// Starts the git server for the run in `run_dir` (stopping an earlier one): makes the
/// fixture repositories, spawns `cibox arv-git-httpd`, waits until it accepts.
pub fn start(run_dir: &Path) -> anyhow::Result<StartedGit> {
    let run_dir = services::prepare_run_dir(run_dir)?;
    let api = RunApi::find(&run_dir).context(
        "the git server needs an API server: start one in the run directory (cibox start) or \
         set ARVADOS_API_HOST and ARVADOS_API_TOKEN",
    )?;
    let git = find_git(None)?;
    let root = repo_root(&run_dir);
    let made = make_fixture_repositories(&api.client, &api.token, &git, &root)?;
    let more: Vec<OsString> = vec![
        format!("-repo-root={}", root.display()).into(),
        format!("-git-command={}", git.display()).into(),
    ];
    let started = services::start_applet(
        &run_dir,
        NAME,
        "arv-git-httpd",
        "address",
        &more,
        api.env(false),
    )?;
    Ok(StartedGit {
        pid: started.pid,
        port: started.port,
        repo_root: root,
        made,
    })
}

/// `stop_arv-git-httpd`: the server, then the repositories its start made.
pub fn stop(run_dir: &Path) -> anyhow::Result<()> {
    services::stop(run_dir, NAME)?;
    let repos = git::repo_base(run_dir);
    if let Err(e) = std::fs::remove_dir_all(&repos) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!("cibox: cannot remove {}: {e}", repos.display());
        }
    }
    Ok(())
}
