//! The fleet page in Debian's real headless Chromium: the page's script runs, shows every
//! device newest first with its board, versions, last event and forced update, refreshes
//! itself, and a phone-sized screenshot is kept under `target/test-artifacts/`.

use std::path::PathBuf;
use std::process::Command;

use crate::support::*;

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| which::which(name).ok())
}

fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs headless Chromium on `url` with `args`, in a fresh profile.
fn headless(browser: &PathBuf, url: &str, args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn fleet_page_in_headless_chromium() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var_os("CIBOX_REQUIRE_ENGINES").is_none(),
            "chromium is required (CIBOX_REQUIRE_ENGINES is set) but not installed"
        );
        eprintln!("SKIP fleet_page_in_headless_chromium: chromium not installed (apt-get install chromium)");
        return;
    };
    let s = Server::start(&["-l"]);
    // Three devices, through forwarded addresses? No: the host key is the client address,
    // so the devices are told apart by the label forced for them and by their own requests.
    s.omaha(
        "/update",
        r#"<request protocol="3.0"><app appid="{PLATFORM}" version="15000.0.0" board="eve"><updatecheck/></app><app appid="{PLATFORM}_dlc&lt;b&gt;x" version="1.0.0"><event eventtype="3" eventresult="0" errorcode="65"/></app></request>"#,
        &[],
    );
    assert_eq!(
        s.post("/api/setnextupdate/10.1.2.3", "eve-release/R120-15000.0.0")
            .status,
        200
    );
    // The JSON the page reads: newest first.
    let hosts: serde_json::Value = serde_json::from_slice(&s.get("/api/hosts").body).unwrap();
    assert_eq!(hosts[0]["ip"], "10.1.2.3");
    assert_eq!(hosts[1]["ip"], "127.0.0.1");
    assert_eq!(hosts[1]["board"], "eve");
    let newest: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hosts?limit=1").body).unwrap();
    assert_eq!(newest.as_array().unwrap().len(), 1);
    assert_eq!(s.get("/api/hosts?limit=x").status, 400);

    let page = s.get("/hosts");
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));

    // The DOM after the page's script ran (and refreshed a few times).
    let out = headless(
        &browser,
        &s.url("/hosts"),
        &["--virtual-time-budget=7000", "--dump-dom"],
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let first = dom.find("data-ip=\"10.1.2.3\"").expect(&dom);
    let second = dom.find("data-ip=\"127.0.0.1\"").expect(&dom);
    assert!(first < second, "newest first: {dom}");
    for expected in [
        "eve-release/R120-15000.0.0",
        "15000.0.0  {PLATFORM}",
        "update_complete: error (error 65)",
        "2 device(s), newest first",
    ] {
        assert!(dom.contains(expected), "{expected:?} missing from {dom}");
    }
    // Client text is shown as text, never as markup.
    assert!(dom.contains("{PLATFORM}_dlc&lt;b&gt;x"), "{dom}");
    assert!(!dom.contains("_dlc<b>x"), "{dom}");
    // Refreshed without a reload.
    let refreshes: u32 = dom
        .split("data-refreshes=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .and_then(|n| n.parse().ok())
        .expect(&dom);
    assert!(refreshes >= 2, "refreshes: {refreshes}");

    // A phone-sized screenshot, kept.
    let shot = artifacts().join("fleet-phone.png");
    let _ = std::fs::remove_file(&shot);
    headless(
        &browser,
        &s.url("/hosts"),
        &[
            "--virtual-time-budget=3000",
            "--window-size=390,844",
            &format!("--screenshot={}", shot.display()),
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
}
