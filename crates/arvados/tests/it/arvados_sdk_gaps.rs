//! What the Arvados Python SDK's own test suite (`scripts/sdk-suite`) needs of the API server
//! and keepstore, over real HTTPS on loopback: schemas' `uuidPrefix` in the discovery document
//! (arv-copy) and the workflows list, locators signed whenever the cluster's key is known
//! (keepstore PUT answers and manifests read from the API server), and the Docker image
//! fixture collection. Collection versions are `arvados_versions`'.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::*;
use cibox_arvados::api::cluster::BLOB_SIGNING_KEY;
use cibox_arvados::locator::Locator;
use cibox_arvados::signature::{verify, DEFAULT_TTL};
use cibox_testsupport::keep::{get, md5_hex, put};
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Checks that `locator` carries a signature of the cluster's key for `token`.
fn signed_for(locator: &str, token: &str) {
    let parsed = Locator::parse(locator).unwrap_or_else(|e| panic!("{locator}: {e}"));
    verify(
        &parsed,
        BLOB_SIGNING_KEY.as_bytes(),
        token,
        DEFAULT_TTL,
        now(),
    )
    .unwrap_or_else(|e| panic!("{locator}: {e}"));
}

/// arv-copy tells a uuid's type by the infix its schema's `uuidPrefix` names.
#[test]
fn discovery_schemas_carry_their_uuid_prefix() {
    let stack = Stack::new();
    let api = stack.api(&stack.start());
    let (status, doc) = api.call("GET", "/discovery/v1/apis/arvados/v1/rest", None, None);
    assert_eq!(status, 200);
    let schemas = &doc["schemas"];
    for (kind, infix) in [
        ("Collection", "4zz18"),
        ("Group", "j7d0g"),
        ("User", "tpzed"),
        ("Link", "o0j2j"),
        ("ApiClientAuthorization", "gj3su"),
        ("KeepService", "bi6l4"),
        ("Log", "57u5n"),
        ("Repository", "s0uqq"),
    ] {
        assert_eq!(schemas[kind]["uuidPrefix"], infix, "{kind}");
    }
    // arv-copy of a project lists its workflows: none are kept, but the list answers.
    assert_eq!(schemas["Workflow"]["uuidPrefix"], "7fd4e");
    let (status, list) = api.get(
        "/arvados/v1/workflows?filters=%5B%5B%22owner_uuid%22%2C%22%3D%22%2C%22zzzzz-j7d0g-v955i6s2oi1cbso%22%5D%5D",
        ACTIVE,
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"], serde_json::json!([]));
}

/// Keepstores started without enforcing permissions still sign what a PUT answers with the
/// cluster's key, and the API server signs the manifests it returns, yet takes unsigned
/// locators (nothing is enforced).
#[test]
fn locators_are_signed_without_enforcement() {
    let stack = Stack::new();
    let api = stack.api(&stack.start());
    let port = stack.start_keep(&["--num-keep-servers", "1"])[0];
    assert!(!stack.run_dir().join("keep.enforce_permissions").exists());
    let data = b"signed, not enforced";
    let hash = md5_hex(data);
    let (status, answer) = put(
        &format!("http://127.0.0.1:{port}/{hash}"),
        Some(ACTIVE),
        data,
    );
    assert_eq!(status, 200, "{answer}");
    let locator = answer.trim();
    assert!(locator.contains("+A"), "{locator}");
    signed_for(locator, ACTIVE);
    // Not enforced: the bare hash reads.
    let (status, body) = get(&format!("http://127.0.0.1:{port}/{hash}"), Some(ACTIVE));
    assert_eq!((status, body.as_slice()), (200, &data[..]));
    // The API server takes an unsigned locator and answers it signed.
    let plain = format!("{hash}+{}", data.len());
    let (status, created) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"manifest_text": format!(". {plain} 0:20:f\n")}}),
    );
    assert_eq!(status, 200, "{created}");
    let text = created["manifest_text"].as_str().unwrap();
    let read: Vec<&str> = text.split(' ').collect();
    signed_for(read[1], ACTIVE);
    let uuid = created["uuid"].as_str().unwrap();
    let (_, again): (u16, Value) = api.get(&format!("/arvados/v1/collections/{uuid}"), ACTIVE);
    let text = again["manifest_text"].as_str().unwrap();
    signed_for(text.split(' ').nth(1).unwrap(), ACTIVE);
}

/// arv-keepdocker lists the images whose collections exist: the Docker image fixture does.
#[test]
fn the_docker_image_fixture_collection_is_served() {
    let stack = Stack::new();
    let api = stack.api(&stack.start());
    let (status, c) = api.get("/arvados/v1/collections/zzzzz-4zz18-1v45jub259sjjgb", ADMIN);
    assert_eq!(status, 200, "{c}");
    assert_eq!(
        c["portable_data_hash"],
        "fa3c1a9cb6783f85f2ecda037e07b8c3+167"
    );
    assert_eq!(c["name"], "docker_image");
}
