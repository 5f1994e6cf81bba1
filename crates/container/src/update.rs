//! Adding a layer to an existing image (the `update` applet): an executable with its libraries
//! at its binfmt_misc interpreter path (or its own path), and the line adding the current user.
//! The image is built `FROM TAG` again as TAG, from a build context written as a tar straight
//! into `ENGINE build -t TAG -` (no temporary copy, however big the executable is).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use crate::binfmt::{self, Placement};
use crate::context::write_tar;
use crate::dockerfile;
use crate::engine::{Engine, EngineKind};
use crate::image;

/// An executable to put into the image.
#[derive(Debug, Clone)]
pub struct Executable {
    /// The program on this machine.
    pub path: PathBuf,
    /// Put it at its own path instead of its binfmt_misc interpreter path.
    pub skip_binfmt: bool,
}

/// What `update` adds to an image.
#[derive(Debug, Clone)]
pub struct AddLayer {
    /// The image updated (built again under the same name).
    pub tag: String,
    /// The executable to copy in, with its libraries.
    pub executable: Option<Executable>,
    /// Add the current user (uid and name) to the image's passwd.
    pub add_current_user: bool,
}

/// A layer ready to build: its Dockerfile and the files of its context.
#[derive(Debug, Clone)]
pub struct PreparedLayer {
    tag: String,
    dockerfile: String,
    /// (path on this machine, path in the image)
    files: Vec<(PathBuf, PathBuf)>,
}

impl AddLayer {
    /// Finds where the executable goes and what it needs, and writes the Dockerfile. Nothing
    /// is asked of an engine yet.
    pub fn prepare(&self, quiet: bool) -> anyhow::Result<PreparedLayer> {
        let mut text = format!("FROM {}\n", self.tag);
        let mut files = Vec::new();
        if let Some(exe) = &self.executable {
            let placement = if exe.skip_binfmt {
                Placement::At(binfmt::own_path(&exe.path)?)
            } else {
                binfmt::placement(&exe.path, quiet)?
            };
            files = binfmt::files_for(&exe.path, &placement)?;
            text.push_str("ADD . /\n");
        }
        if self.add_current_user {
            let (uid, name) = dockerfile::current_user()?;
            text.push('\n');
            text.push_str(&dockerfile::user_line(uid, &name));
            text.push('\n');
        }
        Ok(PreparedLayer {
            tag: self.tag.clone(),
            dockerfile: text,
            files,
        })
    }
}

impl PreparedLayer {
    /// Builds the layer with `engine`, streaming the context into the build.
    pub fn build(&self, engine: &Engine, quiet: bool) -> anyhow::Result<()> {
        let mut argv: Vec<OsString> = vec!["build".into(), "-t".into(), self.tag.clone().into()];
        let (envs, _) = image::builder_env(engine);
        if engine.kind == EngineKind::Podman && image::is_short_name(&self.tag) {
            // The image being updated is local: never resolve its short name remotely (that
            // needs a TTY, and finds some other image at best).
            argv.push("--pull=never".into());
        }
        argv.push("-".into());
        let feed = || -> Option<image::Feed> {
            let text = self.dockerfile.clone();
            let files = self.files.clone();
            Some(Box::new(move |stdin| {
                let buffered = std::io::BufWriter::with_capacity(1 << 20, stdin);
                write_tar(buffered, &text, &files)?.flush()
            }))
        };
        image::run_build(engine, &argv, quiet, &envs, &feed)?;
        Ok(())
    }
}
