//! Path safety: turning a path a request names (URL path, query parameter, label) into a file
//! that is guaranteed to sit inside a given root. Owns the strict reading of percent-encoded
//! URL paths (an error is [`PathError::Invalid`]) and the rule "no `..`, no absolute paths,
//! symlinks only when they resolve inside the root".

use std::path::{Path, PathBuf};

/// Why a requested path cannot be served.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    /// The path names something outside the root (`..`, absolute, or a symlink out).
    #[error("path escapes the served root")]
    Escapes,
    /// Nothing by that name (inside the root).
    #[error("not found")]
    NotFound,
    /// The path is not valid (bad percent-encoding, NUL byte, not UTF-8).
    #[error("invalid path")]
    Invalid,
}

/// Decodes `%XX` escapes of a URL path ([`cibox_runtime::percent::decode_path`]). Invalid
/// escapes or a result that is not UTF-8 are [`PathError::Invalid`] (`+` is kept as it is:
/// this is a path, not a form).
pub fn percent_decode(input: &str) -> Result<String, PathError> {
    cibox_runtime::percent::decode_path(input).map_err(|_| PathError::Invalid)
}

/// The components of a relative path, checked: an absolute path, a `..` component or a NUL
/// byte is refused; empty and `.` components are dropped.
pub fn clean_components(relative: &str) -> Result<Vec<&str>, PathError> {
    if relative.starts_with('/') {
        return Err(PathError::Escapes);
    }
    if relative.contains('\0') {
        return Err(PathError::Invalid);
    }
    let mut parts = Vec::new();
    for part in relative.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::Escapes),
            other => parts.push(other),
        }
    }
    Ok(parts)
}

/// Whether `name` is usable as one directory name (a build, a target, a board).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\0'])
}

/// Resolves `relative` under `root` (which must already be canonical): the result is the
/// canonical path of an existing file or directory inside `root` (or `root` itself).
pub fn resolve_within(root: &Path, relative: &str) -> Result<PathBuf, PathError> {
    let parts = clean_components(relative)?;
    let mut path = root.to_path_buf();
    path.extend(parts);
    let canonical = match std::fs::canonicalize(&path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symlink pointing out of the root is still an escape, not a 404.
            return Err(match std::fs::read_link(&path) {
                Ok(_) => PathError::Escapes,
                Err(_) => PathError::NotFound,
            });
        }
        Err(_) => return Err(PathError::NotFound),
    };
    if canonical.starts_with(root) {
        Ok(canonical)
    } else {
        Err(PathError::Escapes)
    }
}

/// Like [`resolve_within`], for a path that may not exist yet: its existing part must resolve
/// inside `root`, and the rest must be plain names. Returns the lexical path under `root`.
pub fn join_within(root: &Path, relative: &str) -> Result<PathBuf, PathError> {
    let parts = clean_components(relative)?;
    let mut path = root.to_path_buf();
    for part in parts {
        path.push(part);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_symlink() {
                match std::fs::canonicalize(&path) {
                    Ok(c) if c.starts_with(root) => {}
                    _ => return Err(PathError::Escapes),
                }
            }
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_bad_escapes() {
        assert_eq!(percent_decode("a%2e%2E/b").unwrap(), "a../b");
        assert_eq!(percent_decode("a+b").unwrap(), "a+b");
        assert_eq!(percent_decode("%zz"), Err(PathError::Invalid));
        assert_eq!(percent_decode("%4"), Err(PathError::Invalid));
        assert_eq!(percent_decode("%ff"), Err(PathError::Invalid));
        assert_eq!(percent_decode("%+1"), Err(PathError::Invalid));
        assert_eq!(percent_decode("a%"), Err(PathError::Invalid));
    }

    #[test]
    fn components_refuse_parent_and_absolute() {
        assert_eq!(clean_components("a/./b//c").unwrap(), vec!["a", "b", "c"]);
        assert_eq!(clean_components("a/../b"), Err(PathError::Escapes));
        assert_eq!(clean_components("/etc/passwd"), Err(PathError::Escapes));
        assert_eq!(clean_components("a\0b"), Err(PathError::Invalid));
    }

    #[test]
    fn symlinks_out_of_the_root_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let root = root.canonicalize().unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::fs::write(root.join("inside"), "y").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("out")).unwrap();
        std::os::unix::fs::symlink(root.join("inside"), root.join("in")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", root.join("dangling")).unwrap();
        assert_eq!(resolve_within(&root, "out"), Err(PathError::Escapes));
        assert_eq!(resolve_within(&root, "dangling"), Err(PathError::Escapes));
        assert_eq!(resolve_within(&root, "in").unwrap(), root.join("inside"));
        assert_eq!(resolve_within(&root, "missing"), Err(PathError::NotFound));
        assert_eq!(join_within(&root, "out/x"), Err(PathError::Escapes));
        assert_eq!(join_within(&root, "new/x").unwrap(), root.join("new/x"));
    }
}
