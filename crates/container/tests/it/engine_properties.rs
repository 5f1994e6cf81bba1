//! Property tests for the container applets' parsers of untrusted input: Dockerfile
//! preprocessing (`FROM qemu/` inlining over generated sets of files, with loops, missing and
//! malformed bases, repeats and arbitrary text) and pass-through argument splitting (random
//! argument lists against every container applet's real command line).
//!
//! Properties: never panic; always end, in time bounded by the input (inlining reads each
//! file once and bounds its output); a result keeps its promises (no `FROM qemu/` line, blank
//! or comment line survives inlining; known and passed-through arguments together are the
//! input, each in its original order).

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use cibox_container::dockerfile::{preprocess, SearchPath, MAX_PREPROCESSED_BYTES};
use proptest::prelude::*;

/// `cases` cases, and no regression files written into the source tree.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One generated Dockerfile line.
fn dockerfile_line(files: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        (0..files + 2).prop_map(|k| format!("FROM qemu/f{k}")),
        (0..files + 2).prop_map(|k| format!("FROM qemu/f{k} AS stage{k}")),
        Just("FROM qemu/".to_string()),
        Just("FROM qemu/a/b".to_string()),
        Just("FROM qemu/debian-arm64-user".to_string()),
        Just("FROM busybox".to_string()),
        Just("RUN echo hi".to_string()),
        Just("# a comment".to_string()),
        Just(String::new()),
        Just(" \t\u{1c}".to_string()),
        Just(" FROM qemu/f0".to_string()),
        "[^\r\n]{0,40}",
        any::<String>(),
    ]
}

/// A set of Dockerfiles f0.docker .. fN.docker, each a list of lines with random line ends.
fn dockerfile_set() -> impl Strategy<Value = Vec<String>> {
    (1usize..6).prop_flat_map(|files| {
        prop::collection::vec(
            prop::collection::vec(
                (
                    dockerfile_line(files),
                    prop_oneof![Just("\n"), Just("\r\n"), Just("\r"), Just("\u{2028}")],
                ),
                0..12,
            )
            .prop_map(|lines| {
                lines
                    .into_iter()
                    .map(|(l, end)| l + end)
                    .collect::<String>()
            }),
            files,
        )
    })
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn inlining_never_panics_never_loops_and_keeps_its_promises(files in dockerfile_set()) {
        let dir = tempfile::tempdir().unwrap();
        for (i, text) in files.iter().enumerate() {
            std::fs::write(dir.path().join(format!("f{i}.docker")), text).unwrap();
        }
        // A base that exists only for the user-mode mapping.
        std::fs::write(dir.path().join("debian-bootstrap.docker"), "FROM scratch\n").unwrap();
        let search = SearchPath { dirs: vec![dir.path().to_path_buf()] };
        let start = Instant::now();
        let result = preprocess(&files[0], Path::new("top.docker"), &search);
        prop_assert!(start.elapsed() < Duration::from_secs(10), "took {:?}", start.elapsed());
        match result {
            Ok(out) => {
                prop_assert!(out.len() <= MAX_PREPROCESSED_BYTES);
                for line in out.lines() {
                    prop_assert!(!line.starts_with("FROM qemu/"), "kept {line:?}");
                    prop_assert!(!line.starts_with('#'), "kept {line:?}");
                    prop_assert!(!line.trim().is_empty(), "kept a blank line");
                }
            }
            Err(e) => {
                let message = e.to_string();
                prop_assert!(!message.contains('\n'), "not one line: {message}");
                prop_assert!(
                    message.contains("top.docker") || message.contains(".docker"),
                    "names no file: {message}"
                );
            }
        }
    }
}

/// One generated command-line argument: options every container applet knows, options only
/// the engine knows, values, `--`, and arbitrary text.
fn argument() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "-t",
            "-f",
            "-e",
            "-u",
            "-r",
            "-i",
            "-s",
            "-it",
            "-tfoo",
            "-uq",
            "--quiet",
            "--engine",
            "--engine=podman",
            "--extra-files",
            "--include-executable=/bin/x",
            "--add-current-user",
            "--skip-binfmt",
            "--keep",
            "--run-as-current-user",
            "--checktype",
            "--olderthan",
            "--cc",
            "--json",
            "--no-cache",
            "--build-arg",
            "A=B",
            "--env",
            "X=Y",
            "-v",
            "/a:/b",
            "--",
            "-",
            "",
            "qemu/x",
            "x.docker",
            "podman",
            "age",
            "5",
            "-5",
            "--=",
            "-=",
        ])
        .prop_map(str::to_string),
        "-{1,2}[a-z=-]{0,8}",
        any::<String>(),
    ]
}

/// Whether `part` is a subsequence of `whole`.
fn is_subsequence(part: &[OsString], whole: &[OsString]) -> bool {
    let mut rest = whole.iter();
    part.iter().all(|p| rest.any(|w| w == p))
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn splitting_never_panics_and_keeps_every_argument_in_order(
        args in prop::collection::vec(argument(), 0..16),
        applet in prop::sample::select(vec!["build", "run", "check", "fetch", "update", "cc",
                                             "images", "clean", "probe"]),
    ) {
        let applet = cibox_core::applet::find(applet).expect("a container applet");
        let mut command = (applet.command)().name(applet.name);
        let args: Vec<OsString> = args.into_iter().map(OsString::from).collect();
        let (known, rest) = cibox_core::args::split_known(&mut command, &args);
        prop_assert_eq!(known.len() + rest.len(), args.len());
        prop_assert!(is_subsequence(&known, &args), "known {known:?} from {args:?}");
        prop_assert!(is_subsequence(&rest, &args), "rest {rest:?} from {args:?}");
        // Everything from the first `--` on passes through, as it was.
        if let Some(at) = args.iter().position(|a| a == "--") {
            prop_assert!(rest.ends_with(&args[at..]), "rest {rest:?} from {args:?}");
        }
        // clap then parses what was kept, with an answer and without a panic.
        let argv = std::iter::once(OsString::from(applet.name)).chain(known);
        let _ = command.try_get_matches_from(argv);
    }
}
