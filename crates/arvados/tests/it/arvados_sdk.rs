//! The real Arvados Python SDK and its command-line tools (arvados-python-client from PyPI,
//! installed by `scripts/test-env up`) against `start_api` + `start_keep` through the binary,
//! over real HTTPS and HTTP on loopback.

use std::path::Path;

use crate::support::*;
use cibox_testsupport::keep::*;
use serde_json::Value;

#[test]
fn sdk_discovers_the_api_and_finds_the_keepstores_start_keep_registered() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("admin");
    let mut ports = stack.start_keep(&["--keep-enforce-permissions"]);
    ports.sort_unstable();
    let script = r#"
import json, arvados
api = arvados.api('v1')
me = api.users().current().execute()
services = api.keep_services().accessible().execute()['items']
kc = arvados.KeepClient(api_client=api)
locator = kc.put(b'foo', copies=2)
print(json.dumps({
    'user': me['uuid'],
    'uuid_prefix': api._rootDesc['uuidPrefix'],
    'ports': sorted(s['service_port'] for s in services),
    'uuids': sorted(s['uuid'] for s in services),
    'disks': len(api.keep_disks().list().execute()['items']),
    'locator': locator,
    'data': kc.get(locator).decode(),
}))
"#;
    let answer: Value =
        serde_json::from_str(&stack.sdk(&python, "python", &["-c", script], &env)).unwrap();
    assert_eq!(
        answer["user"], "zzzzz-tpzed-d9tiejq69daie8f",
        "--auth admin exports work"
    );
    assert_eq!(answer["uuid_prefix"], "zzzzz");
    let listed: Vec<u16> = answer["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() as u16)
        .collect();
    assert_eq!(listed, ports);
    assert_eq!(answer["uuids"][0], "zzzzz-bi6l4-keepdisk0000000");
    assert_eq!(answer["disks"], 2);
    assert!(answer["locator"]
        .as_str()
        .unwrap()
        .starts_with("acbd18db4cc2f85cedef654fccc4a4d8+3+A"));
    assert_eq!(answer["data"], "foo");
}

fn write_tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let files = vec![
        ("a.txt".to_string(), b"hello\n".to_vec()),
        ("sub/b.txt".to_string(), block(2, 1000)),
        // Over 64 MiB: two Keep blocks.
        ("big.bin".to_string(), block(3, (64 << 20) + 12345)),
        ("empty".to_string(), Vec::new()),
    ];
    for (name, data) in &files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    files
}

#[test]
fn arv_put_of_a_directory_then_arv_get_byte_for_byte_and_arv_ls() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    stack.start_keep(&["--keep-enforce-permissions"]);
    let src = stack.tmp.path().join("src");
    let files = write_tree(&src);

    let uuid = stack.sdk(
        &python,
        "arv-put",
        &["--no-resume", "--no-cache", src.to_str().unwrap()],
        &env,
    );
    let uuid = uuid.trim();
    assert!(uuid.starts_with("zzzzz-4zz18-"), "{uuid}");

    let listed = stack.sdk(&python, "arv-ls", &[uuid], &env);
    let mut expected: Vec<String> = files.iter().map(|(n, _)| format!("./src/{n}")).collect();
    expected.sort();
    let mut listed: Vec<String> = listed.lines().map(str::to_string).collect();
    listed.sort();
    assert_eq!(listed, expected);

    let out = stack.tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    stack.sdk(
        &python,
        "arv-get",
        &[&format!("{uuid}/"), &format!("{}/", out.display())],
        &env,
    );
    for (name, data) in &files {
        let got = std::fs::read(out.join("src").join(name)).unwrap();
        assert!(
            got == *data,
            "{name} differs after arv-get ({} bytes vs {})",
            got.len(),
            data.len()
        );
    }

    // The stored record: signed for the reader, portable data hash as Arvados computes it.
    let script = format!(
        "import json, arvados; print(json.dumps(arvados.api('v1').collections().get(uuid='{uuid}').execute()))"
    );
    let record: Value =
        serde_json::from_str(&stack.sdk(&python, "python", &["-c", &script], &env)).unwrap();
    let unsigned = record["unsigned_manifest_text"].as_str().unwrap();
    assert!(!unsigned.contains("+A") && record["manifest_text"].as_str().unwrap().contains("+A"));
    assert_eq!(
        record["portable_data_hash"],
        format!("{}+{}", md5_hex(unsigned.as_bytes()), unsigned.len())
    );
    assert_eq!(unsigned.matches("+67108864").count(), 1, "{unsigned}");
    // And by portable data hash, as arv-get accepts it.
    let pdh = record["portable_data_hash"].as_str().unwrap();
    assert_eq!(
        stack.sdk(
            &python,
            "arv-get",
            &[&format!("{pdh}/src/a.txt"), "-"],
            &env
        ),
        "hello\n"
    );
}

#[test]
fn reset_restores_the_fixtures_and_keeps_the_keepstores() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    stack.start_keep(&[]);
    let script = r#"
import arvados, json
api = arvados.api('v1')
c = arvados.collection.Collection()
with c.open('x.txt', 'w') as f:
    f.write('x')
c.save_new(name='before reset')
mine = api.collections().list(filters=[['name', '=', 'before reset']]).execute()['items']
print(json.dumps({'uuid': c.manifest_locator(), 'count': len(mine)}))
"#;
    let made: Value =
        serde_json::from_str(&stack.sdk(&python, "python", &["-c", script], &env)).unwrap();
    assert_eq!(made["count"], 1);
    let host = &env.iter().find(|(k, _)| k == "ARVADOS_API_HOST").unwrap().1;
    let api = stack.api(host);
    let (status, _) = api.call("POST", "/database/reset", Some(ADMIN), None);
    assert_eq!(status, 200);
    let path = format!("/arvados/v1/collections/{}", made["uuid"].as_str().unwrap());
    assert_eq!(api.get(&path, ACTIVE).0, 404);
    let (_, services) = api.get("/arvados/v1/keep_services/accessible", ACTIVE);
    assert_eq!(
        services["items_available"], 2,
        "registered keepstores survive a reset"
    );
    let (_, me) = api.get("/arvados/v1/users/current", ACTIVE);
    assert_eq!(me["uuid"], "zzzzz-tpzed-xurymjxw79nv3jz");
}
