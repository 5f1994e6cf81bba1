//! The records the API server starts with and `POST /database/reset` restores: users, their
//! API tokens and git repositories, named and valued as in Arvados' own test fixtures (the SDK
//! and service test suites rely on these token strings and uuids).

use serde_json::{json, Value};

/// The cluster id every uuid starts with.
pub const CLUSTER: &str = "zzzzz";
/// The system user, owner of the fixtures.
pub const SYSTEM_USER: &str = "zzzzz-tpzed-000000000000000";

/// Fixture timestamp.
const FIXED_TIME: &str = "2015-01-01T00:00:00.000000000Z";

/// `(fixture name, uuid, email, first, last, username, active, admin)`
type UserFixture = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
);
const USERS: &[UserFixture] = &[
    (
        "system_user",
        SYSTEM_USER,
        "root",
        "root",
        "",
        "root",
        true,
        true,
    ),
    (
        "admin",
        "zzzzz-tpzed-d9tiejq69daie8f",
        "admin@arvados.local",
        "TestCase",
        "Administrator",
        "admin",
        true,
        true,
    ),
    (
        "miniadmin",
        "zzzzz-tpzed-2bg9x0oeydcw5hm",
        "miniadmin@arvados.local",
        "TestCase",
        "User Group Administrator",
        "miniadmin",
        true,
        false,
    ),
    (
        "rominiadmin",
        "zzzzz-tpzed-4hvxm4n25emegis",
        "rominiadmin@arvados.local",
        "TestCase",
        "Read-Only User Group Administrator",
        "rominiadmin",
        true,
        false,
    ),
    (
        "active",
        "zzzzz-tpzed-xurymjxw79nv3jz",
        "active-user@arvados.local",
        "Active",
        "User",
        "active",
        true,
        false,
    ),
    (
        "spectator",
        "zzzzz-tpzed-l1s2piq4t4mps8r",
        "spectator@arvados.local",
        "Spect",
        "Ator",
        "spectator",
        true,
        false,
    ),
    (
        "inactive",
        "zzzzz-tpzed-x9kqpd79egh49c7",
        "inactive-user@arvados.local",
        "Inactive",
        "User",
        "inactiveuser",
        false,
        false,
    ),
    (
        "inactive_uninvited",
        "zzzzz-tpzed-rf2ec3ryh4vb5ma",
        "inactive-uninvited-user@arvados.local",
        "Inactive and Uninvited",
        "User",
        "",
        false,
        false,
    ),
    (
        "inactive_but_signed_user_agreement",
        "zzzzz-tpzed-7sg468ezxwnodxs",
        "inactive-user-signed-ua@arvados.local",
        "Inactive But Agreeable",
        "User",
        "",
        false,
        false,
    ),
    (
        "anonymous",
        "zzzzz-tpzed-anonymouspublic",
        "anonymouspublic",
        "anonymouspublic",
        "anonymouspublic",
        "",
        false,
        false,
    ),
];

/// `(fixture name, user fixture, token, expired, scopes)`; `None` scopes means `["all"]`.
type TokenFixture = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    Option<&'static [&'static str]>,
);
const TOKENS: &[TokenFixture] = &[
    (
        "admin",
        "admin",
        "4axaw8zxe0qm22wa6urpp5nskcne8z88cvbupv653y1njyi05h",
        false,
        None,
    ),
    (
        "admin_trustedclient",
        "admin",
        "1a9ffdcga2o7cw8q12dndskomgs1ygli3ns9k2o9hgzgmktc78",
        false,
        None,
    ),
    (
        "miniadmin",
        "miniadmin",
        "2zb2y9pw3e70270te7oe3ewaantea3adyxjascvkz0zob7q7xb",
        false,
        None,
    ),
    (
        "rominiadmin",
        "rominiadmin",
        "5tsb2pc3zlatn1ortl98s2tqsehpby88wmmnzmpsjmzwa6payh",
        false,
        None,
    ),
    (
        "active",
        "active",
        "3kg6k6lzmp9kj5cpkcoxie963cmvjahbt2fod9zru30k1jqdmi",
        false,
        None,
    ),
    (
        "active_trustedclient",
        "active",
        "27bnddk6x2nmq00a1e3gq43n9tsl5v87a3faqar2ijj8tud5en",
        false,
        None,
    ),
    (
        "active_noscope",
        "active",
        "activenoscopeabcdefghijklmnopqrstuvwxyz12345678901",
        false,
        Some(&[]),
    ),
    (
        "admin_noscope",
        "admin",
        "adminnoscopeabcdefghijklmnopqrstuvwxyz123456789012",
        false,
        Some(&[]),
    ),
    (
        "active_all_collections",
        "active",
        "activecollectionsabcdefghijklmnopqrstuvwxyz1234567",
        false,
        Some(&["GET /arvados/v1/collections/", "GET /arvados/v1/keep_disks"]),
    ),
    (
        "active_userlist",
        "active",
        "activeuserlistabcdefghijklmnopqrstuvwxyz1234568900",
        false,
        Some(&["GET /arvados/v1/users"]),
    ),
    (
        "active_readonly",
        "active",
        "activereadonlyabcdefghijklmnopqrstuvwxyz1234568790",
        false,
        Some(&["GET /"]),
    ),
    (
        "spectator",
        "spectator",
        "zw2f4gwx8hw8cjre7yp6v1zylhrhn3m5gvjq73rtpwhmknrybu",
        false,
        None,
    ),
    (
        "inactive",
        "inactive",
        "5s29oj2hzmcmpq80hx9cta0rl5wuf3xfd6r7disusaptz7h9m0",
        false,
        None,
    ),
    (
        "inactive_uninvited",
        "inactive_uninvited",
        "62mhllc0otp78v08e3rpa3nsmf8q8ogk47f7u5z4erp5gpj9al",
        false,
        None,
    ),
    (
        "inactive_but_signed_user_agreement",
        "inactive_but_signed_user_agreement",
        "64k3bzw37iwpdlexczj02rw3m333rrb8ydvn2qq99ohv68so5k",
        false,
        None,
    ),
    (
        "expired",
        "active",
        "2ym314ysp27sk7h943q6vtc378srb06se3pq6ghurylyf3pdmx",
        true,
        None,
    ),
    (
        "expired_trustedclient",
        "active",
        "5hpni7izokzcatku2896xxwqdbt5ptomn04r6auc7fohnli82v",
        true,
        None,
    ),
];

/// `(uuid, owner fixture, name)`
const REPOSITORIES: &[(&str, &str, &str)] = &[
    (
        "zzzzz-s0uqq-382brsig8rp3665",
        "active",
        "active/crunchdispatchtest",
    ),
    ("zzzzz-s0uqq-arvadosrepo0123", "system_user", "arvados"),
    ("zzzzz-s0uqq-382brsig8rp3666", "active", "active/foo"),
    ("zzzzz-s0uqq-382brsig8rp3667", "active", "active/foo2"),
    ("zzzzz-s0uqq-38orljkqpyo1j61", "admin", "admin/foo3"),
    ("zzzzz-s0uqq-38oru8hnk57ht34", "admin", "admin/foo4"),
    (
        "zzzzz-s0uqq-382brsig8rp3668",
        "active",
        "active/shabranchnames",
    ),
];

/// The uuid of the user fixture `name`.
pub fn user_uuid(name: &str) -> Option<&'static str> {
    USERS.iter().find(|u| u.0 == name).map(|u| u.1)
}

/// The token string of the `api_client_authorizations` fixture `name` (what `--auth NAME`
/// exports).
pub fn token(name: &str) -> Option<&'static str> {
    TOKENS.iter().find(|t| t.0 == name).map(|t| t.2)
}

/// Every token fixture name, for error messages.
pub fn token_names() -> Vec<&'static str> {
    TOKENS.iter().map(|t| t.0).collect()
}

fn common(kind: &str, uuid: &str, owner: &str) -> Value {
    json!({
        "kind": format!("arvados#{kind}"),
        "uuid": uuid,
        "owner_uuid": owner,
        "etag": super::record::etag_for(uuid, FIXED_TIME),
        "created_at": FIXED_TIME,
        "modified_at": FIXED_TIME,
        "modified_by_user_uuid": SYSTEM_USER,
    })
}

fn merge(mut base: Value, more: Value) -> Value {
    if let (Some(b), Value::Object(m)) = (base.as_object_mut(), more) {
        b.extend(m);
    }
    base
}

/// The user fixtures.
pub fn users() -> Vec<Value> {
    USERS
        .iter()
        .map(|&(_, uuid, email, first, last, username, active, admin)| {
            merge(
                common("user", uuid, SYSTEM_USER),
                json!({
                    "email": email,
                    "first_name": first,
                    "last_name": last,
                    "full_name": format!("{first} {last}").trim().to_string(),
                    "username": if username.is_empty() { Value::Null } else { username.into() },
                    "is_active": active,
                    "is_admin": admin,
                    "is_invited": active,
                    "identity_url": Value::Null,
                    "prefs": {},
                }),
            )
        })
        .collect()
}

/// The token fixtures; uuids are made from the fixture names so they stay stable.
pub fn api_client_authorizations() -> Vec<Value> {
    TOKENS
        .iter()
        .map(|&(name, user, token, expired, scopes)| {
            let tail = crate::digest::md5_hex(name.as_bytes());
            let uuid = format!("{CLUSTER}-gj3su-{}", &tail[..15]);
            let user = user_uuid(user).unwrap_or(SYSTEM_USER);
            let scopes: Vec<&str> = scopes.map(|s| s.to_vec()).unwrap_or_else(|| vec!["all"]);
            merge(
                common("apiClientAuthorization", &uuid, user),
                json!({
                    "api_token": token,
                    "expires_at": if expired { "1970-01-01T00:00:00Z" } else { "2038-01-01T00:00:00Z" },
                    "scopes": scopes,
                    "fixture_name": name,
                }),
            )
        })
        .collect()
}

/// The git repository fixtures. `writable_by` lists who may push; the spectator may read
/// `active/foo` (so a read-only clone can be tested) but not push to it.
pub fn repositories() -> Vec<Value> {
    REPOSITORIES
        .iter()
        .map(|&(uuid, owner, name)| {
            let owner = user_uuid(owner).unwrap_or(SYSTEM_USER);
            let mut readers = vec![owner.to_string()];
            if name == "active/foo" {
                readers.push(user_uuid("spectator").unwrap_or(SYSTEM_USER).to_string());
            }
            merge(
                common("repository", uuid, owner),
                json!({
                    "name": name,
                    "writable_by": [owner],
                    "readable_by": readers,
                    "clone_urls": [],
                    "fetch_url": Value::Null,
                    "push_url": Value::Null,
                }),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_token_belongs_to_a_user_fixture() {
        for t in TOKENS {
            assert!(user_uuid(t.1).is_some(), "{}", t.0);
        }
        for r in REPOSITORIES {
            assert!(user_uuid(r.1).is_some(), "{}", r.2);
        }
        assert_eq!(
            token("admin"),
            Some("4axaw8zxe0qm22wa6urpp5nskcne8z88cvbupv653y1njyi05h")
        );
        assert_eq!(token("nobody"), None);
    }
}
