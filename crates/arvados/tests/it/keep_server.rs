//! `cibox keepstore` over real HTTP on loopback: every route, bad input, signatures, several
//! volumes, crash safety, concurrency, shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use cibox_arvados::signature;
use cibox_testsupport::keep::*;

const FOO: &str = "acbd18db4cc2f85cedef654fccc4a4d8";
const VECTOR_KEY: &str = "13u9fkuccnboeewr0ne3mvapk28epf68a3bhj9q8sb4l6e4e5mkkp6nhj2mmpscgu1zze5h5enydxfe3j215024u16ij4hjaiqs5u4pzsl3nczmaoxncljkm4875xqn4xv058koz3vkptmzhyheiy6wzevzjmdvxhvcqsvr5abhl15c2d4o4jhl0s91lojy1mtrzqqvprqcverls0xvy9vai9t1l1lvvazpuadafm71jl4mrwq2ygokee3eamvjy8qq1fvy238838enjmy5wzy2md7yvsitp5vztft6j4q866efym7e6vu5wm9fpnwjyxfldw3vbo01mgjs75rgo7qioh8z8ij7jpyp8508okhgbbex3ceei786u5rw2a9gx743dj3fgq2irk";
const VECTOR_TOKEN: &str = "hocfupkn2pjhrpgp2vxv8rsku7tvtx49arbc9s4bvu7p7wxqvk";
const DM_TOKEN: &str = "dm-token-for-tests";

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn volume(&self, name: &str) -> std::path::PathBuf {
        let p = self.path(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p.display().to_string()
    }

    /// A keepstore on one volume `vol` with a data manager token, plus `extra` flags.
    fn keepstore(&self, extra: &[&str]) -> Keepstore {
        let vol = self.volume("vol");
        let token = self.file("dm_token", &format!("{DM_TOKEN}\n"));
        let mut args = vec![
            format!("-volume={}", vol.display()),
            format!("-data-manager-token-file={token}"),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Keepstore::start(&args, self.dir.path())
    }
}

fn index(ks: &Keepstore, prefix: &str) -> (u16, String) {
    let (s, b) = get(&ks.url(&format!("/index{prefix}")), Some(DM_TOKEN));
    (s, String::from_utf8(b).unwrap())
}

fn block_files(vol: &Path) -> Vec<String> {
    files_under(vol)
}

#[test]
fn put_get_head_index_status_ping() {
    let s = Setup::new();
    let ks = s.keepstore(&[]);
    let (status, body, headers) = call(agent().put(&ks.url(&format!("/{FOO}"))), Some(b"foo"));
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(body).unwrap(), format!("{FOO}+3\n"));
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    assert_eq!(header("x-keep-replicas-stored").as_deref(), Some("1"));
    assert_eq!(
        header("x-keep-storage-classes-confirmed").as_deref(),
        Some("default=1")
    );
    assert_eq!(block_files(&s.path("vol")), [format!("acb/{FOO}")]);

    for loc in [
        FOO.to_string(),
        format!("{FOO}+3"),
        format!("{FOO}+3+K@xyzzy+Zfoo"),
    ] {
        let (status, body, headers) = call(agent().get(&ks.url(&format!("/{loc}"))), None);
        assert_eq!((status, body.as_slice()), (200, &b"foo"[..]), "{loc}");
        assert!(headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/octet-stream"));
    }
    let (status, _, headers) = call(agent().head(&ks.url(&format!("/{FOO}+3"))), None);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-length" && v == "3"));
    let missing = md5_hex(b"missing");
    assert_eq!(get(&ks.url(&format!("/{missing}")), None).0, 404);
    assert_eq!(
        call(agent().head(&ks.url(&format!("/{missing}"))), None).0,
        404
    );
    // The empty block always exists.
    assert_eq!(
        get(&ks.url("/d41d8cd98f00b204e9800998ecf8427e+0"), None),
        (200, vec![])
    );

    let (status, text) = index(&ks, "");
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    let (loc, mtime) = lines[0].split_once(' ').unwrap();
    assert_eq!(loc, format!("{FOO}+3"));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((mtime.parse::<i64>().unwrap() - now).abs() < 60);
    assert_eq!(&lines[1..], ["", ""], "index ends with an empty line");
    assert_eq!(index(&ks, "/acb").1.lines().count(), 2);
    assert_eq!(
        index(&ks, "/acbd18db4cc2f85cedef654fccc4a4d8")
            .1
            .lines()
            .count(),
        2
    );
    assert_eq!(index(&ks, "/0").1, "\n");
    assert_eq!(index(&ks, "/XYZ").0, 400);
    assert_eq!(get(&ks.url("/index"), None).0, 401);
    assert_eq!(get(&ks.url("/index"), Some("wrong")).0, 403);
    let (status, _, _) = call(
        agent().get(&ks.url("/index")).query("api_token", DM_TOKEN),
        None,
    );
    assert_eq!(status, 200);

    let (status, body) = get(&ks.url("/status.json"), None);
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let vols = json["volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(
        vols[0]["mount_point"].as_str().unwrap(),
        s.path("vol").display().to_string()
    );
    assert!(vols[0]["bytes_free"].as_u64().unwrap() > 0);
    assert!(vols[0]["device_num"].as_u64().is_some());
    assert!(vols[0]["bytes_used"].as_u64().is_some());

    assert_eq!(
        get(&ks.url("/_health/ping"), None),
        (200, b"{\"health\":\"OK\"}\n".to_vec())
    );
}

#[test]
fn metrics_count_requests_bytes_and_latency() {
    let s = Setup::new();
    let ks = s.keepstore(&[]);
    let (status, _, _) = call(agent().put(&ks.url(&format!("/{FOO}"))), Some(b"foo"));
    assert_eq!(status, 200);
    for _ in 0..3 {
        assert_eq!(
            get(&ks.url(&format!("/{FOO}+3")), None),
            (200, b"foo".to_vec())
        );
    }
    assert_eq!(
        get(&ks.url(&format!("/{}", md5_hex(b"missing"))), None).0,
        404
    );
    let (status, body, headers) = call(agent().get(&ks.url("/metrics")), None);
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-type" && v.starts_with("application/openmetrics-text")));
    let text = String::from_utf8(body).unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    assert_eq!(
        value("cibox_keepstore_http_requests_total{code=\"2xx\"}"),
        4.0
    );
    assert_eq!(
        value("cibox_keepstore_http_requests_total{code=\"4xx\"}"),
        1.0
    );
    // 3 GETs of 3 bytes, the PUT's locator line, and the 404's text.
    assert!(value("cibox_keepstore_http_response_bytes_total") >= 9.0 + 36.0);
    assert_eq!(
        value("cibox_keepstore_http_request_duration_seconds_count"),
        5.0
    );
    // Other methods on /metrics are refused as keepstore refuses unknown requests.
    let (status, _, _) = call(agent().put(&ks.url("/metrics")), Some(b"x"));
    assert_eq!(status, 400);
}

#[test]
fn bad_input() {
    let s = Setup::new();
    let ks = s.keepstore(&[]);
    // Wrong MD5: refused, nothing stored.
    let (status, _) = put(&ks.url(&format!("/{FOO}")), None, b"bar");
    assert_eq!(status, 422);
    assert!(block_files(&s.path("vol")).is_empty());
    assert_eq!(get(&ks.url(&format!("/{FOO}")), None).0, 404);

    // No Content-Length (empty HTTP/1.1 body, and chunked).
    let req = format!("PUT /{FOO} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(ks.port, req.as_bytes()).0, 411);
    let req = format!(
        "PUT /{FOO} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nfoo\r\n0\r\n\r\n"
    );
    assert_eq!(raw(ks.port, req.as_bytes()).0, 411);
    // 64 MiB + 1 byte: refused from the headers, before any body is sent.
    let req = format!(
        "PUT /{FOO} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 67108865\r\n\r\n"
    );
    assert_eq!(raw(ks.port, req.as_bytes()).0, 413);
    assert!(block_files(&s.path("vol")).is_empty());

    // Malformed locators and unknown routes.
    for path in [
        "/xyz",
        "/ACBD18DB4CC2F85CEDEF654FCCC4A4D8",
        "/acbd18db4cc2f85cedef654fccc4a4d",
        &format!("/{FOO}+abc"),
        &format!("/{FOO}+3+bad"),
        "/foo/bar",
        "/",
        "/status",
    ] {
        assert_eq!(get(&ks.url(path), None).0, 400, "GET {path}");
    }
    assert_eq!(put(&ks.url("/xyz"), None, b"foo").0, 400);
    assert_eq!(put(&ks.url(&format!("/{FOO}+4")), None, b"foo").0, 400);
    let (status, _, _) = call(agent().post(&ks.url(&format!("/{FOO}"))), Some(b"foo"));
    assert_eq!(status, 400);
    let (status, _, _) = call(agent().post(&ks.url("/index")), Some(b""));
    assert_eq!(status, 400);
    assert!(block_files(&s.path("vol")).is_empty());
}

#[test]
fn expect_100_continue_is_answered() {
    let s = Setup::new();
    let ks = s.keepstore(&[]);
    let mut stream = TcpStream::connect(("127.0.0.1", ks.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "PUT /{FOO} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = [0u8; 25];
    stream.read_exact(&mut buf).unwrap();
    assert!(
        buf.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{:?}",
        String::from_utf8_lossy(&buf)
    );
    stream.write_all(b"foo").unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let (status, _, body) = parse_response(&rest);
    assert_eq!(status, 200);
    assert_eq!(body, format!("{FOO}+3\n").as_bytes());
}

#[test]
fn protocol_vectors_verify_end_to_end() {
    let s = Setup::new();
    let key = s.file("key", &format!("  {VECTOR_KEY}\n"));
    let ks = s.keepstore(&[
        &format!("-permission-key-file={key}"),
        "-enforce-permissions",
    ]);
    let (status, answer) = put(&ks.url(&format!("/{FOO}")), Some(VECTOR_TOKEN), b"foo");
    assert_eq!(status, 200);
    // New signatures are v2 with the default TTL.
    let signed = cibox_arvados::locator::Locator::parse(answer.trim()).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    signature::verify(&signed, VECTOR_KEY.as_bytes(), VECTOR_TOKEN, 1_209_600, now).unwrap();
    let v1 = "257f3f5f5f0a4e4626a18fc74bd42ec34dcb228a";
    let v2 = "89118b78732c33104a4d6231e8b5a5fa1e4301e3";
    for sig in [v1, v2] {
        for loc in [
            format!("{FOO}+3+A{sig}@7fffffff"),
            format!("{FOO}+3+K@xyzzy+A{sig}@7fffffff"),
            format!("{FOO}+3+A{sig}@7fffffff+Zfoo"),
        ] {
            let url = ks.url(&format!("/{loc}"));
            assert_eq!(
                get(&url, Some(VECTOR_TOKEN)),
                (200, b"foo".to_vec()),
                "{loc}"
            );
            assert_eq!(get(&url, Some("another-token")).0, 403, "{loc}");
        }
    }
}

#[test]
fn enforced_permissions() {
    let s = Setup::new();
    let key = s.file("key", "a-signing-key");
    let ks = s.keepstore(&[
        &format!("-blob-signing-key-file={key}"),
        "-enforce-permissions=true",
        "-blob-signature-ttl=3600",
    ]);
    let data = block(1, 1000);
    let hash = md5_hex(&data);
    // Without a token the answer is not signed.
    let (status, plain) = put(&ks.url(&format!("/{hash}")), None, &data);
    assert_eq!(
        (status, plain.trim()),
        (200, format!("{hash}+1000").as_str())
    );
    let (status, signed) = put(&ks.url(&format!("/{hash}")), Some("tok"), &data);
    assert_eq!(status, 200);
    let signed = signed.trim().to_string();
    assert!(signed.starts_with(&format!("{hash}+1000+A")), "{signed}");

    assert_eq!(
        get(&ks.url(&format!("/{signed}")), Some("tok")),
        (200, data.clone())
    );
    // The api_token query parameter counts as a token too.
    let (status, body, _) = call(
        agent()
            .get(&ks.url(&format!("/{signed}")))
            .query("api_token", "tok"),
        None,
    );
    assert_eq!((status, body), (200, data.clone()));
    // Unsigned: 401 without a token, 403 with one.
    assert_eq!(get(&ks.url(&format!("/{hash}+1000")), None).0, 401);
    assert_eq!(get(&ks.url(&format!("/{hash}+1000")), Some("tok")).0, 403);
    // Signed for another token.
    assert_eq!(get(&ks.url(&format!("/{signed}")), Some("other")).0, 403);
    assert_eq!(get(&ks.url(&format!("/{signed}")), None).0, 401);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let key_bytes = b"a-signing-key";
    // Expired: 401, even when otherwise correct.
    let expired =
        signature::sign_locator(&format!("{hash}+1000"), key_bytes, "tok", now - 10, 3600);
    assert_eq!(get(&ks.url(&format!("/{expired}")), Some("tok")).0, 401);
    // Forged: 403.
    let forged = format!("{hash}+1000+A{}@{:08x}", "0".repeat(40), now + 600);
    assert_eq!(get(&ks.url(&format!("/{forged}")), Some("tok")).0, 403);
    // Signed with another key: 403.
    let wrong_key =
        signature::sign_locator(&format!("{hash}+1000"), b"other", "tok", now + 600, 3600);
    assert_eq!(get(&ks.url(&format!("/{wrong_key}")), Some("tok")).0, 403);
    // v1 with a future expiry still verifies.
    let v1 = format!(
        "{hash}+1000+A{}@{:08x}",
        signature::signature(key_bytes, &hash, "tok", now + 600, None),
        now + 600
    );
    assert_eq!(get(&ks.url(&format!("/{v1}")), Some("tok")).0, 200);
    // Malformed signature hint.
    assert_eq!(
        get(&ks.url(&format!("/{hash}+1000+Axyz@1")), Some("tok")).0,
        403
    );
}

#[test]
fn several_volumes_readonly_and_full() {
    let s = Setup::new();
    let (a, b) = (s.volume("a"), s.volume("b"));
    let token = s.file("dm", DM_TOKEN);
    // a is writable, b read-only: a PUT goes to a.
    let ks = Keepstore::start(
        &[
            format!("-volume={}", a.display()),
            "-readonly".into(),
            format!("-volume={}", b.display()),
            format!("-data-manager-token-file={token}"),
        ],
        s.dir.path(),
    );
    assert_eq!(put(&ks.url(&format!("/{FOO}")), None, b"foo").0, 200);
    assert_eq!(block_files(&a), [format!("acb/{FOO}")]);
    assert!(block_files(&b).is_empty());
    // A block only on the read-only volume is found too.
    let bar = md5_hex(b"bar");
    std::fs::create_dir_all(b.join(&bar[..3])).unwrap();
    std::fs::write(b.join(&bar[..3]).join(&bar), b"bar").unwrap();
    assert_eq!(
        get(&ks.url(&format!("/{bar}")), None),
        (200, b"bar".to_vec())
    );
    let (_, idx) = index(&ks, "");
    assert_eq!(idx.lines().filter(|l| !l.is_empty()).count(), 2, "{idx}");
    drop(ks);

    // b first and read-only: the first *writable* volume is a.
    let c = s.volume("c");
    let ks = Keepstore::start(
        &[
            "-readonly".into(),
            format!("-volume={}", c.display()),
            "-readonly=false".into(),
            format!("-volume={}", a.display()),
        ],
        s.dir.path(),
    );
    let baz = md5_hex(b"baz");
    assert_eq!(put(&ks.url(&format!("/{baz}")), None, b"baz").0, 200);
    assert!(block_files(&c).is_empty());
    assert!(a.join(&baz[..3]).join(&baz).exists());
    drop(ks);

    // -serialize: requests on that volume take turns, and still work.
    let ks = Keepstore::start(
        &["-serialize".into(), format!("-volume={}", c.display())],
        s.dir.path(),
    );
    let big = block(11, 2 << 20);
    let big_hash = md5_hex(&big);
    let url = ks.url(&format!("/{big_hash}"));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| put(&url, None, &big).0))
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 200);
        }
    });
    assert_eq!(
        get(&ks.url(&format!("/{big_hash}")), None),
        (200, big.clone())
    );
    std::fs::remove_file(c.join(&big_hash[..3]).join(&big_hash)).unwrap();
    drop(ks);

    // Every volume read-only: 405.
    let ks = Keepstore::start(
        &[format!("-volume={}", a.display()), "-readonly".into()],
        s.dir.path(),
    );
    let qux = md5_hex(b"qux");
    assert_eq!(put(&ks.url(&format!("/{qux}")), None, b"qux").0, 405);
    assert_eq!(get(&ks.url(&format!("/{FOO}")), None).0, 200);
    drop(ks);

    // Full (less free space than required): 507, nothing written.
    let ks = Keepstore::start(
        &[
            format!("-volume={}", c.display()),
            "-min-free-space=18446744073709551615".into(),
        ],
        s.dir.path(),
    );
    assert_eq!(put(&ks.url(&format!("/{qux}")), None, b"qux").0, 507);
    assert!(block_files(&c).is_empty());
}

#[test]
fn touch_on_rewrite_and_corrupt_copies() {
    let s = Setup::new();
    let ks = s.keepstore(&[]);
    let path = s.path("vol").join("acb").join(FOO);
    assert_eq!(put(&ks.url(&format!("/{FOO}")), None, b"foo").0, 200);
    let old = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(put(&ks.url(&format!("/{FOO}")), None, b"foo").0, 200);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    assert!(mtime > old + Duration::from_secs(3600), "not touched");
    assert_eq!(block_files(&s.path("vol")), [format!("acb/{FOO}")]);

    // A corrupt small copy: GET 500; a PUT repairs it.
    std::fs::write(&path, b"fox").unwrap();
    assert_eq!(get(&ks.url(&format!("/{FOO}")), None).0, 500);
    assert_eq!(put(&ks.url(&format!("/{FOO}")), None, b"foo").0, 200);
    assert_eq!(std::fs::read(&path).unwrap(), b"foo");
    assert_eq!(
        get(&ks.url(&format!("/{FOO}")), None),
        (200, b"foo".to_vec())
    );

    // A corrupt large (streamed) copy: the client never gets the whole body.
    let data = block(7, 3 << 20);
    let hash = md5_hex(&data);
    assert_eq!(put(&ks.url(&format!("/{hash}")), None, &data).0, 200);
    let big = s.path("vol").join(&hash[..3]).join(&hash);
    let mut bad = data.clone();
    bad[(2 << 20) + 5] ^= 1;
    std::fs::write(&big, &bad).unwrap();
    let resp = agent().get(&ks.url(&format!("/{hash}"))).call().unwrap();
    let mut got = Vec::new();
    let read = resp.into_reader().read_to_end(&mut got);
    assert!(
        read.is_err() || got.len() < data.len(),
        "a corrupt block was served whole"
    );
}

#[test]
fn delete_trash_untrash() {
    let s = Setup::new();
    // Deletes are disabled by default.
    let ks = s.keepstore(&[]);
    assert_eq!(put(&ks.url(&format!("/{FOO}")), None, b"foo").0, 200);
    let (status, _, _) = call(
        agent()
            .delete(&ks.url(&format!("/{FOO}")))
            .set("Authorization", &format!("OAuth2 {DM_TOKEN}")),
        None,
    );
    assert_eq!(status, 405);
    drop(ks);

    let ks = s.keepstore(&[
        "-never-delete=false",
        "-permission-ttl=60",
        "-trash-lifetime=3600",
    ]);
    let path = s.path("vol").join("acb").join(FOO);
    let delete = |token: Option<&str>| {
        let mut req = agent().delete(&ks.url(&format!("/{FOO}+3")));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("OAuth2 {t}"));
        }
        let (status, body, _) = call(req, None);
        (status, String::from_utf8(body).unwrap())
    };
    assert_eq!(delete(None).0, 401);
    assert_eq!(delete(Some("wrong")).0, 403);
    // Newer than the signature TTL: reported deleted, but kept (signed locators may exist).
    let (status, body) = delete(Some(DM_TOKEN));
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["copies_deleted"], 1);
    assert_eq!(json["copies_failed"], 0);
    assert!(path.exists());
    // Old enough: trashed.
    let old = SystemTime::now() - Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    assert_eq!(delete(Some(DM_TOKEN)).0, 200);
    assert!(!path.exists());
    assert_eq!(get(&ks.url(&format!("/{FOO}")), None).0, 404);
    let trash: Vec<String> = block_files(&s.path("vol"));
    assert_eq!(trash.len(), 1);
    assert!(
        trash[0].starts_with(&format!("acb/{FOO}.trash.")),
        "{trash:?}"
    );
    assert_eq!(index(&ks, "").1, "\n", "trash is not indexed");
    assert_eq!(delete(Some(DM_TOKEN)).0, 404);

    let untrash = |token: &str| {
        let (status, _, _) = call(
            agent()
                .put(&ks.url(&format!("/untrash/{FOO}")))
                .set("Authorization", &format!("Bearer {token}")),
            Some(b""),
        );
        status
    };
    assert_eq!(untrash("wrong"), 403);
    assert_eq!(untrash(DM_TOKEN), 200);
    assert_eq!(
        get(&ks.url(&format!("/{FOO}")), None),
        (200, b"foo".to_vec())
    );
    assert_eq!(untrash(DM_TOKEN), 404);

    // Trash list: the entry's mtime must match.
    let mtime = std::fs::metadata(&path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let trash_list = |body: String| {
        let (status, body, _) = call(
            agent()
                .put(&ks.url("/trash"))
                .set("Authorization", &format!("OAuth2 {DM_TOKEN}")),
            Some(body.as_bytes()),
        );
        (status, String::from_utf8(body).unwrap())
    };
    assert_eq!(trash_list("not json".into()).0, 400);
    let wrong = format!("[{{\"locator\":\"{FOO}+3\",\"block_mtime\":12345}}]");
    assert_eq!(
        trash_list(wrong),
        (200, "Received 1 trash requests\n".to_string())
    );
    assert!(path.exists());
    let right = format!(
        "[{{\"locator\":\"{FOO}+3\",\"block_mtime\":{}}}]",
        mtime.as_nanos()
    );
    assert_eq!(trash_list(right).0, 200);
    assert!(!path.exists());

    let (status, body, _) = call(
        agent()
            .put(&ks.url("/pull"))
            .set("Authorization", &format!("OAuth2 {DM_TOKEN}")),
        Some(b"[]"),
    );
    assert_eq!(
        (status, body),
        (200, b"Received 0 pull requests\n".to_vec())
    );
}

#[test]
fn sigkill_during_a_large_put_leaves_no_partial_block() {
    let s = Setup::new();
    let mut ks = s.keepstore(&[]);
    let data = block(3, 8 << 20);
    let hash = md5_hex(&data);
    let mut stream = TcpStream::connect(("127.0.0.1", ks.port)).unwrap();
    write!(
        stream,
        "PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len()
    )
    .unwrap();
    stream.write_all(&data[..3 << 20]).unwrap();
    // Wait until the server has written part of it to a temporary file.
    let vol = s.path("vol");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let partial = files_under(&vol).iter().any(|f| {
            std::fs::metadata(vol.join(f))
                .map(|m| m.len() > 0)
                .unwrap_or(false)
        });
        if partial {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no temporary file appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    ks.child.kill().unwrap();
    ks.child.wait().unwrap();
    drop(stream);
    // Nothing under the block's name, only the temporary file.
    assert!(!vol.join(&hash[..3]).join(&hash).exists());
    assert!(!files_under(&vol).is_empty());

    let ks = s.keepstore(&[]);
    assert_eq!(get(&ks.url(&format!("/{hash}")), None).0, 404);
    assert_eq!(index(&ks, "").1, "\n");
    assert!(files_under(&vol).is_empty(), "{:?}", files_under(&vol));
    // And the block can be stored whole now.
    assert_eq!(put(&ks.url(&format!("/{hash}")), None, &data).0, 200);
    assert_eq!(get(&ks.url(&format!("/{hash}")), None), (200, data));
}

#[test]
fn concurrent_puts_of_distinct_and_identical_blocks() {
    let s = Setup::new();
    let ks = s.keepstore(&["-max-buffers=4"]);
    let base = ks.url("");
    let same = block(99, 512 << 10);
    let same_hash = md5_hex(&same);
    let blocks: Vec<Vec<u8>> = (0..32).map(|i| block(i, 64 << 10)).collect();
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for b in &blocks {
            let url = format!("{base}/{}", md5_hex(b));
            handles.push(scope.spawn(move || put(&url, None, b)));
        }
        for _ in 0..32 {
            let url = format!("{base}/{same_hash}");
            let same = &same;
            handles.push(scope.spawn(move || put(&url, None, same)));
        }
        for h in handles {
            let (status, body) = h.join().unwrap();
            assert_eq!(status, 200, "{body}");
        }
    });
    let files = files_under(&s.path("vol"));
    assert_eq!(
        files.len(),
        33,
        "each block once, no temporary files: {files:?}"
    );
    for b in blocks.iter().chain([&same]) {
        let hash = md5_hex(b);
        assert_eq!(get(&format!("{base}/{hash}"), None), (200, b.clone()));
    }
    let (_, idx) = index(&ks, "");
    assert_eq!(idx.lines().filter(|l| !l.is_empty()).count(), 33);
}

#[test]
fn sigterm_finishes_requests_in_flight_then_exits_zero() {
    let s = Setup::new();
    let pid_file = s.path("ks.pid");
    let mut ks = s.keepstore(&[&format!("-pid={}", pid_file.display())]);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        ks.pid().to_string()
    );
    let data = block(5, 2 << 20);
    let hash = md5_hex(&data);
    let mut stream = TcpStream::connect(("127.0.0.1", ks.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "PUT /{hash} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        data.len()
    )
    .unwrap();
    stream.write_all(&data[..1 << 20]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    unsafe { libc::kill(ks.pid() as i32, libc::SIGTERM) };
    // New connections are refused (soon, on a loaded machine) while the PUT in flight finishes.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", ks.port)).is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    stream.write_all(&data[1 << 20..]).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let (status, _, body) = parse_response(&answer);
    assert_eq!(status, 200);
    assert_eq!(body, format!("{hash}+{}\n", data.len()).as_bytes());
    let exit = ks.terminate();
    assert!(exit.success(), "{exit}");
    assert!(!pid_file.exists(), "pid file left behind");
    assert!(s.path("vol").join(&hash[..3]).join(&hash).exists());
}

#[test]
fn startup_errors_are_one_line_with_status_1_and_usage_errors_2() {
    let s = Setup::new();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(cibox_bin())
            .arg("keepstore")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["-volume=/nonexistent/vol", "-listen=127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.starts_with("cibox keepstore: ") && err.contains("/nonexistent/vol"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let vol = s.volume("v");
    let (code, err) = run(&[
        &format!("-volume={}", vol.display()),
        "-enforce-permissions",
        "-listen=127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("-permission-key-file"), "{err}");
    let (code, _) = run(&["-no-such-flag"]);
    assert_eq!(code, Some(2));
    let (code, out) = {
        let o = std::process::Command::new(cibox_bin())
            .args(["keepstore", "-help"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    assert_eq!(code, Some(0));
    assert!(
        out.contains("--enforce-permissions") && out.contains("Exit status"),
        "{out}"
    );
    // A pid file held by a running keepstore.
    let pid_file = s.path("held.pid");
    let ks = s.keepstore(&[&format!("-pid={}", pid_file.display())]);
    let (code, err) = run(&[
        &format!("-volume={}", vol.display()),
        &format!("-pid={}", pid_file.display()),
        "-listen=127.0.0.1:0",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("running process {}", ks.pid())),
        "{err}"
    );
}

#[test]
fn two_keepstores_on_one_pid_file_never_both_run() {
    let tmp = tempfile::tempdir().unwrap();
    let pid_file = tmp.path().join("k.pid");
    for round in 0..20 {
        let vol = tmp.path().join(format!("v{round}"));
        std::fs::create_dir(&vol).unwrap();
        let spawn = || {
            Command::new(cibox_bin())
                .arg("keepstore")
                .arg(format!("-volume={}", vol.display()))
                .arg(format!("-listen=127.0.0.1:{}", free_port()))
                .arg(format!("-pid={}", pid_file.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let mut both = [spawn(), spawn()];
        // The loser exits as soon as it finds the pid file locked; the winner keeps running.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut running: Vec<usize> = vec![0, 1];
        while running.len() == 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            running.retain(|&i| both[i].try_wait().unwrap().is_none());
        }
        std::thread::sleep(Duration::from_millis(100));
        running.retain(|&i| both[i].try_wait().unwrap().is_none());
        for child in &mut both {
            let _ = child.kill();
            let _ = child.wait();
        }
        assert_eq!(running.len(), 1, "round {round}: {running:?} kept running");
    }
}
