//! The Arvados servers under attack (issue 20): the API server's store survives sorts over
//! mixed types and long `like` patterns, it refuses a body before reading it when the caller
//! has no token, scoped tokens stay in their scope, and its memory stays bounded.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::arvados_api::spawn_apiserver;
use crate::support::*;

const ACTIVE_READONLY: &str = "activereadonlyabcdefghijklmnopqrstuvwxyz1234568790";

struct ApiServer {
    child: std::process::Child,
    addr: SocketAddr,
    api: Api,
    dir: tempfile::TempDir,
}

impl ApiServer {
    fn start(flags: &[&str]) -> ApiServer {
        let dir = tempfile::tempdir().unwrap();
        let (child, addr) = spawn_apiserver(dir.path(), flags);
        let tls = cibox_runtime::tls::client_config_trusting(&dir.path().join("c.pem")).unwrap();
        let api = Api {
            agent: ureq::AgentBuilder::new()
                .tls_config(Arc::new(tls))
                .timeout(Duration::from_secs(20))
                .build(),
            host: addr.to_string(),
        };
        ApiServer {
            child,
            addr,
            api,
            dir,
        }
    }

    fn vm_hwm_kib(&self) -> u64 {
        cibox_testsupport::procfs::hwm_kib(self.child.id())
    }

    /// A TLS connection of our own, for requests ureq will not send.
    fn tls(&self) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        let config =
            cibox_runtime::tls::client_config_trusting(&self.dir.path().join("c.pem")).unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
        let tcp = std::net::TcpStream::connect(self.addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        tcp.set_write_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        rustls::StreamOwned::new(conn, tcp)
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The status of the answer on `stream` (its first line).
fn status_of(stream: &mut impl Read) -> u16 {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "no answer: {other:?} after {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let line = String::from_utf8_lossy(&head).to_string();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn api_sorts_over_mixed_types_and_unnamed_records_keep_the_store_usable() {
    let server = ApiServer::start(&[]);
    let api = &server.api;
    let descriptions = [
        json!(null),
        json!(3),
        json!("3"),
        json!(true),
        json!([1, "x"]),
        json!({"k": 1}),
        json!(-2.5),
        json!("text"),
    ];
    for i in 0..64 {
        let mut collection = json!({"description": descriptions[i % descriptions.len()]});
        if i % 2 == 0 {
            collection["name"] = json!(format!("c{}", (i * 37) % 64));
        }
        let (status, body) = api.post(
            "/arvados/v1/collections",
            ACTIVE,
            &json!({ "collection": collection }),
        );
        assert_eq!(status, 200, "{body}");
    }
    // The active user's own fixture collections are listed too.
    let (_, before) = api.get("/arvados/v1/collections?limit=0", ACTIVE);
    let fixtures = before["items_available"].as_u64().unwrap() as usize - 64;
    for order in [
        "description%20asc",
        "name",
        "name%20desc",
        "description%20desc",
    ] {
        let (status, body) = api.get(
            &format!("/arvados/v1/collections?order={order}&limit=1000"),
            ACTIVE,
        );
        assert_eq!(status, 200, "order={order}: {body}");
        assert_eq!(body["items"].as_array().unwrap().len(), 64 + fixtures);
    }
    // Every other user still gets answers.
    assert_eq!(api.get("/arvados/v1/users/current", ADMIN).0, 200);
    assert_eq!(api.get("/arvados/v1/collections", SPECTATOR).0, 200);
}

#[test]
fn api_long_like_patterns_are_refused_and_long_names_match_quickly() {
    let server = ApiServer::start(&[]);
    let api = &server.api;
    let name = "a".repeat(400_000);
    let (status, body) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"name": name}}),
    );
    assert_eq!(status, 200, "{body}");
    let too_long = "%".repeat(2000);
    let filters = json!([["name", "like", too_long]]).to_string();
    let (status, body) = api.call(
        "GET",
        &format!("/arvados/v1/collections?filters={}", encode(&filters)),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"][0].as_str().unwrap().contains("longer than"));

    let pattern = format!("%{}b%", "a".repeat(1000));
    let filters = json!([["name", "like", pattern]]).to_string();
    // The form of a long query: POST with the method override.
    let started = Instant::now();
    let answer = api
        .agent
        .post(&format!("https://{}/arvados/v1/collections", api.host))
        .set("Authorization", &format!("OAuth2 {ACTIVE}"))
        .set("X-Http-Method-Override", "GET")
        .send_form(&[("filters", &filters), ("select", "[\"uuid\"]")])
        .unwrap();
    let list: Value = serde_json::from_str(&answer.into_string().unwrap()).unwrap();
    assert_eq!(list["items_available"], 0, "{list}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn api_refuses_bodies_before_reading_them_and_stays_small() {
    let server = ApiServer::start(&["-body-timeout=20"]);
    // No token: 401 at once, with most of the body never sent (the old server waited for the
    // whole body, here until the body timeout).
    let mut stream = server.tls();
    let size = 60usize << 20;
    write!(
        stream,
        "POST /arvados/v1/collections HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    stream.write_all(&vec![b' '; 256 << 10]).unwrap();
    stream.flush().unwrap();
    let started = Instant::now();
    assert_eq!(status_of(&mut stream), 401);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Past API.MaxRequestSize: 413 from the header alone, token or not.
    let mut stream = server.tls();
    write!(
        stream,
        "POST /arvados/v1/collections HTTP/1.1\r\nHost: localhost\r\nAuthorization: OAuth2 {ACTIVE}\r\nContent-Length: {}\r\n\r\n",
        (64u64 << 20) + 1
    )
    .unwrap();
    stream.flush().unwrap();
    assert_eq!(status_of(&mut stream), 413);

    // Several whole unauthenticated bodies at once: the memory stays small.
    let body: Arc<Vec<u8>> = Arc::new(
        std::iter::once(b'[')
            .chain(b"0,".repeat(size / 2 - 1))
            .chain(*b"0]")
            .collect(),
    );
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let mut stream = server.tls();
            let body = body.clone();
            std::thread::spawn(move || {
                let head = format!(
                    "POST /arvados/v1/collections HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).unwrap();
                // The server may close before it all went: that is the point.
                for piece in body.chunks(1 << 20) {
                    if stream.write_all(piece).is_err() {
                        break;
                    }
                }
                let _ = stream.flush();
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let hwm = server.vm_hwm_kib();
    assert!(hwm < 128 << 10, "peak RSS {hwm} KiB");
    // An authenticated body is still read and parsed.
    let (status, created) = server.api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"name": "after", "description": "d".repeat(1 << 20)}}),
    );
    assert_eq!(status, 200, "{created}");
}

/// `[0,0,...]` with `n` zeros: two bytes a value.
fn zeros(n: usize) -> String {
    format!("[{}0]", "0,".repeat(n - 1))
}

#[test]
fn api_bounds_the_json_values_a_request_holds() {
    let server = ApiServer::start(&[]);
    let too_many = "the request holds more than 262144 JSON values";
    // A JSON body of small values: 413 once it holds more than the budget (the old server
    // built the whole tree, some 16 times the body's size).
    let body = format!(
        r#"{{"collection": {{"name": "many", "properties": {{"a": {}}}}}}}"#,
        zeros(1 << 19)
    );
    let (status, answer) =
        server
            .api
            .call("POST", "/arvados/v1/collections", Some(ACTIVE), Some(&body));
    let brief: String = answer.to_string().chars().take(300).collect();
    assert_eq!(status, 413, "{brief}");
    assert!(
        answer["errors"][0].as_str().unwrap().contains(too_many),
        "{brief}"
    );
    // The same budget holds for a form body's values (a method-overridden list), whether the
    // value is JSON itself or JSON text with white space before it.
    for filters in [zeros(1 << 19), format!(" {}", zeros(1 << 19))] {
        let answer = server
            .api
            .agent
            .post(&format!(
                "https://{}/arvados/v1/collections",
                server.api.host
            ))
            .set("Authorization", &format!("OAuth2 {ACTIVE}"))
            .set("X-Http-Method-Override", "GET")
            .send_form(&[("filters", &filters)]);
        let Err(ureq::Error::Status(status, answer)) = answer else {
            panic!("not refused: {answer:?}");
        };
        assert_eq!(status, 413);
        assert!(answer.into_string().unwrap().contains(too_many));
    }
    // Within the budget, a request of many values is served.
    let many: Vec<String> = (0..100_000)
        .map(|i| format!("zzzzz-4zz18-{i:015}"))
        .collect();
    let (status, listed) = server.api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"name": "within", "properties": {"uuids": many}}}),
    );
    assert_eq!(status, 200, "{}", listed["errors"]);
    assert_eq!(
        listed["properties"]["uuids"].as_array().unwrap().len(),
        100_000
    );
}

#[test]
fn api_scoped_tokens_see_only_themselves_among_tokens() {
    let server = ApiServer::start(&[]);
    let api = &server.api;
    let (status, list) = api.get("/arvados/v1/api_client_authorizations", ACTIVE_READONLY);
    assert_eq!(status, 200, "{list}");
    let tokens: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["api_token"].as_str().unwrap())
        .collect();
    assert_eq!(tokens, [ACTIVE_READONLY], "{list}");
    // The full-scope token of the same user sees its own tokens, as before.
    let (status, list) = api.get("/arvados/v1/api_client_authorizations", ACTIVE);
    assert_eq!(status, 200);
    assert!(list["items"].as_array().unwrap().len() > 1, "{list}");
    // And the scoped token cannot write.
    let (status, _) = api.post(
        "/arvados/v1/collections",
        ACTIVE_READONLY,
        &json!({"collection": {}}),
    );
    assert_eq!(status, 403);
}

/// `cibox APPLET --run-dir RUN ARGS...` in `stack`'s directory; panics when it fails.
fn applet(stack: &Stack, applet: &str, args: &[&str]) -> String {
    let run_dir = stack.run_dir();
    let mut all = vec![applet, "--run-dir", run_dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = cibox_testsupport::keep::run_cibox(
        std::path::Path::new(cibox_testsupport::cibox_bin()),
        &all,
        &stack.tmp.path().join("stderr.log"),
        &[("TMPDIR", stack.tmp.path())],
    );
    assert!(
        out.status.success(),
        "{applet}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A stack with the API server, two keepstores and keepproxy (`proxy_flags`), stopped whole
/// when dropped.
struct ProxyStack {
    stack: Stack,
    port: u16,
}

impl ProxyStack {
    fn start(proxy_flags: &[&str]) -> ProxyStack {
        let stack = Stack::new();
        stack.start();
        stack.start_keep(&[]);
        let mut args = vec!["--json", "--"];
        args.extend_from_slice(proxy_flags);
        let started: Value =
            serde_json::from_str(&applet(&stack, "start_keep_proxy", &args)).unwrap();
        let port = started["port"].as_u64().unwrap() as u16;
        ProxyStack { stack, port }
    }

    fn pid(&self) -> u32 {
        std::fs::read_to_string(self.stack.run_dir().join("keepproxy.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn put(&self, data: &[u8], token: &str) -> u16 {
        let req = cibox_testsupport::keep::agent()
            .put(&format!(
                "http://127.0.0.1:{}/{}",
                self.port,
                cibox_testsupport::keep::md5_hex(data)
            ))
            .set("Authorization", &format!("OAuth2 {token}"));
        cibox_testsupport::keep::call(req, Some(data)).0
    }
}

impl Drop for ProxyStack {
    fn drop(&mut self) {
        let _ = applet(&self.stack, "stop_all", &[]);
    }
}

#[test]
fn keepproxy_writes_need_an_active_user_and_a_full_scope_token() {
    let proxy = ProxyStack::start(&[]);
    let data = b"scoped tokens stay in their scope";
    assert_eq!(proxy.put(data, INACTIVE), 403, "an inactive user wrote");
    assert_eq!(
        proxy.put(data, ACTIVE_READONLY),
        403,
        "a GET-only token wrote"
    );
    assert_eq!(proxy.put(data, ACTIVE), 200);
}

#[test]
fn keepproxy_checks_the_token_before_reading_a_post_body() {
    let proxy = ProxyStack::start(&["-body-timeout=20", "-max-buffers=2"]);
    let size = 60usize << 20;
    let head = |token: &str| {
        format!(
            "POST / HTTP/1.1\r\nHost: localhost\r\nAuthorization: OAuth2 {token}\r\nContent-Length: {size}\r\n\r\n"
        )
    };
    // A refused token: 403 at once, with most of the body never sent (the old proxy read all
    // of it first, here until the body timeout).
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", proxy.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(head("forgedtoken000").as_bytes()).unwrap();
    stream.write_all(&vec![0u8; 256 << 10]).unwrap();
    let started = Instant::now();
    assert_eq!(status_of(&mut stream), 403);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Whole bodies with refused tokens, several at once: the memory stays small.
    let body = Arc::new(vec![7u8; size]);
    let senders: Vec<_> = (0..4)
        .map(|_| {
            let (body, head) = (body.clone(), head("forgedtoken000"));
            let port = proxy.port;
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream
                    .set_write_timeout(Some(Duration::from_secs(15)))
                    .unwrap();
                stream.write_all(head.as_bytes()).unwrap();
                for piece in body.chunks(1 << 20) {
                    if stream.write_all(piece).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    let hwm = cibox_testsupport::procfs::hwm_kib(proxy.pid());
    assert!(hwm < 128 << 10, "peak RSS {hwm} KiB");
    // A good token still writes.
    assert_eq!(proxy.put(b"after the attack", ACTIVE), 200);
}

#[test]
fn git_pushes_need_a_token_of_full_scope() {
    let stack = Stack::new();
    stack.start();
    let started: Value =
        serde_json::from_str(&applet(&stack, "start_arv-git-httpd", &["--json"])).unwrap();
    let port = started["port"].as_u64().unwrap();
    let refs = |token: &str, service: &str| {
        let req = cibox_testsupport::keep::agent()
            .get(&format!(
                "http://127.0.0.1:{port}/active/foo.git/info/refs?service={service}"
            ))
            .set("Authorization", &format!("OAuth2 {token}"));
        cibox_testsupport::keep::call(req, None).0
    };
    // The read-only token of the repository's owner may fetch, not push.
    assert_eq!(refs(ACTIVE_READONLY, "git-upload-pack"), 200);
    assert_eq!(refs(ACTIVE_READONLY, "git-receive-pack"), 403);
    assert_eq!(refs(ACTIVE, "git-receive-pack"), 200);
    applet(&stack, "stop_arv-git-httpd", &[]);
}

#[test]
fn git_server_streams_request_bodies_into_git() {
    let stack = Stack::new();
    stack.start();
    let started: Value =
        serde_json::from_str(&applet(&stack, "start_arv-git-httpd", &["--json"])).unwrap();
    let port = started["port"].as_u64().unwrap() as u16;
    let pid: u32 = std::fs::read_to_string(stack.run_dir().join("arv-git-httpd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // 96 MiB of nonsense for upload-pack: git refuses it early; the old server held all of it.
    let size = 96usize << 20;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    write!(
        stream,
        "POST /active/foo.git/git-upload-pack HTTP/1.1\r\nHost: x\r\nAuthorization: OAuth2 {ACTIVE}\r\nContent-Type: application/x-git-upload-pack-request\r\nContent-Length: {size}\r\n\r\n"
    )
    .unwrap();
    let piece = vec![b'z'; 1 << 20];
    for _ in 0..size >> 20 {
        if stream.write_all(&piece).is_err() {
            break;
        }
    }
    let _ = status_of(&mut stream);
    let hwm = cibox_testsupport::procfs::hwm_kib(pid);
    assert!(hwm < 48 << 10, "peak RSS {hwm} KiB");
    // A real fetch still works: info/refs answered by git as it writes.
    let req = cibox_testsupport::keep::agent()
        .get(&format!(
            "http://127.0.0.1:{port}/active/foo.git/info/refs?service=git-upload-pack"
        ))
        .set("Authorization", &format!("OAuth2 {ACTIVE}"));
    let (status, body, _) = cibox_testsupport::keep::call(req, None);
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("refs/heads/master"));
    applet(&stack, "stop_arv-git-httpd", &[]);
}
