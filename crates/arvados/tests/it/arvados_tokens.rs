//! Tokens and users managed through the API, as test harnesses do: a user makes tokens for
//! itself (scoped, expiring), changes and revokes them, and a revoked or expired token stops
//! working at once; only an admin makes tokens for others; a user changes its own names and
//! preferences, an admin the rest. Over real HTTPS, and through the real SDK.

use crate::support::*;
use serde_json::{json, Value};

const ACTIVE_UUID: &str = "zzzzz-tpzed-xurymjxw79nv3jz";
const SPECTATOR_UUID: &str = "zzzzz-tpzed-l1s2piq4t4mps8r";
const TOKENS: &str = "/arvados/v1/api_client_authorizations";

fn make_token(api: &Api, token: &str, body: Value) -> (u16, Value) {
    api.post(TOKENS, token, &json!({ "api_client_authorization": body }))
}

#[test]
fn users_make_scoped_tokens_for_themselves_and_revoke_them() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);

    let (status, scoped) = make_token(
        &api,
        ACTIVE,
        json!({"scopes": ["GET /arvados/v1/collections"]}),
    );
    assert_eq!(status, 200, "{scoped}");
    assert_eq!(scoped["owner_uuid"], ACTIVE_UUID);
    let secret = scoped["api_token"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 50, "{scoped}");
    assert!(secret
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
    // It works within its scope, in both spellings, and nowhere else.
    assert_eq!(api.get("/arvados/v1/collections", &secret).0, 200);
    let v2 = format!("v2/{}/{secret}", scoped["uuid"].as_str().unwrap());
    assert_eq!(api.get("/arvados/v1/collections", &v2).0, 200);
    assert_eq!(api.get("/arvados/v1/users/current", &secret).0, 403);
    let (status, refused) = make_token(&api, &secret, json!({}));
    assert_eq!(status, 403, "{refused}");

    // A full token of its own: made, expired by an update, then another one revoked.
    let (status, full) = make_token(&api, ACTIVE, json!({}));
    assert_eq!((status, &full["scopes"]), (200, &json!(["all"])), "{full}");
    let full_secret = full["api_token"].as_str().unwrap();
    let (status, me) = api.get("/arvados/v1/users/current", full_secret);
    assert_eq!((status, &me["uuid"]), (200, &json!(ACTIVE_UUID)), "{me}");
    let full_path = format!("{TOKENS}/{}", full["uuid"].as_str().unwrap());
    let (status, expired) = api.call(
        "PUT",
        &full_path,
        Some(ACTIVE),
        Some(
            &json!({"api_client_authorization": {"expires_at": "2001-01-01T00:00:00Z"}})
                .to_string(),
        ),
    );
    assert_eq!(status, 200, "{expired}");
    assert_eq!(expired["expires_at"], "2001-01-01T00:00:00.000000000Z");
    assert_eq!(api.get("/arvados/v1/users/current", full_secret).0, 401);

    let (_, other) = make_token(&api, ACTIVE, json!({}));
    let other_secret = other["api_token"].as_str().unwrap();
    assert_eq!(api.get("/arvados/v1/users/current", other_secret).0, 200);
    let other_path = format!("{TOKENS}/{}", other["uuid"].as_str().unwrap());
    // The spectator cannot see it, let alone revoke it.
    assert_eq!(
        api.call("DELETE", &other_path, Some(SPECTATOR), None).0,
        404
    );
    let (status, revoked) = api.call("DELETE", &other_path, Some(ACTIVE), None);
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(api.get("/arvados/v1/users/current", other_secret).0, 401);

    // The token's user cannot change, and only an admin makes tokens for someone else.
    let (status, refused) = api.call(
        "PUT",
        &format!("{TOKENS}/{}", scoped["uuid"].as_str().unwrap()),
        Some(ACTIVE),
        Some(&json!({"api_client_authorization": {"owner_uuid": SPECTATOR_UUID}}).to_string()),
    );
    assert_eq!(status, 403, "{refused}");
    let (status, refused) = make_token(&api, ACTIVE, json!({"owner_uuid": SPECTATOR_UUID}));
    assert_eq!(status, 403, "{refused}");
    let (status, theirs) = make_token(&api, ADMIN, json!({"owner_uuid": SPECTATOR_UUID}));
    assert_eq!(status, 200, "{theirs}");
    let (_, who) = api.get(
        "/arvados/v1/users/current",
        theirs["api_token"].as_str().unwrap(),
    );
    assert_eq!(who["uuid"], SPECTATOR_UUID);
    let (status, refused) = make_token(
        &api,
        ADMIN,
        json!({"owner_uuid": "zzzzz-4zz18-000000000000000"}),
    );
    assert_eq!(status, 422, "{refused}");
    let (status, refused) = make_token(&api, ACTIVE, json!({"scopes": "all"}));
    assert_eq!(status, 422, "{refused}");
}

#[test]
fn users_change_their_names_and_admins_the_rest() {
    let stack = Stack::new();
    let host = stack.start();
    let api = stack.api(&host);
    let me = format!("/arvados/v1/users/{ACTIVE_UUID}");
    let put = |path: &str, token: &str, user: Value| {
        api.call(
            "PUT",
            path,
            Some(token),
            Some(&json!({ "user": user }).to_string()),
        )
    };
    let (status, renamed) = put(
        &me,
        ACTIVE,
        json!({"first_name": "Renamed", "prefs": {"profile": {"organization": "cibox"}}}),
    );
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["first_name"], "Renamed");
    assert!(renamed["full_name"]
        .as_str()
        .unwrap()
        .starts_with("Renamed "));
    assert_eq!(renamed["prefs"]["profile"]["organization"], "cibox");
    let (status, refused) = put(&me, ACTIVE, json!({"is_admin": true}));
    assert_eq!(status, 403, "{refused}");
    assert!(refused["errors"][0].as_str().unwrap().contains("is_admin"));
    let spectator = format!("/arvados/v1/users/{SPECTATOR_UUID}");
    // Another user: not even seen.
    assert_eq!(put(&spectator, ACTIVE, json!({"first_name": "x"})).0, 404);

    // An admin deactivates the spectator, whose token then gets 403 for what needs an
    // active user.
    assert_eq!(api.get("/arvados/v1/collections", SPECTATOR).0, 200);
    let (status, off) = put(&spectator, ADMIN, json!({"is_active": false}));
    assert_eq!((status, &off["is_active"]), (200, &json!(false)), "{off}");
    assert_eq!(api.get("/arvados/v1/collections", SPECTATOR).0, 403);
}

/// The SDK's client: users().update() and api_client_authorizations().create()/delete()
/// from the discovery document.
const SDK_TOKENS: &str = r#"
import json, arvados
api = arvados.api('v1')
me = api.users().current().execute()
renamed = api.users().update(uuid=me['uuid'], body={'user': {'last_name': 'Tested'}}).execute()
made = api.api_client_authorizations().create(body={'api_client_authorization': {
    'scopes': ['GET /arvados/v1/users/current']}}).execute()
theirs = arvados.api('v1', host=api._rootDesc['rootUrl'][8:-1], insecure=True,
    token=made['api_token'])
who = theirs.users().current().execute()['uuid']
api.api_client_authorizations().delete(uuid=made['uuid']).execute()
try:
    theirs.users().current().execute(num_retries=0)
    after = 'still works'
except arvados.errors.ApiError as e:
    after = e.resp.status
print(json.dumps([renamed['last_name'], who == me['uuid'], after]))
"#;

#[test]
fn the_sdk_updates_users_and_manages_tokens() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", SDK_TOKENS], &env);
    let seen: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(seen, json!(["Tested", true, 401]));
}
