//! `/xbuddy/[local/]BUILD.../ARTIFACT`: the later devserver's artifact names for local builds
//! under the static root. BUILD is a path of plain names (`BOARD/VERSION`, where VERSION may
//! be `latest`: the newest build directory in version order); ARTIFACT is one of
//! [`ARTIFACTS`] (default `test`). Resolution only; the router answers with the file, its
//! directory URL (`return_dir`), the build directory (`relative_path`) or the update URL of the
//! build (`for_update`).

use std::path::{Path, PathBuf};

use super::paths::{is_plain_name, resolve_within, PathError};
use super::versions;

/// Artifact names and the file each stands for in a build directory.
pub const ARTIFACTS: &[(&str, &str)] = &[
    ("test", "chromiumos_test_image.bin"),
    ("dev", "chromiumos_image.bin"),
    ("base", "chromiumos_base_image.bin"),
    ("recovery", "recovery_image.bin"),
    ("signed", "recovery_image.bin"),
    ("factory_shim", "factory_install_shim.bin"),
    ("full_payload", "update.gz"),
    ("stateful", "stateful.tgz"),
    ("autotest", "autotest.tar"),
    ("test_suites", "test_suites.tar.bz2"),
    ("firmware", "firmware_from_source.tar.bz2"),
];

/// Why an xbuddy path cannot be answered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum XbuddyError {
    /// Not a usable path (empty, odd components).
    #[error("bad xbuddy path: {0}")]
    BadPath(String),
    /// `remote/...` builds would be fetched from Google Storage: not served here.
    #[error("remote xbuddy builds are not supported; stage the build with /download first")]
    Remote,
    /// The build or its artifact is not under the static root.
    #[error("{0} not found")]
    NotFound(String),
    /// The path leaves the static root.
    #[error("path escapes the static root")]
    Escapes,
}

/// A resolved xbuddy path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The build directory relative to the static root (`latest` resolved).
    pub build: String,
    /// The artifact's file name.
    pub file_name: String,
    /// The artifact file (canonical, inside the static root).
    pub file: PathBuf,
}

/// Resolves the decoded path after `/xbuddy/` under `static_root` (canonical).
pub fn resolve(static_root: &Path, path: &str) -> Result<Resolved, XbuddyError> {
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.first() {
        Some(&"local") => {
            parts.remove(0);
        }
        Some(&"remote") => return Err(XbuddyError::Remote),
        _ => {}
    }
    let file_name = match parts.last().and_then(|a| lookup(a)) {
        Some(file) => {
            parts.pop();
            file
        }
        None => lookup("test").expect("test is an artifact"),
    };
    if parts.is_empty() {
        return Err(XbuddyError::BadPath("no build named".into()));
    }
    if let Some(bad) = parts.iter().find(|p| !is_plain_name(p) || p.len() > 255) {
        return Err(XbuddyError::BadPath(format!("component {bad:?}")));
    }
    let mut build: Vec<String> = Vec::with_capacity(parts.len());
    for part in parts {
        if part == "latest" {
            let dir = resolve_within(static_root, &build.join("/")).map_err(map_err(&build))?;
            match versions::newest_dir(&dir, None) {
                Ok(Some(newest)) => build.push(newest),
                _ => {
                    return Err(XbuddyError::NotFound(format!(
                        "no build under {}",
                        build.join("/")
                    )))
                }
            }
        } else {
            build.push(part.to_string());
        }
    }
    let build = build.join("/");
    let file = resolve_within(static_root, &format!("{build}/{file_name}"))
        .map_err(map_err(&[format!("{build}/{file_name}")]))?;
    if !file.is_file() {
        return Err(XbuddyError::NotFound(format!("{build}/{file_name}")));
    }
    Ok(Resolved {
        build,
        file_name: file_name.to_string(),
        file,
    })
}

fn lookup(artifact: &str) -> Option<&'static str> {
    ARTIFACTS
        .iter()
        .find(|(name, _)| *name == artifact)
        .map(|(_, file)| *file)
}

fn map_err(what: &[String]) -> impl Fn(PathError) -> XbuddyError + '_ {
    move |e| match e {
        PathError::Escapes => XbuddyError::Escapes,
        _ => XbuddyError::NotFound(what.join("/")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_artifacts_and_latest() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        for v in ["R9-1.0.0", "R10-2.0.0"] {
            let b = root.join("board").join(v);
            std::fs::create_dir_all(&b).unwrap();
            std::fs::write(b.join("update.gz"), v).unwrap();
            std::fs::write(b.join("chromiumos_test_image.bin"), v).unwrap();
        }
        let r = resolve(&root, "local/board/latest/full_payload").unwrap();
        assert_eq!(r.build, "board/R10-2.0.0");
        assert_eq!(r.file_name, "update.gz");
        let r = resolve(&root, "board/R9-1.0.0").unwrap();
        assert_eq!(r.file_name, "chromiumos_test_image.bin");
        assert_eq!(
            resolve(&root, "board/R9-1.0.0/stateful"),
            Err(XbuddyError::NotFound("board/R9-1.0.0/stateful.tgz".into()))
        );
        assert_eq!(
            resolve(&root, "remote/board/latest"),
            Err(XbuddyError::Remote)
        );
        assert!(matches!(
            resolve(&root, "../x/test"),
            Err(XbuddyError::BadPath(_))
        ));
        assert!(matches!(
            resolve(&root, "test"),
            Err(XbuddyError::BadPath(_))
        ));
        assert!(matches!(
            resolve(&root, "nothing/latest"),
            Err(XbuddyError::NotFound(_))
        ));
    }
}
