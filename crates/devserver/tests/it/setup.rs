//! Start-up options: cache pruning, payload generation, --payload, factory config, help,
//! logs.

use std::time::{Duration, SystemTime};

use crate::support::*;

#[test]
fn cache_pruned_to_12_and_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("static/cache");
    std::fs::create_dir_all(&cache).unwrap();
    let base = SystemTime::now() - Duration::from_secs(10_000);
    for i in 0..15u64 {
        let entry = cache.join(format!("entry{i:02}"));
        std::fs::create_dir(&entry).unwrap();
        std::fs::write(entry.join("update.gz"), b"x").unwrap();
        std::fs::File::open(&entry)
            .unwrap()
            .set_modified(base + Duration::from_secs(i * 60))
            .unwrap();
    }
    let out = run_serve(dir.path(), &["--exit"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut left: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let expected: Vec<String> = (3..15).map(|i| format!("entry{i:02}")).collect();
    assert_eq!(left, expected);
    // --exit serves nothing and writes no demo payload.
    assert!(!dir.path().join("static/update.gz").exists());

    let out = run_serve(dir.path(), &["--clear-cache", "--exit"], &[]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 0);
}

fn fake_generators(bin: &std::path::Path) {
    std::fs::create_dir_all(bin).unwrap();
    // Writes "generated from IMAGE-CONTENT" and counts its runs.
    script(
        &bin.join("cros_generate_update_payload"),
        r#"out=""; img=""
while [ $# -gt 0 ]; do
  case "$1" in --output) out="$2"; shift;; --image) img="$2"; shift;; esac; shift
done
echo run >> "$(dirname "$0")/runs"
{ printf 'generated from '; cat "$img"; } > "$out""#,
    );
    script(
        &bin.join("cros_generate_stateful_update_payload"),
        r#"out=""
while [ $# -gt 0 ]; do case "$1" in --output) out="$2"; shift;; esac; shift; done
echo stateful > "$out/stateful.tgz""#,
    );
}

#[test]
fn image_payload_generated_once_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fake_generators(&bin);
    let image = dir.path().join("chromiumos_image.bin");
    std::fs::write(&image, "IMAGE-1\n").unwrap();
    let env = [("PATH", path_with(&bin))];
    let img = image.to_str().unwrap();
    let out = run_serve(dir.path(), &["--image", img, "-p", "--exit"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rel = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Pre-generated update: "))
        .expect("pre-generation reported")
        .to_string();
    let generated = dir.path().join("static").join(&rel);
    assert_eq!(
        std::fs::read(&generated).unwrap(),
        b"generated from IMAGE-1\n"
    );
    assert!(generated.with_file_name("stateful.tgz").is_file());

    let s = Server::start_in(dir, &["--image", img], &env);
    let xml = s.omaha("/update", &v3_check(APPID, "1", "b"), &[]);
    let codebase = element(&xml, "url")["codebase"].clone();
    let dir_rel = rel.trim_end_matches("update.gz");
    assert_eq!(codebase, s.url(&format!("/static/{dir_rel}")));
    assert_eq!(element(&xml, "package")["size"], "23");
    assert_eq!(
        get_with(&format!("{codebase}update.gz"), &[]).body,
        b"generated from IMAGE-1\n"
    );
    s.omaha("/update", &v3_check(APPID, "1", "b"), &[]);
    let runs = std::fs::read_to_string(bin.join("runs")).unwrap();
    assert_eq!(runs.lines().count(), 1, "the cached payload is reused");
}

#[test]
fn missing_generator_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("img.bin");
    std::fs::write(&image, "x").unwrap();
    let empty_bin = dir.path().join("empty-bin");
    std::fs::create_dir(&empty_bin).unwrap();
    let env = [("PATH", empty_bin.into_os_string())];
    let out = run_serve(dir.path(), &["--image", image.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cibox serve: "), "{err}");
    assert!(err.contains("cros_generate_update_payload"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn payload_option_copies_in_and_follows_changes() {
    let dir = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("update.gz"), VECTOR).unwrap();
    std::fs::write(src.path().join("stateful.tgz"), b"state").unwrap();
    let s = Server::start_in(dir, &["--payload", src.path().to_str().unwrap()], &[]);
    assert_eq!(
        std::fs::read(s.static_dir().join("update.gz")).unwrap(),
        VECTOR
    );
    assert_eq!(
        std::fs::read(s.static_dir().join("stateful.tgz")).unwrap(),
        b"state"
    );
    let check = v3_check(APPID, "1", "b");
    // A label does not matter with --payload.
    let xml = s.omaha("/update/some/label", &check, &[]);
    assert_eq!(element(&xml, "url")["codebase"], s.url("/static/"));
    assert_eq!(element(&xml, "package")["hash"], VECTOR_SHA1);
    std::fs::write(src.path().join("update.gz"), b"a newer payload\n").unwrap();
    let xml = s.omaha("/update", &check, &[]);
    assert_eq!(element(&xml, "package")["size"], "16");
    assert_eq!(s.get("/static/update.gz").body, b"a newer payload\n");
}

const FACTORY_PY: &str = r#"# factory floor
config = [
  {
    'qual_ids': set(["x86-generic", 7]),
    'factory_image': 'factory/factory.gz',
    'factory_checksum': 'kGcOinJ0vA8vdYX53FN0F5BdwfY=',
    'release_image': 'release.gz',
    'release_checksum': 'RELEASE_SUM',
  },
  {
    'qual_ids': set(['other-board']),
    'factory_image': 'other.gz',
    'factory_checksum': 'wrong',
  },
]
"#;

#[test]
fn factory_config_python_json_and_validation() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("static");
    std::fs::create_dir_all(st.join("factory")).unwrap();
    std::fs::write(st.join("factory/factory.gz"), VECTOR).unwrap();
    std::fs::write(st.join("release.gz"), b"release image\n").unwrap();
    let release_sum = {
        use base64::Engine as _;
        use sha1::Digest as _;
        base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b"release image\n"))
    };
    let cfg = dir.path().join("config.py");
    std::fs::write(&cfg, FACTORY_PY.replace("RELEASE_SUM", &release_sum)).unwrap();
    let cfg_arg = cfg.to_str().unwrap();

    // The second stanza names a missing image with a wrong checksum.
    let out = run_serve(
        dir.path(),
        &["--factory_config", cfg_arg, "--validate_factory_config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("other.gz"), "{stdout}");
    std::fs::write(st.join("other.gz"), b"other\n").unwrap();
    let out = run_serve(
        dir.path(),
        &["--factory-config", cfg_arg, "--validate-factory-config"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("checksum mismatch"));
    let good = FACTORY_PY.replace("RELEASE_SUM", &release_sum).replace(
        "'wrong'",
        &format!("'{}'", {
            use base64::Engine as _;
            use sha1::Digest as _;
            base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(b"other\n"))
        }),
    );
    std::fs::write(&cfg, &good).unwrap();
    let out = run_serve(
        dir.path(),
        &["--factory_config", cfg_arg, "--validate_factory_config"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Config file looks good."));

    let s = Server::start_in(dir, &["--factory_config", cfg_arg], &[]);
    let xml = s.omaha(
        "/update",
        &v3_check_track("x86-generic", "factory-channel"),
        &[],
    );
    assert_eq!(element(&xml, "url")["codebase"], s.url("/static/factory/"));
    let pkg = element(&xml, "package");
    assert_eq!(pkg["name"], "factory.gz");
    assert_eq!(pkg["hash"], VECTOR_SHA1);
    let xml = s.omaha(
        "/update",
        &v3_check_track("x86-generic", "release-channel"),
        &[],
    );
    assert_eq!(element(&xml, "package")["name"], "release.gz");
    let xml = s.omaha("/update", &v3_check_track("7", "factory-channel"), &[]);
    assert_eq!(element(&xml, "package")["name"], "factory.gz");
    let xml = s.omaha(
        "/update",
        &v3_check_track("unknown-board", "factory-channel"),
        &[],
    );
    assert_eq!(element(&xml, "updatecheck")["status"], "noupdate");
    drop(s);

    // JSON works as well; code is refused, never run.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/f.gz"), VECTOR).unwrap();
    let json = dir.path().join("config.json");
    std::fs::write(
        &json,
        r#"{"config": [{"qual_ids": ["x86-generic"], "factory_image": "f.gz",
            "factory_checksum": "kGcOinJ0vA8vdYX53FN0F5BdwfY="}]}"#,
    )
    .unwrap();
    let out = run_serve(
        dir.path(),
        &[
            "--factory_config",
            json.to_str().unwrap(),
            "--validate_factory_config",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evil = dir.path().join("evil.py");
    let marker = dir.path().join("pwned");
    std::fs::write(
        &evil,
        format!(
            "import os\nos.system('touch {}')\nconfig = []\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = run_serve(
        dir.path(),
        &["--factory_config", evil.to_str().unwrap(), "--exit"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
    assert!(!marker.exists());
}

#[test]
fn validate_without_config_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_serve(dir.path(), &["--validate_factory_config"], &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_options_endpoints_and_exit_codes() {
    let out = std::process::Command::new(cibox_bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--port",
        "--host",
        "--data_dir",
        "data-dir",
        "--archive_dir",
        "--clear_cache",
        "--exit",
        "--payload",
        "--image",
        "--src_image",
        "--board",
        "--for_vm",
        "--private_key",
        "--pregenerate_update",
        "-p",
        "--urlbase",
        "-u",
        "--proxy_port",
        "-t",
        "--critical_update",
        "--factory_config",
        "--validate_factory_config",
        "--production",
        "--logging",
        "-l",
        "--client_prefix",
        "--log-dir",
        "--builder",
        "/update",
        "/static/",
        "/api/hostinfo",
        "/api/hostlog",
        "/api/setnextupdate",
        "/api/fileinfo",
        "/controlfiles",
        "/download",
        "/is_staged",
        "/latestbuild",
        "/build",
        "/check_health",
        "Exit status",
        "usage error",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    // The alias reaches the same applet.
    let out = std::process::Command::new(cibox_bin())
        .args(["devserver", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn logs_client_prefix_and_log_dir() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let out = run_serve(dir.path(), &["--client_prefix", "x", "--exit"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--client_prefix is deprecated"));
    assert!(
        std::fs::read_to_string(dir.path().join("devserver_error.log"))
            .unwrap()
            .contains("deprecated")
    );

    let s = Server::start_in(
        dir,
        &["--log-dir", logs.to_str().unwrap(), "--production"],
        &[],
    );
    assert_eq!(s.get("/").text(), "Welcome to the Dev Server!");
    s.get("/no/such/page");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let access = std::fs::read_to_string(logs.join("devserver_access.log")).unwrap_or_default();
        if access.contains("\"GET /no/such/page HTTP/1.1\" 404") {
            assert!(access.contains("\"GET / HTTP/1.1\" 200 26"), "{access}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "access log: {access}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(logs.join("devserver_error.log").is_file());
    // --production: access lines only in the file.
    assert!(!s.stderr_text().contains("GET /no/such/page"));
}

#[test]
fn board_serves_latest_image_to_older_clients_only() {
    let dir = tempfile::tempdir().unwrap();
    // Tools and images outlive the first server's data dir.
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("bin");
    fake_generators(&bin);
    let images = tools.path().join("images");
    for (version, content) in [("0.9.0-a1", "OLD\n"), ("0.10.0-a1", "NEW\n")] {
        let d = images.join("x86-generic").join(version);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("chromiumos_image.bin"), content).unwrap();
        std::fs::write(
            d.join("chromiumos_test_image.bin"),
            format!("TEST-{content}"),
        )
        .unwrap();
    }
    let env = [("PATH", path_with(&bin))];
    let s = Server::start_in(
        dir,
        &[
            "--board",
            "x86-generic",
            "--images_dir",
            images.to_str().unwrap(),
        ],
        &env,
    );
    // No board in the request: the --board default applies.
    let xml = s.omaha(
        "/update",
        "<request protocol=\"3.0\"><app appid=\"a\" version=\"0.9.5\"><updatecheck/></app></request>",
        &[],
    );
    assert!(!elements(&xml, "url").is_empty(), "{}", s.stderr_text());
    assert_eq!(element(&xml, "manifest")["version"], "0.10.0");
    let codebase = element(&xml, "url")["codebase"].clone();
    assert!(codebase.starts_with(&s.url("/static/cache/")), "{codebase}");
    assert_eq!(
        get_with(&format!("{codebase}update.gz"), &[]).body,
        b"generated from NEW\n"
    );
    // Up to date: noupdate; ForcedUpdate: update anyway.
    let xml = s.omaha("/update", &v3_check(APPID, "0.10.0", "x86-generic"), &[]);
    assert_eq!(element(&xml, "updatecheck")["status"], "noupdate");
    let xml = s.omaha(
        "/update",
        &v3_check(APPID, "ForcedUpdate", "x86-generic"),
        &[],
    );
    assert_eq!(element(&xml, "updatecheck")["status"], "ok");
    drop(s);

    // -t picks the test image.
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(
        dir,
        &[
            "--board",
            "x86-generic",
            "-t",
            "--images-dir",
            images.to_str().unwrap(),
        ],
        &env,
    );
    let xml = s.omaha("/update", &v3_check(APPID, "0.1", "x86-generic"), &[]);
    assert!(!elements(&xml, "url").is_empty(), "{}", s.stderr_text());
    let codebase = element(&xml, "url")["codebase"].clone();
    assert_eq!(
        get_with(&format!("{codebase}update.gz"), &[]).body,
        b"generated from TEST-NEW\n"
    );
}

#[test]
fn default_bind_is_dual_stack_and_sigterm_stops_cleanly() {
    let s = Server::start_on(None, tempfile::tempdir().unwrap(), &["--no-demo"], &[]);
    let v4 = get_with(&format!("http://127.0.0.1:{}/", s.port), &[]);
    assert_eq!(v4.text(), "Welcome to the Dev Server!");
    // Where IPv6 is available, the same socket answers on ::1.
    if std::net::TcpStream::connect(("::1", s.port)).is_ok() {
        let v6 = get_with(&format!("http://[::1]:{}/", s.port), &[]);
        assert_eq!(v6.text(), "Welcome to the Dev Server!");
    }
    let (status, dir) = s.terminate();
    assert!(status.success(), "{status:?}");
    // Logs are flushed on the way out.
    let access = std::fs::read_to_string(dir.path().join("devserver_access.log")).unwrap();
    assert!(access.contains("\"GET / HTTP/1.1\" 200"), "{access}");
}
