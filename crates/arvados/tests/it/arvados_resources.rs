//! The API server's resources beyond the basics, over real HTTPS on loopback: manifests always
//! signed with the cluster's key and checked only when the keepstores enforce signatures
//! (never for admins), client times normalised, the exported config, groups and their
//! contents, links and the permissions they grant, `users.create`, the logs every change
//! leaves, `computed_permissions`, and the built-in fixtures the SDK suite names.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::*;
use cibox_arvados::signature::{self, DEFAULT_TTL};
use serde_json::{json, Value};

const CLUSTER_KEY: &str = "zfhgfenhffzltr9dixws36j1yhksjoll2grmku38mi7yxd66h5j4q9w4jzanezacp8s6q0ro3hxakfye02152hncy6zml2ed0uc";
const FOO: &str = "acbd18db4cc2f85cedef654fccc4a4d8+3";
const APROJECT: &str = "zzzzz-j7d0g-v955i6s2oi1cbso";
const ACTIVE_UUID: &str = "zzzzz-tpzed-xurymjxw79nv3jz";
const SPECTATOR_UUID: &str = "zzzzz-tpzed-l1s2piq4t4mps8r";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `?filters=...` for one `[attr, op, operand]` filter.
fn filter(attr: &str, op: &str, operand: Value) -> String {
    let text = json!([[attr, op, operand]]).to_string();
    let mut out = String::from("filters=");
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn first_locator(manifest: &Value) -> String {
    manifest
        .as_str()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn manifests_are_signed_with_the_cluster_key_and_checked_only_when_enforced() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let manifest =
        |loc: &str| json!({"collection": {"manifest_text": format!(". {loc} 0:3:foo\n")}});

    // No keepstore key: unsigned locators are taken, and answers are signed with the
    // cluster's key for the caller's token.
    let (status, created) = api.post("/arvados/v1/collections", ACTIVE, &manifest(FOO));
    assert_eq!(status, 200, "{created}");
    let signed = first_locator(&created["manifest_text"]);
    let parsed = cibox_arvados::locator::Locator::parse(&signed).unwrap();
    signature::verify(&parsed, CLUSTER_KEY.as_bytes(), ACTIVE, DEFAULT_TTL, now())
        .unwrap_or_else(|e| panic!("{signed}: {e}"));

    // start_keep enforcing permissions shares the cluster key: a non-admin's unsigned locator
    // is refused, a signed one taken; an admin's manifest is taken whatever its signatures.
    stack.start_keep(&["--keep-enforce-permissions", "--num-keep-servers", "1"]);
    assert_eq!(
        std::fs::read_to_string(stack.run_dir().join("keep.blob_signing_key")).unwrap(),
        CLUSTER_KEY
    );
    let (status, refused) = api.post("/arvados/v1/collections", ACTIVE, &manifest(FOO));
    assert_eq!(status, 403, "{refused}");
    assert!(refused["errors"][0]
        .as_str()
        .unwrap()
        .contains("not signed"));
    let (status, taken) = api.post("/arvados/v1/collections", ACTIVE, &manifest(&signed));
    assert_eq!(status, 200, "{taken}");
    let forged = format!("{FOO}+A{}@{:08x}", "0".repeat(40), now() + 100);
    for loc in [FOO.to_string(), forged, signed.clone()] {
        let (status, answer) = api.post("/arvados/v1/collections", ADMIN, &manifest(&loc));
        assert_eq!(status, 200, "admin {loc}: {answer}");
    }
}

#[test]
fn client_times_are_normalised_and_the_config_is_the_test_clusters() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let (status, created) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"trash_at": "2099-01-02T03:04:05+01:00", "name": "later"}}),
    );
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["trash_at"], "2099-01-02T02:04:05.000000000Z");
    assert_eq!(created["delete_at"], "2099-01-16T02:04:05.000000000Z");
    assert_eq!(created["is_trashed"], false);
    let (status, answer) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"delete_at": "soon"}}),
    );
    assert_eq!(status, 422, "{answer}");
    assert!(answer["errors"][0].as_str().unwrap().contains("delete_at"));
    // A past trash time trashes: hidden from lists and gets unless include_trash.
    let uuid = created["uuid"].as_str().unwrap();
    let (status, trashed) = api.call(
        "PUT",
        &format!("/arvados/v1/collections/{uuid}"),
        Some(ACTIVE),
        Some(&json!({"collection": {"trash_at": "2001-01-01 00:00:00"}}).to_string()),
    );
    assert_eq!(status, 200, "{trashed}");
    assert_eq!(trashed["is_trashed"], true);
    assert_eq!(trashed["trash_at"], "2001-01-01T00:00:00.000000000Z");
    assert_eq!(
        api.get(&format!("/arvados/v1/collections/{uuid}"), ACTIVE)
            .0,
        404
    );
    let (_, with_trash) = api.get(
        &format!("/arvados/v1/collections/{uuid}?include_trash=true"),
        ACTIVE,
    );
    assert_eq!(with_trash["uuid"], uuid);

    let (status, config) = api.get("/arvados/v1/config", ACTIVE);
    assert_eq!(status, 200);
    assert_eq!(config["Collections"]["CollectionVersioning"], true);
    assert_eq!(config["Collections"]["DefaultReplication"], 2);
    assert_eq!(config["StorageClasses"]["default"]["Default"], true);
    assert_eq!(config["ClusterID"], "zzzzz");
}

#[test]
fn groups_contents_and_links_follow_arvados_permissions() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    // The active user's fixture project and what it holds.
    let (status, project) = api.get(&format!("/arvados/v1/groups/{APROJECT}"), ACTIVE);
    assert_eq!(status, 200, "{project}");
    assert_eq!(project["name"], "A Project");
    assert_eq!(project["can_manage"], true);
    assert_eq!(
        api.get(&format!("/arvados/v1/groups/{APROJECT}"), SPECTATOR)
            .0,
        404
    );

    let (status, made) = api.post(
        "/arvados/v1/collections",
        ACTIVE,
        &json!({"collection": {"owner_uuid": APROJECT, "name": "in the project"}}),
    );
    assert_eq!(status, 200, "{made}");
    let (status, sub) = api.post(
        "/arvados/v1/groups",
        ACTIVE,
        &json!({"group": {"owner_uuid": "zzzzz-j7d0g-axqo7eu9pwvna1x", "name": "deep", "group_class": "project"}}),
    );
    assert_eq!(status, 200, "{sub}");
    let (status, contents) = api.get(
        &format!("/arvados/v1/groups/contents?uuid={APROJECT}"),
        ACTIVE,
    );
    assert_eq!(status, 200, "{contents}");
    assert_eq!(contents["kind"], "arvados#objectList");
    let names: Vec<&str> = contents["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"in the project") && names.contains(&"A Subproject"),
        "{names:?}"
    );
    assert!(!names.contains(&"deep"), "not recursive: {names:?}");
    let (_, recursive) = api.get(
        &format!(
            "/arvados/v1/groups/{APROJECT}/contents?recursive=true&{}",
            filter("uuid", "is_a", json!("arvados#group"))
        ),
        ACTIVE,
    );
    assert_eq!(uuids(&recursive).len(), 2, "{recursive}");
    assert_eq!(
        api.get(
            &format!("/arvados/v1/groups/contents?uuid={APROJECT}"),
            SPECTATOR
        )
        .0,
        404
    );

    // Taken names, missing classes.
    let (status, answer) = api.post(
        "/arvados/v1/groups",
        ACTIVE,
        &json!({"group": {"name": "A Project", "group_class": "project"}}),
    );
    assert_eq!(status, 422, "{answer}");
    let (status, _) = api.post(
        "/arvados/v1/groups",
        SPECTATOR,
        &json!({"group": {"name": "A Project", "group_class": "project"}}),
    );
    assert_eq!(status, 200, "another owner's name is free");
    let (status, _) = api.post(
        "/arvados/v1/groups",
        ACTIVE,
        &json!({"group": {"name": "classless"}}),
    );
    assert_eq!(status, 422);

    // The spectator may not write into the project, nor grant itself access.
    let (status, answer) = api.post(
        "/arvados/v1/collections",
        SPECTATOR,
        &json!({"collection": {"owner_uuid": APROJECT}}),
    );
    assert_eq!(status, 403, "{answer}");
    let grant = |level: &str| json!({"link": {"link_class": "permission", "name": level, "tail_uuid": SPECTATOR_UUID, "head_uuid": APROJECT}});
    let (status, _) = api.post("/arvados/v1/links", SPECTATOR, &grant("can_read"));
    assert_eq!(status, 403);
    // The owner shares it read-only: the spectator reads the project and its collection but
    // may not write there.
    let (status, link) = api.post("/arvados/v1/links", ACTIVE, &grant("can_read"));
    assert_eq!(status, 200, "{link}");
    let made_uuid = made["uuid"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/arvados/v1/groups/{APROJECT}"), SPECTATOR)
            .0,
        200
    );
    assert_eq!(
        api.get(&format!("/arvados/v1/collections/{made_uuid}"), SPECTATOR)
            .0,
        200
    );
    let (status, _) = api.call(
        "PUT",
        &format!("/arvados/v1/collections/{made_uuid}"),
        Some(SPECTATOR),
        Some(r#"{"collection": {"name": "mine now"}}"#),
    );
    assert_eq!(status, 403);
    // Withdrawn: gone again.
    let link_uuid = link["uuid"].as_str().unwrap();
    let (status, _) = api.call(
        "DELETE",
        &format!("/arvados/v1/links/{link_uuid}"),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        api.get(&format!("/arvados/v1/collections/{made_uuid}"), SPECTATOR)
            .0,
        404
    );
    let (status, answer) = api.post(
        "/arvados/v1/links",
        ACTIVE,
        &json!({"link": {"link_class": "permission", "name": "can_fly", "tail_uuid": SPECTATOR_UUID, "head_uuid": APROJECT}}),
    );
    assert_eq!(status, 422, "{answer}");
}

#[test]
fn users_create_logs_and_computed_permissions() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let (status, user) = api.post("/arvados/v1/users", ADMIN, &json!({}));
    assert_eq!(status, 200, "{user}");
    assert!(user["uuid"].as_str().unwrap().starts_with("zzzzz-tpzed-"));
    assert_eq!(user["is_active"], false);
    let (status, _) = api.post("/arvados/v1/users", ACTIVE, &json!({}));
    assert_eq!(status, 403);
    let (status, answer) = api.post(
        "/arvados/v1/users",
        ADMIN,
        &json!({"user": {"username": "active"}}),
    );
    assert_eq!(status, 422, "{answer}");

    // Every change leaves a log with a growing id, readable by whoever reads the object.
    let (_, made) = api.post("/arvados/v1/collections", ACTIVE, &json!({}));
    let uuid = made["uuid"].as_str().unwrap();
    let (status, logs) = api.get(
        &format!(
            "/arvados/v1/logs?order=id%20asc&{}",
            filter("object_uuid", "is_a", json!("arvados#collection"))
        ),
        ACTIVE,
    );
    assert_eq!(status, 200, "{logs}");
    let items = logs["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{logs}");
    assert_eq!(items[0]["object_uuid"], uuid);
    assert_eq!(items[0]["event_type"], "create");
    let first_id = items[0]["id"].as_u64().unwrap();
    api.call(
        "DELETE",
        &format!("/arvados/v1/collections/{uuid}"),
        Some(ACTIVE),
        None,
    );
    let (_, later) = api.get(
        &format!("/arvados/v1/logs?{}", filter("id", ">", json!(first_id))),
        ACTIVE,
    );
    // A deleted collection goes to the trash: Arvados logs that as an update.
    assert_eq!(later["items"][0]["event_type"], "update", "{later}");
    assert_eq!(
        later["items"][0]["properties"]["new_attributes"]["is_trashed"], true,
        "{later}"
    );
    let (_, spectator_logs) = api.get("/arvados/v1/logs", SPECTATOR);
    assert!(
        !uuids(&spectator_logs)
            .iter()
            .any(|u| later["items"][0]["uuid"] == u.as_str()),
        "{spectator_logs}"
    );

    // computed_permissions: the active user manages itself and its project, reads All users.
    let (status, perms) = api.get(
        &format!(
            "/arvados/v1/computed_permissions?{}",
            filter("user_uuid", "=", json!(ACTIVE_UUID))
        ),
        ADMIN,
    );
    assert_eq!(status, 200, "{perms}");
    let rows = perms["items"].as_array().unwrap();
    let level = |target: &str| {
        rows.iter()
            .find(|r| r["target_uuid"] == target)
            .map(|r| r["perm_level"].as_str().unwrap().to_string())
    };
    assert_eq!(level(ACTIVE_UUID).as_deref(), Some("can_manage"));
    assert_eq!(level(APROJECT).as_deref(), Some("can_manage"));
    assert_eq!(
        level("zzzzz-j7d0g-fffffffffffffff").as_deref(),
        Some("can_write")
    );
    assert!(rows.iter().all(|r| r["user_uuid"] == ACTIVE_UUID));
    // A user sees only its own rows.
    let (_, own) = api.get("/arvados/v1/computed_permissions", SPECTATOR);
    assert!(own["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["user_uuid"] == SPECTATOR_UUID));
}

#[test]
fn the_fixtures_the_sdk_suite_names_are_there_and_survive_a_reset() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    for (uuid, pdh) in [
        (
            "zzzzz-4zz18-znfnqtbbv4spc3w",
            "1f4b0bc7583c2a7f9102c395f4ffc5e3+45",
        ),
        (
            "zzzzz-4zz18-ehbhgtheo8909or",
            "fa7aeb5140e2848d39b416daeef4ffc5+45",
        ),
        (
            "zzzzz-4zz18-gs9ooj1h9sd5mde",
            "d41d8cd98f00b204e9800998ecf8427e+0",
        ),
        (
            "zzzzz-4zz18-filesinsubdir00",
            "7eb64275355980ebc93411b44050c137+281",
        ),
        (
            "zzzzz-4zz18-t68oksiu9m80s4y",
            "b519d9cb706a29fc7ea24dbea2f05851+93",
        ),
        (
            "zzzzz-4zz18-bv31uwvy3neko21",
            "fa7aeb5140e2848d39b416daeef4ffc5+45",
        ),
    ] {
        let (status, c) = api.get(&format!("/arvados/v1/collections/{uuid}"), ADMIN);
        assert_eq!(status, 200, "{uuid}: {c}");
        assert_eq!(c["portable_data_hash"], pdh, "{uuid}");
    }
    // Shared with All users: the active user reads the user agreement, not foo_file.
    assert_eq!(
        api.get(
            "/arvados/v1/collections/zzzzz-4zz18-t68oksiu9m80s4y",
            ACTIVE
        )
        .0,
        200
    );
    assert_eq!(
        api.get(
            "/arvados/v1/collections/zzzzz-4zz18-znfnqtbbv4spc3w",
            ACTIVE
        )
        .0,
        404
    );
    // Changed and removed fixtures come back with a reset.
    let (status, _) = api.call(
        "DELETE",
        &format!("/arvados/v1/groups/{APROJECT}"),
        Some(ACTIVE),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        api.get(&format!("/arvados/v1/groups/{APROJECT}"), ACTIVE).0,
        404
    );
    assert_eq!(
        api.call("POST", "/database/reset", Some(ADMIN), None).0,
        200
    );
    let (status, project) = api.get(&format!("/arvados/v1/groups/{APROJECT}"), ACTIVE);
    assert_eq!((status, &project["owner_uuid"]), (200, &json!(ACTIVE_UUID)));
}

#[test]
fn the_discovery_document_lists_the_new_resources() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let (status, doc) = api.call("GET", "/discovery/v1/apis/arvados/v1/rest", None, None);
    assert_eq!(status, 200);
    let resources = &doc["resources"];
    for (res, method) in [
        ("groups", "contents"),
        ("groups", "create"),
        ("links", "delete"),
        ("logs", "list"),
        ("computed_permissions", "list"),
        ("users", "create"),
    ] {
        assert!(
            resources[res]["methods"][method].is_object(),
            "{res}.{method} missing"
        );
    }
    assert_eq!(
        resources["groups"]["methods"]["contents"]["path"],
        "groups/contents"
    );
}

/// A small Arvados-style checkout: `services/api/test/fixtures/*.yml` with the ERB the real
/// files use.
fn write_checkout(root: &std::path::Path, groups_name: &str) {
    let dir = root.join("services/api/test/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("users.yml"),
        "someone:\n  uuid: zzzzz-tpzed-someone00000001\n  is_active: true\n  first_name: Some\n  last_name: One\n  created_at: 2014-11-27 06:38:21.215463000 Z\nroot:\n  uuid: zzzzz-tpzed-000000000000000\n  is_active: true\n  is_admin: true\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("api_client_authorizations.yml"),
        "someone_token:\n  uuid: zzzzz-gj3su-someonetoken001\n  user: someone\n  api_token: someonesecrettokenabcdefghijklmnopqrstuvwxyz0123\n  expires_at: 2038-01-01 00:00:00\nroot_token:\n  uuid: zzzzz-gj3su-roottoken000001\n  user: root\n  api_token: rootsecrettokenabcdefghijklmnopqrstuvwxyz0123456\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("groups.yml"),
        format!("home:\n  uuid: zzzzz-j7d0g-someoneproject1\n  owner_uuid: zzzzz-tpzed-someone00000001\n  group_class: project\n  name: {groups_name}\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("collections.yml"),
        "<% for i in 1..3 do %>\nnumbered_<%= i %>:\n  uuid: zzzzz-4zz18-numbered<%= i.to_s.rjust(7, '0') %>\n  owner_uuid: zzzzz-j7d0g-someoneproject1\n  manifest_text: \". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\\n\"\n  created_at: <%= i.hour.ago.to_fs(:db) %>\n<% end %>\n",
    )
    .unwrap();
}

#[test]
fn start_api_fixtures_dir_loads_a_checkouts_fixture_files_and_reset_restores_them() {
    let stack = Stack::new();
    let checkout = stack.tmp.path().join("arvados");
    write_checkout(&checkout, "Someone's project");
    let out = stack.cibox(&[
        "start_api",
        "--fixtures",
        checkout.to_str().unwrap(),
        "--auth",
        "someone_token",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = exports(&String::from_utf8(out.stdout).unwrap());
    let get = |k: &str| env.iter().find(|e| e.0 == k).unwrap().1.clone();
    let token = get("ARVADOS_API_TOKEN");
    assert_eq!(token, "someonesecrettokenabcdefghijklmnopqrstuvwxyz0123");
    let api = stack.api(&get("ARVADOS_API_HOST"));
    let (status, me) = api.get("/arvados/v1/users/current", &token);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["uuid"], "zzzzz-tpzed-someone00000001");
    let (_, contents) = api.get(
        "/arvados/v1/groups/zzzzz-j7d0g-someoneproject1/contents",
        &token,
    );
    assert_eq!(contents["items_available"], 3, "{contents}");
    assert_eq!(
        api.get(
            "/arvados/v1/collections/zzzzz-4zz18-numbered0000002",
            &token
        )
        .1["portable_data_hash"],
        "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"
    );
    // The built-in fixtures are not there; the loaded ones survive a reset.
    assert_eq!(api.get("/arvados/v1/users/current", ACTIVE).0, 401);
    let (status, _) = api.call(
        "DELETE",
        "/arvados/v1/collections/zzzzz-4zz18-numbered0000001",
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    let (status, created) = api.post(
        "/arvados/v1/collections",
        &token,
        &json!({"collection": {"name": "new"}}),
    );
    assert_eq!(status, 200, "{created}");
    let root = "rootsecrettokenabcdefghijklmnopqrstuvwxyz0123456";
    assert_eq!(api.call("POST", "/database/reset", Some(root), None).0, 200);
    let (_, contents) = api.get(
        "/arvados/v1/groups/zzzzz-j7d0g-someoneproject1/contents",
        &token,
    );
    assert_eq!(contents["items_available"], 3, "{contents}");
    let new = created["uuid"].as_str().unwrap();
    assert_eq!(
        api.get(&format!("/arvados/v1/collections/{new}"), &token).0,
        404
    );
}

#[test]
fn start_api_fixtures_refuses_unsupported_erb_naming_the_file_and_line() {
    let stack = Stack::new();
    let checkout = stack.tmp.path().join("arvados");
    write_checkout(&checkout, "<%= SecureRandom.hex %>");
    let out = stack.cibox(&["start_api", "--fixtures", checkout.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("groups.yml:5") && err.contains("SecureRandom"),
        "{err}"
    );
    assert!(
        stack.files().is_empty(),
        "nothing started: {:?}",
        stack.files()
    );
    let out = stack.cibox(&["start_api", "--fixtures", "/nonexistent/arvados"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("users.yml"));
}
