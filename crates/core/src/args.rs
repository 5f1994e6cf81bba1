//! Pass-through argument splitting: the `parse_known_args` of QEMU's docker.py, over clap.
//!
//! Container applets accept options of their own and hand every other argument, in its
//! original order, to the container engine (`cibox run -it --env X=Y IMAGE CMD`,
//! `cibox build -t T -f F --no-cache`). [`split_known`] walks the arguments with the applet's
//! clap command as the dictionary of what is known: a known option (with its values) and
//! positionals the command still has room for are kept for clap; the rest passes through.
//! A `--` ends option parsing: it and everything after it pass through.
//!
//! Option names are matched exactly (no abbreviations), so an engine option never gets taken
//! for a prefix of one of ours.
//!
//! Also here: [`normalize_go_flags`], for the servers whose command lines follow Go's flag
//! package (`keepstore`, `apiserver`).

use std::collections::HashMap;
use std::ffi::OsString;

use clap::{ArgAction, Command};

#[derive(Clone, Copy)]
enum Arity {
    /// A flag: no value.
    Flag,
    /// Exactly one value.
    One,
    /// Values until the next option-looking argument (`nargs='*'`).
    Many,
}

fn arity(arg: &clap::Arg) -> Arity {
    match arg.get_action() {
        ArgAction::SetTrue
        | ArgAction::SetFalse
        | ArgAction::Count
        | ArgAction::Help
        | ArgAction::HelpShort
        | ArgAction::HelpLong
        | ArgAction::Version => Arity::Flag,
        _ => match arg.get_num_args() {
            Some(range) if range.max_values() > 1 => Arity::Many,
            Some(range) if range.max_values() == 0 => Arity::Flag,
            _ => Arity::One,
        },
    }
}

fn is_option_like(arg: &OsString) -> bool {
    let s = arg.to_string_lossy();
    s.len() > 1 && s.starts_with('-')
}

/// Splits `args` into those `command` defines and those it does not, both in original order.
pub fn split_known(command: &mut Command, args: &[OsString]) -> (Vec<OsString>, Vec<OsString>) {
    split(command, args, false)
}

/// Like [`split_known`], for the applets whose original ignores what it does not know
/// (`fetch`, `update`, `check`, `clean`, `probe`): the first argument that finds no room among
/// the command's positionals starts the ignored tail, and the tail is taken whole, as the
/// original's argparse leaves a second command after the first one's positionals. So
/// `fetch TAG REG docker.py --engine E update --quiet TAG` ignores everything from `docker.py`
/// on, options cibox also defines (`--engine`, `--quiet`) included.
pub fn split_known_then_tail(
    command: &mut Command,
    args: &[OsString],
) -> (Vec<OsString>, Vec<OsString>) {
    split(command, args, true)
}

fn split(
    command: &mut Command,
    args: &[OsString],
    tail_at_surplus: bool,
) -> (Vec<OsString>, Vec<OsString>) {
    command.build();
    let mut longs: HashMap<String, Arity> = HashMap::new();
    let mut shorts: HashMap<char, Arity> = HashMap::new();
    // Room for positionals: `None` means unbounded (a trailing multi-value positional).
    let mut positional_room: Option<usize> = Some(0);
    for arg in command.get_arguments() {
        let a = arity(arg);
        if arg.is_positional() {
            positional_room = match (positional_room, a) {
                (Some(n), Arity::One | Arity::Flag) => Some(n + 1),
                _ => None,
            };
            continue;
        }
        for long in arg.get_long_and_visible_aliases().into_iter().flatten() {
            longs.insert(long.to_string(), a);
        }
        if let Some(aliases) = arg.get_all_aliases() {
            for long in aliases {
                longs.insert(long.to_string(), a);
            }
        }
        for short in arg.get_short_and_visible_aliases().into_iter().flatten() {
            shorts.insert(short, a);
        }
    }

    let mut known = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    // Takes the values of an option whose name was known.
    let take_values = |arity: Arity, i: &mut usize, known: &mut Vec<OsString>| match arity {
        Arity::Flag => {}
        Arity::One => {
            // `--` is never a value: it ends option parsing (clap then reports the missing
            // value), as Python's argparse does.
            if *i < args.len() && args[*i] != "--" {
                known.push(args[*i].clone());
                *i += 1;
            }
        }
        Arity::Many => {
            while *i < args.len() && !is_option_like(&args[*i]) {
                known.push(args[*i].clone());
                *i += 1;
            }
        }
    };
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let text = arg.to_string_lossy();
        if text == "--" {
            rest.extend(args[i - 1..].iter().cloned());
            break;
        }
        if let Some(body) = text.strip_prefix("--") {
            let (name, inline_value) = match body.split_once('=') {
                Some((n, _)) => (n, true),
                None => (body, false),
            };
            match longs.get(name) {
                Some(&a) => {
                    known.push(arg.clone());
                    if !inline_value {
                        take_values(a, &mut i, &mut known);
                    }
                }
                None => rest.push(arg.clone()),
            }
            continue;
        }
        if is_option_like(arg) {
            let mut chars = text[1..].chars();
            let first = chars.next().expect("option-like has a second char");
            let remainder: String = chars.collect();
            match shorts.get(&first) {
                Some(&Arity::Flag) => {
                    // A cluster of flags (`-qk`) is ours only when every letter is.
                    if remainder
                        .chars()
                        .all(|c| matches!(shorts.get(&c), Some(Arity::Flag)))
                    {
                        known.push(arg.clone());
                    } else {
                        rest.push(arg.clone());
                    }
                }
                Some(&a) => {
                    known.push(arg.clone());
                    if remainder.is_empty() {
                        take_values(a, &mut i, &mut known);
                    }
                }
                None => rest.push(arg.clone()),
            }
            continue;
        }
        match positional_room {
            None => known.push(arg.clone()),
            Some(0) if tail_at_surplus => {
                rest.extend(args[i - 1..].iter().cloned());
                break;
            }
            Some(0) => rest.push(arg.clone()),
            Some(n) => {
                known.push(arg.clone());
                positional_room = Some(n - 1);
            }
        }
    }
    (known, rest)
}

/// Rewrites Go's single-dash long flags (`-volume=x`) as clap's `--volume=x`. Short `-h`,
/// negative numbers and everything after `--` are left alone.
pub fn normalize_go_flags(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = false;
    for arg in args {
        let text = arg.to_string_lossy();
        if rest || text == "--" {
            rest = true;
            out.push(arg.clone());
            continue;
        }
        let bytes = text.as_bytes();
        if bytes.len() > 2 && bytes[0] == b'-' && bytes[1].is_ascii_alphabetic() {
            let mut long = OsString::from("-");
            long.push(arg);
            out.push(long);
        } else {
            out.push(arg.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction};

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn build_like() -> Command {
        Command::new("build")
            .arg(Arg::new("tag").short('t'))
            .arg(Arg::new("dockerfile").short('f'))
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
            .arg(
                Arg::new("user")
                    .long("add-current-user")
                    .short('u')
                    .action(ArgAction::SetTrue),
            )
            .arg(
                Arg::new("extra")
                    .long("extra-files")
                    .num_args(0..)
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("exe").long("include-executable").short('e'))
    }

    #[test]
    fn unknown_options_pass_through_in_order() {
        let mut cmd = build_like();
        let (known, rest) = split_known(
            &mut cmd,
            &os(&[
                "-t",
                "qemu/x",
                "--no-cache",
                "-f",
                "x.docker",
                "--quiet",
                "--build-arg",
                "A=B",
                "-u",
            ]),
        );
        assert_eq!(
            known,
            os(&["-t", "qemu/x", "-f", "x.docker", "--quiet", "-u"])
        );
        assert_eq!(rest, os(&["--no-cache", "--build-arg", "A=B"]));
    }

    #[test]
    fn multi_value_option_stops_at_next_option() {
        let mut cmd = build_like();
        let (known, rest) = split_known(
            &mut cmd,
            &os(&[
                "--extra-files",
                "a",
                "b",
                "--pull",
                "--include-executable=/bin/q",
            ]),
        );
        assert_eq!(
            known,
            os(&["--extra-files", "a", "b", "--include-executable=/bin/q"])
        );
        assert_eq!(rest, os(&["--pull"]));
    }

    #[test]
    fn double_dash_and_everything_after_it_pass_through() {
        let mut cmd = build_like();
        let (known, rest) = split_known(&mut cmd, &os(&["-t", "x", "--", "--quiet", "-c"]));
        assert_eq!(known, os(&["-t", "x"]));
        assert_eq!(rest, os(&["--", "--quiet", "-c"]));
    }

    #[test]
    fn positionals_fill_declared_slots_then_pass_through() {
        let mut cmd = Command::new("check")
            .arg(Arg::new("tag"))
            .arg(Arg::new("dockerfile"))
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue));
        let (known, rest) = split_known(
            &mut cmd,
            &os(&["--quiet", "qemu/x", "--weird", "x.docker", "extra"]),
        );
        assert_eq!(known, os(&["--quiet", "qemu/x", "x.docker"]));
        assert_eq!(rest, os(&["--weird", "extra"]));
    }

    #[test]
    fn double_dash_is_never_an_option_value() {
        let mut cmd = build_like();
        let (known, rest) = split_known(&mut cmd, &os(&["-t", "--", "x"]));
        assert_eq!(known, os(&["-t"]));
        assert_eq!(rest, os(&["--", "x"]));
    }

    #[test]
    fn short_clusters_are_ours_only_when_every_letter_is() {
        let mut cmd = build_like();
        let (known, rest) = split_known(&mut cmd, &os(&["-it", "-u", "-tfoo"]));
        assert_eq!(known, os(&["-u", "-tfoo"]));
        assert_eq!(rest, os(&["-it"]));
    }

    #[test]
    fn tail_after_the_positionals_is_taken_whole() {
        let mut fetch = Command::new("fetch")
            .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue))
            .arg(Arg::new("engine").long("engine"))
            .arg(Arg::new("tag"))
            .arg(Arg::new("registry"));
        let args = os(&[
            "--quiet",
            "TAG",
            "--engine",
            "podman",
            "REG",
            "docker.py",
            "--engine",
            "docker",
            "update",
            "--quiet",
            "TAG",
        ]);
        let (known, tail) = split_known_then_tail(&mut fetch, &args);
        assert_eq!(known, os(&["--quiet", "TAG", "--engine", "podman", "REG"]));
        assert_eq!(
            tail,
            os(&[
                "docker.py",
                "--engine",
                "docker",
                "update",
                "--quiet",
                "TAG"
            ])
        );
        // split_known keeps taking the options it knows after a surplus positional.
        let (known, rest) = split_known(&mut fetch, &args);
        assert!(known.ends_with(&os(&["--engine", "docker", "--quiet"])));
        assert_eq!(rest, os(&["docker.py", "update", "TAG"]));
    }
}
