//! Staging under attack: archives that plant links out of the build directory and write
//! through them, entries that climb out with `..` or absolute paths, static subdirectories
//! that are links out of the data dir, hung and oversized downloads, and broken archives.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::*;

/// One entry of a test archive.
enum Entry<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
    HardLink(&'a str, &'a str),
}

/// A tar archive holding `entries`, names written raw (the tar crate's builder would refuse
/// the hostile ones).
fn hostile_tar(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        let (name, data): (&str, &[u8]) = match entry {
            Entry::File(name, data) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(data.len() as u64);
                (name, data)
            }
            Entry::Symlink(name, target) | Entry::HardLink(name, target) => {
                header.set_entry_type(if matches!(entry, Entry::Symlink(..)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                header.set_size(0);
                let link = &mut header.as_gnu_mut().unwrap().linkname;
                link[..target.len()].copy_from_slice(target.as_bytes());
                (name, b"")
            }
        };
        header.set_mode(0o644);
        let raw = &mut header.as_gnu_mut().unwrap().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// A build directory `ROOT/tgt/NAME` with the payload and these extra artifacts.
fn build_source(root: &Path, name: &str, artifacts: &[(&str, Vec<u8>)]) -> String {
    let build = root.join("tgt").join(name);
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("update.gz"), VECTOR).unwrap();
    for (file, data) in artifacts {
        std::fs::write(build.join(file), data).unwrap();
    }
    format!("file://{}", build.display())
}

/// Nothing of the build and no hidden staging directory is left under `static/tgt`.
fn assert_nothing_staged(s: &Server, name: &str) {
    assert!(!s.static_dir().join("tgt").join(name).exists());
    if let Ok(dir) = std::fs::read_dir(s.static_dir().join("tgt")) {
        let left: Vec<_> = dir.map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

/// The two archives of the attack: the first plants `autotest/esc -> victim`, the second
/// (bzip2, as the system tar used to unpack it) writes `autotest/esc/p` through it.
fn plant_and_write(victim: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let plant = hostile_tar(&[Entry::Symlink("autotest/esc", victim.to_str().unwrap())]);
    let write = bzip2(&hostile_tar(&[Entry::File("autotest/esc/p", b"owned\n")]));
    vec![("autotest.tar", plant), ("autotest.tar.bz2", write)]
}

/// Stages `url` and checks the attack failed: 502 naming the archive, no file written
/// through the link, nothing staged.
fn assert_refused_planted_link(s: &Server, url: &str, victim: &Path, build: &str) {
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("autotest.tar"), "{}", r.text());
    assert!(!victim.join("p").exists(), "written through the link");
    assert_nothing_staged(s, build);
}

#[test]
fn archive_cannot_write_through_a_planted_link() {
    let victim = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    let url = build_source(src.path(), "R1", &plant_and_write(victim.path()));
    let s = Server::start(&[]);
    assert_refused_planted_link(&s, &url, victim.path(), "R1");
}

#[test]
fn archive_over_http_cannot_write_through_a_planted_link() {
    let victim = tempfile::tempdir().unwrap();
    let base = "/a/tgt/R2";
    let mut routes = HashMap::new();
    routes.insert(
        format!("{base}/update.gz"),
        Reply::Body(VECTOR.to_vec(), Duration::ZERO),
    );
    for (name, data) in plant_and_write(victim.path()) {
        routes.insert(format!("{base}/{name}"), Reply::Body(data, Duration::ZERO));
    }
    let origin = Origin::start(routes);
    let s = Server::start(&[]);
    let url = format!("http://127.0.0.1:{}{base}", origin.port);
    assert_refused_planted_link(&s, &url, victim.path(), "R2");
}

#[test]
fn entries_and_links_leaving_the_build_dir_are_refused() {
    let victim = tempfile::tempdir().unwrap();
    let victim_file = victim.path().join("file");
    std::fs::write(&victim_file, "keep\n").unwrap();
    let src = tempfile::tempdir().unwrap();
    let s = Server::start(&[]);
    let hostile: Vec<(&str, Vec<u8>)> = vec![
        (
            "dotdot",
            hostile_tar(&[Entry::File("../../../../../../tmp/x", b"x")]),
        ),
        (
            "absolute",
            hostile_tar(&[Entry::File(victim_file.to_str().unwrap(), b"x")]),
        ),
        (
            "relative-link-out",
            hostile_tar(&[Entry::Symlink("autotest/up", "../../../../../..")]),
        ),
        (
            "absolute-link",
            hostile_tar(&[Entry::Symlink("autotest/abs", "/etc")]),
        ),
        (
            "hard-link-out",
            hostile_tar(&[Entry::HardLink(
                "autotest/hard",
                victim_file.to_str().unwrap(),
            )]),
        ),
    ];
    for (name, tar) in hostile {
        let url = build_source(src.path(), name, &[("autotest.tar", tar)]);
        let r = s.get(&format!("/download?archive_url={url}"));
        assert_eq!(r.status, 502, "{name}: {}", r.text());
        assert!(
            r.text().contains("leaves the build directory"),
            "{name}: {}",
            r.text()
        );
        assert_nothing_staged(&s, name);
    }
    assert_eq!(std::fs::read_to_string(&victim_file).unwrap(), "keep\n");
    // Links that stay inside are fine.
    let fine = hostile_tar(&[
        Entry::File("autotest/client/control", b"c\n"),
        Entry::Symlink("autotest/alias", "client/control"),
    ]);
    let url = build_source(src.path(), "fine", &[("autotest.tar", fine)]);
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.get("/static/tgt/fine/autotest/alias").text(), "c\n");
}

#[test]
fn broken_archive_is_a_clear_502_and_leaves_nothing() {
    let src = tempfile::tempdir().unwrap();
    let url = build_source(
        src.path(),
        "R3",
        &[("autotest.tar.bz2", b"this is not bzip2 at all".to_vec())],
    );
    let s = Server::start(&[]);
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("autotest.tar.bz2"), "{}", r.text());
    assert_nothing_staged(&s, "R3");
}

#[test]
fn linked_static_subdirectory_is_never_touched() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(outside.path().join("R1")).unwrap();
    std::fs::write(outside.path().join("R1/keep"), "keep\n").unwrap();
    std::fs::create_dir_all(outside.path().join("R9")).unwrap();
    let src = tempfile::tempdir().unwrap();
    let build = src.path().join("dirlink/R1");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("update.gz"), VECTOR).unwrap();

    let data = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(data.path().join("static/t")).unwrap();
    std::os::unix::fs::symlink(outside.path(), data.path().join("static/dirlink")).unwrap();
    std::fs::create_dir_all(data.path().join("static/t/R1")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("R9"), data.path().join("static/t/R9")).unwrap();
    let s = Server::start_in(data, &[], &[]);

    let r = s.get(&format!("/download?archive_url=file://{}", build.display()));
    assert!(
        r.status == 403 || r.status == 400,
        "{}: {}",
        r.status,
        r.text()
    );
    assert_eq!(
        std::fs::read_to_string(outside.path().join("R1/keep")).unwrap(),
        "keep\n"
    );
    assert!(!outside.path().join("R1/update.gz").exists());
    let r = s.get(&format!(
        "/is_staged?archive_url=file://{}",
        build.display()
    ));
    assert_ne!(r.text(), "True");

    let r = s.get("/latestbuild?target=dirlink");
    assert!(
        r.status == 403 || r.status == 404,
        "{}: {}",
        r.status,
        r.text()
    );
    assert!(!r.text().contains("R1"), "{}", r.text());
    // A build entry linking out is not a build of the target.
    assert_eq!(s.get("/latestbuild?target=t").text(), "R1\n");
}

/// A stand-in gsutil in `DIR/bin`: only `update.gz` exists, `cp` of a URL containing `slow`
/// hangs (its `sleep` pid written to `$FAKE_GS/sleep.pid`), other copies write the test
/// vector. Its state directory (`DIR/gs`, `$FAKE_GS`), and the environment that puts it first
/// on the server's PATH.
fn fake_gsutil(dir: &Path) -> (PathBuf, [(&'static str, OsString); 2]) {
    let bin = dir.join("bin");
    let gs = dir.join("gs");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(&gs).unwrap();
    script(
        &bin.join("gsutil"),
        r#"[ "$1" = "-q" ] && shift
case "$1" in
  stat) case "$2" in */update.gz) exit 0;; *) exit 1;; esac;;
  cp) case "$2" in
        *slow*) sleep 600 & echo $! > "$FAKE_GS/sleep.pid"; wait;;
        */update.gz) printf 'Developers, developers, developers!\n' > "$3";;
        *) exit 1;;
      esac;;
  *) exit 2;;
esac"#,
    );
    let env = [
        ("PATH", path_with(&bin)),
        ("FAKE_GS", gs.clone().into_os_string()),
    ];
    (gs, env)
}

#[test]
fn hung_gs_download_times_out_and_does_not_hold_other_urls() {
    let dir = tempfile::tempdir().unwrap();
    let (gs, env) = fake_gsutil(dir.path());
    let s = Server::start_in(dir, &["--download-timeout", "2"], &env);

    let slow_url = s.url("/download?archive_url=gs://slow-bucket/t/b");
    let started = Instant::now();
    let slow = std::thread::spawn(move || get_with(&slow_url, &[]));
    std::thread::sleep(Duration::from_millis(300));
    // Same TARGET/BUILD tail, another URL: staged on its own, not behind the hung one.
    let r = s.get("/download?archive_url=gs://other-bucket/t/b");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited on the hung URL"
    );

    let r = slow.join().unwrap();
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("timed out"), "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(15));
    // The hung gsutil and its children are gone.
    let pid: i32 = std::fs::read_to_string(gs.join("sleep.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: kill with signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "gsutil's child {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn oversized_downloads_are_refused() {
    let big = vec![7u8; 300_000];
    let base = "/a/tgt/R4";
    let mut routes = HashMap::new();
    routes.insert(
        format!("{base}/update.gz"),
        Reply::Body(big.clone(), Duration::ZERO),
    );
    let origin = Origin::start(routes);
    let src = tempfile::tempdir().unwrap();
    let file_url = build_source(src.path(), "R5", &[]);
    std::fs::write(src.path().join("tgt/R5/update.gz"), &big).unwrap();
    let s = Server::start(&["--download-max-bytes", "100000"]);
    for url in [format!("http://127.0.0.1:{}{base}", origin.port), file_url] {
        let r = s.get(&format!("/download?archive_url={url}"));
        assert_eq!(r.status, 502, "{url}: {}", r.text());
        assert!(r.text().contains("larger than"), "{url}: {}", r.text());
    }
    assert_nothing_staged(&s, "R4");
    assert_nothing_staged(&s, "R5");
}

/// Every symbolic link under `dir`, followed by the kernel, stays under `root` (or dangles).
fn assert_links_stay_under(dir: &Path, root: &Path) {
    let root = std::fs::canonicalize(root).unwrap();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            if meta.file_type().is_symlink() {
                if let Ok(real) = std::fs::canonicalize(&path) {
                    assert!(
                        real.starts_with(&root),
                        "{} resolves to {}",
                        path.display(),
                        real.display()
                    );
                }
            } else if meta.is_dir() {
                dirs.push(path);
            }
        }
    }
}

#[test]
fn symlink_chains_never_resolve_outside_static() {
    let src = tempfile::tempdir().unwrap();
    let s = Server::start(&[]);
    // Each link alone stays inside by its text; together `z` leads to the data directory:
    // x -> a/b/../.. with a -> . is one level above the build, y -> x/.. the static root,
    // z -> y/.. outside it.
    let chain = hostile_tar(&[
        Entry::Symlink("x", "a/b/../.."),
        Entry::Symlink("a", "."),
        Entry::Symlink("y", "x/.."),
        Entry::Symlink("z", "y/.."),
    ]);
    let url = build_source(src.path(), "chain", &[("autotest.tar", chain)]);
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.text().contains("resolves outside the build directory"),
        "{}",
        r.text()
    );
    assert_nothing_staged(&s, "chain");
    assert_links_stay_under(&s.static_dir(), &s.static_dir());
    assert_eq!(
        s.get("/static/tgt/chain/z/serve.stderr").status,
        404,
        "served through the chain"
    );
    // A chain that stays inside is fine.
    let fine = hostile_tar(&[
        Entry::File("autotest/client/control", b"c\n"),
        Entry::Symlink("autotest/c", "client"),
        Entry::Symlink("autotest/again", "c/../c/control"),
    ]);
    let url = build_source(src.path(), "fine-chain", &[("autotest.tar", fine)]);
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.get("/static/tgt/fine-chain/autotest/again").text(), "c\n");
    assert_links_stay_under(&s.static_dir(), &s.static_dir());
}

#[test]
fn sigterm_during_a_gs_download_kills_gsutil_and_exits_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let (gs, env) = fake_gsutil(dir.path());
    // The default download timeout (30 minutes): only the shutdown can end the download.
    let s = Server::start_in(dir, &[], &env);
    let slow_url = s.url("/download?archive_url=gs://slow-bucket/t/b");
    let slow = std::thread::spawn(move || get_with(&slow_url, &[]));
    let pid_file = gs.join("sleep.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "gsutil never started its copy");
        std::thread::sleep(Duration::from_millis(20));
    };
    let started = Instant::now();
    let (status, _dir) = s.terminate();
    assert!(status.success(), "{status}");
    // The request in progress gets the shutdown grace (3 s), then the download is cut.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "took {:?} to exit",
        started.elapsed()
    );
    // gsutil's whole process group is gone.
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: kill with signal 0 only checks that the process exists.
    while unsafe { libc::kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "gsutil's child {pid} still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = slow.join();
}
