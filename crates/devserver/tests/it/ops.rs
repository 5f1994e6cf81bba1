//! Control files, staging, latest build, builder, health.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;

fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, path, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn controlfiles_listing_reading_and_traversal() {
    let dir = tempfile::tempdir().unwrap();
    let auto = dir.path().join("static/x86-release/R18-1514.0.0/autotest");
    for f in [
        "client/site_tests/sleeptest/control",
        "client/site_tests/sleeptest/control.quick",
        "server/site_tests/reboot/control",
        "client/site_tests/sleeptest/sleeptest.py",
        "client/controlled/README",
    ] {
        let p = auto.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, format!("contents of {f}\n")).unwrap();
    }
    std::fs::write(dir.path().join("secret"), "TOP-SECRET").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), auto.join("client/control.out")).unwrap();
    let s = Server::start_in(dir, &[], &[]);
    let build = "x86-release/R18-1514.0.0";

    let r = s.get(&format!("/controlfiles?build={build}"));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "client/site_tests/sleeptest/control\nclient/site_tests/sleeptest/control.quick\nserver/site_tests/reboot/control\n"
    );
    let r = s.get(&format!(
        "/controlfiles?build={build}&control_path=client/site_tests/sleeptest/control"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        "contents of client/site_tests/sleeptest/control\n"
    );

    let help = s.get("/controlfiles");
    assert_eq!(help.status, 200);
    assert!(help
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(help.text().contains("control_path"));
    assert_eq!(s.get("/controlfiles?control_path=x").status, 400);
    assert_eq!(s.get("/controlfiles?build=").status, 400);
    assert_eq!(s.get("/controlfiles?build=no/such").status, 404);

    for (query, expected) in [
        (
            format!("build={build}&control_path=../../../../secret"),
            403,
        ),
        (
            format!("build={build}&control_path=%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret"),
            403,
        ),
        (
            format!("build={build}&control_path=%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret"),
            403,
        ),
        (format!("build={build}&control_path=/etc/passwd"), 403),
        (
            format!("build={build}&control_path=client/control.out"),
            403,
        ),
        ("build=../..".to_string(), 403),
        ("build=%2e%2e".to_string(), 403),
        ("build=/etc".to_string(), 403),
    ] {
        let r = s.get(&format!("/controlfiles?{query}"));
        assert_eq!(r.status, expected, "{query}: {}", r.text());
        assert!(!r.text().contains("TOP-SECRET"), "{query}");
        assert!(!r.text().contains("root:"), "{query}");
    }
}

fn origin_for_build(delay: Duration) -> (Origin, String) {
    let autotest = tar_with(&[
        ("autotest/client/site_tests/sleeptest/control", b"sleep\n"),
        ("autotest/server/site_tests/reboot/control.srv", b"reboot\n"),
    ]);
    let mut routes = HashMap::new();
    let base = "/archive/x86-generic-release/R17-1208.0.0-a1-b338";
    routes.insert(
        format!("{base}/update.gz"),
        Reply::Body(VECTOR.to_vec(), delay),
    );
    routes.insert(
        format!("{base}/stateful.tgz"),
        Reply::Body(b"stateful".to_vec(), Duration::ZERO),
    );
    routes.insert(
        format!("{base}/autotest.tar"),
        Reply::Body(autotest, Duration::ZERO),
    );
    let origin = Origin::start(routes);
    let url = format!("http://127.0.0.1:{}{base}", origin.port);
    (origin, url)
}

#[test]
fn staging_from_a_local_http_server() {
    let (origin, url) = origin_for_build(Duration::ZERO);
    let s = Server::start(&[]);
    let base = "/archive/x86-generic-release/R17-1208.0.0-a1-b338";
    assert_eq!(
        s.get(&format!("/is_staged?archive_url={url}")).text(),
        "False"
    );
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Success");
    let build_dir = s
        .static_dir()
        .join("x86-generic-release/R17-1208.0.0-a1-b338");
    assert_eq!(std::fs::read(build_dir.join("update.gz")).unwrap(), VECTOR);
    assert_eq!(
        std::fs::read(build_dir.join("stateful.tgz")).unwrap(),
        b"stateful"
    );
    assert_eq!(
        s.get(&format!("/is_staged?archive_url={url}")).text(),
        "True"
    );
    // Idempotent: staging again fetches nothing.
    let r = s.get(&format!("/stage?archive_url={url}/"));
    assert_eq!(r.text(), "Success");
    assert_eq!(origin.hits(&format!("{base}/update.gz")), 1);
    // Optional artifacts that are absent were asked for and skipped.
    assert_eq!(origin.hits(&format!("{base}/test_suites.tar.bz2")), 1);
    // The autotest archive is unpacked: control files are listed.
    let r = s.get("/controlfiles?build=x86-generic-release/R17-1208.0.0-a1-b338");
    assert_eq!(
        r.text(),
        "client/site_tests/sleeptest/control\nserver/site_tests/reboot/control.srv\n"
    );
    // And the staged payload is served by label.
    let xml = s.omaha(
        "/update/x86-generic-release/R17-1208.0.0-a1-b338",
        &v3_check(APPID, "1", "x86-generic"),
        &[],
    );
    assert_eq!(element(&xml, "package")["hash"], VECTOR_SHA1);
    // Bad URLs are 400.
    assert_eq!(s.get("/download").status, 400);
    assert_eq!(s.get("/download?archive_url=ftp://x/a/b").status, 400);
    assert_eq!(s.get("/download?archive_url=http://x/a/..").status, 400);
}

#[test]
fn failed_staging_leaves_nothing() {
    let base = "/archive/board/R1-1.0.0";
    let mut routes = HashMap::new();
    routes.insert(
        format!("{base}/update.gz"),
        Reply::Truncated(vec![b'x'; 50_000]),
    );
    routes.insert(
        "/missing/board/R2/stateful.tgz".to_string(),
        Reply::Status(200),
    );
    routes.insert("/error/board/R3/update.gz".to_string(), Reply::Status(500));
    let origin = Origin::start(routes);
    let s = Server::start(&[]);
    for (path, build) in [
        (base.to_string(), "R1-1.0.0"),
        ("/missing/board/R2".to_string(), "R2"),
        ("/error/board/R3".to_string(), "R3"),
    ] {
        let url = format!("http://127.0.0.1:{}{path}", origin.port);
        let r = s.get(&format!("/download?archive_url={url}"));
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert!(r.text().contains("Failed to stage"), "{}", r.text());
        assert_eq!(
            s.get(&format!("/is_staged?archive_url={url}")).text(),
            "False"
        );
        assert!(!s.static_dir().join("board").join(build).exists());
    }
    // No hidden half-staged directories either.
    let leftovers: Vec<_> = std::fs::read_dir(s.static_dir().join("board"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // An unreachable server is a failure too, not a hang.
    let r = s.get("/download?archive_url=http://127.0.0.1:1/a/board/R4");
    assert_eq!(r.status, 502);
}

#[test]
fn concurrent_staging_downloads_once() {
    let (origin, url) = origin_for_build(Duration::from_millis(600));
    let s = Server::start(&[]);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let u = s.url(&format!("/download?archive_url={url}"));
            std::thread::spawn(move || get_with(&u, &[]))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text(), "Success");
    }
    assert_eq!(
        origin.hits("/archive/x86-generic-release/R17-1208.0.0-a1-b338/update.gz"),
        1
    );
}

#[test]
fn staging_from_a_file_url() {
    let src = tempfile::tempdir().unwrap();
    let build = src.path().join("tgt/R5-5.0.0");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::write(build.join("update.gz"), VECTOR).unwrap();
    let s = Server::start(&[]);
    let r = s.get(&format!("/download?archive_url=file://{}", build.display()));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read(s.static_dir().join("tgt/R5-5.0.0/update.gz")).unwrap(),
        VECTOR
    );
}

#[test]
fn latestbuild_is_version_sorted() {
    let dir = tempfile::tempdir().unwrap();
    for b in [
        "R17-1208.0.0-a1-b1",
        "R17-1210.0.0-a1-b2",
        "R9-9999.0.0",
        "R18-1.0.0",
        "R18-0.9.0",
    ] {
        std::fs::create_dir_all(dir.path().join("static/x86-release").join(b)).unwrap();
    }
    std::fs::write(dir.path().join("static/x86-release/R99-file"), "").unwrap();
    let s = Server::start_in(dir, &[], &[]);
    assert_eq!(
        s.get("/latestbuild?target=x86-release").text(),
        "R18-1.0.0\n"
    );
    assert_eq!(
        s.get("/latestbuild?target=x86-release&milestone=17").text(),
        "R17-1210.0.0-a1-b2\n"
    );
    assert_eq!(
        s.get("/latestbuild?target=x86-release&milestone=R9").text(),
        "R9-9999.0.0\n"
    );
    assert_eq!(
        s.get("/latestbuild?target=x86-release&milestone=20").status,
        404
    );
    assert_eq!(s.get("/latestbuild").status, 400);
    assert_eq!(s.get("/latestbuild?target=..").status, 400);
    assert_eq!(s.get("/latestbuild?target=nothing").status, 404);
}

#[test]
fn builder_success_failure_and_missing() {
    let dir = tempfile::tempdir().unwrap();
    let tool = dir.path().join("fake-emerge");
    let record = dir.path().join("record");
    script(
        &tool,
        &format!(
            r#"echo "board=$1 pkg=$2 use=$USE features=$FEATURES" >> {}
echo "building $2"
if [ "$2" = "bad-pkg" ]; then echo "compile error in $2" >&2; exit 3; fi"#,
            record.display()
        ),
    );
    let template = format!("{} {{board}} {{pkg}}", tool.display());
    let s = Server::start_in(dir, &["--builder", &template], &[]);
    let r = s.get("/build?board=x86-generic&pkg=chromeos-base/foo&use=bar%20baz&features=noclean");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "Success\n");
    let rec = std::fs::read_to_string(&record).unwrap();
    assert_eq!(
        rec,
        "board=x86-generic pkg=chromeos-base/foo use=bar baz features=noclean\n"
    );
    let r = s.get("/build?board=x86-generic&pkg=bad-pkg");
    assert_eq!(r.status, 500);
    assert!(
        r.text().contains("compile error in bad-pkg"),
        "{}",
        r.text()
    );
    assert_eq!(s.get("/build?board=x86-generic").status, 400);
    assert_eq!(s.get("/build?board=--root=/&pkg=x").status, 400);
    drop(s);

    // The default builder (emerge-BOARD) is not installed here: a clear 503.
    let s = Server::start(&[]);
    let r = s.get("/build?board=no-such-board&pkg=foo");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("emerge-no-such-board"), "{}", r.text());
}

#[test]
fn index_and_health() {
    let s = Server::start(&[]);
    let r = s.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "Welcome to the Dev Server!");
    s.omaha("/update", &v3_check(APPID, "1", "b"), &[]);
    let r = s.get("/check_health");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let h: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert!(h["free_disk"].as_u64().unwrap() > 0);
    assert_eq!(h["update_checks"], 1);
    assert_eq!(h["updates"], 1);
    assert!(h["requests"].as_u64().unwrap() >= 2);
    assert_eq!(s.get("/nothing/here").status, 404);
}

#[test]
fn staging_from_gs_through_gsutil() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let bucket = dir.path().join("gs");
    std::fs::create_dir_all(bucket.join("chromeos-image-archive/x86-generic/R17-1.0.0")).unwrap();
    std::fs::write(
        bucket.join("chromeos-image-archive/x86-generic/R17-1.0.0/update.gz"),
        VECTOR,
    )
    .unwrap();
    // A stand-in gsutil mapping gs://X to $FAKE_GS/X: `-q stat URL`, `-q cp URL DEST`.
    script(
        &bin.join("gsutil"),
        r#"[ "$1" = "-q" ] && shift
cmd="$1"; src="$FAKE_GS/${2#gs://}"
case "$cmd" in
  stat) [ -f "$src" ];;
  cp) cp "$src" "$3";;
  *) exit 2;;
esac"#,
    );
    let env = [
        ("PATH", path_with(&bin)),
        ("FAKE_GS", bucket.clone().into_os_string()),
    ];
    let s = Server::start_in(dir, &[], &env);
    let url = "gs://chromeos-image-archive/x86-generic/R17-1.0.0";
    let r = s.get(&format!("/download?archive_url={url}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        std::fs::read(s.static_dir().join("x86-generic/R17-1.0.0/update.gz")).unwrap(),
        VECTOR
    );
    let r = s.get("/download?archive_url=gs://chromeos-image-archive/x86-generic/R17-9.9.9");
    assert_eq!(r.status, 502);
    assert!(r.text().contains("not found"), "{}", r.text());
}
