//! Dockerfiles as `build` and `check` see them: reading one, preprocessing it the way QEMU's
//! docker.py does (so the checksum label is the same one the original computes), the labels
//! a build writes, and the digest of every other input of a build.
//!
//! Preprocessing drops blank lines and lines starting with `#`, and replaces each
//! `FROM qemu/NAME` line, recursively, by the preprocessed text of `NAME.docker` (`debian*user`
//! names map to `debian-bootstrap`). `NAME.docker` is looked for next to the Dockerfile, then in
//! each directory of `$CIBOX_DOCKERFILES` (colon-separated), then in the installed
//! `dockerfiles/` ([`installed_dirs`]). The SHA-1 hex of the result is the label
//! [`CHECKSUM_LABEL`], byte for byte what the original writes and compares.
//!
//! Everything else a build depends on (extra files, the included executable and its
//! libraries, the `.pre` script, the user added, proxy build args) is described by
//! [`Inputs`] and kept, hashed, in one more label, [`INPUTS_LABEL`]. It is written and compared
//! only when such inputs exist, so a plain image stays interchangeable with the original
//! script's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The label QEMU's docker.py keeps the preprocessed Dockerfile's SHA-1 in.
pub const CHECKSUM_LABEL: &str = "com.qemu.dockerfile-checksum";
/// The label cibox keeps the digest of the build's other inputs in.
pub const INPUTS_LABEL: &str = "org.cibox.inputs";
/// The line prefix that names another of QEMU's Dockerfiles as the base.
pub const QEMU_FROM: &str = "FROM qemu/";
/// How deep `FROM qemu/` inclusions may nest before it is taken for a loop.
const MAX_DEPTH: usize = 32;
/// The largest Dockerfile read (QEMU's biggest are a few KiB): a bound, so that a device or a
/// huge file named by mistake (`-f /dev/zero`) is an error instead of exhausting memory.
pub const MAX_DOCKERFILE_BYTES: u64 = 4 << 20;

/// Reads a Dockerfile as UTF-8 text (at most [`MAX_DOCKERFILE_BYTES`]), with the file named in
/// the error.
pub fn read(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let context = || format!("cannot read Dockerfile {}", path.display());
    let file = std::fs::File::open(path).with_context(context)?;
    let mut bytes = Vec::new();
    file.take(MAX_DOCKERFILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(context)?;
    if bytes.len() as u64 > MAX_DOCKERFILE_BYTES {
        bail!(
            "Dockerfile {} is larger than {} MiB: not a Dockerfile",
            path.display(),
            MAX_DOCKERFILE_BYTES >> 20
        );
    }
    String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("Dockerfile {} is not UTF-8 text", path.display()))
}

/// SHA-1 hex of some text, as the checksum labels hold it.
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(Sha1::digest(bytes))
}

/// Where `FROM qemu/NAME` looks for `NAME.docker`, in order.
#[derive(Debug, Clone)]
pub struct SearchPath {
    pub dirs: Vec<PathBuf>,
}

impl SearchPath {
    /// The directory of `dockerfile`, then `$CIBOX_DOCKERFILES`, then the installed ones.
    pub fn for_dockerfile(dockerfile: &Path) -> SearchPath {
        let mut dirs = Vec::new();
        let parent = dockerfile.parent().filter(|p| !p.as_os_str().is_empty());
        dirs.push(parent.map_or_else(|| PathBuf::from("."), Path::to_path_buf));
        if let Some(list) = std::env::var_os("CIBOX_DOCKERFILES") {
            dirs.extend(std::env::split_paths(&list).filter(|p| !p.as_os_str().is_empty()));
        }
        dirs.extend(installed_dirs());
        SearchPath { dirs }
    }

    fn find(&self, file: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(file)).find(|p| p.is_file())
    }
}

/// The installed `dockerfiles/` directories: next to the executable, in `../share/cibox/`
/// beside its directory, and the source tree cibox was built from.
pub fn installed_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(bin.join("dockerfiles"));
        if let Some(prefix) = bin.parent() {
            dirs.push(prefix.join("share/cibox/dockerfiles"));
        }
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("dockerfiles"));
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

/// The Dockerfile name a `FROM qemu/NAME` line refers to.
fn qemu_name(rest: &str) -> &str {
    let name = rest.split_whitespace().next().unwrap_or("");
    if name.starts_with("debian") && name.ends_with("user") {
        "debian-bootstrap"
    } else {
        name
    }
}

/// Python's `str.isspace` for one character (Rust's whitespace plus the separators 0x1c-0x1f).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.splitlines()`: every line boundary Python knows, `\r\n` as one.
pub fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let boundary = matches!(
            c,
            '\n' | '\r'
                | '\u{0b}'
                | '\u{0c}'
                | '\u{1c}'
                | '\u{1d}'
                | '\u{1e}'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !boundary {
            continue;
        }
        lines.push(&text[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                chars.next();
                end = j + 1;
            }
        }
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// Preprocesses Dockerfile text (see the module comment). `origin` names it in errors.
pub fn preprocess(text: &str, origin: &Path, search: &SearchPath) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut chain = vec![origin.display().to_string()];
    preprocess_into(text, search, &mut chain, &mut out)?;
    Ok(out)
}

fn preprocess_into(
    text: &str,
    search: &SearchPath,
    chain: &mut Vec<String>,
    out: &mut String,
) -> anyhow::Result<()> {
    for line in split_lines(text) {
        if line.chars().all(py_space) || line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(QEMU_FROM) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let name = qemu_name(rest);
        if name.is_empty() || name.contains('/') {
            bail!(
                "{}: `{line}` does not name a Dockerfile",
                chain[chain.len() - 1]
            );
        }
        let file = format!("{name}.docker");
        let Some(path) = search.find(&file) else {
            let dirs: Vec<String> = search
                .dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            bail!(
                "{}: `{line}` needs {file}, which is not in {}",
                chain[chain.len() - 1],
                dirs.join(", ")
            );
        };
        let shown = path.display().to_string();
        if chain.contains(&shown) || chain.len() > MAX_DEPTH {
            chain.push(shown);
            bail!("FROM qemu/ lines form a loop: {}", chain.join(" -> "));
        }
        let included = read(&path)?;
        chain.push(shown);
        preprocess_into(&included, search, chain, out)?;
        chain.pop();
    }
    Ok(())
}

/// A Dockerfile read and preprocessed: what the up-to-date decision needs.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub path: PathBuf,
    /// The text as written (what is built).
    pub text: String,
    /// The SHA-1 hex of the preprocessed text (the checksum label).
    pub checksum: String,
}

impl Dockerfile {
    /// Reads and preprocesses `path`, looking for `FROM qemu/` bases as [`SearchPath`] says.
    pub fn load(path: &Path) -> anyhow::Result<Dockerfile> {
        let text = read(path)?;
        let search = SearchPath::for_dockerfile(path);
        let checksum = sha1_hex(preprocess(&text, path, &search)?.as_bytes());
        Ok(Dockerfile {
            path: path.to_path_buf(),
            text,
            checksum,
        })
    }
}

/// The line that adds the calling user to an image: `useradd` where the image has it, else
/// busybox's `adduser`, else (a busybox without it) plain lines in `/etc/passwd` and
/// `/etc/group`.
pub fn user_line(uid: u32, name: &str) -> String {
    format!(
        "RUN id {name} 2>/dev/null || \
         if command -v useradd >/dev/null 2>&1; then useradd -u {uid} -U {name}; \
         elif command -v adduser >/dev/null 2>&1; then adduser -D -u {uid} {name}; \
         else echo '{name}:x:{uid}:{uid}::/home/{name}:/bin/sh' >> /etc/passwd \
         && echo '{name}:x:{uid}:' >> /etc/group; fi"
    )
}

/// The calling user's uid and name (for `--add-current-user`).
pub fn current_user() -> anyhow::Result<(u32, String)> {
    let uid = nix::unistd::getuid().as_raw();
    let user = uzers::get_user_by_uid(uid).with_context(|| {
        format!("the current uid {uid} has no user name (needed to add the user)")
    })?;
    let name = user.name().to_string_lossy().into_owned();
    Ok((uid, name))
}

/// Every input of a build beyond the Dockerfile text, each as a name and a digest.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    entries: BTreeMap<String, String>,
}

impl Inputs {
    /// Records one input; `what` says what it is (`extra-file:NAME`, `user`, ...).
    pub fn add(&mut self, what: impl Into<String>, digest: impl Into<String>) {
        self.entries.insert(what.into(), digest.into());
    }

    /// Records a file's content by its SHA-256.
    pub fn add_file(&mut self, what: impl Into<String>, path: &Path) -> anyhow::Result<()> {
        let digest = file_sha256(path)?;
        self.add(what, digest);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of [`INPUTS_LABEL`]: SHA-256 hex over every input, `None` when there are none.
    pub fn label(&self) -> Option<String> {
        if self.entries.is_empty() {
            return None;
        }
        let mut hasher = Sha256::new();
        for (what, digest) in &self.entries {
            hasher.update(what.as_bytes());
            hasher.update(b"\0");
            hasher.update(digest.as_bytes());
            hasher.update(b"\n");
        }
        Some(hex::encode(hasher.finalize()))
    }
}

/// Hex digest `D` of a file's content, read in pieces.
fn file_digest<D: Digest + std::io::Write>(path: &Path) -> anyhow::Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = D::new();
    std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(hex::encode(hasher.finalize()))
}

/// SHA-256 hex of a file's content.
pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    file_digest::<Sha256>(path)
}

/// SHA-1 hex of a file's content (the original's `com.qemu.<file>-checksum` labels).
pub fn file_sha1(path: &Path) -> anyhow::Result<String> {
    file_digest::<Sha1>(path)
}

/// Whether an image's labels say it was built from this Dockerfile with these inputs. The
/// inputs label is compared only when there are inputs (see the module comment).
pub fn labels_match(
    labels: &std::collections::HashMap<String, String>,
    checksum: &str,
    inputs: Option<&str>,
) -> bool {
    labels.get(CHECKSUM_LABEL).map(String::as_str) == Some(checksum)
        && inputs.is_none_or(|want| labels.get(INPUTS_LABEL).map(String::as_str) == Some(want))
}

/// `FROM qemu/X` lines rewritten to `FROM PREFIX/qemu/X` (the registry, or `localhost` for
/// podman, whose local images are called so).
pub fn qualify_qemu_bases(text: &str, prefix: &str) -> String {
    text.replace(QEMU_FROM, &format!("FROM {prefix}/qemu/"))
}

/// The names after every `FROM qemu/` in the text, in order (the bases a registry build pulls).
pub fn qemu_bases(text: &str) -> Vec<String> {
    text.match_indices(QEMU_FROM)
        .map(|(i, _)| {
            let rest = &text[i + QEMU_FROM.len()..];
            rest.split(['\n', '\r'])
                .next()
                .unwrap_or("")
                .trim_end()
                .to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(dir: &Path) -> SearchPath {
        SearchPath {
            dirs: vec![dir.to_path_buf()],
        }
    }

    #[test]
    fn splits_lines_like_python() {
        assert_eq!(
            split_lines("a\nb\r\nc\rd\u{0c}e"),
            ["a", "b", "c", "d", "e"]
        );
        assert_eq!(split_lines("a\n\n"), ["a", ""]);
        assert_eq!(split_lines(""), Vec::<&str>::new());
    }

    #[test]
    fn drops_blank_and_comment_lines_and_inlines_recursively() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("base.docker"),
            "# base\nFROM alpine\n\nRUN a\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("mid.docker"), "FROM qemu/base\n  \nRUN b\n").unwrap();
        std::fs::write(dir.path().join("debian-bootstrap.docker"), "FROM scratch\n").unwrap();
        let top = "FROM qemu/mid\n # kept: not at the start\nRUN c";
        let out = preprocess(top, Path::new("top.docker"), &search(dir.path())).unwrap();
        assert_eq!(
            out,
            "FROM alpine\nRUN a\nRUN b\n # kept: not at the start\nRUN c\n"
        );
        let user = preprocess(
            "FROM qemu/debian-arm64-user\n",
            Path::new("x"),
            &search(dir.path()),
        );
        assert_eq!(user.unwrap(), "FROM scratch\n");
    }

    #[test]
    fn checksum_matches_the_original_script() {
        // sha1("FROM busybox\nRUN true\n"), as Python's hashlib computes it.
        let dir = tempfile::tempdir().unwrap();
        let out = preprocess(
            "# c\nFROM busybox\n\nRUN true",
            Path::new("x"),
            &search(dir.path()),
        );
        assert_eq!(
            sha1_hex(out.unwrap().as_bytes()),
            "74cd8fde26247acaffc169c2f38e1d569873f3fa"
        );
    }

    #[test]
    fn missing_base_and_loops_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = preprocess(
            "FROM qemu/nothere\n",
            Path::new("top.docker"),
            &search(dir.path()),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("nothere.docker") && err.contains("top.docker"),
            "{err}"
        );
        std::fs::write(dir.path().join("a.docker"), "FROM qemu/b\n").unwrap();
        std::fs::write(dir.path().join("b.docker"), "FROM qemu/a\n").unwrap();
        let err = preprocess(
            "FROM qemu/a\n",
            Path::new("top.docker"),
            &search(dir.path()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("loop"), "{err}");
    }

    #[test]
    fn inputs_label_only_when_there_are_inputs() {
        let mut inputs = Inputs::default();
        assert_eq!(inputs.label(), None);
        inputs.add("user", "0:root");
        let one = inputs.label().unwrap();
        inputs.add("build-arg:http_proxy", "http://p");
        assert_ne!(inputs.label().unwrap(), one);
        let mut labels = std::collections::HashMap::new();
        labels.insert(CHECKSUM_LABEL.to_string(), "abc".to_string());
        assert!(labels_match(&labels, "abc", None));
        assert!(!labels_match(&labels, "abc", Some("x")));
        labels.insert(INPUTS_LABEL.to_string(), "x".to_string());
        assert!(labels_match(&labels, "abc", Some("x")));
        assert!(labels_match(&labels, "abc", None));
        assert!(!labels_match(&labels, "abd", None));
    }

    #[test]
    fn registry_rewrite_and_bases() {
        let text = "FROM qemu/a\nRUN x\nFROM qemu/b AS y\n";
        assert_eq!(qemu_bases(text), ["a", "b AS y"]);
        assert_eq!(
            qualify_qemu_bases(text, "r:5000"),
            "FROM r:5000/qemu/a\nRUN x\nFROM r:5000/qemu/b AS y\n"
        );
    }

    #[test]
    fn user_line_has_both_tools() {
        let line = user_line(1000, "alice");
        assert!(line.starts_with("RUN id alice 2>/dev/null || "));
        assert!(line.contains("useradd -u 1000 -U alice"));
        assert!(line.contains("adduser -D -u 1000 alice"));
        assert!(line.contains("alice:x:1000:1000::/home/alice:/bin/sh"));
    }
}
