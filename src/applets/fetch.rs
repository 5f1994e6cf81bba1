//! `fetch`: pull an image from a registry and tag it with its local name.
//!
//! `cibox fetch TAG REGISTRY` pulls `REGISTRY/TAG` and tags it `TAG` (QEMU's Makefiles fetch
//! toolchain images so: `fetch --quiet qemu/NAME $(DOCKER_REGISTRY)`). Unlike the original it
//! fails, with the engine's reason, when the pull fails. Extra arguments are ignored, as the
//! original does (QEMU's `debian-toolchain-run` rule depends on it).

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::applet::{Applet, Invocation};
use crate::engine::EngineArgs;

/// Pull REGISTRY/TAG and tag it as TAG
#[derive(Debug, Parser)]
#[command(after_help = "\
Extra arguments are ignored, as QEMU's docker.py ignores them (one line on stderr names them, \
unless --quiet). With --quiet the engine's progress is hidden and a failure is one line.

Exit status:
  0  pulled and tagged
  1  the pull or the tag failed (the engine's reason, one line on stderr), or no working engine
  2  usage error")]
struct FetchArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Local tag for the image
    tag: String,
    /// Registry (host[:port][/path]) to pull TAG from
    registry: String,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, extra) = invocation.parse::<FetchArgs>()?;
    invocation.ignore_extra(&extra, args.common.quiet);
    let engine = args.common.engine(&invocation)?;
    let remote = format!("{}/{}", args.registry.trim_end_matches('/'), args.tag);
    let pull: [OsString; 2] = ["pull".into(), remote.clone().into()];
    if args.common.quiet {
        // Quiet: the engine's stderr only in the one-line error, never shown twice.
        engine.output(&pull)?;
    } else {
        engine.stream(&pull, false, &[], None)?;
    }
    engine.output(&["tag", remote.as_str(), args.tag.as_str()])?;
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "fetch",
        about: "Pull an image from a registry and tag it with its local name",
        aliases: &[],
        command: FetchArgs::command,
        run,
        passthrough: true,
    }
}
