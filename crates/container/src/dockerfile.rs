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
//! [`Inputs`] and kept, hashed, in one more label, [`INPUTS_LABEL`], with the list it was hashed
//! from (each input's name, digest and host file) in [`INPUT_LIST_LABEL`]. Both are written
//! only when such inputs exist, so a plain image stays interchangeable with the original
//! script's.
//!
//! One rule decides whether an image is up to date, for `build` and `check` alike
//! ([`up_to_date`]): the checksum label must match; an image without [`INPUTS_LABEL`] was built
//! by the original script (or had no other inputs) and is judged by the checksum alone, as the
//! original judges it; an image with it is judged on every input too. `build` compares it with
//! the inputs it was asked for; `check`, which is told only the Dockerfile, recomputes the
//! inputs the image recorded (file contents, the current user) with [`Inputs::recorded`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The label QEMU's docker.py keeps the preprocessed Dockerfile's SHA-1 in.
pub const CHECKSUM_LABEL: &str = "com.qemu.dockerfile-checksum";
/// The label cibox keeps the digest of the build's other inputs in.
pub const INPUTS_LABEL: &str = "org.cibox.inputs";
/// The label with the list of those inputs (base64 of JSON), so `check` can recompute them.
pub const INPUT_LIST_LABEL: &str = "org.cibox.input-list";
/// The input name of the added user.
const USER_INPUT: &str = "user";
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
    // This crate sits at `crates/container` of the workspace; `dockerfiles/` is at its root.
    dirs.push(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dockerfiles")).to_path_buf());
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

/// The most text `FROM qemu/` inlining may produce: the same base included along several
/// paths repeats, and nested repeats grow exponentially, so the output is bounded.
pub const MAX_PREPROCESSED_BYTES: usize = 4 * MAX_DOCKERFILE_BYTES as usize;

/// Preprocesses Dockerfile text (see the module comment). `origin` names it in errors.
///
/// Each included file is read and preprocessed once (a base reached along several paths is
/// not read again), and the output is bounded by [`MAX_PREPROCESSED_BYTES`], so the work is
/// linear in the files read plus the output, whatever the inclusions.
pub fn preprocess(text: &str, origin: &Path, search: &SearchPath) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut state = Inlining {
        search,
        chain: vec![origin.display().to_string()],
        done: std::collections::HashMap::new(),
    };
    preprocess_into(text, &mut state, &mut out)?;
    Ok(out)
}

/// What inlining carries along: where to look, the inclusion chain (for loops), and the
/// files already preprocessed.
struct Inlining<'a> {
    search: &'a SearchPath,
    chain: Vec<String>,
    done: std::collections::HashMap<String, String>,
}

/// Appends `text` to `out`, failing once the output would pass the bound.
fn push_bounded(out: &mut String, text: &str, origin: &str) -> anyhow::Result<()> {
    if out.len() + text.len() > MAX_PREPROCESSED_BYTES {
        bail!(
            "{origin}: its FROM qemu/ bases expand to more than {} MiB",
            MAX_PREPROCESSED_BYTES >> 20
        );
    }
    out.push_str(text);
    Ok(())
}

fn preprocess_into(text: &str, state: &mut Inlining, out: &mut String) -> anyhow::Result<()> {
    let search = state.search;
    for line in split_lines(text) {
        if line.chars().all(py_space) || line.starts_with('#') {
            continue;
        }
        let chain = &mut state.chain;
        let Some(rest) = line.strip_prefix(QEMU_FROM) else {
            push_bounded(out, line, &chain[0])?;
            push_bounded(out, "\n", &chain[0])?;
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
        if chain.contains(&shown) {
            chain.push(shown);
            bail!("FROM qemu/ lines form a loop: {}", chain.join(" -> "));
        }
        if chain.len() > MAX_DEPTH {
            bail!(
                "{}: FROM qemu/ bases nest deeper than {MAX_DEPTH}",
                chain[0]
            );
        }
        if let Some(text) = state.done.get(&shown) {
            let origin = state.chain[0].clone();
            push_bounded(out, text, &origin)?;
            continue;
        }
        let included = read(&path)?;
        state.chain.push(shown.clone());
        let mut expanded = String::new();
        preprocess_into(&included, state, &mut expanded)?;
        state.chain.pop();
        let origin = state.chain[0].clone();
        push_bounded(out, &expanded, &origin)?;
        state.done.insert(shown, expanded);
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

/// One input of a build: its digest, and the host file it was read from (if a file).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Input {
    digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
}

/// Every input of a build beyond the Dockerfile text, each as a name and a digest.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    entries: BTreeMap<String, Input>,
}

impl Inputs {
    /// Records one input; `what` says what it is (`extra-file:NAME`, `build-arg:K`, ...).
    pub fn add(&mut self, what: impl Into<String>, digest: impl Into<String>) {
        let input = Input {
            digest: digest.into(),
            file: None,
        };
        self.entries.insert(what.into(), input);
    }

    /// Records a file's content by its SHA-256, and where the file is.
    pub fn add_file(&mut self, what: impl Into<String>, path: &Path) -> anyhow::Result<()> {
        let input = Input {
            digest: file_sha256(path)?,
            file: std::path::absolute(path).ok(),
        };
        self.entries.insert(what.into(), input);
        Ok(())
    }

    /// Records the user added to the image.
    pub fn add_user(&mut self, uid: u32, name: &str) {
        self.add(USER_INPUT, format!("{uid}:{name}"));
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
        for (what, input) in &self.entries {
            hasher.update(what.as_bytes());
            hasher.update(b"\0");
            hasher.update(input.digest.as_bytes());
            hasher.update(b"\n");
        }
        Some(hex::encode(hasher.finalize()))
    }

    /// The value of [`INPUT_LIST_LABEL`]: every input as base64 of JSON (a label value needs
    /// no quoting so), `None` when there are none.
    pub fn list_label(&self) -> Option<String> {
        use base64::Engine as _;
        if self.entries.is_empty() {
            return None;
        }
        let json = serde_json::to_vec(&self.entries).ok()?;
        Some(base64::engine::general_purpose::STANDARD.encode(json))
    }

    /// The inputs an image recorded in [`INPUT_LIST_LABEL`], as they are now: each file hashed
    /// again (a file that is gone gets a digest no file has), the user taken as the current
    /// one, the rest as recorded. `None` when the image has no readable list.
    pub fn recorded(labels: &std::collections::HashMap<String, String>) -> Option<Inputs> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(labels.get(INPUT_LIST_LABEL)?)
            .ok()?;
        let mut entries: BTreeMap<String, Input> = serde_json::from_slice(&bytes).ok()?;
        for (what, input) in &mut entries {
            if let Some(file) = &input.file {
                input.digest = file_sha256(file).unwrap_or_else(|_| "gone".into());
            } else if what == USER_INPUT {
                input.digest = current_user()
                    .map(|(uid, name)| format!("{uid}:{name}"))
                    .unwrap_or_else(|_| "no user".into());
            }
        }
        Some(Inputs { entries })
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

/// Which inputs an image is judged against when it carries cibox's inputs label.
#[derive(Debug, Clone, Copy)]
pub enum Wanted<'a> {
    /// The inputs label of the build being asked for (`None`: it has no other inputs).
    Planned(Option<&'a str>),
    /// The inputs the image recorded, as they are now ([`Inputs::recorded`]).
    Recorded,
}

/// The up-to-date rule `build` and `check` share (see the module comment): the checksum label
/// matches, and, on an image that carries cibox's inputs label, the inputs match too.
pub fn up_to_date(
    labels: &std::collections::HashMap<String, String>,
    checksum: &str,
    wanted: Wanted,
) -> bool {
    if labels.get(CHECKSUM_LABEL).map(String::as_str) != Some(checksum) {
        return false;
    }
    let Some(have) = labels.get(INPUTS_LABEL) else {
        // Built by the original script: its own rule, the checksum alone.
        return true;
    };
    let want = match wanted {
        Wanted::Planned(label) => label.map(str::to_string),
        Wanted::Recorded => Inputs::recorded(labels).and_then(|inputs| inputs.label()),
    };
    want.as_deref() == Some(have.as_str())
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
    fn repeated_bases_are_read_once_and_the_expansion_is_bounded() {
        // l0 includes l1 twice, l1 includes l2 twice, ...: 2^28 copies of the leaf.
        let dir = tempfile::tempdir().unwrap();
        for level in 0..28 {
            let next = level + 1;
            std::fs::write(
                dir.path().join(format!("l{level}.docker")),
                format!("FROM qemu/l{next}\nRUN {level}\nFROM qemu/l{next}\n"),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join("l28.docker"), "RUN leaf\n").unwrap();
        let start = std::time::Instant::now();
        let err = preprocess(
            "FROM qemu/l0\n",
            Path::new("top.docker"),
            &search(dir.path()),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("expand to more than 16 MiB"), "{err}");
        assert!(start.elapsed() < std::time::Duration::from_secs(20));
        // A diamond within the bound works, each file read once.
        let ok = preprocess(
            "FROM qemu/l25\n",
            Path::new("top.docker"),
            &search(dir.path()),
        )
        .unwrap();
        assert_eq!(ok.lines().filter(|l| *l == "RUN leaf").count(), 8);
    }

    #[test]
    fn inputs_label_only_when_there_are_inputs() {
        let mut inputs = Inputs::default();
        assert_eq!(inputs.label(), None);
        assert_eq!(inputs.list_label(), None);
        inputs.add("user", "0:root");
        let one = inputs.label().unwrap();
        inputs.add("build-arg:http_proxy", "http://p");
        assert_ne!(inputs.label().unwrap(), one);
    }

    #[test]
    fn one_rule_for_original_and_cibox_images() {
        let mut labels = std::collections::HashMap::new();
        labels.insert(CHECKSUM_LABEL.to_string(), "abc".to_string());
        // No inputs label: the original's rule, whatever inputs are asked for.
        assert!(up_to_date(&labels, "abc", Wanted::Planned(None)));
        assert!(up_to_date(&labels, "abc", Wanted::Planned(Some("x"))));
        assert!(up_to_date(&labels, "abc", Wanted::Recorded));
        assert!(!up_to_date(&labels, "abd", Wanted::Planned(None)));
        // With it: every input counts.
        labels.insert(INPUTS_LABEL.to_string(), "x".to_string());
        assert!(up_to_date(&labels, "abc", Wanted::Planned(Some("x"))));
        assert!(!up_to_date(&labels, "abc", Wanted::Planned(Some("y"))));
        assert!(!up_to_date(&labels, "abc", Wanted::Planned(None)));
        // A label without its list cannot be recomputed: not up to date.
        assert!(!up_to_date(&labels, "abc", Wanted::Recorded));
    }

    #[test]
    fn recorded_inputs_follow_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.txt");
        std::fs::write(&file, "one").unwrap();
        let mut inputs = Inputs::default();
        inputs.add_file("extra-file:extra.txt", &file).unwrap();
        inputs.add("build-arg:A", "B");
        let mut labels = std::collections::HashMap::new();
        labels.insert(CHECKSUM_LABEL.to_string(), "abc".to_string());
        labels.insert(INPUTS_LABEL.to_string(), inputs.label().unwrap());
        labels.insert(INPUT_LIST_LABEL.to_string(), inputs.list_label().unwrap());
        assert!(up_to_date(&labels, "abc", Wanted::Recorded));
        std::fs::write(&file, "two").unwrap();
        assert!(!up_to_date(&labels, "abc", Wanted::Recorded));
        std::fs::remove_file(&file).unwrap();
        assert!(!up_to_date(&labels, "abc", Wanted::Recorded));
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
