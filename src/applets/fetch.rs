//! `fetch`: pull an image from a registry and tag it with its local name.
//!
//! `cibox fetch TAG REGISTRY` pulls `REGISTRY/TAG` and tags it `TAG` (QEMU's Makefiles fetch
//! toolchain images so: `fetch --quiet qemu/NAME $(DOCKER_REGISTRY)`). Unlike the original it
//! fails, with the engine's reason, when the pull fails.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::applet::{Applet, Invocation, Manual};
use crate::engine::EngineArgs;

/// Pull REGISTRY/TAG and tag it as TAG
#[derive(Debug, Parser)]
#[command(after_help = "\
Any option not listed here is passed to `ENGINE pull` (for example --tls-verify=false).

Exit status:
  0  pulled and tagged
  1  the pull or the tag failed (the engine's reason on stderr), or no working engine
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
    let (args, engine_args) = invocation.parse::<FetchArgs>()?;
    let engine = args.common.engine(&invocation)?;
    let remote = format!("{}/{}", args.registry.trim_end_matches('/'), args.tag);
    let mut pull: Vec<OsString> = vec!["pull".into()];
    if args.common.quiet {
        pull.push("--quiet".into());
    }
    pull.extend(engine_args);
    pull.push(remote.clone().into());
    engine.stream(&pull, args.common.quiet, &[], None)?;
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
        environment: &[crate::engine::ENVIRONMENT],
        files: &[crate::engine::FILES],
    }
}
