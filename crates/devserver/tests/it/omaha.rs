//! Today's Omaha clients through the binary: multi-app requests (platform, DLCs, installs,
//! events and pings of every app), payloads described by nebraska-style metadata, the
//! runtime configuration endpoint, CoreOS/Flatcar (go-omaha) requests, and hostile requests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use quick_xml::events::Event;
use sha2::Digest as _;

use crate::support::*;

const PLATFORM: &str = "{PLATFORM-APP}";
const DLC1: &str = "{PLATFORM-APP}_dlc-one";
const DLC2: &str = "{PLATFORM-APP}_dlc-two";
const DLC3: &str = "{PLATFORM-APP}_dlc-unknown";
const DLC1_FULL: &[u8] = b"full payload of dlc one\n";
const DLC1_DELTA: &[u8] = b"delta of dlc one\n";
const DLC2_FULL: &[u8] = b"dlc two, full\n";

/// One `<app>` of a response, as the test reads it.
#[derive(Debug, PartialEq, Eq)]
struct AppAnswer {
    appid: String,
    ping: bool,
    events: usize,
    /// `updatecheck` status, when there is one.
    check: Option<String>,
    /// Package name of an update.
    package: Option<String>,
}

fn app(
    appid: &str,
    ping: bool,
    events: usize,
    check: Option<&str>,
    package: Option<&str>,
) -> AppAnswer {
    AppAnswer {
        appid: appid.to_string(),
        ping,
        events,
        check: check.map(str::to_string),
        package: package.map(str::to_string),
    }
}

fn apps_of(xml: &str) -> Vec<AppAnswer> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out: Vec<AppAnswer> = Vec::new();
    loop {
        match reader.read_event().expect("well-formed answer") {
            Event::Start(e) | Event::Empty(e) => {
                let attrs: HashMap<String, String> = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (
                            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                            a.unescape_value().unwrap().into_owned(),
                        )
                    })
                    .collect();
                match e.local_name().as_ref() {
                    b"app" => out.push(app(&attrs["appid"], false, 0, None, None)),
                    b"ping" => out.last_mut().unwrap().ping = true,
                    b"event" => out.last_mut().unwrap().events += 1,
                    b"updatecheck" => out.last_mut().unwrap().check = attrs.get("status").cloned(),
                    b"package" => out.last_mut().unwrap().package = attrs.get("name").cloned(),
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    out
}

fn metadata(dir: &std::path::Path, file: &str, json: serde_json::Value) {
    std::fs::write(dir.join(file), serde_json::to_vec(&json).unwrap()).unwrap();
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// A server with the test vector as platform payload and DLC payloads described by
/// metadata (DLC1 full and delta from 1.0.0, DLC2 full).
fn fleet_server(extra: &[&str]) -> (Server, tempfile::TempDir) {
    let payloads = tempfile::tempdir().unwrap();
    let p = payloads.path();
    std::fs::write(p.join("dlc1_full.bin"), DLC1_FULL).unwrap();
    std::fs::write(p.join("dlc1_delta.bin"), DLC1_DELTA).unwrap();
    std::fs::create_dir(p.join("two")).unwrap();
    std::fs::write(p.join("two/dlc2 full.bin"), DLC2_FULL).unwrap();
    metadata(
        p,
        "dlc1_full.bin.json",
        serde_json::json!({"appid": DLC1, "name": "dlc1_full.bin", "target_version": "2.0.0",
            "is_delta": false, "size": DLC1_FULL.len(), "sha256_hex": sha256_hex(DLC1_FULL),
            "metadata_size": 42, "metadata_signature": "c2lnbmF0dXJl"}),
    );
    metadata(
        p,
        "dlc1_delta.bin.json",
        serde_json::json!({"appid": DLC1, "name": "dlc1_delta.bin", "target_version": "2.0.0",
            "source_version": "1.0.0", "is_delta": true, "size": DLC1_DELTA.len(),
            "sha256_hex": sha256_hex(DLC1_DELTA), "metadata_size": 7}),
    );
    metadata(
        p,
        "dlc2.json",
        serde_json::json!({"appid": DLC2, "name": "two/dlc2 full.bin", "target_version": "2.0.0",
            "is_delta": false, "size": DLC2_FULL.len(), "sha256_hex": sha256_hex(DLC2_FULL)}),
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/update.gz"), VECTOR).unwrap();
    let mut args = vec!["--payload-metadata", p.to_str().unwrap(), "-l"];
    args.extend_from_slice(extra);
    (Server::start_in(dir, &args, &[]), payloads)
}

fn request_of(apps: &[(&str, &str, &str)]) -> String {
    // (appid, version, inner elements)
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" updater="ChromeOSUpdateEngine" updaterversion="0.1.0.0" ismachine="1">
  <os version="Indy" platform="Chrome OS" sp="1.0.0_x86_64"/>"#,
    );
    for (appid, version, inner) in apps {
        body.push_str(&format!(
            r#"<app appid="{appid}" version="{version}" track="stable-channel" board="amd64-generic" delta_okay="true">{inner}</app>"#
        ));
    }
    body.push_str("</request>");
    body
}

#[test]
fn multi_app_update_answers_every_app() {
    let (s, _payloads) = fleet_server(&[]);
    let body = request_of(&[
        (PLATFORM, "1.0.0", r#"<ping active="1"/><updatecheck/>"#),
        (DLC1, "1.0.0", "<updatecheck/>"),
        (DLC2, "1.0.0", r#"<ping active="1"/><updatecheck/>"#),
        (DLC3, "1.0.0", "<updatecheck/>"),
    ]);
    let xml = s.omaha("/update", &body, &[]);
    assert_eq!(
        apps_of(&xml),
        vec![
            app(PLATFORM, true, 0, Some("ok"), Some("update.gz")),
            app(DLC1, false, 0, Some("ok"), Some("dlc1_delta.bin")),
            app(DLC2, true, 0, Some("ok"), Some("dlc2%20full.bin")),
            app(DLC3, false, 0, Some("noupdate"), None),
        ],
        "{xml}"
    );
    // Each package downloads from its URL with the advertised size and hashes.
    let urls = elements(&xml, "url");
    let packages = elements(&xml, "package");
    let actions: Vec<_> = elements(&xml, "action")
        .into_iter()
        .filter(|a| a["event"] == "postinstall")
        .collect();
    assert_eq!(urls.len(), 3);
    for ((url, package), post) in urls.iter().zip(&packages).zip(&actions) {
        let r = get_with(&format!("{}{}", url["codebase"], package["name"]), &[]);
        assert_eq!(r.status, 200, "{url:?} {package:?}");
        assert_eq!(package["size"], r.body.len().to_string());
        // Upper case, as nebraska writes it.
        let hex = sha256_hex(&r.body).to_ascii_uppercase();
        assert_eq!(package["hash_sha256"], hex);
        assert_eq!(package["fp"], format!("1.{hex}"));
        assert_eq!(
            post["sha256"],
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&r.body))
        );
        assert_eq!(post["MaxDaysToScatter"], "14");
    }
    assert_eq!(actions[1]["IsDeltaPayload"], "true");
    assert_eq!(actions[1]["MetadataSize"], "7");
    assert_eq!(actions[2]["IsDeltaPayload"], "false");
    let versions: Vec<_> = elements(&xml, "manifest")
        .into_iter()
        .map(|m| m["version"].clone())
        .collect();
    assert_eq!(versions, ["9999.0.0", "2.0.0", "2.0.0"]);

    // Without delta_okay the full payload, with its metadata signature.
    let xml = s.omaha(
        "/update",
        &request_of(&[(DLC1, "1.0.0", "<updatecheck/>")]).replace("delta_okay=\"true\"", ""),
        &[],
    );
    assert_eq!(element(&xml, "package")["name"], "dlc1_full.bin");
    let post = &elements(&xml, "action")[1];
    assert_eq!(post["MetadataSize"], "42");
    assert_eq!(post["MetadataSignatureRsa"], "c2lnbmF0dXJl");
    // /payloads/ serves only the metadata directory.
    for path in [
        "/payloads/%2e%2e/etc/passwd",
        "/payloads//etc/passwd",
        "/payloads/dlc1_full.bin.json/x",
    ] {
        let (status, text) = raw(
            s.port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!((400..500).contains(&status), "{path}: {text}");
    }
    // Already at the target version: noupdate.
    let xml = s.omaha(
        "/update",
        &request_of(&[(DLC2, "2.0.0", "<updatecheck/>")]),
        &[],
    );
    assert_eq!(
        apps_of(&xml),
        vec![app(DLC2, false, 0, Some("noupdate"), None)]
    );
}

#[test]
fn install_events_and_pings_are_answered_per_app() {
    let (s, _payloads) = fleet_server(&[]);
    // An install: the platform without a check, DLCs at 0.0.0.0.
    let body = request_of(&[
        (PLATFORM, "1.0.0", ""),
        (DLC1, "0.0.0.0", "<updatecheck/>"),
        (DLC2, "0.0.0.0", "<updatecheck/>"),
    ]);
    let xml = s.omaha("/update", &body, &[]);
    // nebraska's install shape: the platform app's status says noupdate, no <updatecheck>.
    assert_eq!(elements(&xml, "app")[0]["status"], "noupdate", "{xml}");
    assert_eq!(elements(&xml, "app")[1]["status"], "ok", "{xml}");
    assert_eq!(
        apps_of(&xml),
        vec![
            app(PLATFORM, false, 0, None, None),
            app(DLC1, false, 0, Some("ok"), Some("dlc1_full.bin")),
            app(DLC2, false, 0, Some("ok"), Some("dlc2%20full.bin")),
        ],
        "{xml}"
    );
    // Events of apps 2..n are acknowledged, one ack per event, and only there.
    let body = request_of(&[
        (PLATFORM, "1.0.0", r#"<ping active="1"/>"#),
        (
            DLC1,
            "2.0.0",
            r#"<event eventtype="13" eventresult="1"/><event eventtype="14" eventresult="1"/>"#,
        ),
        (
            DLC2,
            "2.0.0",
            r#"<event eventtype="3" eventresult="0" errorcode="65"/>"#,
        ),
    ]);
    let xml = s.omaha("/update", &body, &[]);
    assert_eq!(
        apps_of(&xml),
        vec![
            app(PLATFORM, true, 0, None, None),
            app(DLC1, false, 2, None, None),
            app(DLC2, false, 1, None, None),
        ],
        "{xml}"
    );
    // The host log keeps every event with its app and error code.
    let log: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostlog/127.0.0.1").body).unwrap();
    let last = log.as_array().unwrap().last().unwrap();
    assert_eq!(
        last["events"],
        serde_json::json!([
            {"appid": DLC1, "event_type": 13, "event_result": 1, "error_code": null},
            {"appid": DLC1, "event_type": 14, "event_result": 1, "error_code": null},
            {"appid": DLC2, "event_type": 3, "event_result": 0, "error_code": 65},
        ])
    );
    let info: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostinfo/127.0.0.1").body).unwrap();
    assert_eq!(info["versions"][DLC1], "2.0.0");
    assert_eq!(info["last_event"]["error_code"], 65);
}

#[test]
fn install_metadata_is_kept_apart_as_nebraska_does() {
    let install = tempfile::tempdir().unwrap();
    let payload = b"install image of dlc one\n";
    std::fs::write(install.path().join("dlc1.install.bin"), payload).unwrap();
    metadata(
        install.path(),
        "dlc1.install.json",
        serde_json::json!({"appid": DLC1, "name": "dlc1.install.bin", "target_version": "2.0.0",
            "size": payload.len(), "sha256_hex": sha256_hex(payload)}),
    );
    let (s, _payloads) = fleet_server(&["--install-metadata", install.path().to_str().unwrap()]);
    // An install of DLC1 comes from the install directory; DLC2 (not there) from the update one.
    let body = request_of(&[
        (PLATFORM, "1.0.0", ""),
        (DLC1, "0.0.0.0", "<updatecheck/>"),
        (DLC2, "0.0.0.0", "<updatecheck/>"),
    ]);
    let xml = s.omaha("/update", &body, &[]);
    assert_eq!(
        apps_of(&xml),
        vec![
            app(PLATFORM, false, 0, None, None),
            app(DLC1, false, 0, Some("ok"), Some("dlc1.install.bin")),
            app(DLC2, false, 0, Some("ok"), Some("dlc2%20full.bin")),
        ],
        "{xml}"
    );
    let urls = elements(&xml, "url");
    assert_eq!(urls[0]["codebase"], s.url("/install-payloads/"));
    assert_eq!(urls[1]["codebase"], s.url("/payloads/two/"));
    assert_eq!(
        get_with(&format!("{}dlc1.install.bin", urls[0]["codebase"]), &[]).body,
        payload
    );
    // An update of DLC1 still comes from the update directory.
    let xml = s.omaha(
        "/update",
        &request_of(&[(DLC1, "1.0.0", "<updatecheck/>")]),
        &[],
    );
    assert_eq!(element(&xml, "package")["name"], "dlc1_delta.bin");
}

#[test]
fn update_config_steers_the_next_answers() {
    let (s, _payloads) = fleet_server(&[]);
    let check = request_of(&[
        (PLATFORM, "1.0.0", "<updatecheck/>"),
        (DLC2, "1.0.0", "<updatecheck/>"),
    ]);
    let r = s.post("/update_config", r#"{"no_update": true}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = s.omaha("/update", &check, &[]);
    assert_eq!(
        apps_of(&xml),
        vec![
            app(PLATFORM, false, 0, Some("noupdate"), None),
            app(DLC2, false, 0, Some("noupdate"), None)
        ]
    );
    let r = s.post(
        "/update_config",
        r#"{"no_update": false, "critical_update": true, "disable_payload_backoff": true,
            "failures_per_url": 3, "eol_date": 19000, "is_rollback": true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let shown: serde_json::Value = serde_json::from_slice(&s.get("/update_config").body).unwrap();
    assert_eq!(shown["failures_per_url"], 3);
    let xml = s.omaha("/update", &check, &[]);
    for post in elements(&xml, "action")
        .iter()
        .filter(|a| a["event"] == "postinstall")
    {
        assert_eq!(post["deadline"], "now");
        assert_eq!(post["DisablePayloadBackoff"], "true");
        assert_eq!(post["MaxFailureCountPerUrl"], "3");
    }
    // A rollback goes only to apps that allow one (nebraska's rule), with nebraska's key
    // versions.
    for check in elements(&xml, "updatecheck") {
        assert_eq!(check["_eol_date"], "19000");
        assert!(!check.contains_key("_rollback"), "{xml}");
    }
    let allowing = request_of(&[
        (
            PLATFORM,
            "1.0.0",
            r#"<updatecheck rollback_allowed="true"/>"#,
        ),
        (DLC2, "1.0.0", "<updatecheck/>"),
    ]);
    let xml = s.omaha("/update", &allowing, &[]);
    let checks = elements(&xml, "updatecheck");
    assert_eq!(checks[0]["_rollback"], "true", "{xml}");
    for suffix in ["", "_0", "_1", "_2", "_3", "_4"] {
        assert_eq!(checks[0][&format!("_firmware_version{suffix}")], "1.1");
        assert_eq!(checks[0][&format!("_kernel_version{suffix}")], "1.1");
    }
    assert!(!checks[1].contains_key("_rollback"), "{xml}");
    // Bad configurations are refused and change nothing.
    assert_eq!(
        s.post("/update_config", r#"{"critical": true}"#).status,
        400
    );
    assert_eq!(s.post("/update_config", "[1]").status, 400);
    assert_eq!(
        s.post("/update_config", r#"{"failures_per_url": "x"}"#)
            .status,
        400
    );
    let shown: serde_json::Value = serde_json::from_slice(&s.get("/update_config").body).unwrap();
    assert_eq!(shown["failures_per_url"], 3);
}

/// What go-omaha's client sends: root `version="go-omaha"`, no board, no hardware class,
/// `machineid`/`bootid`, to `/v1/update/`.
fn go_omaha_request(with_ping: bool) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="go-omaha" userid="machine-1" sessionid="s-1"><os platform="linux" version="5.15" arch="amd64"></os><app appid="{{e96281a6-d1af-4bde-9a0a-97b76e56dc57}}" version="1.0.0" track="stable" machineid="machine-1" bootid="s-1">{}<updatecheck></updatecheck><event eventtype="3" eventresult="2"></event></app></request>"#,
        if with_ping { "<ping></ping>" } else { "" }
    )
}

#[test]
fn go_omaha_request_is_answered_in_its_own_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/update.gz"), VECTOR).unwrap();
    let s = Server::start_in(dir, &[], &[]);
    let xml = s.omaha("/v1/update/", &go_omaha_request(false), &[]);
    let answer = apps_of(&xml);
    assert_eq!(
        answer,
        vec![app(
            "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}",
            false,
            1,
            Some("ok"),
            Some("update.gz")
        )],
        "{xml}"
    );
    // Package.Verify of go-omaha: size, base64 SHA-1 and base64 SHA-256 of the download.
    let pkg = element(&xml, "package");
    let url = format!("{}{}", element(&xml, "url")["codebase"], pkg["name"]);
    let bytes = get_with(&url, &[]).body;
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(pkg["size"], bytes.len().to_string());
    assert_eq!(pkg["hash"], b64.encode(sha1::Sha1::digest(&bytes)));
    assert_eq!(pkg["hash_sha256"], b64.encode(sha2::Sha256::digest(&bytes)));
    let post = &elements(&xml, "action")[1];
    assert_eq!(post["IsDelta"], "false");
    assert!(!post.contains_key("IsDeltaPayload"));
    // Flatcar's update_engine: its own updater name and platform, board and group sent.
    let flatcar = r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" version="update_engine-0.4.10" updaterversion="update_engine-0.4.10" installsource="scheduler" ismachine="1">
<os version="Chateau" platform="CoreOS" sp="3510.2.0_x86_64"></os>
<app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="3510.2.0" track="stable" bootid="{b}" oem="qemu" oemversion="" alephversion="3510.2.0" machineid="m" lang="en-US" board="amd64-usr" hardware_class="" delta_okay="false">
<ping active="1"></ping><updatecheck></updatecheck><event eventtype="3" eventresult="2" previousversion=""></event>
</app></request>"#;
    let xml = s.omaha("/v1/update/", flatcar, &[]);
    let pkg = element(&xml, "package");
    assert_eq!(pkg["hash_sha256"], VECTOR_SHA256_B64, "{xml}");
    assert_eq!(pkg["hash"], VECTOR_SHA1);
    assert_eq!(elements(&xml, "action")[1]["sha256"], VECTOR_SHA256_B64);
    assert_eq!(
        apps_of(&xml),
        vec![app(
            "{e96281a6-d1af-4bde-9a0a-97b76e56dc57}",
            true,
            1,
            Some("ok"),
            Some("update.gz")
        )]
    );
    // A ping is acknowledged when sent.
    let xml = s.omaha("/v1/update", &go_omaha_request(true), &[]);
    assert!(apps_of(&xml)[0].ping);
    // --omaha-flavor chromeos forces the hex form.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/update.gz"), VECTOR).unwrap();
    let s = Server::start_in(dir, &["--omaha-flavor", "chromeos"], &[]);
    let xml = s.omaha("/v1/update/", &go_omaha_request(false), &[]);
    assert_eq!(
        element(&xml, "package")["hash_sha256"],
        VECTOR_SHA256_HEX.to_ascii_uppercase()
    );
}

#[test]
fn hostile_update_requests_get_4xx_quickly_and_never_stall_the_server() {
    let s = Server::start(&[]);
    // 95,000 attributes in about 950 KB.
    let mut attrs = String::new();
    for i in 0..95_000 {
        attrs.push_str(&format!(" a{i}=\"\""));
    }
    let huge =
        format!(r#"<request protocol="3.0"><app appid="x"{attrs}><updatecheck/></app></request>"#);
    assert!(huge.len() < 1024 * 1024);
    let many_apps = format!(
        r#"<request protocol="3.0">{}</request>"#,
        r#"<app appid="d"><updatecheck/></app>"#.repeat(5_000)
    );
    let many_events = format!(
        r#"<request protocol="3.0"><app appid="d">{}</app></request>"#,
        r#"<event eventtype="3"/>"#.repeat(5_000)
    );
    let deep = format!(
        r#"<request protocol="3.0"><app/>{}{}</request>"#,
        "<x>".repeat(10_000),
        "</x>".repeat(10_000)
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("attributes", huge.into_bytes(), "more than 128 attributes"),
        ("apps", many_apps.into_bytes(), "more than 256 <app>"),
        ("events", many_events.into_bytes(), "more than 32 events"),
        ("depth", deep.into_bytes(), "nested deeper"),
        ("utf-8", b"<request protocol=\"3.0\"><app appid=\"\xff\xfe\"/></request>".to_vec(), "malformed"),
        ("entity", b"<!DOCTYPE r [<!ENTITY a \"aaaa\">]><request protocol=\"3.0\"><app appid=\"&a;\"/></request>".to_vec(), "malformed"),
    ];
    let port = s.port;
    // A steady stream of GET / while the hostile requests are parsed.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut worst = Duration::ZERO;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                let r = get_with(&format!("http://127.0.0.1:{port}/"), &[]);
                assert_eq!(r.status, 200);
                worst = worst.max(t.elapsed());
                std::thread::sleep(Duration::from_millis(5));
            }
            worst
        })
    };
    for (what, body, reason) in &cases {
        let t = Instant::now();
        let r = request("POST", &s.url("/update"), &[], body);
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{what} took {:?}",
            t.elapsed()
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = prober.join().unwrap();
    assert!(
        worst < Duration::from_secs(2),
        "GET / stalled for {worst:?}"
    );
    // DLC ids with path characters are just unknown apps.
    let xml = s.omaha(
        "/update",
        &request_of(&[("../../etc/passwd", "1.0.0", "<updatecheck/>")]),
        &[],
    );
    assert_eq!(element(&xml, "updatecheck")["status"], "ok");
    let xml = s.omaha(
        "/update",
        &request_of(&[
            (PLATFORM, "1.0.0", "<updatecheck/>"),
            ("../x/%2e", "0.0.0.0", "<updatecheck/>"),
        ]),
        &[],
    );
    assert_eq!(elements(&xml, "updatecheck")[1]["status"], "noupdate");
}

#[test]
fn setnextupdate_validates_labels_and_bounds_memory() {
    let s = Server::start(&[]);
    let big = "a".repeat(1024 * 1024);
    for i in 0..50 {
        let r = s.post(&format!("/api/setnextupdate/10.0.0.{i}"), &big);
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("longer than 512 bytes"), "{}", r.text());
    }
    let health: serde_json::Value = serde_json::from_slice(&s.get("/check_health").body).unwrap();
    assert_eq!(health["hosts"], 0);
    for bad in ["a\nb/c", "../x", "/abs/../..", "a\\b", "x/\u{7f}"] {
        let r = s.post("/api/setnextupdate/10.0.0.1", bad);
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text());
    }
    // A host key that is neither an address nor a name is refused.
    let r = s.post(&format!("/api/setnextupdate/{}", "h".repeat(300)), "lbl");
    assert_eq!(r.status, 400);
    // A label that does not exist yet is fine.
    assert_eq!(
        s.post("/api/setnextupdate/10.0.0.1", "later/R99-1.0.0")
            .status,
        200
    );
    let info: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostinfo/10.0.0.1").body).unwrap();
    assert_eq!(info["forced_update_label"], "later/R99-1.0.0");
}

#[test]
fn metrics_count_checks_by_answer_events_by_result_and_bytes() {
    let (s, _payloads) = fleet_server(&[]);
    let body = request_of(&[
        (PLATFORM, "1.0.0", "<updatecheck/>"),
        (DLC1, "2.0.0", "<updatecheck/>"),
        (DLC2, "1.0.0", "<updatecheck/>"),
        (
            DLC3,
            "1.0.0",
            r#"<updatecheck/><event eventtype="3" eventresult="0" errorcode="7"/>"#,
        ),
    ]);
    s.omaha("/update", &body, &[]);
    s.omaha(
        "/update",
        &request_of(&[(
            PLATFORM,
            "1.0.0",
            r#"<event eventtype="3" eventresult="2"/>"#,
        )]),
        &[],
    );
    assert_eq!(s.get("/static/update.gz").body, VECTOR);
    assert_eq!(s.get("/nothing-here").status, 404);
    let r = s.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .starts_with("application/openmetrics-text"));
    let text = r.text();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    // Platform and DLC2 updated; DLC1 is current, DLC3 unknown.
    assert_eq!(
        value("cibox_serve_update_checks_total{answer=\"update\"}"),
        2.0
    );
    assert_eq!(
        value("cibox_serve_update_checks_total{answer=\"noupdate\"}"),
        2.0
    );
    assert_eq!(value("cibox_serve_events_total{result=\"error\"}"), 1.0);
    assert_eq!(
        value("cibox_serve_events_total{result=\"success_reboot\"}"),
        1.0
    );
    assert_eq!(value("cibox_serve_http_requests_total{code=\"2xx\"}"), 3.0);
    assert_eq!(value("cibox_serve_http_requests_total{code=\"4xx\"}"), 1.0);
    assert!(value("cibox_serve_http_response_bytes_total") >= VECTOR.len() as f64);
    assert_eq!(
        value("cibox_serve_http_request_duration_seconds_count"),
        4.0
    );
}

#[test]
fn a_described_payload_missing_on_disk_is_no_update_never_an_answer_without_its_hash() {
    let (s, payloads) = fleet_server(&[]);
    // DLC2's payload goes away after start-up: its metadata still names it.
    std::fs::remove_file(payloads.path().join("two/dlc2 full.bin")).unwrap();
    let body = request_of(&[
        (DLC1, "2.0.0", "<updatecheck/>"),
        (DLC2, "1.0.0", "<updatecheck/>"),
    ]);
    let xml = s.omaha("/update", &body, &[]);
    assert_eq!(
        apps_of(&xml),
        vec![
            app(DLC1, false, 0, Some("noupdate"), None),
            app(DLC2, false, 0, Some("noupdate"), None),
        ],
        "{xml}"
    );
    assert!(!xml.contains(r#"hash="""#), "{xml}");
}

/// A 38-character appid, as ChromeOS boards have, and the canary appid standing for it.
const RELEASE: &str = "{DEADBEEF-0000-0000-0000-000000000001}";
const CANARY: &str = "{90F229CE-83E2-4FAF-8479-E368A34938B1}";

/// A metadata directory written as paygen writes it and nebraska reads it: no `name` (the
/// payload is the JSON file's name without `.json`), `sha256_hex` holding base64, a null
/// signature and a public key.
fn paygen_dir(payload: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("chromeos_R1_full.bin"), payload).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    metadata(
        dir.path(),
        "chromeos_R1_full.bin.json",
        serde_json::json!({"appid": RELEASE, "target_version": "2.0.0", "is_delta": false,
            "source_version": null, "size": payload.len(),
            "sha256_hex": b64.encode(sha2::Sha256::digest(payload)),
            "metadata_size": 11, "metadata_signature": null, "public_key": "UFVCS0VZ"}),
    );
    metadata(
        dir.path(),
        "dlc.bin.json",
        serde_json::json!({"appid": format!("{RELEASE}_dlc"), "target_version": "2.0.0",
            "is_delta": false, "size": 3, "sha256_hex": b64.encode(sha2::Sha256::digest(b"dlc")),
            "metadata_size": 1, "metadata_signature": "c2ln"}),
    );
    std::fs::write(dir.path().join("dlc.bin"), b"dlc").unwrap();
    dir
}

fn check_of(appid: &str) -> String {
    request_of(&[(appid, "1.0.0", "<updatecheck/>")])
}

#[test]
fn paygen_metadata_is_read_as_nebraska_reads_it() {
    let payload = b"a full payload, as paygen names it\n";
    let dir = paygen_dir(payload);
    let s = Server::start(&["--payload-metadata", dir.path().to_str().unwrap()]);
    let xml = s.omaha("/update", &check_of(RELEASE), &[]);
    let package = element(&xml, "package");
    assert_eq!(package["name"], "chromeos_R1_full.bin", "{xml}");
    // Hex in upper case, as nebraska writes it (base64.b16encode).
    let hex = sha256_hex(payload).to_ascii_uppercase();
    assert_eq!(package["hash_sha256"], hex);
    assert_eq!(package["fp"], format!("1.{hex}"));
    let post = elements(&xml, "action")
        .into_iter()
        .find(|a| a["event"] == "postinstall")
        .unwrap();
    assert_eq!(post["PublicKeyRsa"], "UFVCS0VZ", "{xml}");
    assert_eq!(post["MetadataSignatureRsa"], "", "{xml}");
    assert_eq!(post["MetadataSize"], "11");
    assert_eq!(post["ChromeVersion"], "1.0.0.0");
    assert_eq!(post["DisablePayloadBackoff"], "false");
    let url = &element(&xml, "url")["codebase"];
    assert_eq!(
        get_with(&format!("{url}chromeos_R1_full.bin"), &[]).body,
        payload
    );
}

#[test]
fn canary_appid_is_answered_with_the_release_payload() {
    let dir = paygen_dir(b"release\n");
    let s = Server::start(&["--payload-metadata", dir.path().to_str().unwrap()]);
    let body = request_of(&[
        (CANARY, "1.0.0", "<updatecheck/>"),
        (&format!("{CANARY}_dlc"), "1.0.0", "<updatecheck/>"),
    ]);
    let xml = s.omaha("/update", &body, &[]);
    assert_eq!(
        apps_of(&xml),
        vec![
            app(CANARY, false, 0, Some("ok"), Some("chromeos_R1_full.bin")),
            app(
                &format!("{CANARY}_dlc"),
                false,
                0,
                Some("ok"),
                Some("dlc.bin")
            ),
        ],
        "{xml}"
    );
}

#[test]
fn update_query_steers_that_answer() {
    let (s, _payloads) = fleet_server(&[]);
    let check = request_of(&[(DLC1, "1.0.0", "<updatecheck/>")]);
    let xml = s.omaha(
        "/update?critical_update=True&num_urls=2&failures_per_url=4&eol_date=100\
         &disable_payload_backoff=True&full_payload=True&unknown=1",
        &check,
        &[],
    );
    let post = elements(&xml, "action")
        .into_iter()
        .find(|a| a["event"] == "postinstall")
        .unwrap();
    assert_eq!(post["deadline"], "now", "{xml}");
    assert_eq!(post["MaxFailureCountPerUrl"], "4");
    assert_eq!(post["DisablePayloadBackoff"], "true");
    assert_eq!(elements(&xml, "url").len(), 2);
    assert_eq!(element(&xml, "updatecheck")["_eol_date"], "100");
    // full_payload=True: the full payload, though the client takes a delta.
    assert_eq!(element(&xml, "package")["name"], "dlc1_full.bin");
    // Only that answer: the next one is steered by /update_config alone.
    let xml = s.omaha("/update", &check, &[]);
    assert_eq!(element(&xml, "package")["name"], "dlc1_delta.bin");
    assert!(!xml.contains("deadline"), "{xml}");
    let xml = s.omaha("/update/?no_update=True", &check, &[]);
    assert_eq!(element(&xml, "updatecheck")["status"], "noupdate");
    // critical_update=true is not True: false, as nebraska reads it.
    let xml = s.omaha("/update?critical_update=true", &check, &[]);
    assert!(!xml.contains("deadline"), "{xml}");
    let r = s.post("/update?eol_date=soon", &check);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("eol_date"), "{}", r.text());
}

#[test]
fn update_config_takes_nebraska_fields() {
    let (s, _payloads) = fleet_server(&[]);
    let dlc1 = request_of(&[(DLC1, "1.0.0", "<updatecheck/>")]);
    let r = s.post(
        "/update_config",
        r#"{"full_payload": false, "num_urls": 3, "ignore_appid": true,
            "update_payloads_address": "http://payloads.example/base"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = s.omaha("/update", &dlc1, &[]);
    assert_eq!(element(&xml, "package")["name"], "dlc1_delta.bin", "{xml}");
    let urls = elements(&xml, "url");
    assert_eq!(urls.len(), 3);
    assert_eq!(urls[0]["codebase"], "http://payloads.example/base/");
    // full_payload=false and a client that takes no delta: nothing to offer.
    let no_delta = dlc1.replace(r#"delta_okay="true""#, r#"delta_okay="false""#);
    let xml = s.omaha("/update", &no_delta, &[]);
    assert_eq!(element(&xml, "updatecheck")["status"], "noupdate", "{xml}");
    // ignore_appid: an app nothing is described for gets a payload of another app, and one
    // payload never answers two apps of a request.
    let r = s.post("/update_config", r#"{"full_payload": null}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = s.omaha(
        "/update",
        &request_of(&[
            ("{SOME-OTHER-APP}", "0.1.0", "<updatecheck/>"),
            ("{YET-ANOTHER-APP}", "0.1.0", "<updatecheck/>"),
        ]),
        &[],
    );
    let names: Vec<String> = elements(&xml, "package")
        .into_iter()
        .map(|p| p["name"].clone())
        .collect();
    assert_eq!(names.len(), 2, "{xml}");
    assert_ne!(names[0], names[1], "{xml}");
    // return_noupdate_starting=2: the first check is answered, the second and later not.
    let r = s.post(
        "/update_config",
        r#"{"ignore_appid": false, "num_urls": 1, "return_noupdate_starting": 2}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let status = |xml: &str| element(xml, "updatecheck")["status"].clone();
    assert_eq!(status(&s.omaha("/update", &dlc1, &[])), "ok");
    assert_eq!(status(&s.omaha("/update", &dlc1, &[])), "noupdate");
    assert_eq!(status(&s.omaha("/update", &dlc1, &[])), "noupdate");
    // invalidate_last_update: noupdate that says so.
    let r = s.post(
        "/update_config",
        r#"{"no_update": false, "return_noupdate_starting": 0, "invalidate_last_update": true}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let xml = s.omaha("/update", &dlc1, &[]);
    let check = element(&xml, "updatecheck");
    assert_eq!(check["status"], "noupdate");
    assert_eq!(check["_invalidate_last_update"], "true", "{xml}");
    // Metadata directories are chosen at start-up, not by a request.
    let r = s.post("/update_config", r#"{"update_metadata": "/etc"}"#);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("update_metadata"), "{}", r.text());
}

#[test]
fn health_check_answers_200() {
    let s = Server::start(&[]);
    let r = s.get("/health_check");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("alive"), "{}", r.text());
}

#[test]
fn control_character_references_are_refused_not_echoed() {
    let s = Server::start(&[]);
    for reference in ["&#1;", "&#x1F;", "&#xFFFE;"] {
        let body = check_of(&format!("{{APP{reference}}}"));
        let r = s.post("/update", &body);
        assert_eq!(r.status, 400, "{reference}: {}", r.text());
        assert!(r.text().contains("XML 1.0"), "{}", r.text());
    }
    // Characters XML allows, written as references, are still fine and come back escaped.
    let xml = s.omaha("/update", &check_of("{APP&#x9;&#xE9;&amp;}"), &[]);
    let mut reader = quick_xml::Reader::from_str(&xml);
    while !matches!(reader.read_event().expect("well-formed answer"), Event::Eof) {}
}
