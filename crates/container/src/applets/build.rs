//! `build`: build an image from a Dockerfile unless it is already up to date.
//!
//! `cibox build -t TAG -f DOCKERFILE [options] [engine args]`. The up-to-date decision costs one
//! engine call: the image's checksum label (QEMU's, so images are shared with the original
//! script both ways) and, when the build has inputs besides the Dockerfile, cibox's inputs
//! label (see `engine::dockerfile`). Otherwise the build runs in a temporary context that is
//! removed on every path out.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::build::{self, BuildRequest, Outcome};
use crate::dockerfile::Dockerfile;
use crate::{image, EngineArgs};
use cibox_core::applet::{Applet, Invocation, Manual};

/// Build an image from a Dockerfile unless it is up to date; unknown options go to the engine
#[derive(Debug, Parser)]
#[command(after_help = "\
A rebuild removes the image it replaced, unless something still uses it (another tag, a \
container, a child image). Up to date means: the image's label com.qemu.dockerfile-checksum is the SHA-1 of the \
Dockerfile with blank and comment lines dropped and every `FROM qemu/NAME` replaced by \
NAME.docker (next to the Dockerfile, then in $CIBOX_DOCKERFILES, then in the installed \
dockerfiles/). An image without cibox's label org.cibox.inputs was built by QEMU's docker.py \
(or had no other inputs) and is judged by that checksum alone, as docker.py judges it, whatever \
inputs are asked for; an image with it is up to date only when the build's other inputs (extra \
files, the included executable and its libraries, the .pre script, the added user, proxy \
settings and --build-args) match it too. `cibox check` applies the same rule. --no-cache among \
the engine arguments always builds.

A script DOCKERFILE-minus-extension.pre runs first in the build context: exit 3 skips the \
build (prints \"Skip\"), any other failure fails it. http_proxy, https_proxy and ftp_proxy \
(either case) become --build-args. Any option not listed here is passed to `ENGINE build`.

Exit status:
  0  built, up to date, or skipped by the .pre script
  1  the build failed, bad input (unreadable Dockerfile, missing extra file, no binfmt_misc \
entry), or no working engine
  2  usage error")]
struct BuildArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Image tag
    #[arg(short = 't', value_name = "TAG")]
    tag: Option<String>,
    /// Dockerfile
    #[arg(short = 'f', value_name = "DOCKERFILE")]
    dockerfile: Option<PathBuf>,
    /// Copy this executable (at its binfmt_misc interpreter path) and every library it needs
    #[arg(short = 'e', long, value_name = "BIN")]
    include_executable: Option<PathBuf>,
    /// Don't look BIN up in binfmt_misc: put it at the path given (a relative one under /)
    #[arg(long)]
    skip_binfmt: bool,
    /// Files copied into the build context (for ADD/COPY in the Dockerfile)
    #[arg(long, num_args = 0.., value_name = "FILE")]
    extra_files: Vec<PathBuf>,
    /// Add the current user (uid and name) to the image's passwd
    #[arg(short = 'u', long)]
    add_current_user: bool,
    /// Registry to take cached layers and `FROM qemu/` bases from
    #[arg(short = 'r', long, value_name = "REGISTRY")]
    registry: Option<String>,
}

/// A usage error with one line of text (exit 2).
fn usage(message: &str) -> anyhow::Error {
    clap::Error::raw(
        clap::error::ErrorKind::MissingRequiredArgument,
        format!("{message}\n"),
    )
    .into()
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, engine_args) = invocation.parse::<BuildArgs>()?;
    let Some(tag) = args.tag.as_deref() else {
        return Err(usage("missing -t TAG: the image to build"));
    };
    let Some(dockerfile_path) = args.dockerfile.as_deref() else {
        return Err(usage("missing -f DOCKERFILE: the Dockerfile to build from"));
    };
    if tag.is_empty() {
        return Err(usage("-t needs a non-empty image tag"));
    }
    let request = BuildRequest {
        tag,
        dockerfile: dockerfile_path,
        extra_files: &args.extra_files,
        include_executable: args.include_executable.as_deref(),
        skip_binfmt: args.skip_binfmt,
        add_current_user: args.add_current_user,
        registry: args.registry.as_deref(),
        quiet: args.common.quiet,
    };
    let dockerfile = Dockerfile::load(dockerfile_path)?;
    let plan = build::plan(&request, &engine_args)?;
    let engine = args.common.engine(&invocation)?;

    // One engine call: the decision, and the image a rebuild replaces.
    let previous = image::inspect(&engine, tag)?;
    let fresh = previous
        .as_ref()
        .is_some_and(|info| build::up_to_date(info, &dockerfile, &plan));
    if fresh && !build::no_cache(&engine_args) {
        if !request.quiet {
            println!("Image is up to date.");
        }
        return Ok(ExitCode::SUCCESS);
    }
    match build::build(&engine, &request, &dockerfile, plan, engine_args)? {
        Outcome::Skipped => println!("Skip"),
        Outcome::Built => {
            if let Some(previous) = previous {
                build::remove_replaced(&engine, tag, &previous.id);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "build",
        about: "Build an image from a Dockerfile unless it is up to date",
        aliases: &[],
        command: BuildArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "build",
        environment: &[crate::options::ENVIRONMENT, crate::options::DOCKERFILE_ENVIRONMENT, &[("http_proxy, https_proxy, ftp_proxy (either case)", "passed to the build as --build-args")], &[("DOCKER_BUILDKIT", "0 or 1: overrides whether docker builds with BuildKit (default: when the buildx plugin answers)")], &[("CIBOX_BINFMT_MISC", "the binfmt_misc directory read instead of /proc/sys/fs/binfmt_misc (for tests)")]],
        files: &[crate::options::FILES, crate::options::DOCKERFILE_FILES, &[("/proc/sys/fs/binfmt_misc/NAME", "where an executable given with --include-executable goes, and whether only its libraries are needed")], &[("$TMPDIR/cibox-build.XXXXXX/", "the temporary build context, removed on success, skip, failure and signals")]],
    }
}
