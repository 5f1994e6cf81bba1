//! Collection versions, as the Arvados Python SDK's `test_preserve_version_on_save` needs them:
//! every collection starts at `version` 1 with `current_version_uuid` its own uuid; an update
//! that changes the manifest (or name, description, properties) of a record with
//! `preserve_version` (stored or given) keeps the old state as a snapshot (a new uuid pointing
//! at the head) and counts the head's version up; `preserve_version` then takes the value the
//! update gives (false when none). A collection left unchanged for
//! `Collections.PreserveVersionIfIdle` (10 s) keeps its old state on a change too. Snapshots
//! are left out of lists unless `include_old_versions`.

use crate::support::*;
use serde_json::{json, Value};

fn update(api: &Api, uuid: &str, body: &Value) -> Value {
    let (status, record) = api.call(
        "PUT",
        &format!("/arvados/v1/collections/{uuid}"),
        Some(ACTIVE),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "{record}");
    record
}

fn fetch(api: &Api, uuid: &str) -> Value {
    let (status, record) = api.get(&format!("/arvados/v1/collections/{uuid}"), ACTIVE);
    assert_eq!(status, 200, "{record}");
    record
}

/// The versions of `head` (`include_old_versions`), oldest first.
fn versions(api: &Api, head: &str) -> Vec<Value> {
    let filters = json!([["current_version_uuid", "=", head]]).to_string();
    let order = json!(["version asc"]).to_string();
    let (status, list) = api.get(
        &format!(
            "/arvados/v1/collections?include_old_versions=true&filters={}&order={}",
            urlencode(&filters),
            urlencode(&order)
        ),
        ACTIVE,
    );
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const FOO: &str = ". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo.txt\n";
const FOOBAR: &str =
    ". 37b51d194a7513e45b56f6524f2d51f2+3 acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:bar.txt 3:3:foo.txt\n";

/// The SDK test's three saves: create with `preserve_version`, a change with it (version 2),
/// a change without it (version 3, `preserve_version` false again).
#[test]
fn preserve_version_keeps_snapshots_and_counts_versions() {
    let stack = Stack::new();
    let api = stack.api(&stack.start());
    let (status, created) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"manifest_text": "", "preserve_version": true}}),
    );
    assert_eq!(status, 200, "{created}");
    let uuid = created["uuid"].as_str().unwrap().to_string();
    let record = fetch(&api, &uuid);
    assert_eq!(record["version"], 1);
    assert_eq!(record["preserve_version"], true);
    assert_eq!(record["current_version_uuid"], uuid.as_str());

    update(
        &api,
        &uuid,
        &json!({"collection": {"manifest_text": FOO, "preserve_version": true}}),
    );
    let record = fetch(&api, &uuid);
    assert_eq!(record["version"], 2);
    assert_eq!(record["preserve_version"], true);

    // The SDK sends no preserve_version for `save(preserve_version=False)`.
    update(
        &api,
        &uuid,
        &json!({"collection": {"manifest_text": FOOBAR}}),
    );
    let record = fetch(&api, &uuid);
    assert_eq!(record["version"], 3);
    assert_eq!(record["preserve_version"], false);
    assert_eq!(record["current_version_uuid"], uuid.as_str());

    // The two old states are kept, each its own record pointing at the head.
    let all = versions(&api, &uuid);
    let numbers: Vec<&Value> = all.iter().map(|v| &v["version"]).collect();
    assert_eq!(numbers, [&json!(1), &json!(2), &json!(3)], "{all:?}");
    assert_eq!(all[0]["unsigned_manifest_text"], "");
    assert_eq!(all[1]["unsigned_manifest_text"], FOO);
    assert_ne!(all[0]["uuid"], uuid.as_str());
    assert_ne!(all[1]["uuid"], uuid.as_str());
    let old = fetch(&api, all[1]["uuid"].as_str().unwrap());
    assert_eq!(old["current_version_uuid"], uuid.as_str());

    // Without preserve_version now, a change moves the head alone.
    update(&api, &uuid, &json!({"collection": {"name": "renamed"}}));
    assert_eq!(fetch(&api, &uuid)["version"], 3);
    assert_eq!(versions(&api, &uuid).len(), 3);

    // Lists leave the snapshots out unless asked.
    let filters = urlencode(&json!([["current_version_uuid", "=", uuid]]).to_string());
    let (status, list) = api.get(
        &format!("/arvados/v1/collections?filters={filters}"),
        ACTIVE,
    );
    assert_eq!(status, 200, "{list}");
    assert_eq!(uuids(&list), vec![uuid.as_str()]);
    // Deleting the head takes its old versions with it.
    let (status, _) = api.call(
        "DELETE",
        &format!("/arvados/v1/collections/{uuid}"),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 200);
    assert!(versions(&api, &uuid).is_empty());
}

/// A collection left unchanged past `PreserveVersionIfIdle` (a fixture, last changed in 2014)
/// keeps its old state when changed, with no `preserve_version`; changed again at once, it
/// does not.
#[test]
fn an_idle_collection_keeps_its_old_state_when_changed() {
    let stack = Stack::new();
    let api = stack.api(&stack.start());
    let (_, config) = api.get("/arvados/v1/config", ACTIVE);
    assert_eq!(config["Collections"]["PreserveVersionIfIdle"], "10s");
    let uuid = "zzzzz-4zz18-bv31uwvy3neko21";
    let before = fetch(&api, uuid);
    assert_eq!(before["preserve_version"], false);
    let after = update(&api, uuid, &json!({"collection": {"name": "renamed once"}}));
    let version = before["version"].as_u64().unwrap();
    assert_eq!(after["version"], version + 1);
    let kept = versions(&api, uuid);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert_eq!(kept[0]["name"], before["name"]);
    update(
        &api,
        uuid,
        &json!({"collection": {"name": "renamed twice"}}),
    );
    assert_eq!(fetch(&api, uuid)["version"], version + 1);
    assert_eq!(versions(&api, uuid).len(), 2);
}

/// Snapshots do not take the head's name, and a past version cannot be changed.
#[test]
fn snapshots_keep_names_free_and_cannot_change() {
    let stack = Stack::new();
    let api = stack.api(&stack.start());
    let (status, created) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"name": "versioned", "manifest_text": "", "preserve_version": true}}),
    );
    assert_eq!(status, 200, "{created}");
    let uuid = created["uuid"].as_str().unwrap().to_string();
    update(&api, &uuid, &json!({"collection": {"manifest_text": FOO}}));
    // The head keeps its name, and may still be renamed and back.
    update(&api, &uuid, &json!({"collection": {"name": "other"}}));
    update(&api, &uuid, &json!({"collection": {"name": "versioned"}}));
    let old = versions(&api, &uuid)[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, answer) = api.call(
        "PUT",
        &format!("/arvados/v1/collections/{old}"),
        Some(ACTIVE),
        Some(&json!({"collection": {"manifest_text": FOOBAR}}).to_string()),
    );
    assert_eq!(status, 422, "{answer}");
}
