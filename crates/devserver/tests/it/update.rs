//! `/update` (Omaha 2.0 and 3.0) and the host API.

use std::collections::HashMap;

use crate::support::*;

fn vector_server(args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("static")).unwrap();
    std::fs::write(dir.path().join("static/update.gz"), VECTOR).unwrap();
    Server::start_in(dir, args, &[])
}

#[test]
fn test_vector_update_3_0() {
    let s = vector_server(&[]);
    let xml = s.omaha("/update", &v3_check(APPID, "1.0.0", "x86-generic"), &[]);
    assert_eq!(root_name(&xml), "response");
    assert_eq!(element(&xml, "response")["protocol"], "3.0");
    let app = element(&xml, "app");
    assert_eq!(app["appid"], APPID);
    assert_eq!(app["status"], "ok");
    assert_eq!(element(&xml, "updatecheck")["status"], "ok");
    let codebase = element(&xml, "url")["codebase"].clone();
    assert_eq!(codebase, s.url("/static/"));
    let pkg = element(&xml, "package");
    assert_eq!(pkg["name"], "update.gz");
    assert_eq!(pkg["size"], "36");
    assert_eq!(pkg["hash"], VECTOR_SHA1);
    assert_eq!(pkg["hash_sha256"], VECTOR_SHA256_HEX.to_ascii_uppercase());
    let actions = elements(&xml, "action");
    assert_eq!(actions[0]["event"], "update");
    assert_eq!(actions[0]["run"], "update.gz");
    assert_eq!(actions[1]["event"], "postinstall");
    assert_eq!(actions[1]["sha256"], VECTOR_SHA256_B64);
    assert_eq!(actions[1]["IsDeltaPayload"], "false");
    assert!(!actions[1].contains_key("deadline"));
    let day = element(&xml, "daystart");
    assert!(day["elapsed_seconds"].parse::<u32>().unwrap() < 86_400);
    assert!(day["elapsed_days"].parse::<u32>().unwrap() > 6_000);
    // The payload URL downloads the payload.
    let r = get_with(&format!("{codebase}{}", pkg["name"]), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, VECTOR);
}

#[test]
fn demo_payload_when_nothing_configured() {
    let s = Server::start(&[]);
    let xml = s.omaha("/update", &v3_check(APPID, "1.0.0", "amd64-generic"), &[]);
    let pkg = element(&xml, "package");
    assert_eq!(pkg["hash"], VECTOR_SHA1);
    assert_eq!(
        std::fs::read(s.static_dir().join("update.gz")).unwrap(),
        VECTOR
    );
    assert!(
        s.stderr_shows("demo payload", std::time::Duration::from_secs(10)),
        "{}",
        s.stderr_text()
    );
    let url = format!("{}{}", element(&xml, "url")["codebase"], pkg["name"]);
    assert_eq!(get_with(&url, &[]).body, VECTOR);
}

#[test]
fn update_2_0() {
    let s = vector_server(&[]);
    let xml = s.omaha("/update", &v2_check(), &[]);
    assert_eq!(root_name(&xml), "gupdate");
    let root = element(&xml, "gupdate");
    assert_eq!(root["xmlns"], "http://www.google.com/update2/response");
    assert_eq!(root["protocol"], "2.0");
    assert_eq!(
        element(&xml, "app")["appid"],
        "{87efface-864d-49a5-9bb3-4b050a7c227a}"
    );
    let uc = element(&xml, "updatecheck");
    assert_eq!(uc["status"], "ok");
    assert_eq!(uc["codebase"], s.url("/static/update.gz"));
    assert_eq!(uc["hash"], VECTOR_SHA1);
    assert_eq!(uc["sha256"], VECTOR_SHA256_B64);
    assert_eq!(uc["size"], "36");
    assert_eq!(uc["IsDelta"], "false");
    assert_eq!(uc["needsadmin"], "false");
}

#[test]
fn noupdate_without_payload() {
    let s = Server::start(&["--no-demo"]);
    for body in [v3_check(APPID, "1.0.0", "x86-generic"), v2_check()] {
        let xml = s.omaha("/update", &body, &[]);
        assert_eq!(element(&xml, "updatecheck")["status"], "noupdate");
        assert!(elements(&xml, "package").is_empty());
    }
    // A label without a directory: noupdate as well, never an error.
    let xml = s.omaha("/update/no/such/label", &v3_check(APPID, "1", "b"), &[]);
    assert_eq!(element(&xml, "updatecheck")["status"], "noupdate");
    assert!(!s.static_dir().join("update.gz").exists());
}

#[test]
fn event_ack_and_hostinfo() {
    let s = vector_server(&[]);
    let xml = s.omaha("/update", &v3_event(3, 2), &[]);
    assert_eq!(element(&xml, "event")["status"], "ok");
    assert!(elements(&xml, "updatecheck").is_empty());
    for path in ["/api/hostinfo/127.0.0.1", "/api/hostinfo?ip=127.0.0.1"] {
        let r = s.get(path);
        assert_eq!(r.status, 200);
        let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(info["last_event_type"], 3);
        assert_eq!(info["last_event_status"], 2);
        assert_eq!(info["last_known_version"], "1.0.0");
    }
    let unknown: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostinfo/10.9.8.7").body).unwrap();
    assert_eq!(unknown, serde_json::json!({}));
}

#[test]
fn critical_update() {
    let s = vector_server(&["--critical_update"]);
    let xml = s.omaha("/update", &v3_check(APPID, "1.0.0", "x86-generic"), &[]);
    let post = elements(&xml, "action")
        .into_iter()
        .find(|a| a["event"] == "postinstall")
        .unwrap();
    assert_eq!(post["deadline"], "now");
    let xml = s.omaha("/update", &v2_check(), &[]);
    assert_eq!(element(&xml, "updatecheck")["deadline"], "now");
}

#[test]
fn labels_and_setnextupdate_used_once() {
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("static");
    for (label, content) in [
        ("", "root\n"),
        ("lbl/a", "labelled\n"),
        ("forced", "forced!\n"),
    ] {
        std::fs::create_dir_all(st.join(label)).unwrap();
        std::fs::write(st.join(label).join("update.gz"), content).unwrap();
    }
    let s = Server::start_in(dir, &[], &[]);
    let check = v3_check(APPID, "1.0.0", "x86-generic");
    let codebase = |xml: &str| element(xml, "url")["codebase"].clone();
    let size = |xml: &str| element(xml, "package")["size"].clone();

    let xml = s.omaha("/update/lbl/a", &check, &[]);
    assert_eq!(codebase(&xml), s.url("/static/lbl/a/"));
    assert_eq!(size(&xml), "9");

    assert_eq!(s.post("/api/setnextupdate/127.0.0.1", "  \n").status, 400);
    assert!(s
        .post("/api/setnextupdate/127.0.0.1", "")
        .text()
        .contains("No label provided."));
    assert_eq!(s.post("/api/setnextupdate/127.0.0.1", "../etc").status, 400);
    assert_eq!(
        s.post("/api/setnextupdate/127.0.0.1", "forced\n").status,
        200
    );
    let info: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostinfo/127.0.0.1").body).unwrap();
    assert_eq!(info["forced_update_label"], "forced");

    // An event report does not use up the forced label.
    s.omaha("/update", &v3_event(1, 1), &[]);
    let xml = s.omaha("/update/lbl/a", &check, &[]);
    assert_eq!(codebase(&xml), s.url("/static/forced/"));
    assert_eq!(size(&xml), "8");
    // Used once: the next check is back to its own label.
    let xml = s.omaha("/update", &check, &[]);
    assert_eq!(codebase(&xml), s.url("/static/"));
    assert_eq!(size(&xml), "5");
    let info: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostinfo/127.0.0.1").body).unwrap();
    assert!(info.get("forced_update_label").is_none(), "{info}");

    // A label escaping the static dir is refused (raw: HTTP clients normalise `%2e%2e`).
    let req = format!(
        "POST /update/%2e%2e/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{check}",
        check.len()
    );
    let (status, text) = raw(s.port, req.as_bytes());
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("bad label"), "{text}");
}

#[test]
fn urlbase_proxy_port_and_forwarded_host() {
    let check = v3_check(APPID, "1.0.0", "x86-generic");
    let codebase = |xml: &str| element(xml, "url")["codebase"].clone();

    let s = vector_server(&["--urlbase", "http://mirror.example/base/"]);
    std::fs::create_dir(s.static_dir().join("lbl")).unwrap();
    std::fs::write(s.static_dir().join("lbl/update.gz"), VECTOR).unwrap();
    assert_eq!(
        codebase(&s.omaha("/update", &check, &[])),
        "http://mirror.example/base/"
    );
    assert_eq!(
        codebase(&s.omaha("/update/lbl", &check, &[])),
        "http://mirror.example/base/lbl/"
    );
    drop(s);

    let s = vector_server(&["--proxy_port", "9999"]);
    assert_eq!(
        codebase(&s.omaha("/update", &check, &[])),
        "http://127.0.0.1:9999/static/"
    );
    let xml = s.omaha(
        "/update",
        &check,
        &[("X-Forwarded-Host", "devbox.example:1234")],
    );
    assert_eq!(codebase(&xml), "http://devbox.example:9999/static/");
    drop(s);

    let s = vector_server(&["-u", "http://other.example"]);
    let xml = s.omaha("/update", &v2_check(), &[]);
    assert_eq!(
        element(&xml, "updatecheck")["codebase"],
        "http://other.example/update.gz"
    );
    drop(s);

    let s = vector_server(&[]);
    let xml = s.omaha(
        "/update",
        &check,
        &[("X-Forwarded-Host", "devbox.example:1234, proxy.internal")],
    );
    assert_eq!(codebase(&xml), "http://devbox.example:1234/static/");
    let xml = s.omaha("/update", &check, &[("Host", "named.example:80")]);
    assert_eq!(codebase(&xml), "http://named.example:80/static/");
}

#[test]
fn payload_hashes_follow_file_changes() {
    let s = vector_server(&[]);
    let check = v3_check(APPID, "1.0.0", "x86-generic");
    let first = element(&s.omaha("/update", &check, &[]), "package");
    assert_eq!(first["hash"], VECTOR_SHA1);
    std::fs::write(
        s.static_dir().join("update.gz"),
        b"a new payload, 29 bytes long\n",
    )
    .unwrap();
    let second = element(&s.omaha("/update", &check, &[]), "package");
    assert_eq!(second["size"], "29");
    assert_ne!(second["hash"], first["hash"]);
    let info: serde_json::Value =
        serde_json::from_slice(&s.get("/api/fileinfo/update.gz").body).unwrap();
    assert_eq!(info["size"], 29);
    assert_eq!(info["sha1"], second["hash"].as_str());
}

#[test]
fn malformed_and_unknown_protocol_are_400() {
    let s = vector_server(&[]);
    let cases: &[(&str, &str)] = &[
        ("", "empty"),
        ("<request protocol=\"3.0\"><app>", "malformed"),
        ("<request protocol=\"3.0\"><app></request>", "malformed"),
        ("not xml at all <<<", "malformed"),
        ("<request protocol=\"4.0\"><app/></request>", "protocol"),
        ("<request><app/></request>", "protocol"),
        ("<html><body/></html>", "not an Omaha request"),
        ("<request protocol=\"3.0\"></request>", "no <app>"),
    ];
    for (body, reason) in cases {
        let r = s.post("/update", body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.text());
        assert!(r.text().contains(reason), "{body:?}: {}", r.text());
    }
    // Missing attributes are fine (go-omaha sends no board).
    let xml = s.omaha(
        "/update",
        "<request protocol=\"3.0\"><app appid=\"x\"><updatecheck/></app></request>",
        &[],
    );
    assert_eq!(element(&xml, "updatecheck")["status"], "ok");
    let health: serde_json::Value = serde_json::from_slice(&s.get("/check_health").body).unwrap();
    assert_eq!(health["bad_requests"], cases.len() as u64);
}

#[test]
fn oversized_body_is_413() {
    let s = vector_server(&[]);
    // Announced too big: refused before reading.
    let head =
        "POST /update HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n";
    let (status, text) = raw(s.port, head.as_bytes());
    assert_eq!(status, 413, "{text}");
    // Chunked, no length announced: refused past 1 MiB.
    let mut req = b"POST /update HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..20 {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(&chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, text) = raw(s.port, &req);
    assert_eq!(status, 413, "{}", &text[..text.len().min(300)]);
    // Just under the limit is accepted (an event-only request: acknowledged).
    let body = format!(
        "<request protocol=\"3.0\"><app/>{}</request>",
        " ".repeat(1000 * 1024)
    );
    let r = s.post("/update", &body);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn hundred_concurrent_update_checks() {
    let s = vector_server(&[]);
    let url = s.url("/update");
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                let appid = format!("{{APP-{i:04}}}");
                let body = v3_check(&appid, &format!("0.{i}.0"), &format!("board-{i}"));
                let r = request("POST", &url, &[], body.as_bytes());
                (appid, r)
            })
        })
        .collect();
    for h in handles {
        let (appid, r) = h.join().unwrap();
        assert_eq!(r.status, 200);
        let xml = r.text();
        assert_eq!(element(&xml, "app")["appid"], appid);
        let pkg = element(&xml, "package");
        assert_eq!(pkg["hash"], VECTOR_SHA1);
        assert_eq!(pkg["hash_sha256"], VECTOR_SHA256_HEX.to_ascii_uppercase());
    }
    assert!(start.elapsed() < std::time::Duration::from_secs(20));
    let health: serde_json::Value = serde_json::from_slice(&s.get("/check_health").body).unwrap();
    assert_eq!(health["update_checks"], 100);
    assert_eq!(health["updates"], 100);
}

#[test]
fn hostlog_with_logging() {
    let s = vector_server(&["-l"]);
    s.omaha("/update", &v3_check(APPID, "1.0.0", "x86-generic"), &[]);
    s.omaha("/update", &v3_event(3, 1), &[]);
    let log: serde_json::Value =
        serde_json::from_slice(&s.get("/api/hostlog/127.0.0.1").body).unwrap();
    let entries = log.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["board"], "x86-generic");
    assert_eq!(entries[0]["version"], "1.0.0");
    assert!(entries[0]["event_type"].is_null());
    assert_eq!(entries[1]["event_type"], 3);
    assert_eq!(entries[1]["event_result"], 1);
    assert_eq!(entries[1]["previous_version"], "0.9.0");
    assert!(entries[1]["timestamp"].as_str().unwrap().len() > 10);
    let all: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&s.get("/api/hostlog/all").body).unwrap();
    assert_eq!(all["127.0.0.1"].as_array().unwrap().len(), 2);
    // Without -l nothing is logged.
    let quiet = vector_server(&[]);
    quiet.omaha("/update", &v3_event(3, 1), &[]);
    let log: serde_json::Value =
        serde_json::from_slice(&quiet.get("/api/hostlog/127.0.0.1").body).unwrap();
    assert_eq!(log, serde_json::json!([]));
}

#[test]
fn fileinfo_and_its_limits() {
    let s = vector_server(&[]);
    std::fs::write(s.dir.path().join("secret"), "top secret").unwrap();
    let r = s.get("/api/fileinfo/update.gz");
    assert_eq!(r.status, 200);
    let info: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        info,
        serde_json::json!({"size": 36, "sha1": VECTOR_SHA1, "sha256": VECTOR_SHA256_B64})
    );
    assert_eq!(s.get("/api/fileinfo/missing.gz").status, 404);
    for path in [
        "/api/fileinfo/%2e%2e/secret",
        "/api/fileinfo/../secret",
        "/api/fileinfo//etc/passwd",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(s.port, req.as_bytes());
        assert_eq!(status, 403, "{path}: {text}");
        assert!(!text.contains("top secret"));
    }
}
