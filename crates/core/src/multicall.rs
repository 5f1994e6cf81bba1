//! Multicall dispatch, busybox style, and the options that belong to cibox itself.
//!
//! The applet is named by the program name when cibox is called through a link (`probe`,
//! `cibox-probe`, `start_keep`, ...), else by the first argument that is not a global option.
//! A program name that is a script cibox stands in for ([`crate::applet::Script`], submitted by
//! the families: `docker.py` behaves exactly like `cibox`, as QEMU calls
//! `tests/docker/docker.py --engine podman probe`; `run_test_server.py` accepts the seed's ten
//! actions) takes that script's command line.
//!
//! Global options, before the applet name: `--engine`, `--list`, `--install DIR [--force]`,
//! `--help`, `--version`, and the built-in `completions SHELL`. `--install` links every applet
//! and script name to cibox, or writes the script's stub where it has one (`docker.py` is a
//! Python stub, see [`crate::pystub`], since QEMU runs it through Python).

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::applet::{self, Applet, GlobalOptions, Invocation};
use crate::EngineChoice;

/// The actions a script accepts with the applet each runs; `None`: every applet.
type Actions = Option<&'static [(&'static str, &'static str)]>;

/// The applet a script's action runs.
fn action_applet(actions: &[(&str, &'static str)], action: &str) -> Option<&'static str> {
    actions
        .iter()
        .find(|(name, _)| *name == action)
        .map(|(_, applet)| *applet)
}

/// Runs cibox with the whole command line (`args[0]` is the program name).
pub fn main_with(args: Vec<OsString>) -> ExitCode {
    let program = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let rest: Vec<OsString> = args.into_iter().skip(1).collect();
    if let Some(entry) = rest.first().and_then(|a| applet::entry_point(a)) {
        return (entry.run)(&rest[1..]);
    }

    if program != "cibox" {
        let name = program.strip_prefix("cibox-").unwrap_or(&program);
        if let Some(applet) = applet::find(name) {
            return run_applet(applet, rest, GlobalOptions::default());
        }
        if let Some(script) = applet::script(&program) {
            return top_level(&program, rest, script.actions);
        }
    }
    top_level("cibox", rest, None)
}

fn usage_error(program: &str, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("{program}: {message}");
    eprintln!("Try '{program} --help' for more information.");
    ExitCode::from(2)
}

fn top_level(program: &str, args: Vec<OsString>, allowed: Actions) -> ExitCode {
    let mut global = GlobalOptions::default();
    let mut install_dir: Option<PathBuf> = None;
    let mut force = false;
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].to_string_lossy().into_owned();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        // The value of an option that takes one: inline (`--x=v`) or the next argument.
        let value = |i: &mut usize| -> Option<String> {
            inline.clone().or_else(|| {
                let v = args.get(*i).map(|v| v.to_string_lossy().into_owned());
                *i += 1;
                v
            })
        };
        match flag.as_str() {
            "--engine" => match value(&mut i) {
                Some(v) => match v.parse::<EngineChoice>() {
                    Ok(choice) => global.engine = Some(choice),
                    Err(_) => {
                        return usage_error(
                            program,
                            format!("invalid engine {v:?} (expected auto, docker or podman)"),
                        )
                    }
                },
                None => return usage_error(program, "--engine needs a value"),
            },
            "--list" => {
                let mut out = std::io::stdout().lock();
                match allowed {
                    None => {
                        for a in applet::all() {
                            let _ = writeln!(out, "{}", a.name);
                        }
                    }
                    Some(actions) => {
                        for (action, applet_name) in actions {
                            if applet::find(applet_name).is_some() {
                                let _ = writeln!(out, "{action}");
                            }
                        }
                    }
                }
                return ExitCode::SUCCESS;
            }
            "--install" => match value(&mut i) {
                Some(dir) => install_dir = Some(PathBuf::from(dir)),
                None => return usage_error(program, "--install needs a directory"),
            },
            "--force" => force = true,
            "-h" | "--help" => {
                let _ = top_command().bin_name(program).print_help();
                return ExitCode::SUCCESS;
            }
            "-V" | "--version" => {
                println!("cibox {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            "completions" if allowed.is_none() => {
                return completions(program, &args[i..]);
            }
            _ if arg.starts_with('-') => {
                return usage_error(program, format!("unknown option '{arg}'"));
            }
            name => {
                let found = match allowed {
                    None => applet::find(name),
                    Some(actions) if action_applet(actions, name).is_some() => {
                        match action_applet(actions, name).and_then(applet::find) {
                            Some(a) => Some(a),
                            None => {
                                eprintln!(
                                    "{program}: action '{name}' is not available in this cibox build"
                                );
                                return ExitCode::from(1);
                            }
                        }
                    }
                    Some(_) => None,
                };
                return match found {
                    Some(applet) => run_applet(applet, args[i..].to_vec(), global),
                    None => usage_error(
                        program,
                        format!("unknown applet '{name}' ('{program} --list' names them)"),
                    ),
                };
            }
        }
    }
    if let Some(dir) = install_dir {
        return install(&dir, force);
    }
    if force {
        return usage_error(program, "--force goes with --install DIR");
    }
    usage_error(program, "no applet given")
}

/// Runs one applet and turns its result into the exit status: clap's own status for usage
/// errors and `--help`, 1 with a one-line message for any other error.
pub fn run_applet(applet: &'static Applet, args: Vec<OsString>, global: GlobalOptions) -> ExitCode {
    let invocation = Invocation {
        applet,
        args,
        global,
    };
    match (applet.run)(invocation) {
        Ok(code) => code,
        Err(err) => match err.downcast_ref::<clap::Error>() {
            Some(clap_err) => {
                let _ = clap_err.print();
                ExitCode::from(clap_err.exit_code().clamp(0, 255) as u8)
            }
            None => {
                eprintln!("cibox {}: {}", applet.name, one_line(&err));
                ExitCode::from(1)
            }
        },
    }
}

/// An error chain as one line: `context: cause: cause`, with inner newlines folded.
fn one_line(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The whole command tree: for `cibox --help` and shell completions.
pub fn top_command() -> clap::Command {
    let mut command = clap::Command::new("cibox")
        .version(env!("CARGO_PKG_VERSION"))
        .disable_help_subcommand(true)
        .about("One busybox-style binary for test and CI infrastructure")
        .after_help(
            "Called through a link named after an applet (or cibox-APPLET), cibox runs that \
             applet; through a link named docker.py it behaves as cibox.",
        )
        .arg(
            clap::Arg::new("engine")
                .long("engine")
                .value_parser(["auto", "docker", "podman"])
                .help("Container engine for the container applets [env: CIBOX_ENGINE]"),
        )
        .arg(
            clap::Arg::new("list")
                .long("list")
                .action(clap::ArgAction::SetTrue)
                .help("Print every applet name, one a line"),
        )
        .arg(
            clap::Arg::new("install")
                .long("install")
                .value_name("DIR")
                .value_hint(clap::ValueHint::DirPath)
                .help(
                    "Create a link named after each applet in DIR, and docker.py as a Python \
                     stub running this cibox",
                ),
        )
        .arg(
            clap::Arg::new("force")
                .long("force")
                .action(clap::ArgAction::SetTrue)
                .help("With --install: replace files that are not cibox links or stubs"),
        )
        .subcommand(
            clap::Command::new("completions")
                .about("Print shell completions")
                .arg(
                    clap::Arg::new("shell")
                        .required(true)
                        .value_parser(["bash", "zsh", "fish"]),
                ),
        );
    for a in applet::all() {
        let mut sub = (a.command)().name(a.name).about(a.about);
        for alias in a.aliases {
            sub = sub.alias(*alias);
        }
        command = command.subcommand(sub);
    }
    command
}

/// `cibox completions bash|zsh|fish`.
fn completions(program: &str, args: &[OsString]) -> ExitCode {
    let shell = match args
        .first()
        .map(|s| s.to_string_lossy().into_owned())
        .as_deref()
    {
        Some("bash") => clap_complete::Shell::Bash,
        Some("zsh") => clap_complete::Shell::Zsh,
        Some("fish") => clap_complete::Shell::Fish,
        Some(other) => {
            return usage_error(
                program,
                format!("unknown shell '{other}' (expected bash, zsh or fish)"),
            )
        }
        None => return usage_error(program, "completions needs a shell: bash, zsh or fish"),
    };
    clap_complete::generate(shell, &mut top_command(), "cibox", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// The names `cibox --install` links: every applet and every script cibox stands in for.
pub fn link_names() -> Vec<String> {
    let mut names: Vec<String> = applet::all().iter().map(|a| a.name.to_string()).collect();
    names.extend(applet::scripts().iter().map(|s| s.name.to_string()));
    names
}

/// Whether `path` is a symbolic link to a cibox binary: this one, or one named `cibox`.
fn is_our_link(path: &Path, exe: &Path) -> bool {
    let Ok(target) = std::fs::read_link(path) else {
        return false;
    };
    let same_file = match (std::fs::metadata(path), std::fs::metadata(exe)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    same_file || target.file_name().is_some_and(|n| n == "cibox")
}

/// Writes the stub `dir/name`, the text `stub(exe)`: `Some("wrote")` or `Some("replaced")`
/// when it wrote one, `None` when the same stub is already there. Replaces only a stub or a
/// cibox link, anything else only with `force`; the file is replaced in one rename.
fn install_stub(
    dir: &Path,
    name: &str,
    stub: fn(&Path) -> String,
    exe: &Path,
    force: bool,
) -> Result<Option<&'static str>, String> {
    let path = dir.join(name);
    let text = stub(exe);
    let exists = path.symlink_metadata().is_ok();
    if exists {
        let stub = crate::pystub::is_stub(&path);
        if stub && std::fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(None);
        }
        if !stub && !is_our_link(&path, exe) && !force {
            return Err(format!(
                "{} exists and is not a cibox stub or link; left as it is (--force replaces it)",
                path.display()
            ));
        }
    }
    // A temporary file of a fresh random name, created exclusively (never through a link
    // planted under a guessable name), given its mode through its descriptor and renamed over
    // the stub in one step; dropped on any error.
    let written = tempfile::Builder::new()
        .prefix(&format!(".{name}.cibox-"))
        .tempfile_in(dir)
        .and_then(|mut partial| {
            partial.write_all(text.as_bytes())?;
            partial
                .as_file()
                .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
            partial.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
    if let Err(e) = written {
        return Err(format!("cannot write {}: {e}", path.display()));
    }
    Ok(Some(if exists { "replaced" } else { "wrote" }))
}

/// `cibox --install DIR [--force]`.
fn install(dir: &Path, force: bool) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("cibox: cannot find the cibox binary to link to: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("cibox: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    let mut failed = false;
    let (mut made, mut kept) = (0, 0);
    for name in link_names() {
        if let Some(stub) = applet::script(&name).and_then(|s| s.stub) {
            match install_stub(dir, &name, stub, &exe, force) {
                Ok(Some(verb)) => {
                    made += 1;
                    println!(
                        "{verb} {} (a Python stub running {})",
                        dir.join(&name).display(),
                        exe.display()
                    );
                }
                Ok(None) => kept += 1,
                Err(message) => {
                    eprintln!("cibox: {message}");
                    failed = true;
                }
            }
            continue;
        }
        let link = dir.join(&name);
        let exists = link.symlink_metadata().is_ok();
        if exists {
            let ours = is_our_link(&link, &exe);
            if ours && std::fs::read_link(&link).is_ok_and(|t| t == exe) {
                kept += 1;
                continue;
            }
            if !ours && !force {
                eprintln!(
                    "cibox: {} exists and is not a cibox link; left as it is (--force replaces it)",
                    link.display()
                );
                failed = true;
                continue;
            }
            if let Err(e) = std::fs::remove_file(&link) {
                eprintln!("cibox: cannot replace {}: {e}", link.display());
                failed = true;
                continue;
            }
        }
        match std::os::unix::fs::symlink(&exe, &link) {
            Ok(()) => {
                made += 1;
                let verb = if exists { "replaced" } else { "linked" };
                println!("{verb} {} -> {}", link.display(), exe.display());
            }
            Err(e) => {
                eprintln!("cibox: cannot link {}: {e}", link.display());
                failed = true;
            }
        }
    }
    println!(
        "{made} link(s) or stub(s) made, {kept} already in place, in {}",
        dir.display()
    );
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// `--install` once wrote the stub to `.NAME.cibox-PID` following links, then chmod-ed
    /// and renamed it: a link planted under that name made it overwrite the link's target.
    #[test]
    fn stub_is_never_written_through_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "secret\n").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let planted = dir
            .path()
            .join(format!(".docker.py.cibox-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();

        let exe = Path::new("/usr/bin/cibox");
        let done = install_stub(dir.path(), "docker.py", crate::pystub::text, exe, false).unwrap();
        assert_eq!(done, Some("wrote"));

        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "secret\n");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the link's target was chmod-ed");
        let stub = dir.path().join("docker.py");
        assert!(crate::pystub::is_stub(&stub));
        assert!(!stub.symlink_metadata().unwrap().file_type().is_symlink());
        // The planted link is left alone; no temporary file is left behind.
        let left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".cibox-") && !n.ends_with(&std::process::id().to_string()))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
