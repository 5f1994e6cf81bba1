//! `fetch`: pull an image from a registry and tag it with its local name.
//!
//! `cibox fetch TAG REGISTRY` pulls `REGISTRY/TAG` and tags it `TAG` (QEMU's Makefiles fetch
//! toolchain images so: `fetch --quiet qemu/NAME $(DOCKER_REGISTRY)`). Unlike the original it
//! fails, with the engine's reason, when the pull fails. Extra arguments are ignored, as the
//! original does (QEMU's `debian-toolchain-run` rule depends on it). With `--quiet` the
//! engine's output is replaced by cibox's own progress (`engine::pull`): bytes, rate and ETA on
//! a terminal, a plain line every few seconds otherwise.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::pull::pull_with_progress;
use crate::EngineArgs;
use cibox_core::applet::{Applet, Invocation, Manual};

/// Pull REGISTRY/TAG and tag it as TAG
#[derive(Debug, Parser)]
#[command(after_help = "\
Extra arguments are ignored, as QEMU's docker.py ignores them (one line on stderr names them, \
unless --quiet). With --quiet the engine's output is hidden, cibox shows the pull's progress on \
stderr (a bar with bytes, rate and ETA on a terminal; a plain line every few seconds otherwise) \
and a failure is one line.

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
    let (args, extra) = invocation.parse_with_ignored_tail::<FetchArgs>()?;
    invocation.ignore_extra(&extra, args.common.quiet);
    let engine = args.common.engine(&invocation)?;
    let remote = format!("{}/{}", args.registry.trim_end_matches('/'), args.tag);
    let pull: [OsString; 2] = ["pull".into(), remote.clone().into()];
    if args.common.quiet {
        // The engine's output hidden, cibox's own progress on stderr instead; its stderr only
        // in the one-line error, never shown twice.
        pull_with_progress(&engine, &pull, &remote, "cibox fetch")?;
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

inventory::submit! {
    Manual {
        applet: "fetch",
        environment: &[cibox_runtime::progress::ENVIRONMENT, crate::options::ENVIRONMENT],
        files: &[crate::options::FILES],
    }
}
