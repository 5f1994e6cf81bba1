//! `check`: is an image up to date with its Dockerfile, or younger than N minutes?
//!
//! `cibox check TAG [DOCKERFILE] [--checktype checksum|age] [--olderthan MINUTES]`, with the
//! messages and exit codes of QEMU's docker.py (its Makefiles run `check --quiet TAG FILE ||
//! rebuild`). One engine call answers: the image's creation time and labels. The age is
//! compared in UTC whatever the local time zone.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, ValueEnum};

use crate::applet::{Applet, Invocation, Manual};
use crate::engine::dockerfile::{self, Dockerfile};
use crate::engine::{image, EngineArgs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum CheckType {
    /// The image's checksum label matches the Dockerfile
    Checksum,
    /// The image is younger than --olderthan minutes
    Age,
}

/// Check whether an image is up to date with a Dockerfile, or recent enough
#[derive(Debug, Parser)]
#[command(after_help = "\
Messages (on stdout) and exit status:
  0  \"Image is up to date\" / \"Image less than N minutes old\" (nothing with --quiet)
  1  \"Image does not exist\", \"Image needs updating\", \"Need a dockerfile for tag:TAG\",
     \"Image created @ TIME more than N minutes old\" (TIME in UTC); or an unreadable
     Dockerfile, or no working engine (one line on stderr)
  2  usage error")]
struct CheckArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Image tag
    tag: String,
    /// Dockerfile the image should match (checksum check)
    dockerfile: Option<PathBuf>,
    /// What to check
    #[arg(long, value_enum, default_value_t = CheckType::Checksum)]
    checktype: CheckType,
    /// Age limit in minutes (age check)
    #[arg(
        long,
        default_value_t = 60,
        value_name = "MINUTES",
        allow_negative_numbers = true
    )]
    olderthan: i64,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, _) = invocation.parse::<CheckArgs>()?;
    let quiet = args.common.quiet;
    // Read the Dockerfile first: a bad one is the caller's mistake, whatever the image.
    let wanted = match (args.checktype, &args.dockerfile) {
        (CheckType::Checksum, Some(path)) => Some(Dockerfile::load(path)?),
        _ => None,
    };
    let engine = args.common.engine(&invocation)?;
    let Some(info) = image::inspect(&engine, &args.tag)? else {
        println!("Image does not exist");
        return Ok(ExitCode::FAILURE);
    };
    match args.checktype {
        CheckType::Checksum => {
            let Some(wanted) = wanted else {
                println!("Need a dockerfile for tag:{}", args.tag);
                return Ok(ExitCode::FAILURE);
            };
            if dockerfile::labels_match(&info.labels, &wanted.checksum, None) {
                if !quiet {
                    println!("Image is up to date");
                }
                Ok(ExitCode::SUCCESS)
            } else {
                println!("Image needs updating");
                Ok(ExitCode::FAILURE)
            }
        }
        CheckType::Age => {
            let created = image::parse_created(&info.created).ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot read the creation time {:?} of {}",
                    info.created,
                    args.tag
                )
            })?;
            let limit = chrono::Duration::try_minutes(args.olderthan)
                .ok_or_else(|| anyhow::anyhow!("--olderthan {} is out of range", args.olderthan))?;
            let now = chrono::Utc::now();
            if now.signed_duration_since(created) > limit {
                println!(
                    "Image created @ {} more than {} minutes old",
                    created.format("%Y-%m-%dT%H:%M:%S"),
                    args.olderthan
                );
                Ok(ExitCode::FAILURE)
            } else {
                if !quiet {
                    println!("Image less than {} minutes old", args.olderthan);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

inventory::submit! {
    Applet {
        name: "check",
        about: "Check whether an image is up to date with its Dockerfile, or recent enough",
        aliases: &[],
        command: CheckArgs::command,
        run,
        passthrough: true,
    }
}

inventory::submit! {
    Manual {
        applet: "check",
        environment: &[crate::engine::ENVIRONMENT, crate::engine::DOCKERFILE_ENVIRONMENT],
        files: &[crate::engine::FILES, crate::engine::DOCKERFILE_FILES],
    }
}
