//! Property tests for the parsers `serve` runs on untrusted input: the factory-config literal
//! reader (`serve::pylit`), percent-decoding and path cleaning (`serve::paths`). Properties:
//! never panic, round trips hold, paths never leave their root, work grows linearly with the
//! input.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cibox_devserver::paths::{
    clean_components, join_within, percent_decode, resolve_within, PathError,
};
use cibox_devserver::pylit::{read_assignment, MAX_DEPTH};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Python literal text for a value (strings escaped, dict keys quoted).
fn python(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => python_string(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_string(k), python(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

fn python_string(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec((any::<String>(), inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Characters that matter to the literal grammar, plus some that don't.
const LITERAL_ALPHABET: &str =
    "[\\[\\](){}:,'\"\\\\ \n\t#=.+\\-_a-zA-Z0-9xuUrRbB\u{e9}\u{0}]{0,300}";

/// Path pieces that matter to cleaning and resolving.
fn path_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("".to_string()),
        Just(".".to_string()),
        Just("..".to_string()),
        Just("%2e%2E".to_string()),
        Just("%2F".to_string()),
        Just("%00".to_string()),
        Just("%".to_string()),
        Just("in".to_string()),
        Just("out".to_string()),
        Just("loop".to_string()),
        Just("dir".to_string()),
        Just("file".to_string()),
        "[a-z%./]{1,6}",
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.join("/"))
}

/// A root with a file, a subdirectory, links in and out, a dangling link and a link loop,
/// next to a secret outside it.
fn tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::write(root.join("file"), "in").unwrap();
    std::fs::write(dir.path().join("secret"), "out").unwrap();
    let link = |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name));
    link(dir.path(), "out").unwrap();
    link(&root.join("dir"), "in").unwrap();
    link(Path::new("../.."), "dir/up").unwrap();
    link(Path::new("/nonexistent"), "dangling").unwrap();
    link(Path::new("loop"), "loop").unwrap();
    let root = root.canonicalize().unwrap();
    (dir, root)
}

/// CPU time this thread has used (immune to the machine's other load, unlike wall time).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Best of seven runs of `f`, in thread CPU time.
fn best_of(f: impl Fn()) -> Duration {
    (0..7)
        .map(|_| {
            let t = thread_cpu_time();
            f();
            thread_cpu_time() - t
        })
        .min()
        .unwrap()
}

/// Linear is about 4x for 4n; quadratic would be about 16x. Noise on a busy machine allowed.
fn assert_linear(small: Duration, large: Duration, what: &str) {
    assert!(
        large < small * 10 + Duration::from_millis(5),
        "{what}: n took {small:?}, 4n took {large:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn literal_reader_never_panics(text in any::<String>()) {
        let _ = read_assignment(&text, "config");
        let _ = read_assignment(&format!("config = {text}"), "config");
    }

    #[test]
    fn literal_reader_never_panics_on_grammar_soup(text in LITERAL_ALPHABET) {
        let _ = read_assignment(&text, "config");
        let _ = read_assignment(&format!("config = [{text}"), "config");
    }

    #[test]
    fn literal_reader_never_panics_on_lossy_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_assignment(&String::from_utf8_lossy(&bytes), "config");
    }

    #[test]
    fn python_literals_round_trip(value in json_value()) {
        let text = format!("# generated\nconfig = {}\n", python(&value));
        prop_assert_eq!(read_assignment(&text, "config").unwrap(), value.clone());
        // JSON is read too.
        let json = serde_json::to_string(&value).unwrap();
        if matches!(value, Value::Array(_)) {
            prop_assert_eq!(read_assignment(&json, "config").unwrap(), value);
        }
    }

    #[test]
    fn nesting_past_the_bound_is_an_error(depth in MAX_DEPTH..5_000usize, open in "[\\[({]") {
        let close = match open.as_str() { "[" => "]", "(" => ",)", _ => "}" };
        let open = if open == "{" { "{'k': " } else { open.as_str() };
        let text = format!("config = {}1{}", open.repeat(depth), close.repeat(depth));
        let e = read_assignment(&text, "config").unwrap_err();
        prop_assert!(e.message.contains("nested deeper"), "{}", e);
    }

    #[test]
    fn percent_decoding_never_panics_and_round_trips(text in any::<String>(), noise in "[%0-9a-fA-Fg-z]{0,40}") {
        let _ = percent_decode(&noise);
        let encoded: String = text
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        prop_assert_eq!(percent_decode(&encoded).unwrap(), text);
    }

    #[test]
    fn cleaned_components_are_plain(text in path_text()) {
        if let Ok(parts) = clean_components(&text) {
            for part in &parts {
                prop_assert!(!part.is_empty() && *part != "." && *part != "..");
                prop_assert!(!part.contains('/') && !part.contains('\0'));
            }
            let root = Path::new("/srv/root");
            let mut joined = root.to_path_buf();
            joined.extend(&parts);
            prop_assert!(joined.starts_with(root));
        }
    }

    #[test]
    fn resolved_paths_never_leave_the_root(text in path_text()) {
        let (_dir, root) = tree();
        for candidate in [Some(text.clone()), percent_decode(&text).ok()].into_iter().flatten() {
            match resolve_within(&root, &candidate) {
                Ok(path) => {
                    prop_assert!(path.starts_with(&root), "{} -> {}", candidate, path.display());
                    prop_assert_eq!(path.canonicalize().unwrap(), path);
                }
                Err(PathError::Escapes | PathError::NotFound | PathError::Invalid) => {}
            }
            if let Ok(path) = join_within(&root, &candidate) {
                // The part that exists resolves inside the root.
                let mut existing = path.as_path();
                while !existing.exists() {
                    existing = existing.parent().unwrap();
                }
                prop_assert!(
                    existing.canonicalize().unwrap().starts_with(&root),
                    "{} -> {}", candidate, path.display()
                );
            }
        }
    }
}

#[test]
fn literal_reading_is_linear() {
    let list = |n: usize| {
        format!(
            "config = [{}]",
            "{'a': 'x\\n', 'b': (1, 2.5, None)}, ".repeat(n)
        )
    };
    let string = |n: usize| format!("config = '{}'", "ab\\x41".repeat(n));
    let adjacent = |n: usize| format!("config = {}", "'a' ".repeat(n));
    for (what, make) in [
        ("list of dicts", &list as &dyn Fn(usize) -> String),
        ("escaped string", &string),
        ("adjacent strings", &adjacent),
    ] {
        let (small, large) = (make(5_000), make(20_000));
        assert!(read_assignment(&large, "config").is_ok(), "{what}");
        let t1 = best_of(|| {
            let _ = read_assignment(&small, "config");
        });
        let t4 = best_of(|| {
            let _ = read_assignment(&large, "config");
        });
        assert_linear(t1, t4, what);
    }
}

/// Checks that `f` on input of size 4n costs about 4 times what it costs on size n.
fn assert_linear_on(what: &str, make: impl Fn(usize) -> String, f: impl Fn(&str)) {
    let (small, large) = (make(20_000), make(80_000));
    assert_linear(best_of(|| f(&small)), best_of(|| f(&large)), what);
}

#[test]
fn path_handling_is_linear() {
    assert_linear_on(
        "percent_decode",
        |n| "%41b/".repeat(n),
        |s| {
            let _ = percent_decode(s);
        },
    );
    assert_linear_on(
        "clean_components",
        |n| "./a//".repeat(n),
        |s| {
            let _ = clean_components(s);
        },
    );
}
