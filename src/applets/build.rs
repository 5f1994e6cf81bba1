//! `build`: build an image from a Dockerfile unless it is already up to date.
//!
//! `cibox build -t TAG -f DOCKERFILE [options] [engine args]`. The up-to-date decision costs one
//! engine call: the image's checksum label (QEMU's, so images are shared with the original
//! script both ways) and, when the build has inputs besides the Dockerfile, cibox's inputs
//! label (see `engine::dockerfile`). Otherwise the build runs in a temporary context that is
//! removed on every path out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};

use crate::applet::{Applet, Invocation};
use crate::engine::binfmt::{self, Placement};
use crate::engine::context::BuildDir;
use crate::engine::dockerfile::{self, Dockerfile, Inputs, CHECKSUM_LABEL, INPUTS_LABEL};
use crate::engine::exec::{set_foreground, status_code};
use crate::engine::{image, Engine, EngineArgs, EngineKind};

/// The proxy variables passed to the build as `--build-arg`s (either case).
const PROXY_VARS: [&str; 3] = ["ftp_proxy", "http_proxy", "https_proxy"];
/// What a `.pre` script exits with to say "skip this image".
const PRE_SKIP: i32 = 3;

/// Build an image from a Dockerfile unless it is up to date; unknown options go to the engine
#[derive(Debug, Parser)]
#[command(after_help = "\
Up to date means: the image's label com.qemu.dockerfile-checksum is the SHA-1 of the \
Dockerfile with blank and comment lines dropped and every `FROM qemu/NAME` replaced by \
NAME.docker (next to the Dockerfile, then in $CIBOX_DOCKERFILES, then in the installed \
dockerfiles/), and, when the build has other inputs (extra files, the included executable and \
its libraries, the .pre script, the added user, proxy settings and --build-args), its label \
org.cibox.inputs matches them too. --no-cache among the engine arguments always builds.

A script DOCKERFILE-minus-extension.pre runs first in the build context: exit 3 skips the \
build (prints \"Skip\"), any other failure fails it. http_proxy, https_proxy and ftp_proxy \
(either case) become --build-args. Any option not listed here is passed to `ENGINE build`.

Exit status:
  0  built, up to date, or skipped by the .pre script
  1  the build failed, bad input (unreadable Dockerfile, missing extra file, no binfmt_misc \
entry), or no working engine
  2  usage error")]
struct BuildArgs {
    #[command(flatten)]
    common: EngineArgs,
    /// Image tag
    #[arg(short = 't', value_name = "TAG")]
    tag: Option<String>,
    /// Dockerfile
    #[arg(short = 'f', value_name = "DOCKERFILE")]
    dockerfile: Option<PathBuf>,
    /// Copy this executable (at its binfmt_misc interpreter path) and every library it needs
    #[arg(short = 'e', long, value_name = "BIN")]
    include_executable: Option<PathBuf>,
    /// Don't look BIN up in binfmt_misc: copy it at its own path
    #[arg(long)]
    skip_binfmt: bool,
    /// Files copied into the build context (for ADD/COPY in the Dockerfile)
    #[arg(long, num_args = 0.., value_name = "FILE")]
    extra_files: Vec<PathBuf>,
    /// Add the current user (uid and name) to the image's passwd
    #[arg(short = 'u', long)]
    add_current_user: bool,
    /// Registry to take cached layers and `FROM qemu/` bases from
    #[arg(short = 'r', long, value_name = "REGISTRY")]
    registry: Option<String>,
}

/// A usage error with one line of text (exit 2).
fn usage(message: &str) -> anyhow::Error {
    clap::Error::raw(
        clap::error::ErrorKind::MissingRequiredArgument,
        format!("{message}\n"),
    )
    .into()
}

/// Everything the build puts into its context besides the Dockerfile.
struct Plan {
    /// `(host file, path in the context)`.
    files: Vec<(PathBuf, PathBuf)>,
    /// Extra files' labels of the original script: `(name as given, sha1)`.
    extra_labels: Vec<(String, String)>,
    user: Option<(u32, String)>,
    build_args: Vec<OsString>,
    pre: Option<PathBuf>,
    inputs: Inputs,
}

fn plan(args: &BuildArgs, dockerfile: &Path, engine_args: &[OsString]) -> anyhow::Result<Plan> {
    let mut inputs = Inputs::default();
    let mut files = Vec::new();
    let mut extra_labels = Vec::new();

    for file in &args.extra_files {
        let meta = std::fs::metadata(file)
            .with_context(|| format!("extra file {} cannot be read", file.display()))?;
        if !meta.is_file() {
            bail!("extra file {} is not a regular file", file.display());
        }
        let name = file
            .file_name()
            .with_context(|| format!("extra file {} has no file name", file.display()))?;
        let dest = PathBuf::from(name);
        if files.iter().any(|(_, d)| *d == dest) {
            bail!("two extra files are named {}", dest.display());
        }
        inputs.add_file(format!("extra-file:{}", dest.display()), file)?;
        extra_labels.push((file.display().to_string(), dockerfile::file_sha1(file)?));
        files.push((file.clone(), dest));
    }

    if let Some(exe) = &args.include_executable {
        let placement = if args.skip_binfmt {
            Placement::At(binfmt::own_path(exe)?)
        } else {
            binfmt::placement(exe, args.common.quiet)?
        };
        for (source, dest) in binfmt::files_for(exe, &placement)? {
            inputs.add_file(format!("file:{}", dest.display()), &source)?;
            if files.iter().any(|(_, d)| *d == dest) {
                continue;
            }
            files.push((source, dest));
        }
    }

    let pre = dockerfile.with_extension("pre");
    let pre = if pre.exists() {
        inputs.add_file("pre-script", &pre)?;
        Some(pre)
    } else {
        None
    };

    let user = if args.add_current_user {
        let (uid, name) = dockerfile::current_user()?;
        inputs.add("user", format!("{uid}:{name}"));
        Some((uid, name))
    } else {
        None
    };

    // Build args given among the engine arguments change the image too.
    let mut rest = engine_args.iter().map(|a| a.to_string_lossy());
    while let Some(arg) = rest.next() {
        let value = match arg.strip_prefix("--build-arg=") {
            Some(v) => Some(v.to_string()),
            None if arg == "--build-arg" => rest.next().map(|v| v.into_owned()),
            None => None,
        };
        if let Some(value) = value {
            let (key, v) = value.split_once('=').unwrap_or((&value, ""));
            inputs.add(format!("build-arg:{key}"), v);
        }
    }

    let mut proxies: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| PROXY_VARS.contains(&k.to_ascii_lowercase().as_str()))
        .collect();
    // Upper case first, so that a lower-case variable given too wins (the engine keeps the last).
    proxies.sort();
    let mut build_args = Vec::new();
    for (key, value) in proxies {
        let key = key.to_ascii_lowercase();
        inputs.add(format!("build-arg:{key}"), value.clone());
        build_args.push(OsString::from(format!("--build-arg={key}={value}")));
    }

    Ok(Plan {
        files,
        extra_labels,
        user,
        build_args,
        pre,
        inputs,
    })
}

/// Whether the engine arguments ask for a build without cache.
fn no_cache(engine_args: &[OsString]) -> bool {
    engine_args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "--no-cache" || (a.starts_with("--no-cache=") && a != "--no-cache=false")
    })
}

fn run(invocation: Invocation) -> anyhow::Result<ExitCode> {
    let (args, engine_args) = invocation.parse::<BuildArgs>()?;
    let Some(tag) = args.tag.clone() else {
        return Err(usage("missing -t TAG: the image to build"));
    };
    let Some(dockerfile_path) = args.dockerfile.clone() else {
        return Err(usage("missing -f DOCKERFILE: the Dockerfile to build from"));
    };
    if tag.is_empty() {
        return Err(usage("-t needs a non-empty image tag"));
    }
    let dockerfile = Dockerfile::load(&dockerfile_path)?;
    let plan = plan(&args, &dockerfile_path, &engine_args)?;
    let inputs_label = plan.inputs.label();
    let engine = args.common.engine(&invocation)?;
    let quiet = args.common.quiet;

    if !no_cache(&engine_args) {
        if let Some(info) = image::inspect(&engine, &tag)? {
            if dockerfile::labels_match(&info.labels, &dockerfile.checksum, inputs_label.as_deref())
            {
                if !quiet {
                    println!("Image is up to date.");
                }
                return Ok(ExitCode::SUCCESS);
            }
        }
    }

    let dir = BuildDir::new()?;
    if let Some(pre) = &plan.pre {
        if run_pre(pre, dir.context(), quiet)? {
            println!("Skip");
            dir.remove()?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    for (source, dest) in &plan.files {
        dir.add_file(source, dest)?;
    }

    let mut text = dockerfile.text.clone();
    let mut registry = args.registry.clone();
    if let Some(r) = &registry {
        // Bases from the registry, only when every one of them pulls.
        for base in dockerfile::qemu_bases(&text) {
            let name = format!("{r}/qemu/{base}");
            if !pull(&engine, &name, quiet)? {
                registry = None;
                break;
            }
        }
    }
    match (&registry, engine.kind) {
        (Some(r), _) => text = dockerfile::qualify_qemu_bases(&text, r),
        // podman calls the images it built localhost/NAME; naming them so keeps a missing
        // base from going through short-name resolution (which needs a TTY).
        (None, EngineKind::Podman) => text = dockerfile::qualify_qemu_bases(&text, "localhost"),
        (None, EngineKind::Docker) => {}
    }
    if let Some((uid, name)) = &plan.user {
        text.push('\n');
        text.push_str(&dockerfile::user_line(*uid, name));
    }
    text.push('\n');
    text.push_str(&format!("LABEL {CHECKSUM_LABEL}={}\n", dockerfile.checksum));
    if let Some(inputs) = &inputs_label {
        text.push_str(&format!("LABEL {INPUTS_LABEL}={inputs}\n"));
    }
    for (name, sum) in &plan.extra_labels {
        if !name.contains(|c: char| c.is_whitespace() || c == '=' || c == '"') {
            text.push_str(&format!("LABEL com.qemu.{name}-checksum={sum}\n"));
        }
    }
    std::fs::write(dir.dockerfile(), &text)
        .with_context(|| format!("cannot write {}", dir.dockerfile().display()))?;

    let mut argv: Vec<OsString> = vec![
        "build".into(),
        "-t".into(),
        tag.clone().into(),
        "-f".into(),
        dir.dockerfile().into(),
    ];
    let (envs, buildkit) = image::builder_env(&engine);
    if buildkit {
        argv.extend(["--build-arg".into(), "BUILDKIT_INLINE_CACHE=1".into()]);
    }
    if let Some(r) = &args.registry {
        let cache = format!("{r}/{tag}");
        if pull(&engine, &cache, quiet)? {
            argv.extend(["--cache-from".into(), cache.into()]);
        }
    }
    argv.extend(engine_args);
    argv.extend(plan.build_args);
    argv.push(dir.context().into());
    image::run_build(&engine, &argv, quiet, &envs, &|| None)?;
    dir.remove()?;
    Ok(ExitCode::SUCCESS)
}

/// Pulls `name`; a failure is reported (unless quiet) and answered with false.
fn pull(engine: &Engine, name: &str, quiet: bool) -> anyhow::Result<bool> {
    match engine.output(&["pull", name]) {
        Ok(_) => Ok(true),
        Err(crate::engine::EngineError::Spawn { command, source }) => {
            bail!("cannot run {command}: {source}")
        }
        Err(e) => {
            if !quiet {
                eprintln!("cibox build: cannot use {name} from the registry: {e}");
            }
            Ok(false)
        }
    }
}

/// Runs the `.pre` script in the context directory; true means "skip the build".
fn run_pre(pre: &Path, context: &Path, quiet: bool) -> anyhow::Result<bool> {
    let script =
        std::fs::canonicalize(pre).with_context(|| format!("cannot find {}", pre.display()))?;
    let mut command = Command::new(&script);
    command.current_dir(context).stdin(Stdio::null());
    if quiet {
        command.stdout(Stdio::null());
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", pre.display()))?;
    set_foreground(Some(child.id()));
    let status = child.wait();
    set_foreground(None);
    let status = status.with_context(|| format!("cannot wait for {}", pre.display()))?;
    match status.code() {
        Some(0) => Ok(false),
        Some(PRE_SKIP) => Ok(true),
        Some(code) => bail!("{} exited with code {code}", pre.display()),
        None => bail!(
            "{} was killed (status {})",
            pre.display(),
            status_code(status)
        ),
    }
}

inventory::submit! {
    Applet {
        name: "build",
        about: "Build an image from a Dockerfile unless it is up to date",
        aliases: &[],
        command: BuildArgs::command,
        run,
        passthrough: true,
    }
}
