//! `update`: add a layer to an existing image: an executable with its libraries, the user.
//!
//! `cibox update TAG [--executable BIN] [-u]` builds `FROM TAG` again as TAG, from a build
//! context written as a tar straight into `ENGINE build -t TAG -` (no temporary copy, however
//! big BIN is): the Dockerfile, BIN at its binfmt_misc interpreter path and every library it
//! needs, and the line adding the current user. QEMU uses it for its toolchain images
//! (`update --quiet qemu/NAME --add-current-user`) and for linux-user test images
//! (`update IMAGE --executable QEMU_BINARY`). Extra arguments are ignored, as the original does.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::update::{AddLayer, Executable};
use crate::EngineArgs;
use cibox_core::applet::{Applet, Invocation, Manual};

/// Add an executable (with its libraries) or the current user to an existing image
#[derive(Debug, Parser)]
#[command(after_help = "\
Extra arguments are ignored, as QEMU's docker.py ignores them (one line on stderr names them, \
unless --quiet).

Exit status:
  0  updated
  1  the build failed, no binfmt_misc entry for the executable, or no working engine
  2  usage error")]
struct UpdateArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Image to update
    tag: String,
    /// Executable to copy in, at its binfmt_misc interpreter path, with its libraries
    #[arg(long, value_name = "BIN")]
    executable: Option<PathBuf>,
    /// Don't look BIN up in binfmt_misc: put it at the path given (a relative one under /)
    #[arg(long)]
    skip_binfmt: bool,
    /// Add the current user (uid and name) to the image's passwd
    #[arg(short = 'u', long)]
    add_current_user: bool,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, extra) = invocation.parse_with_ignored_tail::<UpdateArgs>()?;
    let quiet = args.common.quiet;
    invocation.ignore_extra(&extra, quiet);
    let request = AddLayer {
        tag: args.tag,
        executable: args.executable.map(|path| Executable {
            path,
            skip_binfmt: args.skip_binfmt,
        }),
        add_current_user: args.add_current_user,
    };
    // The executable and the user are looked at before the engine is asked for, so a bad
    // argument is reported even where no engine works.
    let layer = request.prepare(quiet)?;
    let engine = args.common.engine(&invocation)?;
    layer.build(&engine, quiet)?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "update",
        about: "Add an executable with its libraries, or the current user, to an image",
        aliases: &[],
        command: UpdateArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "update",
        environment: &[crate::options::ENVIRONMENT, &[("CIBOX_BINFMT_MISC", "the binfmt_misc directory read instead of /proc/sys/fs/binfmt_misc (for tests)")], &[("DOCKER_BUILDKIT", "0 or 1: overrides whether docker builds with BuildKit (default: when the buildx plugin answers)")]],
        files: &[crate::options::FILES, &[("/proc/sys/fs/binfmt_misc/NAME", "where an executable given with --include-executable goes, and whether only its libraries are needed")]],
    }
}
