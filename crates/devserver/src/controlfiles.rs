//! `/controlfiles`: the autotest control files of a staged build, listed (files named
//! `control` or `control.*` under `static/BUILD/autotest/`, sorted) or returned one by one.
//! Every path is resolved and must stay inside the static root.

use std::path::Path;

use super::paths::{is_plain_name, resolve_within, PathError};

/// Why a control-file request fails.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    /// A required parameter is missing or empty.
    #[error("{0}")]
    BadRequest(String),
    /// A path names something outside the static root.
    #[error("Forbidden: path escapes the static directory")]
    Forbidden,
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
}

fn map(e: PathError, what: &str) -> ControlError {
    match e {
        PathError::Escapes => ControlError::Forbidden,
        PathError::NotFound => ControlError::NotFound(format!("{what} not found")),
        PathError::Invalid => ControlError::BadRequest(format!("invalid path {what}")),
    }
}

/// The help page for `/controlfiles` without parameters.
pub const HELP_HTML: &str = "<html><head><title>controlfiles</title></head><body>\n\
<h1>/controlfiles</h1>\n\
<p>Lists the autotest control files of a staged build, or returns one of them.</p>\n\
<ul>\n\
<li><code>/controlfiles?build=TARGET/BUILD</code>: every file named <code>control</code> or \
<code>control.*</code> under <code>static/TARGET/BUILD/autotest/</code>, one per line, sorted.</li>\n\
<li><code>/controlfiles?build=TARGET/BUILD&amp;control_path=PATH</code>: the contents of \
<code>autotest/PATH</code> of that build.</li>\n\
</ul>\n\
<p>Stage a build first with <code>/download?archive_url=URL</code>.</p>\n\
</body></html>\n";

fn is_control_name(name: &str) -> bool {
    name == "control" || name.starts_with("control.")
}

fn autotest_dir(static_root: &Path, build: &str) -> Result<std::path::PathBuf, ControlError> {
    if build.trim().is_empty() {
        return Err(ControlError::BadRequest(
            "Error: build= is required!".into(),
        ));
    }
    let build_dir = resolve_within(static_root, build).map_err(|e| map(e, "build"))?;
    resolve_within(static_root, &format!("{build}/autotest"))
        .map_err(|e| map(e, "autotest directory"))
        .and_then(|d| {
            if d.starts_with(&build_dir) {
                Ok(d)
            } else {
                Err(ControlError::Forbidden)
            }
        })
}

/// The control files of `build` (paths relative to its `autotest/`), sorted.
pub fn list(static_root: &Path, build: &str) -> Result<Vec<String>, ControlError> {
    let root = autotest_dir(static_root, build)?;
    let mut found = Vec::new();
    let mut stack = vec![(root.clone(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(ft) = entry.file_type() else {
                continue;
            };
            if ft.is_dir() {
                stack.push((entry.path(), rel));
            } else if is_control_name(&name) {
                let keep = if ft.is_symlink() {
                    std::fs::canonicalize(entry.path())
                        .is_ok_and(|t| t.starts_with(static_root) && t.is_file())
                } else {
                    ft.is_file()
                };
                if keep {
                    found.push(rel);
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The contents of `autotest/<control_path>` of `build`.
pub fn read(static_root: &Path, build: &str, control_path: &str) -> Result<Vec<u8>, ControlError> {
    autotest_dir(static_root, build)?;
    if control_path.trim().is_empty() {
        return Err(ControlError::BadRequest("control_path is empty".into()));
    }
    if control_path.starts_with('/') {
        return Err(ControlError::Forbidden);
    }
    let file = resolve_within(static_root, &format!("{build}/autotest/{control_path}"))
        .map_err(|e| map(e, "control file"))?;
    if !file.is_file() {
        return Err(ControlError::NotFound("control file not found".into()));
    }
    std::fs::read(&file).map_err(|e| ControlError::NotFound(format!("control file: {e}")))
}

/// Whether `build` looks like `TARGET/BUILD` made of plain names (for messages only).
pub fn looks_like_build(build: &str) -> bool {
    build.split('/').all(is_plain_name)
}
