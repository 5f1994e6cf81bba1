//! Putting a host executable into an image: where binfmt_misc expects it, and the shared
//! libraries it needs.
//!
//! [`placement`] reads `<root>/<basename>` (root `/proc/sys/fs/binfmt_misc`, or
//! `$CIBOX_BINFMT_MISC` for tests): an `F` (persistent) flag means the kernel already holds the
//! host binary, so only its libraries go in; otherwise the binary goes to the entry's
//! `interpreter` path. [`libraries`] runs `ldd` and lists every library by the path `ldd`
//! prints, with the real file behind it (symlinks resolved), so the copy holds the content at
//! the path the loader looks for.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// Where binfmt_misc entries are read from.
pub fn root() -> PathBuf {
    std::env::var_os("CIBOX_BINFMT_MISC")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/proc/sys/fs/binfmt_misc"), PathBuf::from)
}

/// Where an executable goes in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// At this path (the binfmt_misc interpreter, or the executable's own path).
    At(PathBuf),
    /// Nowhere: the entry is persistent (`F`), only the libraries go in.
    LibrariesOnly,
}

/// A binfmt_misc entry's text, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub interpreter: Option<PathBuf>,
    pub persistent: bool,
    pub enabled: bool,
}

/// Parses the text of `/proc/sys/fs/binfmt_misc/NAME`.
pub fn parse_entry(text: &str) -> Entry {
    let mut entry = Entry {
        interpreter: None,
        persistent: false,
        enabled: true,
    };
    for line in text.lines() {
        let line = line.trim();
        if line == "disabled" {
            entry.enabled = false;
        } else if let Some(flags) = line.strip_prefix("flags:") {
            entry.persistent = flags.contains('F');
        } else if let Some(path) = line.strip_prefix("interpreter ") {
            let path = path.trim();
            if !path.is_empty() {
                entry.interpreter = Some(PathBuf::from(path));
            }
        }
    }
    entry
}

/// Where `executable` goes according to its binfmt_misc entry; an error when there is none.
/// Notes (a differing interpreter, a persistent entry) go to stderr unless `quiet`.
pub fn placement(executable: &Path, quiet: bool) -> anyhow::Result<Placement> {
    // The executable itself first: a missing one is the mistake to name, not binfmt_misc.
    check_executable(executable)?;
    placement_in(&root(), executable, quiet)
}

/// [`placement`] with the binfmt_misc entries read from `root`.
pub fn placement_in(root: &Path, executable: &Path, quiet: bool) -> anyhow::Result<Placement> {
    let name = executable
        .file_name()
        .with_context(|| format!("{} does not name a file", executable.display()))?;
    let path = root.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no binfmt_misc entry for {} ({} does not exist); register one, or pass --skip-binfmt \
             to put the executable at its own path",
            name.to_string_lossy(),
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let entry = parse_entry(&text);
    if entry.persistent {
        if !quiet {
            eprintln!(
                "binfmt_misc for {} is persistent (F): only its libraries go into the image",
                name.to_string_lossy()
            );
        }
        return Ok(Placement::LibrariesOnly);
    }
    let Some(interpreter) = entry.interpreter else {
        bail!(
            "the binfmt_misc entry {} names no interpreter",
            path.display()
        );
    };
    if !quiet && interpreter != executable {
        eprintln!(
            "binfmt_misc for {} points to {}: the executable goes there",
            name.to_string_lossy(),
            interpreter.display()
        );
    }
    Ok(Placement::At(interpreter))
}

/// Where `--skip-binfmt` puts the executable in the image: the path as it was given, rooted at
/// `/`, as QEMU's docker.py places it (it copies the file into the build context under the
/// given path's directory). So `qemu-hello` goes to `/qemu-hello` (QEMU's exec-copy test runs
/// `/qemu-hello`), `build/x` to `/build/x`, and `/usr/bin/x` stays itself. The path is
/// normalised lexically, symlinks are not resolved, and `..` never climbs above the root (the
/// original would copy such a file out of its build context).
pub fn own_path(executable: &Path) -> anyhow::Result<PathBuf> {
    let mut placed = PathBuf::from("/");
    for component in executable.components() {
        match component {
            Component::Normal(name) => placed.push(name),
            Component::ParentDir => {
                placed.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    if placed.parent().is_none() {
        bail!(
            "{} names no file to put into the image",
            executable.display()
        );
    }
    Ok(placed)
}

/// One shared library of an executable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// The path `ldd` printed, where the loader will look for it.
    pub listed: PathBuf,
    /// The file behind it, symlinks resolved.
    pub real: PathBuf,
}

/// Parses `ldd` output: the absolute library paths, in order; libraries `ldd` could not
/// find come back in the error.
pub fn parse_ldd(text: &str) -> Result<Vec<PathBuf>, Vec<String>> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((name, target)) = line.split_once(" => ") {
            if target.trim() == "not found" {
                missing.push(name.trim().to_string());
                continue;
            }
        }
        // `name => /path (0x...)`, `/path (0x...)`, or `name (0x...)` (the vDSO: no file).
        let Some(open) = line.rfind(" (0x") else {
            continue;
        };
        let before = &line[..open];
        let path = before.rsplit_once(" => ").map_or(before, |(_, p)| p).trim();
        if path.starts_with('/') {
            found.push(PathBuf::from(path));
        }
    }
    if missing.is_empty() {
        Ok(found)
    } else {
        Err(missing)
    }
}

/// The shared libraries `executable` needs, as `ldd` lists them (none for a static binary).
pub fn libraries(executable: &Path) -> anyhow::Result<Vec<Library>> {
    let output = Command::new("ldd")
        .arg(executable)
        .stdin(Stdio::null())
        .output()
        .context("cannot run ldd to list the executable's libraries")?;
    if !output.status.success() {
        // "not a dynamic executable": a static binary needs nothing else.
        return Ok(Vec::new());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let listed = parse_ldd(&text).map_err(|missing| {
        anyhow::anyhow!(
            "{} needs libraries ldd cannot find: {}",
            executable.display(),
            missing.join(", ")
        )
    })?;
    listed
        .into_iter()
        .map(|listed| {
            let real = std::fs::canonicalize(&listed)
                .with_context(|| format!("cannot resolve library {}", listed.display()))?;
            Ok(Library { listed, real })
        })
        .collect()
}

/// An error naming the executable unless it is a readable regular file.
fn check_executable(executable: &Path) -> anyhow::Result<()> {
    let meta = std::fs::metadata(executable)
        .with_context(|| format!("cannot read executable {}", executable.display()))?;
    if !meta.is_file() {
        bail!("executable {} is not a file", executable.display());
    }
    Ok(())
}

/// What goes into an image for one executable: `(source on the host, path in the image)`.
pub fn files_for(
    executable: &Path,
    placement: &Placement,
) -> anyhow::Result<Vec<(PathBuf, PathBuf)>> {
    check_executable(executable)?;
    let mut files = Vec::new();
    if let Placement::At(dest) = placement {
        files.push((executable.to_path_buf(), dest.clone()));
    }
    for lib in libraries(executable)? {
        files.push((lib.real, lib.listed));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_binfmt_places_the_path_as_given_under_the_root() {
        let placed = |p: &str| own_path(Path::new(p)).unwrap();
        assert_eq!(placed("qemu-hello"), PathBuf::from("/qemu-hello"));
        assert_eq!(placed("./qemu-hello"), PathBuf::from("/qemu-hello"));
        assert_eq!(
            placed("build/x86_64/qemu"),
            PathBuf::from("/build/x86_64/qemu")
        );
        assert_eq!(placed("/usr/bin/tac"), PathBuf::from("/usr/bin/tac"));
        assert_eq!(placed("../../bin/qemu"), PathBuf::from("/bin/qemu"));
        assert!(own_path(Path::new("..")).is_err());
        assert!(own_path(Path::new(".")).is_err());
    }

    #[test]
    fn parses_interpreter_and_persistent_entries() {
        let plain =
            "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: OC\noffset 0\nmagic 7f454c46\n";
        assert_eq!(
            parse_entry(plain),
            Entry {
                interpreter: Some(PathBuf::from("/usr/bin/qemu-aarch64")),
                persistent: false,
                enabled: true
            }
        );
        let fixed = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\n";
        assert!(parse_entry(fixed).persistent);
        assert!(!parse_entry("disabled\ninterpreter /x\nflags: \n").enabled);
    }

    #[test]
    fn placement_from_a_fake_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(
            root.path().join("qemu-aarch64"),
            "enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OC\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("qemu-arm"),
            "enabled\ninterpreter /usr/bin/qemu-arm\nflags: F\n",
        )
        .unwrap();
        let exe = Path::new("/build/qemu-aarch64");
        assert_eq!(
            placement_in(root.path(), exe, true).unwrap(),
            Placement::At(PathBuf::from("/usr/bin/qemu-aarch64-static"))
        );
        assert_eq!(
            placement_in(root.path(), Path::new("qemu-arm"), true).unwrap(),
            Placement::LibrariesOnly
        );
        let err = placement_in(root.path(), Path::new("/x/qemu-ppc"), true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no binfmt_misc entry for qemu-ppc"), "{err}");
    }

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd5a1f2000)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f0f1c000000)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f0f1c3f0000)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        let missing = "\tlibnope.so.1 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n";
        assert_eq!(parse_ldd(missing).unwrap_err(), ["libnope.so.1"]);
    }

    #[test]
    fn host_program_libraries_resolve_to_files() {
        let libs = libraries(Path::new("/usr/bin/tac")).unwrap();
        assert!(libs
            .iter()
            .any(|l| l.listed.to_string_lossy().contains("libc.so")));
        for lib in libs {
            assert!(lib.real.is_file() && !lib.real.is_symlink(), "{lib:?}");
        }
        assert!(libraries(Path::new("/bin/busybox")).unwrap().is_empty());
    }
}
