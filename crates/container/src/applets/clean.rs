//! `clean`: remove every container, running or exited, that carries the instance label.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::instances::remove_labelled;
use crate::EngineArgs;
use cibox_core::applet::{Applet, Invocation, Manual};

/// Remove every container cibox (or QEMU's docker.py) started, running or exited
#[derive(Debug, Parser)]
#[command(after_help = "\
Prints the id of each container it removed, unless --quiet. Extra arguments are ignored, as \
QEMU's docker.py ignores them (one line on stderr names them, unless --quiet).

Exit status:
  0  done (also when there was nothing to remove)
  1  no working engine, or the engine failed
  2  usage error")]
struct CleanArgs {
    #[command(flatten)]
    common: EngineArgs,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, extra) = invocation.parse_with_ignored_tail::<CleanArgs>()?;
    invocation.ignore_extra(&extra, args.common.quiet);
    let engine = args.common.engine(&invocation)?;
    let removed = remove_labelled(&engine, None)?;
    if !args.common.quiet {
        for id in removed {
            println!("{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "clean",
        about: "Remove every labelled container, running or exited",
        aliases: &[],
        command: CleanArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "clean",
        environment: &[crate::options::ENVIRONMENT],
        files: &[crate::options::FILES],
    }
}
