//! `run`: run a container, labelled so it can be cleaned up, with the command's own status.
//!
//! `cibox run [--keep] [--run-as-current-user] ARGS...` runs
//! `ENGINE run --rm --label com.qemu.instance.uuid=<uuid> ARGS`. Every argument cibox does not
//! know (`-it`, `--env X=Y`, the image, the command) goes to the engine in its order.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::instances::{run_container, RunOptions};
use crate::EngineArgs;
use cibox_core::applet::{Applet, Invocation, Manual};

/// Run a container; unknown options, the image and the command go to the engine
#[derive(Debug, Parser)]
#[command(after_help = "\
Any option not listed here, the image and the command are passed to `ENGINE run` in order.

Exit status:
  N    the container command's own exit status
  125+ the engine's own status when it fails to run the container
  128+SIG when cibox is stopped by SIGTERM, SIGINT or SIGHUP (the container is removed first)
  1    no working engine
  2    usage error")]
struct RunArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Don't remove the container when cibox is stopped
    #[arg(long)]
    keep: bool,
    /// Run the container as the calling user's uid and gid
    #[arg(long)]
    run_as_current_user: bool,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, engine_args) = invocation.parse::<RunArgs>()?;
    let engine = args.common.engine(&invocation)?;
    let options = RunOptions {
        keep: args.keep,
        quiet: args.common.quiet,
        as_current_user: args.run_as_current_user,
    };
    let status = run_container(&engine, &options, &engine_args)?;
    Ok(ExitCode::from(status.clamp(0, 255) as u8))
}

inventory::submit! {
    Applet {
        name: "run",
        about: "Run a container with cleanup on exit; exit status is the command's",
        aliases: &[],
        command: RunArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "run",
        environment: &[crate::options::ENVIRONMENT],
        files: &[crate::options::FILES],
    }
}
