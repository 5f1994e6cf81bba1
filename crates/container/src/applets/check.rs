//! `check`: is an image up to date with its Dockerfile, or younger than N minutes?
//!
//! `cibox check TAG [DOCKERFILE] [--checktype checksum|age] [--olderthan MINUTES]`, with the
//! messages and exit codes of QEMU's docker.py (its Makefiles run `check --quiet TAG FILE ||
//! rebuild`). One engine call answers: the image's creation time and labels. The age is
//! compared in UTC whatever the local time zone.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, ValueEnum};

use crate::dockerfile::{self, Dockerfile, Wanted};
use crate::{image, EngineArgs};
use cibox_core::applet::{Applet, Invocation, Manual};

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
Extra arguments are ignored, as QEMU's docker.py ignores them (one line on stderr names them, \
unless --quiet).

Up to date (checksum check) follows the rule of `cibox build`: the image's label \
com.qemu.dockerfile-checksum matches the Dockerfile; an image built by QEMU's docker.py (no \
org.cibox.inputs label) is judged by that alone; an image cibox built with other inputs is \
judged on them too, as it recorded them (extra files, the executable and its libraries and the \
.pre script hashed again, the added user as the current user).

Messages (on stdout) and exit status:
  0  \"Image is up to date\" / \"Image less than N minutes old\" (nothing with --quiet)
  1  \"Image does not exist\", \"Image needs updating\", \"Need a dockerfile for tag:TAG\",
     \"Image created @ TIME more than N minutes old\" (TIME in UTC); or an unreadable
     Dockerfile, or no working engine (one line on stderr)
  2  usage error (also a negative or too large --olderthan)")]
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
    /// Age limit in minutes (age check): 0 to 4294967295
    #[arg(
        long,
        default_value_t = 60,
        value_name = "MINUTES",
        allow_negative_numbers = true
    )]
    olderthan: u32,
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, extra) = invocation.parse_with_ignored_tail::<CheckArgs>()?;
    let quiet = args.common.quiet;
    invocation.ignore_extra(&extra, quiet);
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
            if dockerfile::up_to_date(&info.labels, &wanted.checksum, Wanted::Recorded) {
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
            let limit = chrono::Duration::minutes(i64::from(args.olderthan));
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
        environment: &[crate::options::ENVIRONMENT, crate::options::DOCKERFILE_ENVIRONMENT],
        files: &[crate::options::FILES, crate::options::DOCKERFILE_FILES],
    }
}
