//! Version ordering ("version sort": runs of digits compare as numbers) and the questions
//! built on it: which build directory is the newest (`/latestbuild`), and whether an image is
//! newer than what a client runs.

use std::cmp::Ordering;
use std::path::Path;

#[derive(Debug, PartialEq, Eq)]
enum Chunk<'a> {
    Num(&'a str),
    Text(&'a str),
}

fn chunks(s: &str) -> Vec<Chunk<'_>> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let digit = bytes[start].is_ascii_digit();
        let mut end = start;
        while end < bytes.len() && bytes[end].is_ascii_digit() == digit {
            end += 1;
        }
        let part = &s[start..end];
        out.push(if digit {
            Chunk::Num(part)
        } else {
            Chunk::Text(part)
        });
        start = end;
    }
    out
}

fn cmp_num(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Compares two version strings the way `sort -V` roughly does.
pub fn compare(a: &str, b: &str) -> Ordering {
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = match (x, y) {
            (Chunk::Num(x), Chunk::Num(y)) => cmp_num(x, y),
            (Chunk::Text(x), Chunk::Text(y)) => x.cmp(y),
            (Chunk::Num(_), Chunk::Text(_)) => Ordering::Less,
            (Chunk::Text(_), Chunk::Num(_)) => Ordering::Greater,
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

/// The newest subdirectory name of `dir` (version-sorted), optionally only those starting
/// with `prefix`. Hidden entries (staging leftovers) are ignored.
pub fn newest_dir(dir: &Path, prefix: Option<&str>) -> std::io::Result<Option<String>> {
    newest(dir, prefix, None)
}

/// Like [`newest_dir`] for a directory under a served root (canonical): an entry that is a
/// symbolic link resolving outside `root` is not a candidate.
pub fn newest_dir_within(
    root: &Path,
    dir: &Path,
    prefix: Option<&str>,
) -> std::io::Result<Option<String>> {
    newest(dir, prefix, Some(root))
}

fn newest(
    dir: &Path,
    prefix: Option<&str>,
    root: Option<&Path>,
) -> std::io::Result<Option<String>> {
    let mut best: Option<String> = None;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        if prefix.is_some_and(|p| !name.starts_with(p)) {
            continue;
        }
        if let Some(root) = root {
            let inside = std::fs::canonicalize(entry.path()).is_ok_and(|p| p.starts_with(root));
            if !inside {
                continue;
            }
        }
        if best
            .as_deref()
            .is_none_or(|b| compare(&name, b) == Ordering::Greater)
        {
            best = Some(name);
        }
    }
    Ok(best)
}

/// Whether an image of version `image` should be offered to a client at `client`: only a
/// newer one, or any when the client says `ForcedUpdate`.
pub fn can_update(client: Option<&str>, image: &str) -> bool {
    match client {
        Some("ForcedUpdate") | None => true,
        Some(client) => {
            compare(&client.replace('_', ""), &image.replace('_', "")) == Ordering::Less
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_versions() {
        assert_eq!(compare("R17-1208.0.0", "R17-1210.0.0"), Ordering::Less);
        assert_eq!(compare("R9-1.0", "R10-1.0"), Ordering::Less);
        assert_eq!(compare("1.10", "1.9"), Ordering::Greater);
        assert_eq!(compare("1.0", "1.0.1"), Ordering::Less);
        assert_eq!(compare("007", "7"), Ordering::Equal);
        assert!(can_update(Some("0.9.0"), "0.10.0"));
        assert!(!can_update(Some("1.0.0"), "1.0.0"));
        assert!(can_update(Some("ForcedUpdate"), "1.0.0"));
    }
}
