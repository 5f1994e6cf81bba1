//! Build contexts: a temporary directory that is removed on every path out (success, error,
//! SIGINT, SIGTERM, SIGHUP), or a tar stream written straight into the engine's stdin.
//!
//! [`BuildDir`] is `cibox-build.XXXXXX` under `$TMPDIR`, holding the generated `Dockerfile`
//! and the `context/` directory the engine gets; the Dockerfile sits outside the context so
//! that an `ADD . /` does not copy it into the image. While a `BuildDir` lives, a signal
//! stops the engine (or `.pre` script) running in the foreground, removes the directory and
//! exits with 128 + the signal; dropping it removes the directory too.
//!
//! [`write_tar`] writes a context as a tar (Dockerfile first, then files by their path in the
//! image), streaming each file's content: nothing of the size of the context is kept in
//! memory or on disk.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

use super::exec::foreground_child;

/// A temporary build directory, removed whatever happens.
pub struct BuildDir {
    dir: Option<tempfile::TempDir>,
    context: PathBuf,
    dockerfile: PathBuf,
    signals: Option<(Handle, JoinHandle<()>)>,
}

impl BuildDir {
    /// Creates the directory (with an empty `context/`) and starts watching for signals.
    pub fn new() -> anyhow::Result<BuildDir> {
        let dir = tempfile::Builder::new()
            .prefix("cibox-build.")
            .tempdir()
            .context("cannot create a temporary build directory")?;
        let context = dir.path().join("context");
        std::fs::create_dir(&context)
            .with_context(|| format!("cannot create {}", context.display()))?;
        let dockerfile = dir.path().join("Dockerfile");
        let mut build = BuildDir {
            dir: Some(dir),
            context,
            dockerfile,
            signals: None,
        };
        build.watch()?;
        Ok(build)
    }

    fn watch(&mut self) -> anyhow::Result<()> {
        let mut signals =
            Signals::new([SIGINT, SIGTERM, SIGHUP]).context("cannot install signal handlers")?;
        let handle = signals.handle();
        let path = self.path().to_path_buf();
        let thread = std::thread::spawn(move || {
            if let Some(signal) = signals.forever().next() {
                if let Some(pid) = foreground_child() {
                    // SIGINT from a terminal reached it already; SIGTERM/SIGHUP may not have.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(pid as i32),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
                let _ = std::fs::remove_dir_all(&path);
                std::process::exit(128 + signal);
            }
        });
        self.signals = Some((handle, thread));
        Ok(())
    }

    /// The whole temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |d| d.path())
    }

    /// The context directory handed to the engine.
    pub fn context(&self) -> &Path {
        &self.context
    }

    /// Where the generated Dockerfile goes (outside the context).
    pub fn dockerfile(&self) -> &Path {
        &self.dockerfile
    }

    /// Copies `source` to `dest` inside the context (`dest` may be absolute: it is taken as a
    /// path in the image), creating directories as needed and keeping the permission bits.
    pub fn add_file(&self, source: &Path, dest: &Path) -> anyhow::Result<()> {
        let target = self.context.join(relative(dest)?);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::copy(source, &target)
            .with_context(|| format!("cannot copy {} into the build context", source.display()))?;
        Ok(())
    }

    /// Removes the directory now (also done on drop), reporting failure.
    pub fn remove(mut self) -> anyhow::Result<()> {
        self.stop_watching();
        match self.dir.take() {
            Some(dir) => {
                let shown = dir.path().display().to_string();
                dir.close()
                    .with_context(|| format!("cannot remove {shown}"))
            }
            None => Ok(()),
        }
    }

    fn stop_watching(&mut self) {
        if let Some((handle, thread)) = self.signals.take() {
            handle.close();
            let _ = thread.join();
        }
    }
}

impl Drop for BuildDir {
    fn drop(&mut self) {
        self.stop_watching();
        // TempDir's own drop removes the directory.
        self.dir.take();
    }
}

/// A path in the image as a relative path inside a context (`/usr/bin/x` -> `usr/bin/x`);
/// `..` components are refused.
pub fn relative(dest: &Path) -> anyhow::Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in dest.components() {
        match part {
            std::path::Component::Normal(p) => out.push(p),
            std::path::Component::RootDir | std::path::Component::CurDir => {}
            _ => anyhow::bail!("{} is not a plain path in the image", dest.display()),
        }
    }
    if out.as_os_str().is_empty() {
        anyhow::bail!("{} is not a file path in the image", dest.display());
    }
    Ok(out)
}

/// Writes a build context as a tar: the `Dockerfile` first, then each `(source, path in the
/// image)` with the source's content and permission bits, read as it goes.
pub fn write_tar<W: Write>(
    out: W,
    dockerfile: &str,
    files: &[(PathBuf, PathBuf)],
) -> io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, "Dockerfile", dockerfile.as_bytes())?;
    for (source, dest) in files {
        let name = relative(dest).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut file = std::fs::File::open(source)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", source.display())))?;
        tar.append_file(&name, &mut file)?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_dir_is_removed_on_drop_and_on_remove() {
        let src = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(src.path(), "x").unwrap();
        let a = BuildDir::new().unwrap();
        let path = a.path().to_path_buf();
        a.add_file(src.path(), Path::new("/x/y/f")).unwrap();
        assert_eq!(std::fs::read(a.context().join("x/y/f")).unwrap(), b"x");
        drop(a);
        assert!(!path.exists());
        let b = BuildDir::new().unwrap();
        let path = b.path().to_path_buf();
        b.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn relative_paths_in_the_image() {
        assert_eq!(
            relative(Path::new("/usr/bin/x")).unwrap(),
            PathBuf::from("usr/bin/x")
        );
        assert!(relative(Path::new("/a/../etc")).is_err());
        assert!(relative(Path::new("/")).is_err());
    }

    #[test]
    fn tar_has_the_dockerfile_first_and_files_at_their_image_paths() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("tool");
        std::fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
        let bytes = write_tar(
            Vec::new(),
            "FROM x\n",
            &[(src.clone(), PathBuf::from("/opt/bin/tool"))],
        )
        .unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["Dockerfile", "opt/bin/tool"]);
        let missing = write_tar(
            Vec::new(),
            "FROM x\n",
            &[(dir.path().join("nope"), PathBuf::from("/nope"))],
        );
        assert!(missing.unwrap_err().to_string().contains("nope"));
    }
}
