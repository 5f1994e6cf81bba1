//! A whole run: the order its services start in ([`START_ORDER`]) and `stop_all`, which stops
//! everything a run directory records in the reverse order.

use std::path::Path;

use anyhow::bail;

use super::{api, git, keep, keepproxy, nginx};

/// The services of a run in start order (`stop_all` stops them in reverse): the API server,
/// the keepstores, keepproxy, the git server, nginx.
pub const START_ORDER: &[&str] = &["api", "keep", "keepproxy", "arv-git-httpd", "nginx"];

/// Stops everything recorded in `run_dir`, in the reverse of [`START_ORDER`]. Carries on past a
/// failure and reports all of them.
pub fn stop_all(run_dir: &Path) -> anyhow::Result<()> {
    let mut errors = Vec::new();
    for &name in START_ORDER.iter().rev() {
        let result = match name {
            "api" => api::stop(run_dir),
            "keep" => keep::stop(run_dir).map(|_| ()),
            "nginx" => nginx::stop(run_dir),
            "arv-git-httpd" => git::stop(run_dir),
            "keepproxy" => keepproxy::stop(run_dir),
            _ => super::launcher::stop(run_dir, name).map(|_| ()),
        };
        if let Err(e) = result {
            errors.push(format!("{name}: {e:#}"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        bail!("{}", errors.join("; "))
    }
}
