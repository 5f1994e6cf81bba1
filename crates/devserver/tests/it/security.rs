//! What an unauthenticated client or another local user can make `cibox serve` keep or write:
//! the host log and host table stay bounded in bytes however long the fields a client sends,
//! and start-up never writes or removes through links planted in its directories (logs,
//! `--logfile`, the demo payload, the payload cache), nor uses a data or static directory
//! another user may write.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::*;
use cibox_testsupport::procfs::{hwm_kib, rss_kib};

/// An Omaha request of about 1 MB: two apps whose appids are 480 KiB each, with 32 events
/// each (64 in all), the most the parser lets through.
fn amplifying_request(n: usize) -> String {
    let app = |tag: char| {
        let appid = format!("{n}-{}", tag.to_string().repeat(480 * 1024));
        let events = r#"<event eventtype="3" eventresult="1" previousversion="0.9"/>"#.repeat(32);
        format!(r#"<app appid="{appid}" version="1.{n}" board="b"><updatecheck/>{events}</app>"#)
    };
    let body = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><request protocol="3.0">{}{}</request>"#,
        app('a'),
        app('b')
    );
    assert!(body.len() < 1024 * 1024, "{}", body.len());
    body
}

/// Item 2 of issue 20: each such request used to copy its appid into each of its 64 event
/// records (+34 MB per request). Now every field is cut, so the host log and the host table
/// stay small and so does the server.
#[test]
fn host_log_amplification_stays_bounded() {
    let s = Server::start(&["-l"]);
    s.omaha("/update", &v3_check(APPID, "1.0.0", "b"), &[]);
    let before = rss_kib(s.pid());
    // Before the fix these 8 requests took the server past 250 MiB.
    for n in 0..8 {
        s.omaha("/update", &amplifying_request(n), &[]);
    }
    let after = rss_kib(s.pid());
    let peak = hwm_kib(s.pid());
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "RSS grew from {before} KiB to {after} KiB (peak {peak} KiB) over 8 requests"
    );
    let log = s.get("/api/hostlog/127.0.0.1");
    assert_eq!(log.status, 200);
    assert!(
        log.body.len() < 512 * 1024,
        "host log of 9 requests is {} bytes",
        log.body.len()
    );
    let entries: serde_json::Value = serde_json::from_slice(&log.body).unwrap();
    assert_eq!(entries.as_array().map(Vec::len), Some(9));
    let appid = entries[1]["events"][0]["appid"].as_str().unwrap();
    assert!(
        appid.len() <= 256 && appid.ends_with("bytes cut]"),
        "{appid}"
    );
    assert_eq!(entries[1]["events"].as_array().map(Vec::len), Some(64));
    let info = s.get("/api/hostinfo/127.0.0.1");
    assert!(
        info.body.len() < 16 * 1024,
        "host info is {} bytes",
        info.body.len()
    );
}

/// A file outside the data dir another user wants serve to write to.
fn victim() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("victim");
    std::fs::write(&file, "untouched\n").unwrap();
    (dir, file)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Item 11: a log planted as a link in the data dir is refused, not appended through.
#[test]
fn data_dir_logs_are_not_written_through_links() {
    let (_v, file) = victim();
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&file, data.path().join("devserver_error.log")).unwrap();
    let out = run_serve(data.path(), &["--exit"], &[]);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("devserver_error.log is a symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "untouched\n");

    // A dangling link: nothing is created at its target.
    let data = tempfile::tempdir().unwrap();
    let made = data.path().join("made-by-serve");
    std::os::unix::fs::symlink(&made, data.path().join("devserver_access.log")).unwrap();
    let out = run_serve(data.path(), &["--exit"], &[]);
    assert!(!out.status.success(), "{}", stderr_of(&out));
    assert!(
        !made.exists(),
        "serve created the target of a dangling log link"
    );
}

/// Item 11: `--logfile` naming a link is refused.
#[test]
fn logfile_is_not_written_through_a_link() {
    let (_v, file) = victim();
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let link = logs.path().join("serve.log");
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = run_serve(
        data.path(),
        &["--exit", "--logfile", link.to_str().unwrap()],
        &[],
    );
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("serve.log is a symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "untouched\n");
}

/// Item 11: a data dir, or a static dir, others may write is refused, with its mode.
#[test]
fn directories_others_may_write_are_refused() {
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run_serve(data.path(), &["--exit"], &[]);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("data dir") && err.contains("writable by group or others (mode 777)"),
        "{err}"
    );
    assert!(!data.path().join("devserver_error.log").exists());

    let data = tempfile::tempdir().unwrap();
    let statics = data.path().join("static");
    std::fs::create_dir(&statics).unwrap();
    std::fs::set_permissions(&statics, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run_serve(data.path(), &["--exit"], &[]);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("static dir") && err.contains("mode 1777"),
        "{err}"
    );
}

/// Item 11: a data dir another user owns is refused (needs root to make one).
#[test]
fn data_dir_of_another_user_is_refused() {
    if nix_euid() != 0 {
        eprintln!("skipped: needs root to give a directory away");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(data.path(), Some(65534), Some(65534)).unwrap();
    let out = run_serve(data.path(), &["--exit"], &[]);
    let err = stderr_of(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("is owned by uid 65534"), "{err}");
}

fn nix_euid() -> u32 {
    // SAFETY: geteuid(2) has no preconditions.
    unsafe { libc::geteuid() }
}

/// Item 11: a dangling `static/update.gz` link does not make serve create its target.
#[test]
fn demo_payload_is_not_written_through_a_dangling_link() {
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("created-by-serve");
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("static")).unwrap();
    std::os::unix::fs::symlink(&target, data.path().join("static/update.gz")).unwrap();
    let s = Server::start_in(data, &[], &[]);
    assert_eq!(s.get("/check_health").status, 200);
    let (status, _data) = s.terminate();
    assert!(status.success());
    assert!(
        !target.exists(),
        "serve wrote the demo payload through a dangling link"
    );
}

fn fill(dir: &Path, n: usize) {
    for i in 0..n {
        std::fs::create_dir(dir.join(format!("entry{i:02}"))).unwrap();
    }
}

/// Item 15 (part): `static/cache` being a link is refused, neither cleared nor pruned through.
#[test]
fn a_linked_payload_cache_is_neither_cleared_nor_pruned() {
    let precious = tempfile::tempdir().unwrap();
    fill(precious.path(), 15);
    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir(data.path().join("static")).unwrap();
    std::os::unix::fs::symlink(precious.path(), data.path().join("static/cache")).unwrap();
    for args in [&["--clear_cache", "--exit"][..], &["--exit"][..]] {
        let out = run_serve(data.path(), args, &[]);
        let err = stderr_of(&out);
        assert!(!out.status.success(), "{args:?}: {err}");
        assert!(
            err.contains("payload cache") && err.contains("is a symbolic link"),
            "{args:?}: {err}"
        );
        assert_eq!(std::fs::read_dir(precious.path()).unwrap().count(), 15);
    }
}
