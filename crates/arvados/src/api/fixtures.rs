//! The records the API server starts with and `POST /database/reset` restores: users, their
//! API tokens, git repositories, collections, groups (projects and roles) and the links
//! between them, named and valued as in Arvados' own test fixtures, since the SDK and service
//! test suites name these token strings, uuids and portable data hashes ([`all`] has every
//! table). The set is this project's own, written for the records the suites read; `start_api
//! --fixtures DIR` loads a full Arvados checkout's fixture files instead (`super::yaml`).

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
        "user1_with_load",
        "zzzzz-tpzed-user1withloadab",
        "user1_with_load@arvados.local",
        "user1_with_load",
        "User",
        "user1withload",
        true,
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
        "anonymous",
        "anonymous",
        "4kg6k6lzmp9kj4cpkcoxie964cmvjahbt4fod9zru44k4jqdmi",
        false,
        Some(&["GET /"]),
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

/// The "All users" role group every active user belongs to.
pub const ALL_USERS: &str = "zzzzz-j7d0g-fffffffffffffff";
/// The active user's project "A Project" (`groups` fixture `aproject`).
pub const APROJECT: &str = "zzzzz-j7d0g-v955i6s2oi1cbso";

/// `(fixture name, uuid, owner uuid, name, manifest, created)`
type CollectionFixture = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
const COLLECTIONS: &[CollectionFixture] = &[
    (
        "foo_file",
        "zzzzz-4zz18-znfnqtbbv4spc3w",
        SYSTEM_USER,
        "foo_file",
        ". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\n",
        "2015-02-03T17:22:54.000000000Z",
    ),
    // A Docker image's collection (arv-keepdocker lists images by links to it).
    (
        "docker_image",
        "zzzzz-4zz18-1v45jub259sjjgb",
        SYSTEM_USER,
        "docker_image",
        ". d21353cfe035e3e384563ee55eadbb2f+67108864 5c77a43e329b9838cbec18ff42790e57+55605760 0:122714624:d8309758b8fe2c81034ffc8a10c36460b77db7bc5e7b448c4e5b684f9d95a678.tar\n",
        "2014-06-11T17:22:54.000000000Z",
    ),
    (
        "bar_file",
        "zzzzz-4zz18-ehbhgtheo8909or",
        SYSTEM_USER,
        "bar_file",
        ". 37b51d194a7513e45b56f6524f2d51f2+3 0:3:bar\n",
        "2015-02-03T17:22:54.000000000Z",
    ),
    (
        "baz_file",
        "zzzzz-4zz18-y9vne9npefyxh8g",
        SYSTEM_USER,
        "baz_file",
        ". 73feffa4b7f6bb68e44cf984c85f6e88+3 0:3:baz\n",
        "2014-02-03T17:22:54.000000000Z",
    ),
    (
        "empty",
        "zzzzz-4zz18-gs9ooj1h9sd5mde",
        SYSTEM_USER,
        "empty collection for python test",
        "",
        "2014-06-11T17:22:54.000000000Z",
    ),
    (
        "user_agreement",
        "zzzzz-4zz18-t68oksiu9m80s4y",
        SYSTEM_USER,
        "user_agreement",
        ". 6a4ff0499484c6c79c95cd8c566bd25f+249025 0:249025:GNU_General_Public_License,_version_3.pdf\n",
        "2013-12-26T19:22:54.000000000Z",
    ),
    (
        "collection_owned_by_active",
        "zzzzz-4zz18-bv31uwvy3neko21",
        "zzzzz-tpzed-xurymjxw79nv3jz",
        "owned_by_active",
        ". 37b51d194a7513e45b56f6524f2d51f2+3 0:3:bar\n",
        "2014-02-03T17:22:54.000000000Z",
    ),
    (
        "foo_collection_in_aproject",
        "zzzzz-4zz18-fy296fx3hot09f7",
        APROJECT,
        "zzzzz-4zz18-fy296fx3hot09f7 added sometime",
        ". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\n",
        "2014-04-21T19:37:48.000000000Z",
    ),
    (
        "collection_with_files_in_subdir",
        "zzzzz-4zz18-filesinsubdir00",
        "zzzzz-tpzed-user1withloadab",
        "collection_files_in_subdir",
        ". 85877ca2d7e05498dd3d109baf2df106+95 0:95:file_in_subdir1\n\
./subdir2/subdir3 2bbc341c702df4d8f42ec31f16c10120+64 0:32:file1_in_subdir3.txt 32:32:file2_in_subdir3.txt\n\
./subdir2/subdir3/subdir4 2bbc341c702df4d8f42ec31f16c10120+64 0:32:file1_in_subdir4.txt 32:32:file2_in_subdir4.txt\n",
        "2014-02-03T17:22:54.000000000Z",
    ),
    (
        "multilevel_collection_1",
        "zzzzz-4zz18-pyw8yp9g3pr7irn",
        "zzzzz-tpzed-xurymjxw79nv3jz",
        "multilevel_collection_1",
        ". d41d8cd98f00b204e9800998ecf8427e+0 0:0:file1 0:0:file2 0:0:file3\n\
./dir1 d41d8cd98f00b204e9800998ecf8427e+0 0:0:file1 0:0:file2 0:0:file3\n\
./dir1/subdir d41d8cd98f00b204e9800998ecf8427e+0 0:0:file1 0:0:file2 0:0:file3\n\
./dir2 d41d8cd98f00b204e9800998ecf8427e+0 0:0:file1 0:0:file2 0:0:file3\n",
        "2014-02-03T17:22:54.000000000Z",
    ),
];

/// `(fixture name, uuid, owner uuid, name, group class, description)`
type GroupFixture = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
const GROUPS: &[GroupFixture] = &[
    (
        "all_users",
        ALL_USERS,
        SYSTEM_USER,
        "All users",
        "role",
        "All users",
    ),
    (
        "anonymous_group",
        "zzzzz-j7d0g-anonymouspublic",
        SYSTEM_USER,
        "Anonymous users",
        "role",
        "Anonymous users",
    ),
    (
        "aproject",
        APROJECT,
        "zzzzz-tpzed-xurymjxw79nv3jz",
        "A Project",
        "project",
        "Test project belonging to active user",
    ),
    (
        "asubproject",
        "zzzzz-j7d0g-axqo7eu9pwvna1x",
        APROJECT,
        "A Subproject",
        "project",
        "Test project belonging to active user's first test project",
    ),
    (
        "public",
        "zzzzz-j7d0g-it30l961gq3t0oi",
        "zzzzz-tpzed-d9tiejq69daie8f",
        "Public",
        "project",
        "Public Project",
    ),
];

/// `(fixture name, uuid, level, tail uuid, head uuid)`: permission links, owned by the system
/// user.
type LinkFixture = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);
const LINKS: &[LinkFixture] = &[
    (
        "active_user_member_of_all_users_group",
        "zzzzz-o0j2j-ctbysaduejxfrs5",
        "can_write",
        "zzzzz-tpzed-xurymjxw79nv3jz",
        ALL_USERS,
    ),
    (
        "spectator_user_member_of_all_users_group",
        "zzzzz-o0j2j-0s8ql1redzf8kvn",
        "can_write",
        "zzzzz-tpzed-l1s2piq4t4mps8r",
        ALL_USERS,
    ),
    (
        "inactive_user_member_of_all_users_group",
        "zzzzz-o0j2j-osckxpy5hl5fjk5",
        "can_write",
        "zzzzz-tpzed-x9kqpd79egh49c7",
        ALL_USERS,
    ),
    (
        "inactive_signed_ua_user_member_of_all_users_group",
        "zzzzz-o0j2j-qkhyjcr6tidk652",
        "can_write",
        "zzzzz-tpzed-7sg468ezxwnodxs",
        ALL_USERS,
    ),
    (
        "user1-with-load_member_of_all_users_group",
        "zzzzz-o0j2j-user1-with-load",
        "can_write",
        "zzzzz-tpzed-user1withloadab",
        ALL_USERS,
    ),
    (
        "user_agreement_readable",
        "zzzzz-o0j2j-qpf60gg4fwjlmex",
        "can_read",
        ALL_USERS,
        "zzzzz-4zz18-t68oksiu9m80s4y",
    ),
    (
        "baz_file_publicly_readable",
        "zzzzz-o0j2j-132ne3lk954vtoc",
        "can_read",
        ALL_USERS,
        "zzzzz-4zz18-y9vne9npefyxh8g",
    ),
    (
        "all_users_can_read_anonymous_group",
        "zzzzz-o0j2j-0lhbqyjab4g0bwp",
        "can_read",
        ALL_USERS,
        "zzzzz-j7d0g-anonymouspublic",
    ),
    (
        "admin_can_write_aproject",
        "zzzzz-o0j2j-adminmgsproject",
        "can_write",
        "zzzzz-tpzed-d9tiejq69daie8f",
        APROJECT,
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

fn common_at(kind: &str, uuid: &str, owner: &str, at: &str) -> Value {
    merge(
        common(kind, uuid, owner),
        json!({
            "etag": super::record::etag_for(uuid, at),
            "created_at": at,
            "modified_at": at,
        }),
    )
}

/// Every fixture table: `(resource, records)`.
pub fn all() -> Vec<(&'static str, Vec<Value>)> {
    vec![
        ("users", users()),
        ("api_client_authorizations", api_client_authorizations()),
        ("repositories", repositories()),
        ("collections", collections()),
        ("groups", groups()),
        ("links", links()),
    ]
}

/// The fixture name and record of the collection fixtures (for tests and `fixture()`).
pub fn collections() -> Vec<Value> {
    COLLECTIONS
        .iter()
        .map(|&(name, uuid, owner, title, manifest, at)| {
            let pdh = super::manifest::portable_data_hash(manifest).unwrap_or_default();
            let mut record = merge(
                common_at("collection", uuid, owner, at),
                json!({
                    "name": title,
                    "manifest_text": manifest,
                    "portable_data_hash": pdh,
                    "replication_confirmed": Value::Null,
                    "current_version_uuid": uuid,
                    "fixture_name": name,
                }),
            );
            for (k, v) in super::record::collection_defaults() {
                record[k] = v;
            }
            record
        })
        .collect()
}

/// The group fixtures: projects and role groups.
pub fn groups() -> Vec<Value> {
    GROUPS
        .iter()
        .map(|&(name, uuid, owner, title, class, description)| {
            merge(
                common_at("group", uuid, owner, "2014-04-21T19:37:48.000000000Z"),
                json!({
                    "name": title,
                    "group_class": class,
                    "description": description,
                    "properties": {},
                    "trash_at": Value::Null,
                    "delete_at": Value::Null,
                    "is_trashed": false,
                    "frozen_by_uuid": Value::Null,
                    "fixture_name": name,
                }),
            )
        })
        .collect()
}

/// The link fixtures: group memberships and permissions.
pub fn links() -> Vec<Value> {
    LINKS
        .iter()
        .map(|&(name, uuid, level, tail, head)| {
            merge(
                common("link", uuid, SYSTEM_USER),
                json!({
                    "link_class": "permission",
                    "name": level,
                    "tail_uuid": tail,
                    "head_uuid": head,
                    "properties": {},
                    "fixture_name": name,
                }),
            )
        })
        .collect()
}

/// The user fixtures.
pub fn users() -> Vec<Value> {
    USERS
        .iter()
        .map(
            |&(name, uuid, email, first, last, username, active, admin)| {
                merge(
                    common("user", uuid, SYSTEM_USER),
                    json!({
                        "fixture_name": name,
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
            },
        )
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

    #[test]
    fn collections_carry_arvados_portable_data_hashes() {
        let by_name = |n: &str| {
            collections()
                .into_iter()
                .find(|c| c["fixture_name"] == n)
                .unwrap()
        };
        for (name, pdh) in [
            ("foo_file", "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"),
            ("bar_file", "fa7aeb5140e2848d39b416daeef4ffc5+45"),
            ("docker_image", "fa3c1a9cb6783f85f2ecda037e07b8c3+167"),
            ("empty", "d41d8cd98f00b204e9800998ecf8427e+0"),
            (
                "collection_with_files_in_subdir",
                "7eb64275355980ebc93411b44050c137+281",
            ),
            ("user_agreement", "b519d9cb706a29fc7ea24dbea2f05851+93"),
            (
                "multilevel_collection_1",
                "f9ddda46bb293b6847da984e3aa735db+290",
            ),
        ] {
            assert_eq!(by_name(name)["portable_data_hash"], pdh, "{name}");
        }
        let owners: Vec<Value> = groups().into_iter().map(|g| g["uuid"].clone()).collect();
        assert!(owners.contains(&json!(APROJECT)));
        for l in links() {
            assert!(l["uuid"].as_str().unwrap().starts_with("zzzzz-o0j2j-"));
        }
    }
}
