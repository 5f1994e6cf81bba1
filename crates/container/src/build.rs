//! The build of one image: what goes into it, whether it is up to date, and building it.
//!
//! [`plan`] gathers every input of a build (extra files, the included executable and its
//! libraries, the `.pre` script, the added user, build and proxy arguments) before the engine
//! is asked anything; [`up_to_date`] decides with one engine call from the image's labels
//! (see [`super::dockerfile`]); [`build`] runs the `.pre` script, fills a temporary context
//! ([`super::context`]), writes the final Dockerfile and runs `ENGINE build`, removing the
//! context on every path out.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

use super::binfmt::{self, Placement};
use super::context::BuildDir;
use super::dockerfile::{
    self, Dockerfile, Inputs, Wanted, CHECKSUM_LABEL, INPUTS_LABEL, INPUT_LIST_LABEL,
};
use super::exec::{set_foreground, status_code};
use super::{image, Engine, EngineKind};

/// The proxy variables passed to the build as `--build-arg`s (either case).
const PROXY_VARS: [&str; 3] = ["ftp_proxy", "http_proxy", "https_proxy"];
/// What a `.pre` script exits with to say "skip this image".
const PRE_SKIP: i32 = 3;

/// What the caller asked to build.
#[derive(Debug, Clone)]
pub struct BuildRequest<'a> {
    pub tag: &'a str,
    pub dockerfile: &'a Path,
    pub extra_files: &'a [PathBuf],
    pub include_executable: Option<&'a Path>,
    pub skip_binfmt: bool,
    pub add_current_user: bool,
    pub registry: Option<&'a str>,
    pub quiet: bool,
}

/// How a build that was not up to date ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The image was built.
    Built,
    /// The `.pre` script asked to skip it.
    Skipped,
}

/// Everything the build puts into its context besides the Dockerfile.
pub struct Plan {
    /// `(host file, path in the context)`.
    files: Vec<(PathBuf, PathBuf)>,
    /// Extra files' labels of the original script: `(name as given, sha1)`.
    extra_labels: Vec<(String, String)>,
    user: Option<(u32, String)>,
    build_args: Vec<OsString>,
    pre: Option<PathBuf>,
    inputs: Inputs,
}

/// Everything an input can change, gathered before the engine is asked anything, so that a
/// user mistake (a missing extra file, no binfmt_misc entry) is reported first.
pub fn plan(request: &BuildRequest, engine_args: &[OsString]) -> anyhow::Result<Plan> {
    let dockerfile = request.dockerfile;
    let mut inputs = Inputs::default();
    let mut files = Vec::new();
    let mut extra_labels = Vec::new();

    for file in request.extra_files {
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

    if let Some(exe) = request.include_executable {
        let placement = if request.skip_binfmt {
            Placement::At(binfmt::own_path(exe)?)
        } else {
            binfmt::placement(exe, request.quiet)?
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

    let user = if request.add_current_user {
        let (uid, name) = dockerfile::current_user()?;
        inputs.add_user(uid, &name);
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
pub fn no_cache(engine_args: &[OsString]) -> bool {
    engine_args.iter().any(|a| {
        let a = a.to_string_lossy();
        a == "--no-cache" || (a.starts_with("--no-cache=") && a != "--no-cache=false")
    })
}

/// Whether the image `tag` is (`image::inspect` of it) is up to date with `dockerfile` and the
/// planned inputs (see [`dockerfile::up_to_date`]).
pub fn up_to_date(info: &image::ImageInfo, dockerfile: &Dockerfile, plan: &Plan) -> bool {
    dockerfile::up_to_date(
        &info.labels,
        &dockerfile.checksum,
        Wanted::Planned(plan.inputs.label().as_deref()),
    )
}

/// After a rebuild of `tag`, removes the image it replaced (`previous`, its id) unless the
/// build gave the same image, another name still refers to it, or something uses it (a
/// container, a child image: the engine refuses, and that is fine). Each rebuild would otherwise leave
/// the old image and its layers behind, untagged.
pub fn remove_replaced(engine: &Engine, tag: &str, previous: &str) {
    if previous.is_empty() {
        return;
    }
    let now = image::inspect(engine, tag)
        .ok()
        .flatten()
        .map(|info| info.id);
    if now.as_deref().is_none_or(|id| id == previous) {
        return;
    }
    // Only an image left without any name: one another name still refers to is kept.
    let names = engine.output_if_ok(&[
        "image",
        "inspect",
        "--format",
        "{{len .RepoTags}}",
        previous,
    ]);
    if matches!(names, Ok(Some(count)) if count.trim() == "0") {
        let _ = engine.output_if_ok(&["rmi", previous]);
    }
}

/// Builds the image: `.pre` script, context, final Dockerfile, `ENGINE build`. The temporary
/// context is removed on every path out.
pub fn build(
    engine: &Engine,
    request: &BuildRequest,
    dockerfile: &Dockerfile,
    plan: Plan,
    engine_args: Vec<OsString>,
) -> anyhow::Result<Outcome> {
    let quiet = request.quiet;
    let tag = request.tag;
    let inputs_label = plan.inputs.label();
    let dir = BuildDir::new()?;
    if let Some(pre) = &plan.pre {
        if run_pre(pre, dir.context(), quiet)? {
            dir.remove()?;
            return Ok(Outcome::Skipped);
        }
    }
    for (source, dest) in &plan.files {
        dir.add_file(source, dest)?;
    }

    let mut text = dockerfile.text.clone();
    let mut registry = request.registry.map(str::to_string);
    if let Some(r) = &registry {
        // Bases from the registry, only when every one of them pulls.
        for base in dockerfile::qemu_bases(&text) {
            let name = format!("{r}/qemu/{base}");
            if !pull(engine, &name, quiet)? {
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
    if let Some(list) = plan.inputs.list_label() {
        text.push_str(&format!("LABEL {INPUT_LIST_LABEL}={list}\n"));
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
        tag.into(),
        "-f".into(),
        dir.dockerfile().into(),
    ];
    let (envs, buildkit) = image::builder_env(engine);
    if buildkit {
        argv.extend(["--build-arg".into(), "BUILDKIT_INLINE_CACHE=1".into()]);
    }
    if let Some(r) = request.registry {
        let cache = format!("{r}/{tag}");
        if pull(engine, &cache, quiet)? {
            argv.extend(["--cache-from".into(), cache.into()]);
        }
    }
    argv.extend(engine_args);
    argv.extend(plan.build_args);
    argv.push(dir.context().into());
    image::run_build(engine, &argv, quiet, &envs, &|| None)?;
    dir.remove()?;
    Ok(Outcome::Built)
}

/// Pulls `name`; a failure is reported (unless quiet) and answered with false.
fn pull(engine: &Engine, name: &str, quiet: bool) -> anyhow::Result<bool> {
    match engine.output(&["pull", name]) {
        Ok(_) => Ok(true),
        Err(crate::EngineError::Spawn { command, source }) => {
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
