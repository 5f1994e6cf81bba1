//! Starting and stopping the git server for a test run (`start_arv-git-httpd`,
//! `stop_arv-git-httpd`): the fixture repositories made under the run directory
//! ([`git::repo_root`]), then `cibox arv-git-httpd` as service [`NAME`], pointed at the API
//! server of the run. The server itself is [`crate::git`].
//!
//! The whole start holds the run-dir lock, so concurrent starts take turns: the later one
//! stops the earlier one's server and finds its repositories made. `RUN_DIR/git` is claimed in
//! the run's manifest ([`owned`]) before it is made (a `git/` the run did not make is refused),
//! and each repository is built in a temporary directory and renamed into place. SIGINT,
//! SIGTERM or SIGHUP during a start stop the server it started and remove the repositories it
//! made (the launcher's [`Interrupted`](cibox_runtime::process::Interrupted), exit 128 + the
//! signal).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::launcher::{self, Instance, Launch};
use super::owned;
use crate::apiclient::RunApi;
pub use crate::git::NAME;
use crate::git::{find_git, make_fixture_repositories, repo_root, REPO_BASE};
use crate::rundir::RUN_DIR_WAIT;
use cibox_runtime::process::{IfMissing, RunDir};

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
/// fixture repositories, spawns `cibox arv-git-httpd`, waits until it accepts. On failure or
/// a signal ([`launcher::Launch`]), what this start made is stopped and removed.
pub fn start(run_dir: &Path) -> anyhow::Result<StartedGit> {
    let launch = Launch::begin(run_dir)?;
    let run_dir = launch.run_dir().to_path_buf();
    let api = RunApi::find(&run_dir).context(
        "the git server needs an API server: start one in the run directory (cibox start) or \
         set ARVADOS_API_HOST and ARVADOS_API_TOKEN",
    )?;
    let git = find_git(None)?;
    launcher::stop_locked(&run_dir, NAME)
        .with_context(|| format!("stopping the {NAME} left from an earlier start"))?;
    launch.check()?;
    let claimed_base = !owned::owns(launch.lock(), REPO_BASE);
    owned::claim(launch.lock(), REPO_BASE)?;
    let root = repo_root(&run_dir);
    remove_building_leftovers(&root);
    let (made, result) = make_fixture_repositories(&api.client, &api.token, &git, &root, &|| {
        launch.interrupted()
    });
    let started = result.and_then(|()| {
        launch.check()?;
        let more: Vec<OsString> = vec![
            format!("-repo-root={}", root.display()).into(),
            format!("-git-command={}", git.display()).into(),
        ];
        let instance =
            Instance::applet(&run_dir, NAME, "arv-git-httpd", "address", more)?.env(api.env(false));
        launch.start(&instance)
    });
    // Everything this start made goes when it fails or is interrupted.
    let started = launch.finish(started, |lock| {
        for (dir, _) in &made {
            let path = root.join(dir);
            if let Err(e) = std::fs::remove_dir_all(&path) {
                eprintln!("cibox: cannot remove {}: {e}", path.display());
            }
        }
        if claimed_base {
            owned::remove(lock, REPO_BASE);
        }
    })?;
    Ok(StartedGit {
        pid: started.pid,
        port: started.port,
        repo_root: root,
        made: made.into_iter().map(|(_, name)| name).collect(),
    })
}

/// Removes the temporary directories a start killed while building repositories left in
/// `root` (`.tmp-*`: `root` is the run's own, claimed in its manifest).
fn remove_building_leftovers(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// `stop_arv-git-httpd`: the server, then the repositories when the run made them.
pub fn stop(run_dir: &Path) -> anyhow::Result<()> {
    let Some(lock) = RunDir::lock(run_dir, IfMissing::Report, RUN_DIR_WAIT)? else {
        return Ok(());
    };
    launcher::stop_locked(lock.path(), NAME)?;
    owned::remove(&lock, REPO_BASE);
    Ok(())
}
