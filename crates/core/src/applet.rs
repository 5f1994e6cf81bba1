//! The applet registry: what an applet is, how it registers itself, and how one is found.
//!
//! Every file under `src/applets/` ends with
//! `inventory::submit! { Applet { name, about, aliases, command, run, passthrough } }`.
//! [`all`] collects them (sorted by name), [`find`] looks one up by name or alias, and
//! [`Invocation`] is what an applet's `run` receives: its own arguments plus the global options
//! given before the applet name.
//!
//! Beside its `Applet`, each applet file submits a [`Manual`]: the environment variables and
//! files it uses, for its manual page (`crate::manual`). Its exit codes come from the
//! `Exit status:` block of its `--help`, so they are written once.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{ArgMatches, FromArgMatches};

use crate::EngineChoice;

/// One applet: a name, a one-line description, its command line and its entry point.
pub struct Applet {
    /// The name it is called by (`cibox NAME`, or a link named `NAME` or `cibox-NAME`).
    pub name: &'static str,
    /// One line for `cibox --help`.
    pub about: &'static str,
    /// Other names that reach the same applet.
    pub aliases: &'static [&'static str],
    /// The applet's clap command (usually `Args::command()` from clap derive).
    pub command: fn() -> clap::Command,
    /// The entry point.
    pub run: fn(Invocation) -> anyhow::Result<ExitCode>,
    /// When true, arguments the applet does not define are collected in order and handed to
    /// the applet (for the container engine), like Python's `parse_known_args`; when false,
    /// an unknown argument is a usage error.
    pub passthrough: bool,
}

inventory::collect!(Applet);

/// Named things an applet's manual page lists: `(name, what cibox does with it)`.
pub type Entries = &'static [(&'static str, &'static str)];

/// What an applet's manual page says beyond its command line and exit codes. Lists of
/// several groups so shared groups (e.g. the container family's engine variables) are written once.
pub struct Manual {
    /// The applet this is about ([`Applet::name`]).
    pub applet: &'static str,
    /// Environment variables it reads.
    pub environment: &'static [Entries],
    /// Files and directories it reads or writes.
    pub files: &'static [Entries],
}

inventory::collect!(Manual);

/// A script name cibox stands in for, submitted by the family whose script it is (`docker.py`
/// by the container helper, `run_test_server.py` by the Arvados stack). Called through a link
/// or stub of that name, cibox takes the script's command line.
pub struct Script {
    /// The script's file name.
    pub name: &'static str,
    /// The actions it accepts, each with the applet it runs (`start` -> `start_api`); `None`:
    /// the script takes every applet, and behaves exactly like `cibox`.
    pub actions: Option<&'static [(&'static str, &'static str)]>,
    /// What `cibox --install` writes under the script's name: `None`, a link to cibox;
    /// `Some(text)`, the file `text(absolute path of cibox)` returns (a program for an
    /// interpreter, such as [`crate::pystub::text`], where callers run the script through one).
    pub stub: Option<fn(&std::path::Path) -> String>,
}

inventory::collect!(Script);

/// Every script name submitted, sorted.
pub fn scripts() -> Vec<&'static Script> {
    let mut scripts: Vec<&'static Script> = inventory::iter::<Script>.into_iter().collect();
    scripts.sort_by_key(|s| s.name);
    scripts
}

/// The script called `name`.
pub fn script(name: &str) -> Option<&'static Script> {
    inventory::iter::<Script>
        .into_iter()
        .find(|s| s.name == name)
}

/// A hidden entry point: when cibox's first argument is `option`, `run` gets the arguments
/// after it, before any applet lookup. For helpers cibox starts from itself (the container
/// family's reaper process), never for users.
pub struct EntryPoint {
    /// The first argument that selects it.
    pub option: &'static str,
    /// What runs, with the arguments after `option`.
    pub run: fn(&[OsString]) -> ExitCode,
}

inventory::collect!(EntryPoint);

/// The hidden entry point selected by `first`, if any.
pub fn entry_point(first: &std::ffi::OsStr) -> Option<&'static EntryPoint> {
    inventory::iter::<EntryPoint>
        .into_iter()
        .find(|e| first == e.option)
}

/// The manual facts submitted for the applet called `name`.
pub fn manual(name: &str) -> Option<&'static Manual> {
    inventory::iter::<Manual>
        .into_iter()
        .find(|m| m.applet == name)
}

/// Every registered applet, sorted by name.
pub fn all() -> Vec<&'static Applet> {
    let mut applets: Vec<&'static Applet> = inventory::iter::<Applet>.into_iter().collect();
    applets.sort_by_key(|a| a.name);
    applets
}

/// The applet called `name` (or aliased so).
pub fn find(name: &str) -> Option<&'static Applet> {
    inventory::iter::<Applet>
        .into_iter()
        .find(|a| a.name == name || a.aliases.contains(&name))
}

/// Options given before the applet name, valid for every applet.
#[derive(Debug, Clone, Default)]
pub struct GlobalOptions {
    /// `--engine` given before the applet name.
    pub engine: Option<EngineChoice>,
}

/// What an applet's `run` receives.
pub struct Invocation {
    /// The applet being run.
    pub applet: &'static Applet,
    /// The arguments after the applet name.
    pub args: Vec<OsString>,
    /// Options given before the applet name.
    pub global: GlobalOptions,
}

impl Invocation {
    /// Parses the arguments with the applet's command into `T`.
    ///
    /// For pass-through applets the arguments the command does not define are returned, in
    /// their original order; for the others an unknown argument is a usage error. Usage errors
    /// and `--help` come back as [`clap::Error`] inside the `anyhow::Error`; `main` prints them
    /// with clap's formatting and exit code.
    pub fn parse<T: FromArgMatches>(&self) -> anyhow::Result<(T, Vec<OsString>)> {
        let (matches, rest) = self.matches()?;
        let parsed = T::from_arg_matches(&matches).map_err(|e| e.format(&mut self.command()))?;
        Ok((parsed, rest))
    }

    /// Parses the arguments into `T` for an applet whose original ignores a second command
    /// after its own (`fetch`, `update`, `check`, `clean`, `probe`): everything from the
    /// first argument past the command's positionals on is handed back whole, unparsed (see
    /// [`crate::args::split_known_then_tail`]), for [`Invocation::ignore_extra`]. An option
    /// given twice is taken as argparse takes it: the last one counts.
    pub fn parse_with_ignored_tail<T: FromArgMatches>(&self) -> anyhow::Result<(T, Vec<OsString>)> {
        let mut command = self.command().args_override_self(true);
        let (known, tail) = crate::args::split_known_then_tail(&mut command, &self.args);
        let argv = std::iter::once(OsString::from(self.applet.name)).chain(known);
        let matches = command.try_get_matches_from(argv)?;
        let parsed = T::from_arg_matches(&matches).map_err(|e| e.format(&mut self.command()))?;
        Ok((parsed, tail))
    }

    /// For the applets whose original (QEMU's docker.py) ignores arguments it does not know
    /// (`fetch`, `update`, `check`, `clean`, `probe`): accepts `extra` and names it in one line
    /// on stderr, unless `quiet`. QEMU's Makefiles rely on this: a rule missing a `;` runs
    /// `docker.py fetch TAG REG docker.py update TAG -u` as one command.
    pub fn ignore_extra(&self, extra: &[OsString], quiet: bool) {
        if extra.is_empty() || quiet {
            return;
        }
        let shown: Vec<String> = extra
            .iter()
            .map(|a| {
                let a = a.to_string_lossy();
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'')
                {
                    format!("{a:?}")
                } else {
                    a.into_owned()
                }
            })
            .collect();
        eprintln!(
            "cibox {}: ignoring extra arguments (as docker.py does): {}",
            self.applet.name,
            shown.join(" ")
        );
    }

    /// Parses arguments spelled the Go way (`-flag=value`, `-flag value`, `--flag=value`; see
    /// [`crate::args::normalize_go_flags`]) into `T`, as the Go daemons cibox stands in for
    /// take them. Usage errors come back as [`clap::Error`] like [`Invocation::parse`]'s.
    pub fn parse_go_flags<T: FromArgMatches>(&self) -> anyhow::Result<T> {
        Ok(self.parse_go_flags_with_matches()?.0)
    }

    /// [`Invocation::parse_go_flags`], also handing back the matches (for an applet that asks
    /// where a value came from).
    pub fn parse_go_flags_with_matches<T: FromArgMatches>(
        &self,
    ) -> Result<(T, ArgMatches), clap::Error> {
        let argv = std::iter::once(OsString::from(self.applet.name))
            .chain(crate::args::normalize_go_flags(&self.args));
        let matches = self.command().try_get_matches_from(argv)?;
        let parsed = T::from_arg_matches(&matches).map_err(|e| e.format(&mut self.command()))?;
        Ok((parsed, matches))
    }

    /// The applet's command, named as the applet.
    pub fn command(&self) -> clap::Command {
        (self.applet.command)().name(self.applet.name)
    }

    fn matches(&self) -> Result<(ArgMatches, Vec<OsString>), clap::Error> {
        let mut command = self.command();
        let (known, rest) = if self.applet.passthrough {
            crate::args::split_known(&mut command, &self.args)
        } else {
            (self.args.clone(), Vec::new())
        };
        let argv = std::iter::once(OsString::from(self.applet.name)).chain(known);
        Ok((command.try_get_matches_from(argv)?, rest))
    }

    /// The engine the caller asked for: `--engine` after the applet name, else before it,
    /// else `$CIBOX_ENGINE`, else auto.
    pub fn engine_choice(&self, after_name: Option<EngineChoice>) -> anyhow::Result<EngineChoice> {
        if let Some(choice) = after_name.or(self.global.engine) {
            return Ok(choice);
        }
        match std::env::var("CIBOX_ENGINE") {
            Ok(value) if !value.is_empty() => value.parse().map_err(|_| {
                anyhow::anyhow!(
                    "CIBOX_ENGINE={value:?} is not an engine (expected auto, docker or podman)"
                )
            }),
            _ => Ok(EngineChoice::Auto),
        }
    }
}
