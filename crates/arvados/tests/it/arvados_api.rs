//! The built-in Arvados API server through the binary (`start_api`/`stop_api`, the
//! `run_test_server.py` link), over real HTTPS on loopback, trusting the certificate it wrote.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::*;
use cibox_testsupport::keep::*;
use serde_json::{json, Value};

#[test]
fn start_serves_fixture_tokens_keep_services_and_repositories_then_stop() {
    let stack = Stack::new();
    let host = stack.start();
    assert!(host.starts_with("127.0.0.1:"), "{host}");
    assert_eq!(
        stack.files(),
        [
            "api.pid",
            "api.port",
            "api.state.json",
            "cibox.manifest",
            "self-signed.key",
            "self-signed.pem"
        ]
    );
    // The run's manifest lists what the start made, the stop's to remove.
    let manifest = std::fs::read_to_string(stack.run_dir().join("cibox.manifest")).unwrap();
    for name in ["self-signed.pem", "self-signed.key", "api.state.json"] {
        assert!(manifest.lines().any(|l| l == name), "{manifest}");
    }
    let api = stack.api(&host);

    let (status, me) = api.get("/arvados/v1/users/current", ADMIN);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["uuid"], "zzzzz-tpzed-d9tiejq69daie8f");
    assert_eq!(me["is_admin"], true);
    let (_, me) = api.get("/arvados/v1/users/current", ACTIVE);
    assert_eq!(me["uuid"], "zzzzz-tpzed-xurymjxw79nv3jz");
    assert_eq!(me["is_admin"], false);
    let (status, token) = api.get("/arvados/v1/api_client_authorizations/current", SPECTATOR);
    assert_eq!(status, 200);
    assert_eq!(token["api_token"], SPECTATOR);
    assert_eq!(token["owner_uuid"], "zzzzz-tpzed-l1s2piq4t4mps8r");
    // The same token in its v2 form.
    let v2 = format!("v2/{}/{SPECTATOR}", token["uuid"].as_str().unwrap());
    assert_eq!(
        api.get("/arvados/v1/users/current", &v2).1["uuid"],
        "zzzzz-tpzed-l1s2piq4t4mps8r"
    );
    // A long query sent as a form under POST with X-Http-Method-Override, as the Google API
    // client does.
    let form = "filters=%5B%5B%22name%22%2C%22like%22%2C%22admin%2F%25%22%5D%5D";
    let listed = api
        .agent
        .post(&format!("https://{host}/arvados/v1/repositories"))
        .set("Authorization", &format!("OAuth2 {ADMIN}"))
        .set("X-Http-Method-Override", "GET")
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(form)
        .unwrap()
        .into_string()
        .unwrap();
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed["items_available"], 2, "{listed}");

    // keep_services: admin registers, everyone lists, only admin deletes.
    let service = json!({"keep_service": {
        "uuid": "zzzzz-bi6l4-keepdisk0000000",
        "service_host": "127.0.0.1", "service_port": 25107,
        "service_type": "disk", "service_ssl_flag": false,
    }});
    let (status, body) = api.post("/arvados/v1/keep_services", ACTIVE, &service);
    assert_eq!(status, 403, "{body}");
    let (status, created) = api.post("/arvados/v1/keep_services", ADMIN, &service);
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["kind"], "arvados#keepService");
    let proxy = json!({"keep_service": {"service_host": "127.0.0.1", "service_port": 25100, "service_type": "proxy"}});
    let (status, proxy) = api.post("/arvados/v1/keep_services", ADMIN, &proxy);
    assert_eq!(status, 200, "{proxy}");
    let (_, all) = api.get("/arvados/v1/keep_services", ACTIVE);
    assert_eq!(all["items_available"], 2);
    let (_, accessible) = api.get("/arvados/v1/keep_services/accessible", ACTIVE);
    assert_eq!(uuids(&accessible), ["zzzzz-bi6l4-keepdisk0000000"]);
    // A client outside the cluster (X-External-Client: 1) is given the proxy.
    let external = api
        .agent
        .get(&format!(
            "https://{host}/arvados/v1/keep_services/accessible"
        ))
        .set("Authorization", &format!("OAuth2 {ACTIVE}"))
        .set("X-External-Client", "1")
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let external: Value = serde_json::from_str(&external).unwrap();
    assert_eq!(uuids(&external), [proxy["uuid"].as_str().unwrap()]);
    let path = format!(
        "/arvados/v1/keep_services/{}",
        proxy["uuid"].as_str().unwrap()
    );
    assert_eq!(api.call("DELETE", &path, Some(ACTIVE), None).0, 403);
    assert_eq!(api.call("DELETE", &path, Some(ADMIN), None).0, 200);
    assert_eq!(api.call("DELETE", &path, Some(ADMIN), None).0, 404);

    // repositories, filtered by name, as the git server looks them up.
    let filters = "%5B%5B%22name%22%2C%22%3D%22%2C%22active%2Ffoo%22%5D%5D";
    let (status, repos) = api.get(
        &format!("/arvados/v1/repositories?filters={filters}"),
        ACTIVE,
    );
    assert_eq!(status, 200, "{repos}");
    assert_eq!(uuids(&repos), ["zzzzz-s0uqq-382brsig8rp3666"]);
    assert_eq!(
        repos["items"][0]["writable_by"][0],
        "zzzzz-tpzed-xurymjxw79nv3jz"
    );
    let (_, repos) = api.get("/arvados/v1/repositories", SPECTATOR);
    assert_eq!(
        uuids(&repos),
        ["zzzzz-s0uqq-382brsig8rp3666"],
        "spectator reads active/foo only"
    );

    let pid = stack.pid();
    let out = stack.cibox(&["stop_api"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(wait_gone(pid, Duration::from_secs(5)));
    assert!(stack.files().is_empty(), "{:?}", stack.files());
    let out = stack.cibox(&["stop_api"]);
    assert!(out.status.success(), "stopping twice is fine");
}

/// `(method, path, token, body, expected status, a word the error names)`
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    u16,
    &'static str,
);

#[test]
fn bad_tokens_resources_bodies_and_filters_are_clear_4xx() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/arvados/v1/users/current",
            None,
            None,
            401,
            "no API token",
        ),
        (
            "GET",
            "/arvados/v1/users/current",
            Some("forgedtoken0123456789abcdefghijklmnopqrstuvwxyz01"),
            None,
            401,
            "not valid",
        ),
        (
            "GET",
            "/arvados/v1/users/current",
            Some(EXPIRED),
            None,
            401,
            "expired",
        ),
        (
            "GET",
            "/arvados/v1/collections",
            Some(INACTIVE),
            None,
            403,
            "not active",
        ),
        (
            "GET",
            "/arvados/v1/no_such_things",
            Some(ADMIN),
            None,
            404,
            "no_such_things",
        ),
        (
            "GET",
            "/arvados/v1/containers",
            Some(ADMIN),
            None,
            501,
            "containers",
        ),
        (
            "GET",
            "/arvados/v1/collections/zzzzz-4zz18-doesnotexist000",
            Some(ADMIN),
            None,
            404,
            "not found",
        ),
        (
            "POST",
            "/arvados/v1/collections",
            Some(ACTIVE),
            Some("{\"collection\": "),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/arvados/v1/collections",
            Some(ACTIVE),
            Some("{\"collection\": {\"colour\": \"red\"}}"),
            422,
            "colour",
        ),
        (
            "POST",
            "/arvados/v1/keep_services",
            Some(ADMIN),
            Some("{\"keep_service\": {\"service_port\": \"eighty\"}}"),
            422,
            "service_port",
        ),
        (
            "GET",
            "/arvados/v1/repositories?filters=%5B%5B%22nosuch%22%2C%22%3D%22%2C1%5D%5D",
            Some(ACTIVE),
            None,
            422,
            "nosuch",
        ),
        (
            "GET",
            "/arvados/v1/repositories?filters=%5B%5B%22name%22%2C%22%3D%22",
            Some(ACTIVE),
            None,
            422,
            "filters",
        ),
        (
            "GET",
            "/arvados/v1/repositories?filters=%5B%5B%22name%22%2C%22%3D~%22%2C%22x%22%5D%5D",
            Some(ACTIVE),
            None,
            422,
            "operator",
        ),
        ("POST", "/database/reset", Some(ACTIVE), None, 403, "admin"),
        (
            "GET",
            "/arvados/v1/users/current",
            Some("activenoscopeabcdefghijklmnopqrstuvwxyz12345678901"),
            None,
            403,
            "scopes",
        ),
        (
            "GET",
            "/arvados/v1/users/current",
            Some(
                "v2/zzzzz-gj3su-000000000000000/3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi",
            ),
            None,
            401,
            "not valid",
        ),
    ];
    for (method, path, token, body, status, word) in cases {
        let (got, answer) = api.call(method, path, token, body);
        assert_eq!(got, status, "{method} {path}: {answer}");
        let message = answer["errors"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{answer}"));
        assert!(message.contains(word), "{method} {path}: {message}");
    }
    assert!(!stack.files().is_empty());
}

#[test]
fn auth_prints_the_seed_exports_and_an_unknown_fixture_starts_nothing() {
    let stack = Stack::new();
    let out = stack.cibox(&["start_api", "--auth", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuch") && err.contains("admin"), "{err}");
    assert!(stack.files().is_empty());

    let out = stack.cibox(&["start_api", "--auth", "admin"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0], format!("export ARVADOS_API_TOKEN={ADMIN}"));
    let host = lines[1].strip_prefix("export ARVADOS_API_HOST=").unwrap();
    assert_eq!(lines[2], "export ARVADOS_API_HOST_INSECURE=true");
    let (status, me) = stack.api(host).get("/arvados/v1/users/current", ADMIN);
    assert_eq!((status, me["is_admin"].clone()), (200, json!(true)));
}

#[test]
fn run_test_server_py_link_takes_the_seed_actions() {
    let stack = Stack::new();
    let link = stack.tmp.path().join("run_test_server.py");
    std::os::unix::fs::symlink(cibox_bin(), &link).unwrap();
    let out = stack.cibox_as(&link, &["start"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let pid = stack.pid();
    assert_eq!(
        stack.api(&host).get("/arvados/v1/users/current", ACTIVE).0,
        200
    );
    let out = stack.cibox_as(&link, &["stop"]);
    assert!(out.status.success());
    assert!(wait_gone(pid, Duration::from_secs(5)));

    // Every seed action runs its applet (here: its --help) or says it is not available.
    for action in [
        "start",
        "stop",
        "start_keep",
        "stop_keep",
        "start_keep_proxy",
        "stop_keep_proxy",
        "start_arv-git-httpd",
        "stop_arv-git-httpd",
        "start_nginx",
        "stop_nginx",
        "stop_all",
    ] {
        let out = stack.cibox_as(&link, &[action, "--help"]);
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => assert!(!out.stdout.is_empty(), "{action}"),
            Some(1) => assert!(
                err.contains(&format!("action '{action}' is not available")),
                "{action}: {err}"
            ),
            other => panic!("{action}: exit {other:?}: {err}"),
        }
    }
    let out = stack.cibox_as(&link, &["probe"]);
    assert_eq!(out.status.code(), Some(2), "not a seed action");
}

#[test]
fn collections_signed_manifests_filters_updates_and_deletes() {
    use cibox_arvados::signature::{sign_locator, DEFAULT_TTL};
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    // The signing key the keepstores would share, and their enforcing it.
    let key = "k3y-for-this-test";
    std::fs::write(stack.run_dir().join("keep.blob_signing_key"), key).unwrap();
    std::fs::write(stack.run_dir().join("keep.enforce_permissions"), "true\n").unwrap();
    let expiry = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let foo = "acbd18db4cc2f85cedef654fccc4a4d8+3";
    let signed = |token: &str| sign_locator(foo, key.as_bytes(), token, expiry, DEFAULT_TTL);
    let manifest = |loc: &str| format!(". {loc} 0:3:foo.txt\n");
    let body = |loc: &str, name: &str| json!({"collection": {"manifest_text": manifest(loc), "name": name}});

    let (status, created) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &body(&signed(ACTIVE), "one"),
    );
    assert_eq!(status, 200, "{created}");
    let unsigned = manifest(foo);
    assert_eq!(
        created["portable_data_hash"],
        format!("{}+{}", md5_hex(unsigned.as_bytes()), unsigned.len())
    );
    let uuid = created["uuid"].as_str().unwrap().to_string();
    assert!(created["manifest_text"].as_str().unwrap().contains("+A"));
    assert_eq!(created["unsigned_manifest_text"], manifest(foo));

    // Signed for someone else, forged, or unsigned (not admin): refused.
    for (loc, word) in [
        (signed(SPECTATOR), "does not match"),
        (
            format!("{foo}+A{}@{expiry:08x}", "0".repeat(40)),
            "does not match",
        ),
        (foo.to_string(), "not signed"),
    ] {
        let (status, answer) = api.post("/arvados/v1/collections", ACTIVE, &body(&loc, "bad"));
        assert_eq!(status, 403, "{loc}: {answer}");
        assert!(
            answer["errors"][0].as_str().unwrap().contains(word),
            "{answer}"
        );
    }
    let (status, answer) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &body(&format!("{foo} x"), "bad"),
    );
    assert_eq!(status, 422, "{answer}");

    // Names are unique per owner unless asked to make them so.
    let (status, _) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &body(&signed(ACTIVE), "one"),
    );
    assert_eq!(status, 422);
    let (status, renamed) = api.post(
        "/arvados/v1/collections?ensure_unique_name=true",
        ACTIVE,
        &body(&signed(ACTIVE), "one"),
    );
    assert_eq!(status, 200, "{renamed}");
    assert!(
        renamed["name"].as_str().unwrap().starts_with("one ("),
        "{renamed}"
    );

    // Others do not see it; filters find it; update and delete.
    assert_eq!(
        api.get(&format!("/arvados/v1/collections/{uuid}"), SPECTATOR)
            .0,
        404
    );
    let (_, list) = api.get(
        "/arvados/v1/collections?filters=%5B%5B%22name%22%2C%22%3D%22%2C%22one%22%5D%5D",
        ACTIVE,
    );
    assert_eq!(uuids(&list), std::slice::from_ref(&uuid));
    let (status, updated) = api.call(
        "PUT",
        &format!("/arvados/v1/collections/{uuid}"),
        Some(ACTIVE),
        Some(&json!({"collection": {"name": "renamed"}}).to_string()),
    );
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "renamed");
    assert_eq!(updated["portable_data_hash"], created["portable_data_hash"]);
    let (_, by_hash) = api.get(
        &format!(
            "/arvados/v1/collections/{}",
            created["portable_data_hash"]
                .as_str()
                .unwrap()
                .replace('+', "%2B")
        ),
        ACTIVE,
    );
    assert_eq!(by_hash["unsigned_manifest_text"], manifest(foo));
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/arvados/v1/collections/{uuid}"),
            Some(ACTIVE),
            None
        )
        .0,
        200
    );
    assert_eq!(
        api.get(&format!("/arvados/v1/collections/{uuid}"), ACTIVE)
            .0,
        404
    );
}

#[test]
fn with_arvados_test_api_host_the_given_server_is_only_reset() {
    let owner = Stack::new();
    let host = owner.start();
    let api = owner.api(&host);
    let (status, _) = api.post(
        "/arvados/v1/collections",
        ADMIN,
        &json!({"collection": {"manifest_text": "", "name": "left over"}}),
    );
    assert_eq!(status, 200);
    let pid = owner.pid();

    let user = Stack::new();
    let env = [("ARVADOS_TEST_API_HOST", host.as_str())];
    let out = user.cibox_env(&["start_api"], &env);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), host);
    assert!(
        user.files().is_empty(),
        "nothing started here: {:?}",
        user.files()
    );
    let (_, list) = api.get(
        "/arvados/v1/collections?filters=%5B%5B%22name%22%2C%22%3D%22%2C%22left%20over%22%5D%5D",
        ADMIN,
    );
    assert_eq!(list["items_available"], 0, "the given server was reset");
    let out = user.cibox_env(&["stop_api"], &env);
    assert!(out.status.success());
    assert!(alive(pid), "stop leaves a given server alone");
    assert_eq!(api.get("/arvados/v1/users/current", ADMIN).0, 200);
}

/// `cibox apiserver` on a free port with `flags`, serving a self-signed certificate written to
/// `dir` (`c.pem`, `k.pem`), once it listens.
pub(crate) fn spawn_apiserver(
    dir: &std::path::Path,
    flags: &[&str],
) -> (std::process::Child, std::net::SocketAddr) {
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    cibox_runtime::tls::write_self_signed(&cert, &key).unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let server = std::process::Command::new(cibox_bin())
        .arg("apiserver")
        .arg(format!("-listen={addr}"))
        .args(flags)
        .arg(format!("-tls-cert={}", cert.display()))
        .arg(format!("-tls-key={}", key.display()))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    cibox_runtime::process::wait_for_port::<std::io::Error>(addr, Duration::from_secs(10), || {
        Ok(())
    })
    .unwrap();
    (server, addr)
}

#[test]
fn apiserver_drops_silent_clients_and_names_a_bad_certificate() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("c.pem"), tmp.path().join("k.pem"));
    let out = std::process::Command::new(cibox_bin())
        .args(["apiserver", "-listen=127.0.0.1:1"])
        .arg(format!("-tls-cert={}", cert.display()))
        .arg(format!("-tls-key={}", key.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("c.pem") && err.lines().count() == 1, "{err}");

    // -read-timeout is the earlier name of -header-timeout.
    let (mut server, addr) = spawn_apiserver(tmp.path(), &["-read-timeout=0.3"]);
    // A client that connects and says nothing is disconnected after the read timeout.
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 16];
    let n = silent
        .read(&mut buf)
        .expect("the server closes, not the 5 s read timeout");
    assert_eq!(n, 0);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn apiserver_answers_503_past_its_connection_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut server, addr) =
        spawn_apiserver(tmp.path(), &["-header-timeout=1", "-max-connections=1"]);
    let tls = cibox_runtime::tls::client_config_trusting(&tmp.path().join("c.pem")).unwrap();
    let agent = ureq::AgentBuilder::new()
        .tls_config(std::sync::Arc::new(tls))
        .timeout(Duration::from_secs(5))
        .build();
    let url = format!("https://{addr}/arvados/v1/users/current");
    // Let the server see the probe above close, then a client stuck before its TLS handshake
    // holds the only place.
    std::thread::sleep(Duration::from_millis(300));
    let holder = std::net::TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    match agent.get(&url).call() {
        Err(ureq::Error::Status(503, _)) => {}
        other => panic!("expected 503 past the cap, got {other:?}"),
    }
    // The handshake timeout frees the place.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match agent.get(&url).call() {
            Err(ureq::Error::Status(503, _)) => {}
            Err(ureq::Error::Status(401, _)) => break,
            other => panic!("expected 401 without a token, got {other:?}"),
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the place is never freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(holder);
    server.kill().unwrap();
    server.wait().unwrap();
}

#[test]
fn start_keep_registers_its_servers_replacing_the_old_ones() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let out = stack.cibox(&["start_keep", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = stack.cibox(&["start_keep", "--json", "--num-keep-servers", "3"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let started: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut ports: Vec<u64> = started["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["port"].as_u64().unwrap())
        .collect();
    ports.sort_unstable();
    let (_, services) = api.get("/arvados/v1/keep_services/accessible", ACTIVE);
    let mut registered: Vec<u64> = services["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service_port"].as_u64().unwrap())
        .collect();
    registered.sort_unstable();
    assert_eq!(registered, ports, "{services}");
    assert_eq!(services["items"][0]["service_host"], "127.0.0.1");
    let (_, disks) = api.get("/arvados/v1/keep_disks", ADMIN);
    assert_eq!(disks["items_available"], 3, "{disks}");
    // Without an API server start_keep works as before.
    assert!(stack.cibox(&["stop_api"]).status.success());
    let out = stack.cibox(&["start_keep"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
