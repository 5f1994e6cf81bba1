//! `--log-format text|json` of the servers (`serve`, `keepstore`): real servers on loopback,
//! real requests, their stderr read back. Needs no engine.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const UPDATE_CHECK: &str = r#"<request protocol="3.0"><app appid="{LOGTEST}" version="1.0.0" board="b"><updatecheck/></app></request>"#;

fn cibox() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cibox"))
}

/// Stops a server with SIGTERM and returns its stderr, one string per line.
fn stop(child: Child) -> Vec<String> {
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Starts `serve --port 0` with `format` and returns it with its base URL.
fn serve(data: &std::path::Path, format: &str) -> (Child, String) {
    let mut child = cibox()
        .args([
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-format",
            format,
        ])
        .arg("--data_dir")
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    (child, url)
}

/// The base URL a server prints on its first stdout line.
fn listening_url(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    url
}

fn update_check(url: &str) {
    let answer = ureq::post(&format!("{url}/update"))
        .timeout(Duration::from_secs(10))
        .send_string(UPDATE_CHECK)
        .unwrap()
        .into_string()
        .unwrap();
    assert!(answer.contains(r#"status="ok""#), "{answer}");
}

#[test]
fn serve_logs_json_one_object_a_line_with_request_fields() {
    let data = tempfile::tempdir().unwrap();
    let (child, url) = serve(data.path(), "json");
    update_check(&url);
    // The log thread writes asynchronously; SIGTERM flushes it.
    let lines = stop(child);
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(records
        .iter()
        .all(|r| r["level"].is_string() && r["timestamp"].is_string()));
    let request = records
        .iter()
        .find(|r| r["message"] == "request" && r["uri"] == "/update")
        .unwrap_or_else(|| panic!("no request record: {lines:#?}"));
    assert_eq!(request["method"], "POST");
    assert_eq!(request["status"], 200);
    assert!(request["length"].as_u64().unwrap() > 0);
    assert!(
        records.iter().any(|r| r["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("listening on")),
        "{lines:#?}"
    );
    // The access log file keeps its own format.
    let access = std::fs::read_to_string(data.path().join("devserver_access.log")).unwrap();
    assert!(access.contains("\"POST /update HTTP/1.1\" 200"), "{access}");
}

#[test]
fn serve_logs_staging_download_progress() {
    // One server hosts a build, a second stages it from there over HTTP.
    let origin_data = tempfile::tempdir().unwrap();
    let build = origin_data.path().join("static/board-release/R1-1.0.0");
    std::fs::create_dir_all(&build).unwrap();
    let payload = vec![42u8; 3 << 20];
    std::fs::write(build.join("update.gz"), &payload).unwrap();
    let (origin, origin_url) = serve(origin_data.path(), "text");

    let data = tempfile::tempdir().unwrap();
    // A line per read: more than a pipe holds, so stderr goes to a file.
    let log = data.path().join("stderr.log");
    let mut child = cibox()
        .env("CIBOX_PROGRESS_INTERVAL", "0")
        .args(["serve", "--host", "127.0.0.1", "--port", "0"])
        .args(["--log-format", "json", "--data_dir"])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let url = listening_url(&mut child);
    let archive = format!("{origin_url}/static/board-release/R1-1.0.0");
    let answer = ureq::get(&format!("{url}/download?archive_url={archive}"))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    // The 2014 devserver contract: `Success`, no newline (docs/omaha.md).
    assert_eq!(answer, "Success");
    let staged = data.path().join("static/board-release/R1-1.0.0/update.gz");
    assert_eq!(std::fs::read(staged).unwrap(), payload);
    stop(child);
    stop(origin);
    let text = std::fs::read_to_string(&log).unwrap();
    let progress: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|r| r["message"].as_str().map(str::to_string))
        .filter(|m| m.starts_with(&format!("downloading {archive}/update.gz: ")))
        .collect();
    assert!(
        progress.iter().any(|m| m.contains(" of 3.00 MiB (")),
        "{text}"
    );
    assert!(
        progress.iter().any(|m| m.contains("3.00 MiB in ")),
        "no summary: {text}"
    );
}

#[test]
fn serve_logs_text_by_default_and_refuses_other_formats() {
    let data = tempfile::tempdir().unwrap();
    let (child, url) = serve(data.path(), "text");
    update_check(&url);
    let lines = stop(child);
    assert!(lines.iter().all(|l| !l.starts_with('{')), "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("INFO") && l.contains("uri=/update") && l.contains("status=200")),
        "{lines:#?}"
    );

    let out = cibox()
        .args(["serve", "--log-format", "xml", "--exit"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("xml"));
}

#[test]
fn keepstore_logs_json_in_go_flag_spelling() {
    let volume = tempfile::tempdir().unwrap();
    let port = cibox_runtime::process::free_loopback_port().unwrap();
    let child = cibox()
        .arg("keepstore")
        .arg(format!("-volume={}", volume.path().display()))
        .arg(format!("-listen=127.0.0.1:{port}"))
        .arg("-log-format=json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cibox_runtime::process::wait_for_port(
        ([127, 0, 0, 1], port).into(),
        Duration::from_secs(10),
        || Ok::<(), std::io::Error>(()),
    )
    .unwrap();
    let status = ureq::get(&format!("http://127.0.0.1:{port}/status.json"))
        .call()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let lines = stop(child);
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["message"].as_str().unwrap_or("").contains("/status.json")),
        "{lines:#?}"
    );
}
