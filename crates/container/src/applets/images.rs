//! `images`: the engine's image list, with the engine's own exit status.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::EngineArgs;
use cibox_core::applet::{Applet, Invocation, Manual};

/// List images: `ENGINE images ARGS`
#[derive(Debug, Parser)]
#[command(after_help = "\
Every other argument is passed to `ENGINE images` in order.

Exit status:
  N  the engine's own exit status
  1  no working engine
  2  usage error")]
struct ImagesArgs {
    #[command(flatten)]
    common: EngineArgs,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, engine_args) = invocation.parse::<ImagesArgs>()?;
    let engine = args.common.engine(&invocation)?;
    let mut argv = vec!["images".into()];
    argv.extend(engine_args);
    let status = engine.status(&argv, args.common.quiet)?;
    Ok(ExitCode::from(status.clamp(0, 255) as u8))
}

inventory::submit! {
    Applet {
        name: "images",
        about: "List images with the engine's own output and status",
        aliases: &[],
        command: ImagesArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "images",
        environment: &[crate::options::ENVIRONMENT],
        files: &[crate::options::FILES],
    }
}
