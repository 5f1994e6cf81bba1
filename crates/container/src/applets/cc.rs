//! `cc`: run a compiler inside an image, on the current directory, as the current user.
//!
//! `cibox cc -i IMAGE [--cc CC] [-s PATH...] [--] ARGS` runs `CC ARGS` in IMAGE with the
//! current directory mounted read-write at the same path (and as the working directory) and
//! each source path mounted read-only at its own path. QEMU's configure writes cross tools so:
//! `CC=docker.py cc --cc aarch64-linux-gnu-gcc -i qemu/debian-arm64-cross -s $SRC --`. The exit
//! status is the compiler's. The image is never pulled: a missing one is a one-line error.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser};

use crate::instances::{run_container, RunOptions};
use crate::{image, EngineArgs};
use cibox_core::applet::{Applet, Invocation, Manual};

/// What the engine exits with when it could not start the container (a missing image, ...).
const ENGINE_FAILED: i32 = 125;

/// Run a compiler in an image on the current directory, as the current user
#[derive(Debug, Parser)]
#[command(after_help = "\
Every argument not listed here (best after `--`) goes to the compiler.

Exit status:
  N    the compiler's own exit status
  125  the engine could not run the container
  1    the image does not exist, a source path does not exist, or no working engine
  2    usage error")]
struct CcArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Image the compiler lives in
    #[arg(short = 'i', long, value_name = "IMAGE")]
    image: String,
    /// Compiler to call
    #[arg(long, default_value = "cc", value_name = "CC")]
    cc: String,
    /// Paths mounted read-only at the same place (sources outside the current directory)
    #[arg(short = 's', long = "source-path", num_args = 0.., value_name = "PATH")]
    paths: Vec<PathBuf>,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, mut compiler_args) = invocation.parse::<CcArgs>()?;
    if let Some(at) = compiler_args.iter().position(|a| a == "--") {
        compiler_args.remove(at);
    }
    let cwd = std::env::current_dir().context("cannot tell the current directory")?;
    let mut argv: Vec<OsString> = vec!["--pull=never".into(), "-w".into(), cwd.clone().into()];
    argv.push(volume(&cwd, "rw"));
    for path in &args.paths {
        let path = std::path::absolute(path)
            .with_context(|| format!("cannot make {} absolute", path.display()))?;
        if !path.exists() {
            anyhow::bail!("source path {} does not exist", path.display());
        }
        // The current directory is mounted already (read-write); a second mount at the same
        // place is refused by both engines.
        let same =
            path == cwd || std::fs::canonicalize(&path).ok() == std::fs::canonicalize(&cwd).ok();
        if same {
            continue;
        }
        argv.push(volume(&path, "ro,z"));
    }
    argv.push(args.image.clone().into());
    argv.push(args.cc.clone().into());
    argv.extend(compiler_args);
    let engine = args.common.engine(&invocation)?;
    let options = RunOptions {
        keep: false,
        quiet: args.common.quiet,
        as_current_user: true,
    };
    let status = run_container(&engine, &options, &argv)?;
    if status == ENGINE_FAILED && !image::exists(&engine, &args.image)? {
        anyhow::bail!(
            "image {} does not exist (build it with `cibox build` or fetch it with `cibox fetch`)",
            args.image
        );
    }
    Ok(ExitCode::from(status.clamp(0, 255) as u8))
}

/// `--volume=PATH:PATH:MODE`.
fn volume(path: &std::path::Path, mode: &str) -> OsString {
    let mut spec = OsString::from("--volume=");
    spec.push(path);
    spec.push(":");
    spec.push(path);
    spec.push(":");
    spec.push(mode);
    spec
}

inventory::submit! {
    Applet {
        name: "cc",
        about: "Run a compiler in an image on the current directory, as the current user",
        aliases: &[],
        command: CcArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "cc",
        environment: &[crate::options::ENVIRONMENT],
        files: &[crate::options::FILES],
    }
}
