//! Sharing, as Workbench and harnesses look at it: `groups/shared` lists the projects shared
//! with the caller from outside its home tree (their owners in `included`), and
//! `links/UUID/get_permissions` lists who may do what on an object, for whoever manages it.
//! Over real HTTPS, and through the real SDK.

use crate::support::*;
use serde_json::{json, Value};

const ACTIVE_UUID: &str = "zzzzz-tpzed-xurymjxw79nv3jz";
const SPECTATOR_UUID: &str = "zzzzz-tpzed-l1s2piq4t4mps8r";

fn uuids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["uuid"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn shared_projects_and_their_permissions() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let project = |token: &str, name: &str, owner: Option<&str>| {
        let mut group = json!({"name": name, "group_class": "project"});
        if let Some(owner) = owner {
            group["owner_uuid"] = owner.into();
        }
        let (status, made) = api.post("/arvados/v1/groups", token, &json!({ "group": group }));
        assert_eq!(status, 200, "{made}");
        made["uuid"].as_str().unwrap().to_string()
    };
    let theirs = project(SPECTATOR, "spectator's", None);
    let below = project(SPECTATOR, "below it", Some(&theirs));
    let mine = project(ACTIVE, "active's own", None);
    let (status, link) = api.post(
        "/arvados/v1/links",
        SPECTATOR,
        &json!({"link": {"link_class": "permission", "name": "can_read",
            "tail_uuid": ACTIVE_UUID, "head_uuid": theirs}}),
    );
    assert_eq!(status, 200, "{link}");

    // Shared: the spectator's project (the one below it is reached through it), not the
    // active user's own.
    let (status, shared) = api.get("/arvados/v1/groups/shared?limit=1000", ACTIVE);
    assert_eq!(status, 200, "{shared}");
    assert_eq!(shared["kind"], "arvados#groupList");
    let listed = uuids(&shared);
    assert!(listed.contains(&theirs), "{shared}");
    assert!(!listed.contains(&below), "{shared}");
    assert!(!listed.contains(&mine), "{shared}");
    // With include=owner_uuid, the owners the caller may read: the admin reads the spectator.
    let (status, shared) = api.get(
        "/arvados/v1/groups/shared?include=owner_uuid&limit=1000",
        ADMIN,
    );
    assert_eq!(status, 200, "{shared}");
    assert!(uuids(&shared).contains(&theirs));
    let included: Vec<&Value> = shared["included"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["uuid"])
        .collect();
    assert!(included.contains(&&json!(SPECTATOR_UUID)), "{shared}");

    // groups/contents takes include=owner_uuid as text too (it used to be 422, not JSON).
    let (status, contents) = api.get(
        &format!("/arvados/v1/groups/contents?uuid={theirs}&include=owner_uuid"),
        SPECTATOR,
    );
    assert_eq!(status, 200, "{contents}");
    assert_eq!(uuids(&contents), vec![below.clone()]);
    assert_eq!(
        contents["included"][0]["uuid"],
        theirs.as_str(),
        "{contents}"
    );

    // Permissions on the project: for its manager, not for a reader.
    let path = format!("/arvados/v1/links/{theirs}/get_permissions");
    let (status, perms) = api.get(&path, SPECTATOR);
    assert_eq!(status, 200, "{perms}");
    assert_eq!(
        uuids(&perms),
        vec![link["uuid"].as_str().unwrap().to_string()]
    );
    assert_eq!(perms["items"][0]["name"], "can_read");
    assert_eq!(api.get(&path, ADMIN).0, 200);
    assert_eq!(api.get(&path, ACTIVE).0, 403);
    let (status, _) = api.get(
        &format!("/arvados/v1/links/{mine}/get_permissions"),
        SPECTATOR,
    );
    assert_eq!(status, 404);
}

const SDK_SHARING: &str = r#"
import json, arvados
api = arvados.api('v1')
p = api.groups().create(body={'group': {'name': 'sdk shared', 'group_class': 'project'}}).execute()
perms = api.links().get_permissions(uuid=p['uuid']).execute()
shared = api.groups().shared().execute()
print(json.dumps([perms['kind'], len(perms['items']), shared['kind'],
    p['uuid'] in [g['uuid'] for g in shared['items']]]))
"#;

#[test]
fn the_sdk_lists_shared_projects_and_permissions() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", SDK_SHARING], &env);
    let seen: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        seen,
        json!(["arvados#linkList", 0, "arvados#groupList", false])
    );
}
