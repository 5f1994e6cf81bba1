//! `probe`: which container engine works here, in the one-word form QEMU's configure parses.
//!
//! Prints exactly `podman`, `docker`, `sudo docker` or `no`, and exits 0 in every case, as
//! configure expects. A detection made in the last minutes under the same conditions is
//! reused (see `engine::cache`). `--json` asks every engine afresh and prints the detail:
//! the engine's command, version, whether it is rootless, whether BuildKit is usable, and
//! what failed for the others.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::json;

use crate::{detect, engine, remember, EngineArgs};
use cibox_core::applet::{Applet, Invocation, Manual};

/// Tell which container engine works: podman, docker, sudo docker or no
#[derive(Debug, Parser)]
#[command(
    after_help = "Extra arguments are ignored, as QEMU's docker.py ignores them (one line on \
                  stderr names them, unless --quiet).\n\nExit status:\n  0  always (the answer \
                  is in the output), as QEMU's configure expects\n  2  usage error"
)]
struct ProbeArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Print the detail as JSON: engine command, version, rootless, buildkit, failed attempts
    #[arg(long)]
    json: bool,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, extra) = invocation.parse_with_ignored_tail::<ProbeArgs>()?;
    invocation.ignore_extra(&extra, args.common.quiet);
    let choice = invocation.engine_choice(args.common.engine)?;
    if args.json {
        // The diagnostic view always asks every engine afresh.
        let detection = detect(choice, true);
        if let Some(engine) = &detection.engine {
            remember(choice, engine);
        }
        let engine = detection.engine.as_ref();
        let detail = json!({
            "engine": engine.map(|e| e.probe_name()).unwrap_or("no"),
            "command": engine.map(|e| e.argv.clone()),
            "kind": engine.map(|e| e.kind),
            "version": engine.and_then(|e| e.version.clone()),
            "rootless": engine.map(|e| e.is_rootless()),
            "buildkit": engine.map(|e| e.buildkit()),
            "attempts": detection.attempts,
        });
        println!("{}", serde_json::to_string_pretty(&detail)?);
    } else {
        let found = engine(choice).ok();
        println!("{}", found.as_ref().map(|e| e.probe_name()).unwrap_or("no"));
    }
    Ok(ExitCode::SUCCESS)
}

inventory::submit! {
    Applet {
        name: "probe",
        about: "Tell which container engine works: podman, docker, sudo docker or no",
        aliases: &[],
        command: ProbeArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "probe",
        environment: &[crate::options::ENVIRONMENT],
        files: &[crate::options::FILES],
    }
}
