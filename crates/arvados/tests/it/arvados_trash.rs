//! The trash, as Arvados keeps it: deleting a collection, project or filter group puts it in
//! the trash (`trash`/`untrash` move it in and out), a trashed record is seen only with
//! `include_trash` and frees its name, what a trashed project holds is hidden with it, a
//! record past its `delete_at` is gone, and role groups are deleted outright. Over real HTTPS,
//! and through the real SDK's `trash()` and `untrash()`.

use crate::support::*;
use serde_json::{json, Value};

const ACTIVE_UUID: &str = "zzzzz-tpzed-xurymjxw79nv3jz";

fn seconds_between(from: &Value, to: &Value) -> i64 {
    let parse = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    (parse(to) - parse(from)).num_seconds()
}

fn uuids_of(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uuid"].clone())
        .collect()
}

fn create(api: &Api, plural: &str, body: Value) -> Value {
    let (status, made) = api.post(&format!("/arvados/v1/{plural}"), ACTIVE, &body);
    assert_eq!(status, 200, "{made}");
    made
}

#[test]
fn deleted_collections_go_to_the_trash_and_come_back() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let made = create(&api, "collections", json!({"collection": {"name": "kept"}}));
    let uuid = made["uuid"].as_str().unwrap();
    let path = format!("/arvados/v1/collections/{uuid}");

    let (status, deleted) = api.call("DELETE", &path, Some(ACTIVE), None);
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["is_trashed"], true);
    assert_eq!(
        seconds_between(&deleted["trash_at"], &deleted["delete_at"]),
        14 * 86400
    );
    assert_eq!(api.get(&path, ACTIVE).0, 404);
    let (status, seen) = api.get(&format!("{path}?include_trash=true"), ACTIVE);
    assert_eq!((status, &seen["is_trashed"]), (200, &json!(true)), "{seen}");
    let listed = |query: &str| {
        let (_, list) = api.get(&format!("/arvados/v1/collections?{query}"), ACTIVE);
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["uuid"] == uuid)
    };
    assert!(!listed("limit=1000"));
    assert!(listed("limit=1000&include_trash=true"));
    // Deleting it again needs include_trash to find it.
    assert_eq!(api.call("DELETE", &path, Some(ACTIVE), None).0, 404);

    // A trashed collection holds no name: another takes it, and untrashing then needs
    // ensure_unique_name.
    create(&api, "collections", json!({"collection": {"name": "kept"}}));
    let (status, refused) = api.call("POST", &format!("{path}/untrash"), Some(ACTIVE), None);
    assert_eq!(status, 422, "{refused}");
    assert!(refused["errors"][0]
        .as_str()
        .unwrap()
        .contains("already been taken"));
    let (status, back) = api.call(
        "POST",
        &format!("{path}/untrash?ensure_unique_name=true"),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["is_trashed"], false);
    assert_eq!(back["trash_at"], Value::Null);
    assert_eq!(back["delete_at"], Value::Null);
    assert!(
        back["name"].as_str().unwrap().starts_with("kept ("),
        "{back}"
    );
    assert_eq!(api.get(&path, ACTIVE).0, 200);
    let (status, refused) = api.call("POST", &format!("{path}/untrash"), Some(ACTIVE), None);
    assert_eq!(status, 422, "{refused}");
    assert!(refused["errors"][0]
        .as_str()
        .unwrap()
        .contains("not in the trash"));

    // trash: into the trash with the trash lifetime, and the spectator (who cannot read it)
    // cannot trash it at all.
    assert_eq!(
        api.call("POST", &format!("{path}/trash"), Some(SPECTATOR), None)
            .0,
        404
    );
    let (status, trashed) = api.call("POST", &format!("{path}/trash"), Some(ACTIVE), None);
    assert_eq!(
        (status, &trashed["is_trashed"]),
        (200, &json!(true)),
        "{trashed}"
    );
    // Trashing what is in the trash changes nothing.
    let (status, again) = api.call(
        "POST",
        &format!("{path}/trash?include_trash=true"),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["trash_at"], trashed["trash_at"]);
    assert_eq!(again["modified_at"], trashed["modified_at"]);
}

#[test]
fn a_trashed_project_hides_what_it_holds() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let project = create(
        &api,
        "groups",
        json!({"group": {"name": "bin", "group_class": "project"}}),
    );
    let project_uuid = project["uuid"].as_str().unwrap();
    let inner = create(
        &api,
        "groups",
        json!({"group": {"name": "inner", "group_class": "project", "owner_uuid": project_uuid}}),
    );
    let held = create(
        &api,
        "collections",
        json!({"collection": {"name": "held", "owner_uuid": inner["uuid"]}}),
    );
    let held_path = format!("/arvados/v1/collections/{}", held["uuid"].as_str().unwrap());

    let (status, gone) = api.call(
        "DELETE",
        &format!("/arvados/v1/groups/{project_uuid}"),
        Some(ACTIVE),
        None,
    );
    assert_eq!((status, &gone["is_trashed"]), (200, &json!(true)), "{gone}");
    // The collection two levels down is hidden with it, though not trashed itself.
    assert_eq!(api.get(&held_path, ACTIVE).0, 404);
    let (status, seen) = api.get(&format!("{held_path}?include_trash=true"), ACTIVE);
    assert_eq!(
        (status, &seen["is_trashed"]),
        (200, &json!(false)),
        "{seen}"
    );
    let (_, home) = api.get(
        &format!("/arvados/v1/groups/contents?uuid={ACTIVE_UUID}&recursive=true&limit=1000"),
        ACTIVE,
    );
    let home_uuids: Vec<&Value> = home["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["uuid"])
        .collect();
    assert!(!home_uuids.contains(&&held["uuid"]), "{home}");
    assert!(!home_uuids.contains(&&project["uuid"]), "{home}");

    // Its contents are found only with include_trash, as the project itself is.
    let contents = format!("/arvados/v1/groups/contents?uuid={project_uuid}&recursive=true");
    assert_eq!(api.get(&contents, ACTIVE).0, 404);
    let (status, listed) = api.get(&format!("{contents}&include_trash=true"), ACTIVE);
    assert_eq!(status, 200, "{listed}");
    assert!(uuids_of(&listed).contains(&held["uuid"]), "{listed}");

    // The logs of what the trashed project holds are not trash: still listed.
    let (status, logs) = api.get(
        &format!(
            "/arvados/v1/logs?filters=%5B%5B%22object_uuid%22%2C%22%3D%22%2C%22{}%22%5D%5D",
            held["uuid"].as_str().unwrap()
        ),
        ACTIVE,
    );
    assert_eq!(status, 200, "{logs}");
    assert_eq!(logs["items"][0]["event_type"], "create", "{logs}");

    let (status, back) = api.call(
        "POST",
        &format!("/arvados/v1/groups/{project_uuid}/untrash"),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 200, "{back}");
    assert_eq!(api.get(&held_path, ACTIVE).0, 200);
}

#[test]
fn past_delete_at_a_record_is_gone_and_role_groups_are_deleted_at_once() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let expired = create(
        &api,
        "collections",
        json!({"collection": {"name": "expired", "trash_at": "2020-01-01T00:00:00Z",
            "delete_at": "2020-01-02T00:00:00Z"}}),
    );
    let path = format!(
        "/arvados/v1/collections/{}",
        expired["uuid"].as_str().unwrap()
    );
    assert_eq!(
        api.get(&format!("{path}?include_trash=true"), ACTIVE).0,
        404
    );
    // Its name is free.
    create(
        &api,
        "collections",
        json!({"collection": {"name": "expired"}}),
    );

    let role = create(
        &api,
        "groups",
        json!({"group": {"name": "readers", "group_class": "role"}}),
    );
    let role_path = format!("/arvados/v1/groups/{}", role["uuid"].as_str().unwrap());
    let (status, refused) = api.call("POST", &format!("{role_path}/trash"), Some(ACTIVE), None);
    assert_eq!(status, 422, "{refused}");
    assert_eq!(api.call("DELETE", &role_path, Some(ACTIVE), None).0, 200);
    assert_eq!(
        api.get(&format!("{role_path}?include_trash=true"), ACTIVE)
            .0,
        404
    );
}

/// The SDK's own client: trash() and untrash() from the discovery document.
const SDK_TRASH: &str = r#"
import json, arvados
api = arvados.api('v1')
c = api.collections().create(body={'collection': {'name': 'sdk trash'}}).execute()
trashed = api.collections().trash(uuid=c['uuid']).execute()
hidden = [x['uuid'] for x in api.collections().list(filters=[['uuid', '=', c['uuid']]]).execute()['items']]
back = api.collections().untrash(uuid=c['uuid'], ensure_unique_name=True).execute()
p = api.groups().create(body={'group': {'name': 'sdk bin', 'group_class': 'project'}}).execute()
p_trashed = api.groups().trash(uuid=p['uuid']).execute()
p_back = api.groups().untrash(uuid=p['uuid']).execute()
print(json.dumps([trashed['is_trashed'], hidden, back['is_trashed'],
    p_trashed['is_trashed'], p_back['is_trashed']]))
"#;

#[test]
fn the_sdk_trashes_and_untrashes_collections_and_projects() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", SDK_TRASH], &env);
    let seen: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(seen, json!([true, [], false, true, false]));
}
