//! Manual pages: `cibox(1)` and one `cibox-APPLET(1)` per applet, rendered from the clap
//! commands with clap_mangen. Beyond the options each page has EXIT STATUS (taken from the
//! `Exit status:` block of the applet's `--help`, so it is written once), ENVIRONMENT and FILES
//! (from the [`Manual`] each applet file submits) and SEE ALSO.
//!
//! The pages are committed under `man/`; a test in `tests/it/cli.rs` fails when they are stale
//! and rewrites them when `CIBOX_UPDATE_MANPAGES` is set.

use roff::{bold, roman, Roff};

use crate::applet::{self, Entries, Manual};

/// One rendered page: its file name (`cibox-serve.1`) and its roff text.
pub struct Page {
    /// The file name, section included.
    pub file_name: String,
    /// The page in roff.
    pub text: String,
}

/// Why the pages cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ManualError {
    /// An applet file submits no [`Manual`].
    #[error("applet {0} submits no applet::Manual (its environment and files)")]
    MissingFacts(&'static str),
    /// An applet's `--help` has no `Exit status:` block.
    #[error("applet {0} documents no exit status in its --help")]
    MissingExitStatus(&'static str),
}

/// What `cibox` itself (without an applet) reads.
const TOP_ENVIRONMENT: Entries = &[(
    "CIBOX_ENGINE",
    "the container engine for the container applets when --engine is not given",
)];

/// The exit status of `cibox` itself, and the rule every applet follows.
const TOP_EXIT_STATUS: &str = "Exit status:
  0  success (--list, --help, --version, completions, --install)
  1  a failure the applet reports: no engine, engine failure, image stale, bad input
  2  usage error: unknown applet or option, missing value
  N  run and cc return the container command's own status; probe always exits 0";

/// Every page: `cibox.1` first, then one per applet in name order.
pub fn pages() -> Result<Vec<Page>, ManualError> {
    let applets = applet::all();
    let mut pages = Vec::with_capacity(applets.len() + 1);

    // `completions` has no page of its own: it is described in the notes instead.
    let top = crate::multicall::top_command().mut_subcommand("completions", |c| c.hide(true));
    let top_help = format!(
        "{}\n\ncibox completions bash|zsh|fish prints completions for that shell; the \
         package installs them where each shell looks.\n\n{TOP_EXIT_STATUS}",
        top.get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default()
    );
    let see_also: Vec<String> = applets
        .iter()
        .map(|a| format!("cibox-{}", a.name))
        .collect();
    pages.push(render(
        top,
        "cibox",
        &top_help,
        &Manual {
            applet: "cibox",
            environment: &[TOP_ENVIRONMENT],
            files: &[],
        },
        &see_also,
    ));

    for a in applets {
        let facts = applet::manual(a.name).ok_or(ManualError::MissingFacts(a.name))?;
        let command = (a.command)()
            .name(format!("cibox-{}", a.name))
            .bin_name(format!("cibox {}", a.name))
            .about(a.about);
        let after_help = command
            .get_after_help()
            .map(|h| h.to_string())
            .unwrap_or_default();
        if split_exit_status(&after_help).1.is_empty() {
            return Err(ManualError::MissingExitStatus(a.name));
        }
        pages.push(render(
            command,
            &format!("cibox-{}", a.name),
            &after_help,
            facts,
            &["cibox".to_string()],
        ));
    }
    Ok(pages)
}

/// Splits a help epilogue at its `Exit status:` heading (any line ending so, in any case):
/// the text before, and the code lines after.
fn split_exit_status(after_help: &str) -> (String, String) {
    let lines: Vec<&str> = after_help.lines().collect();
    match lines
        .iter()
        .position(|l| l.trim().to_lowercase().ends_with("exit status:"))
    {
        Some(at) => (
            lines[..at].join("\n").trim().to_string(),
            lines[at + 1..].join("\n"),
        ),
        None => (after_help.trim().to_string(), String::new()),
    }
}

fn render(
    command: clap::Command,
    name: &str,
    after_help: &str,
    facts: &Manual,
    see_also: &[String],
) -> Page {
    let (notes, exit_status) = split_exit_status(after_help);
    let has_subcommands = command.get_subcommands().any(|s| !s.is_hide_set());
    // clap_mangen renders the after-help as its own section; it is split here instead.
    let man = clap_mangen::Man::new(command.after_help(None::<&str>))
        .manual("cibox manual")
        .source(format!("cibox {}", env!("CARGO_PKG_VERSION")));
    let mut out: Vec<u8> = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = man.render_title(&mut out);
    let _ = man.render_name_section(&mut out);
    let _ = man.render_synopsis_section(&mut out);
    let _ = man.render_description_section(&mut out);
    // Every command has at least --help.
    let _ = man.render_options_section(&mut out);
    if has_subcommands {
        let _ = man.render_subcommands_section(&mut out);
    }

    let mut roff = Roff::new();
    if !notes.is_empty() {
        roff.control("SH", ["NOTES"]);
        for paragraph in notes.split("\n\n") {
            roff.control("PP", []);
            // A paragraph with indented lines is a table or an example: kept as written.
            if paragraph.lines().any(|l| l.starts_with(' ')) {
                roff.control("nf", []);
                roff.text([roman(paragraph.trim_end())]);
                roff.control("fi", []);
            } else {
                roff.text([roman(paragraph.trim())]);
            }
        }
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in exit_codes(&exit_status) {
        roff.control("TP", []);
        roff.text([bold(code)]);
        roff.text([roman(meaning)]);
    }
    entries_section(&mut roff, "ENVIRONMENT", facts.environment);
    entries_section(&mut roff, "FILES", facts.files);
    roff.control("SH", ["SEE ALSO"]);
    let refs: Vec<String> = see_also.iter().map(|s| format!("{s}(1)")).collect();
    roff.text([roman(refs.join(", "))]);
    let _ = roff.to_writer(&mut out);

    Page {
        file_name: format!("{name}.1"),
        text: String::from_utf8_lossy(&out).into_owned(),
    }
}

/// The `  CODE  meaning` lines of an `Exit status:` block; a line indented deeper than its
/// code continues the previous meaning.
fn exit_codes(block: &str) -> Vec<(String, String)> {
    let mut codes: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        match codes.last_mut() {
            Some((_, meaning)) if indent > 2 => {
                meaning.push(' ');
                meaning.push_str(trimmed);
            }
            _ => {
                let (code, meaning) = trimmed
                    .split_once(char::is_whitespace)
                    .unwrap_or((trimmed, ""));
                codes.push((code.to_string(), meaning.trim().to_string()));
            }
        }
    }
    codes
}

fn entries_section(roff: &mut Roff, heading: &str, groups: &[Entries]) {
    let entries: Vec<&(&str, &str)> = groups.iter().flat_map(|g| g.iter()).collect();
    if entries.is_empty() {
        return;
    }
    roff.control("SH", [heading]);
    for (name, meaning) in entries {
        roff.control("TP", []);
        roff.text([bold(*name)]);
        roff.text([roman(*meaning)]);
    }
}

#[cfg(test)]
mod tests {
    use super::exit_codes;

    #[test]
    fn exit_codes_are_read_with_continuations() {
        let codes =
            exit_codes("\n  0    fine\n  128+SIG when stopped\n       by a signal\n  2  usage");
        assert_eq!(
            codes,
            vec![
                ("0".to_string(), "fine".to_string()),
                (
                    "128+SIG".to_string(),
                    "when stopped by a signal".to_string()
                ),
                ("2".to_string(), "usage".to_string()),
            ]
        );
    }
}
