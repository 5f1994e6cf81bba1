//! What each resource's methods do: who may call them (with Arvados' permissions,
//! [`super::permissions`]), which attributes they accept (times normalised as Arvados writes
//! them), the records they answer with, and the log record each change leaves (`logs`, which
//! the SDK's event poller reads). The HTTP side (parsing, authentication, errors on the wire)
//! is [`super::router`] and [`super::answer`]; storage is [`super::state`].

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::answer::ApiError;
use super::manifest::{self, ManifestError};
use super::permissions::{self, Access, MANAGE, READ, WRITE};
use super::query::{self, Params};
use super::record;
use super::state::{self, Store};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token record.
    pub token: Value,
    /// The token's secret (what locators are signed with).
    pub secret: String,
    /// The user record.
    pub user: Value,
    /// What the user may read, write and manage.
    pub access: Access,
}

impl Caller {
    /// The user's uuid.
    pub fn uuid(&self) -> &str {
        self.user["uuid"].as_str().unwrap_or_default()
    }

    /// Whether the user is an admin.
    pub fn is_admin(&self) -> bool {
        self.user["is_admin"] == true
    }

    /// Whether the user is active.
    pub fn is_active(&self) -> bool {
        self.user["is_active"] == true
    }

    /// Whether the token has every scope (`all`), rather than a few paths.
    pub fn full_scope(&self) -> bool {
        self.token["scopes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|s| s == "all"))
    }
}

/// One call: the store, the caller, the parameters, the body and the signing key.
pub struct Call<'a> {
    /// The records.
    pub store: &'a mut Store,
    /// Who calls.
    pub caller: Caller,
    /// Query (and form) parameters.
    pub params: Params,
    /// The JSON body, when one was sent.
    pub body: Option<Value>,
    /// The cluster's blob signing key (the keepstores' when they have one).
    pub key: Vec<u8>,
    /// Signatures are enforced (`start_keep`'s keepstores enforce them): a
    /// non-admin's manifest must carry valid signatures.
    pub enforce: bool,
    /// `X-External-Client: 1` was sent (the caller is outside the cluster: give it proxies).
    pub external: bool,
}

/// A resource this server implements.
#[derive(Debug)]
pub struct Resource {
    /// Its name in paths (`keep_services`).
    pub plural: &'static str,
    /// Its name in request bodies (`keep_service`).
    pub singular: &'static str,
    /// Its schema name (`KeepService`; the kind is `arvados#keepService`).
    pub kind: &'static str,
    /// Its attributes (what filters, order and select may name).
    pub columns: &'static [&'static str],
    /// What create and update accept.
    pub writable: &'static [&'static str],
}

/// A resource's columns: the ones every record has (uuid, owner, times, etag), then its own.
macro_rules! record_columns {
    ($($own:literal),* $(,)?) => {
        &[
            "uuid",
            "owner_uuid",
            "created_at",
            "modified_at",
            "modified_by_user_uuid",
            "etag",
            $($own),*
        ]
    };
}

/// The resources this server implements.
pub const RESOURCES: &[Resource] = &[
    Resource {
        plural: "users",
        singular: "user",
        kind: "User",
        columns: record_columns![
            "email",
            "first_name",
            "last_name",
            "full_name",
            "username",
            "is_active",
            "is_admin",
            "is_invited",
            "identity_url",
            "prefs",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "email",
            "first_name",
            "last_name",
            "username",
            "is_active",
            "is_admin",
            "identity_url",
            "prefs",
        ],
    },
    Resource {
        plural: "api_client_authorizations",
        singular: "api_client_authorization",
        kind: "ApiClientAuthorization",
        columns: record_columns!["api_token", "expires_at", "scopes",],
        writable: &["owner_uuid", "scopes", "expires_at"],
    },
    Resource {
        plural: "keep_services",
        singular: "keep_service",
        kind: "KeepService",
        columns: record_columns![
            "service_host",
            "service_port",
            "service_ssl_flag",
            "service_type",
            "read_only",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "service_host",
            "service_port",
            "service_ssl_flag",
            "service_type",
            "read_only",
        ],
    },
    Resource {
        plural: "keep_disks",
        singular: "keep_disk",
        kind: "KeepDisk",
        columns: record_columns![
            "keep_service_uuid",
            "node_uuid",
            "filesystem_uuid",
            "ping_secret",
            "bytes_total",
            "bytes_free",
            "is_readable",
            "is_writable",
            "last_read_at",
            "last_write_at",
            "last_ping_at",
            "service_host",
            "service_port",
            "service_ssl_flag",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "keep_service_uuid",
            "node_uuid",
            "filesystem_uuid",
            "ping_secret",
            "bytes_total",
            "bytes_free",
            "is_readable",
            "is_writable",
        ],
    },
    Resource {
        plural: "collections",
        singular: "collection",
        kind: "Collection",
        columns: record_columns![
            "name",
            "description",
            "manifest_text",
            "portable_data_hash",
            "replication_desired",
            "replication_confirmed",
            "properties",
            "storage_classes_desired",
            "trash_at",
            "delete_at",
            "is_trashed",
            "version",
            "current_version_uuid",
            "preserve_version",
            "unsigned_manifest_text",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "name",
            "description",
            "manifest_text",
            "portable_data_hash",
            "replication_desired",
            "properties",
            "storage_classes_desired",
            "trash_at",
            "delete_at",
            "is_trashed",
            "preserve_version",
        ],
    },
    Resource {
        plural: "repositories",
        singular: "repository",
        kind: "Repository",
        columns: record_columns![
            "name",
            "writable_by",
            "readable_by",
            "clone_urls",
            "fetch_url",
            "push_url",
        ],
        writable: &[],
    },
    Resource {
        plural: "groups",
        singular: "group",
        kind: "Group",
        columns: record_columns![
            "name",
            "group_class",
            "description",
            "properties",
            "trash_at",
            "delete_at",
            "is_trashed",
            "frozen_by_uuid",
            "writable_by",
            "can_write",
            "can_manage",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "name",
            "group_class",
            "description",
            "properties",
            "trash_at",
            "delete_at",
            "is_trashed",
            "frozen_by_uuid",
        ],
    },
    Resource {
        plural: "links",
        singular: "link",
        kind: "Link",
        columns: record_columns!["link_class", "name", "tail_uuid", "head_uuid", "properties"],
        writable: &[
            "uuid",
            "owner_uuid",
            "link_class",
            "name",
            "tail_uuid",
            "head_uuid",
            "properties",
        ],
    },
    Resource {
        plural: "logs",
        singular: "log",
        kind: "Log",
        columns: record_columns![
            "id",
            "object_uuid",
            "object_owner_uuid",
            "event_type",
            "event_at",
            "summary",
            "properties",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "object_uuid",
            "object_owner_uuid",
            "event_type",
            "event_at",
            "summary",
            "properties",
        ],
    },
    // Listed and read only, and never holding a record: arv-copy lists a project's workflows.
    Resource {
        plural: "workflows",
        singular: "workflow",
        kind: "Workflow",
        columns: record_columns!["name", "description", "definition"],
        writable: &[],
    },
    Resource {
        plural: "computed_permissions",
        singular: "computed_permission",
        kind: "ComputedPermission",
        columns: &["user_uuid", "target_uuid", "perm_level"],
        writable: &[],
    },
];

/// Attributes that hold times: what a client sends there is normalised as Arvados writes
/// times (UTC, nine fractional digits).
pub const TIME_ATTRIBUTES: &[&str] = &[
    "trash_at",
    "delete_at",
    "expires_at",
    "event_at",
    "last_read_at",
    "last_write_at",
    "last_ping_at",
];

/// Resources whose changes leave a log record.
fn logged(plural: &str) -> bool {
    !matches!(plural, "logs" | "computed_permissions")
}

/// Resources of the real Arvados API this test server does not implement (answered 501).
pub const NOT_IMPLEMENTED: &[&str] = &[
    "api_clients",
    "authorized_keys",
    "container_requests",
    "containers",
    "humans",
    "job_tasks",
    "jobs",
    "nodes",
    "pipeline_instances",
    "pipeline_templates",
    "specimens",
    "traits",
    "virtual_machines",
    "user_agreements",
    "vocabularies",
    "sys",
    "credentials",
];

/// The description of resource `plural`.
pub fn resource(plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

fn columns(plural: &str) -> &'static [&'static str] {
    resource(plural).map(|r| r.columns).unwrap_or(&[])
}

fn kind_of(plural: &str) -> String {
    let kind = resource(plural).map(|r| r.kind).unwrap_or("Object");
    let mut chars = kind.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn require_admin(call: &Call, what: &str) -> Result<(), ApiError> {
    if call.caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            format!("Forbidden: only an admin may {what}"),
        ))
    }
}

fn not_found(plural: &str, uuid: &str) -> ApiError {
    ApiError::new(404, format!("{} {uuid:?} not found", singular(plural)))
}

fn singular(plural: &str) -> &'static str {
    resource(plural).map(|r| r.singular).unwrap_or("record")
}

/// Whether `caller` may read `record` of `plural`. A token with limited scopes sees only
/// itself among the tokens, whoever its user is, so it cannot pick up a token with more.
fn readable(caller: &Caller, plural: &str, record: &Value) -> bool {
    let me = caller.uuid();
    match plural {
        "api_client_authorizations" if !caller.full_scope() => {
            record["uuid"] == caller.token["uuid"]
        }
        _ if caller.is_admin() => true,
        "keep_services" | "keep_disks" => true,
        "users" => record["uuid"] == me || caller.access.of_uuid(str_of(record, "uuid")) > 0,
        "api_client_authorizations" => record["owner_uuid"] == me,
        "collections" | "groups" => caller.access.of(record) >= READ,
        "links" => {
            let head = caller.access.of_uuid(str_of(record, "head_uuid"));
            caller.access.of(record) >= READ
                || record["tail_uuid"] == me
                || if record["link_class"] == "permission" {
                    head >= MANAGE
                } else {
                    head >= READ
                }
        }
        "logs" => {
            caller.access.of(record) >= READ
                || caller.access.of_uuid(str_of(record, "object_uuid")) >= READ
                || caller.access.of_uuid(str_of(record, "object_owner_uuid")) >= READ
        }
        "computed_permissions" => record["user_uuid"] == me,
        "repositories" => {
            record["owner_uuid"] == me
                || record["readable_by"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|u| u == me))
        }
        _ => false,
    }
}

fn str_of<'a>(record: &'a Value, key: &str) -> &'a str {
    record[key].as_str().unwrap_or_default()
}

/// The attributes sent for a create or update: `{"collection": {...}}` or the attributes
/// themselves, every one of them checked against what the resource accepts, times
/// normalised ([`TIME_ATTRIBUTES`]).
fn attributes(call: &Call, plural: &str) -> Result<Map<String, Value>, ApiError> {
    let single = singular(plural);
    let body = call.body.clone().unwrap_or_else(|| json!({}));
    let Value::Object(mut map) = body else {
        return Err(ApiError::new(
            400,
            format!("request body must be a JSON object, not {body}"),
        ));
    };
    let attrs = match map.remove(single) {
        Some(Value::Object(inner)) => inner,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "{single} must be a JSON object, not {other}"
            )))
        }
        None => map,
    };
    let writable = resource(plural).map(|r| r.writable).unwrap_or(&[]);
    let mut attrs = attrs;
    for (key, value) in attrs.iter_mut() {
        if !writable.contains(&key.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "unknown or read-only attribute {key:?} for {single}"
            )));
        }
        if TIME_ATTRIBUTES.contains(&key.as_str()) && !value.is_null() {
            let normalised = value
                .as_str()
                .and_then(record::normalize_time)
                .ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "{key} must be a time (2024-01-31T12:00:00Z), not {value}"
                    ))
                })?;
            *value = normalised.into();
        }
    }
    Ok(attrs)
}

fn expect_type(
    attrs: &Map<String, Value>,
    key: &str,
    ok: fn(&Value) -> bool,
    what: &str,
) -> Result<(), ApiError> {
    match attrs.get(key) {
        Some(v) if !v.is_null() && !ok(v) => Err(ApiError::unprocessable(format!(
            "{key} must be {what}, not {v}"
        ))),
        _ => Ok(()),
    }
}

fn stamp(record: &mut Value, caller: &Caller) {
    let now = record::now();
    let uuid = record["uuid"].as_str().unwrap_or_default().to_string();
    record["modified_at"] = now.clone().into();
    record["modified_by_user_uuid"] = caller.uuid().into();
    record["etag"] = record::etag_for(&uuid, &now).into();
}

fn new_record(
    plural: &str,
    attrs: &Map<String, Value>,
    caller: &Caller,
) -> Result<Value, ApiError> {
    let uuid = match attrs.get("uuid") {
        Some(Value::String(u)) => {
            let infix = state::TABLES
                .iter()
                .find(|t| t.0 == plural)
                .map(|t| t.1)
                .unwrap_or("");
            let parts: Vec<&str> = u.split('-').collect();
            if parts.len() != 3 || parts[1] != infix || parts[2].len() != 15 {
                return Err(ApiError::unprocessable(format!(
                    "uuid {u:?} is not a {} uuid (zzzzz-{infix}-<15 characters>)",
                    singular(plural)
                )));
            }
            u.clone()
        }
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "uuid must be a string, not {other}"
            )))
        }
        None => state::new_uuid(plural),
    };
    let now = record::now();
    let mut record = json!({
        "kind": format!("arvados#{}", kind_of(plural)),
        "uuid": uuid,
        "owner_uuid": caller.uuid(),
        "created_at": now,
    });
    for (k, v) in attrs {
        if k != "uuid" {
            record[k.as_str()] = v.clone();
        }
    }
    stamp(&mut record, caller);
    Ok(record)
}

/// `GET /arvados/v1/users/current`
pub fn users_current(call: &Call) -> Result<Value, ApiError> {
    Ok(call.caller.user.clone())
}

/// `GET /arvados/v1/api_client_authorizations/current`
pub fn tokens_current(call: &Call) -> Result<Value, ApiError> {
    Ok(call.caller.token.clone())
}

/// Whether a record is in the trash itself (its own `is_trashed` or `trash_at`).
fn trashed(record: &Value) -> bool {
    record::is_trashed(record)
}

/// Whether `caller` sees `record` as trash: trashed itself, or inside a trashed project
/// (hidden unless `include_trash`).
fn hidden_as_trash(caller: &Caller, record: &Value) -> bool {
    caller.access.in_trash(record)
}

/// Whether collections or groups of this class go to the trash when deleted (role groups are
/// deleted at once, as they carry permissions rather than data).
fn trashable(plural: &str, record: &Value) -> bool {
    match plural {
        "collections" => true,
        "groups" => record["group_class"] != "role",
        _ => false,
    }
}

/// Whether a collection record is a snapshot of an older version of another (its
/// `current_version_uuid` names the head): hidden from lists unless `include_old_versions`.
fn old_version(record: &Value) -> bool {
    record["current_version_uuid"]
        .as_str()
        .is_some_and(|head| head != str_of(record, "uuid"))
}

/// `GET /arvados/v1/RESOURCE`, over `records`, a snapshot of the table taken under the lock:
/// the filtering, sorting and signing happen without it.
pub fn list(
    caller: &Caller,
    params: &Params,
    key: &[u8],
    plural: &str,
    records: Vec<Arc<Value>>,
) -> Result<Value, ApiError> {
    let include_trash = params.flag("include_trash");
    let include_old = params.flag("include_old_versions");
    let records: Vec<Value> = records
        .into_iter()
        .filter(|r| {
            readable(caller, plural, r)
                && !record::is_deleted(r)
                && (include_trash || !hidden_as_trash(caller, r))
                && (include_old || !old_version(r))
        })
        .map(|r| present(caller, key, plural, Arc::unwrap_or_clone(r)))
        .collect();
    query::list(&kind_of(plural), records, params, columns(plural))
}

/// The resources `groups/contents` lists.
const CONTENT_TABLES: &[&str] = &["collections", "groups"];

/// The tables `groups/contents` needs: a snapshot of each, taken under the lock.
pub fn contents_tables(store: &Store) -> Vec<(&'static str, Vec<Arc<Value>>)> {
    let mut tables: Vec<(&'static str, Vec<Arc<Value>>)> = CONTENT_TABLES
        .iter()
        .map(|t| (*t, store.snapshot(t)))
        .collect();
    tables.push(("users", store.snapshot("users")));
    tables
}

/// `GET /arvados/v1/groups/contents?uuid=UUID` (or `groups/UUID/contents`): the collections and
/// groups `uuid` (a project, or a user's home project; the caller's without one) owns, the
/// ones below it too with `recursive`, filtered, sorted and paged as one list.
pub fn contents(
    caller: &Caller,
    params: &Params,
    key: &[u8],
    uuid: Option<&str>,
    tables: Vec<(&'static str, Vec<Arc<Value>>)>,
) -> Result<Value, ApiError> {
    let target = uuid
        .map(str::to_string)
        .or_else(|| {
            params
                .get("uuid")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| caller.uuid().to_string());
    let find = |table: &str| {
        tables
            .iter()
            .find(|t| t.0 == table)
            .map(|t| t.1.as_slice())
            .unwrap_or(&[])
    };
    let found = find("groups")
        .iter()
        .map(|g| ("groups", g))
        .chain(find("users").iter().map(|u| ("users", u)))
        .find(|(_, r)| r["uuid"] == target.as_str());
    match found {
        Some((plural, r)) if readable(caller, plural, r) => {}
        _ => return Err(not_found("groups", &target)),
    }
    let include_trash = params.flag("include_trash");
    let include_old = params.flag("include_old_versions");
    let mut owners = std::collections::HashSet::from([target.clone()]);
    if params.flag("recursive") {
        loop {
            let before = owners.len();
            for g in find("groups") {
                if owners.contains(str_of(g, "owner_uuid"))
                    && !record::is_deleted(g)
                    && (include_trash || !trashed(g))
                {
                    owners.insert(str_of(g, "uuid").to_string());
                }
            }
            if owners.len() == before {
                break;
            }
        }
    }
    let mut columns: Vec<&'static str> = Vec::new();
    let mut records = Vec::new();
    for plural in CONTENT_TABLES {
        for c in self::columns(plural) {
            if !columns.contains(c) {
                columns.push(c);
            }
        }
        for r in find(plural) {
            if owners.contains(str_of(r, "owner_uuid"))
                && readable(caller, plural, r)
                && !record::is_deleted(r)
                && (include_trash || !hidden_as_trash(caller, r))
                && (include_old || !old_version(r))
            {
                records.push(present(caller, key, plural, r.as_ref().clone()));
            }
        }
    }
    let mut answer = query::list("object", records, params, &columns)?;
    if let Some(include) = params
        .json("include")?
        .or_else(|| params.get("include").cloned())
    {
        let wanted = match &include {
            Value::String(s) => s.split(',').any(|w| w.trim() == "owner_uuid"),
            Value::Array(a) => a.iter().any(|w| w == "owner_uuid"),
            _ => false,
        };
        if wanted {
            let owner_uuids: std::collections::HashSet<String> = answer["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| str_of(i, "owner_uuid").to_string())
                .collect();
            let included: Vec<Value> = ["groups", "users"]
                .iter()
                .flat_map(|p| find(p).iter().map(move |r| (*p, r)))
                .filter(|(p, r)| owner_uuids.contains(str_of(r, "uuid")) && readable(caller, p, r))
                .map(|(p, r)| present(caller, key, p, r.as_ref().clone()))
                .collect();
            answer["included"] = included.into();
        }
    }
    Ok(answer)
}

/// `GET /arvados/v1/groups/shared`: the projects and filter groups the caller reads that are
/// not in its own home tree: owned by another user, by a role, or by a group the caller cannot
/// read (so it sees no way down to them), as a `groups` list; with `include=owner_uuid`, their
/// owners (users or groups the caller reads) in `included`. `tables` are the snapshots of
/// [`contents_tables`].
pub fn shared(
    caller: &Caller,
    params: &Params,
    key: &[u8],
    tables: Vec<(&'static str, Vec<Arc<Value>>)>,
) -> Result<Value, ApiError> {
    let find = |table: &str| {
        tables
            .iter()
            .find(|t| t.0 == table)
            .map(|t| t.1.clone())
            .unwrap_or_default()
    };
    let groups = find("groups");
    let users = find("users");
    let me = caller.uuid();
    let class_of = |uuid: &str| {
        groups
            .iter()
            .find(|g| g["uuid"] == uuid)
            .map(|g| str_of(g, "group_class").to_string())
    };
    let outside_home = |g: &Value| {
        let owner = str_of(g, "owner_uuid");
        let owned_by_user = users.iter().any(|u| u["uuid"] == owner);
        (owned_by_user && owner != me)
            || class_of(owner).is_some_and(|c| c == "role")
            || (!owned_by_user && !caller.is_admin() && caller.access.of_uuid(owner) < READ)
    };
    let shared: Vec<Arc<Value>> = groups
        .iter()
        .filter(|g| matches!(g["group_class"].as_str(), Some("project" | "filter")))
        .filter(|g| outside_home(g))
        .cloned()
        .collect();
    let mut answer = list(caller, params, key, "groups", shared)?;
    if params.get("include").and_then(Value::as_str) == Some("owner_uuid") {
        let owners: std::collections::HashSet<String> = answer["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| str_of(g, "owner_uuid").to_string())
            .collect();
        let included: Vec<Value> = [("groups", &groups), ("users", &users)]
            .into_iter()
            .flat_map(|(plural, records)| records.iter().map(move |r| (plural, r)))
            .filter(|(plural, r)| owners.contains(str_of(r, "uuid")) && readable(caller, plural, r))
            .map(|(plural, r)| present(caller, key, plural, r.as_ref().clone()))
            .collect();
        answer["included"] = included.into();
    }
    Ok(answer)
}

/// `GET /arvados/v1/links/UUID/get_permissions`: the permission links on the object `uuid`,
/// for a caller who manages it (404 when it sees nothing of it, 403 when it may not manage
/// it). `links` is a snapshot of the links.
pub fn get_permissions(
    caller: &Caller,
    params: &Params,
    key: &[u8],
    uuid: &str,
    links: Vec<Arc<Value>>,
) -> Result<Value, ApiError> {
    let level = caller.access.of_uuid(uuid);
    if level == 0 {
        return Err(ApiError::new(404, format!("object {uuid:?} not found")));
    }
    if level < MANAGE {
        return Err(forbidden(format!(
            "no manage permission on {uuid:?}: its permissions are not yours to see"
        )));
    }
    let on_it: Vec<Arc<Value>> = links
        .into_iter()
        .filter(|l| l["link_class"] == "permission" && l["head_uuid"] == uuid)
        .collect();
    list(caller, params, key, "links", on_it)
}

/// `GET /arvados/v1/keep_services/accessible` over `all` (a snapshot of the keep services): the
/// disk services, or the proxies for a caller outside the cluster when there are any.
pub fn keep_services_accessible(
    params: &Params,
    external: bool,
    all: Vec<Arc<Value>>,
) -> Result<Value, ApiError> {
    let all: Vec<Value> = all.into_iter().map(Arc::unwrap_or_clone).collect();
    let proxies: Vec<Value> = all
        .iter()
        .filter(|s| s["service_type"] == "proxy")
        .cloned()
        .collect();
    let chosen = if external && !proxies.is_empty() {
        proxies
    } else {
        all.into_iter()
            .filter(|s| s["service_type"] != "proxy")
            .collect()
    };
    query::list("keepService", chosen, params, columns("keep_services"))
}

/// `GET /arvados/v1/RESOURCE/UUID` (collections also by portable data hash)
pub fn get(call: &Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    if plural == "collections" && is_pdh(uuid) {
        let found = call
            .store
            .table("collections")
            .find(|c| {
                c["portable_data_hash"] == uuid
                    && !record::is_deleted(c)
                    && !hidden_as_trash(&call.caller, c)
                    && readable(&call.caller, plural, c)
            })
            .cloned()
            .ok_or_else(|| not_found(plural, uuid))?;
        let mut by_hash = present(&call.caller, &call.key, plural, found);
        by_hash["uuid"] = uuid.into();
        return Ok(by_hash);
    }
    let record = readable_record(call, plural, uuid)?;
    if hidden_as_trash(&call.caller, &record) && !call.params.flag("include_trash") {
        return Err(not_found(plural, uuid));
    }
    let select = query_select(call, plural)?;
    Ok(query::project(
        present(&call.caller, &call.key, plural, record),
        select.as_deref(),
    ))
}

/// The record `uuid` of `plural` if the caller may read it (in the trash or not; past its
/// `delete_at` it is gone), else 404.
fn readable_record(call: &Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    call.store
        .get(plural, uuid)
        .filter(|r| readable(&call.caller, plural, r) && !record::is_deleted(r))
        .cloned()
        .ok_or_else(|| not_found(plural, uuid))
}

fn forbidden(what: String) -> ApiError {
    ApiError::new(403, format!("Forbidden: {what}"))
}

/// Whether the caller may `verb` (create, update, delete) `record` of `plural` (for an update,
/// `old` is the record before it), as Arvados decides: keep services and disks, users and
/// the changing of logs are for admins; collections and groups need write permission on the
/// record (and on its new owner); permission links need manage permission on their head;
/// other links need write permission on their owner. Tokens and repositories are read-only
/// here (501).
fn check_writable(
    call: &Call,
    plural: &str,
    verb: &str,
    record: &Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let access = &call.caller.access;
    let admin = call.caller.is_admin();
    let owner = str_of(record, "owner_uuid");
    let owner_ok = |what: &str| {
        if access.of_uuid(owner) >= WRITE {
            Ok(())
        } else {
            Err(forbidden(format!(
                "cannot {verb} a {what} owned by {owner:?}"
            )))
        }
    };
    let record_ok = |what: &str| match old {
        Some(o) if access.of(o) < WRITE => Err(forbidden(format!(
            "no write permission on {what} {:?}",
            str_of(o, "uuid")
        ))),
        _ => Ok(()),
    };
    match plural {
        "keep_services" | "keep_disks" => {
            let admin_verb = match verb {
                "create" => "register",
                "update" => "change",
                v => v,
            };
            require_admin(call, &format!("{admin_verb} {}", plural.replace('_', " ")))
        }
        "users" => match old {
            // A user may change its own names and preferences.
            Some(o) if verb == "update" && o["uuid"] == call.caller.uuid() && !admin => {
                let writable = resource("users").map_or(&[][..], |r| r.writable);
                let changed: Vec<&str> = writable
                    .iter()
                    .copied()
                    .filter(|k| record[*k] != o[*k])
                    .filter(|k| !SELF_WRITABLE_USER.contains(k))
                    .collect();
                if changed.is_empty() {
                    Ok(())
                } else {
                    Err(forbidden(format!(
                        "only an admin may change {}",
                        changed.join(", ")
                    )))
                }
            }
            _ => require_admin(call, &format!("{verb} users")),
        },
        "api_client_authorizations" => {
            let me = call.caller.uuid();
            let mine = |r: &Value| r["owner_uuid"] == me;
            if !call.caller.full_scope() {
                // A token of limited scope may only revoke itself.
                let itself =
                    verb == "delete" && old.is_some_and(|o| o["uuid"] == call.caller.token["uuid"]);
                return if itself {
                    Ok(())
                } else {
                    Err(forbidden(format!(
                        "a token with limited scopes cannot {verb} tokens"
                    )))
                };
            }
            if admin || (mine(record) && old.is_none_or(mine)) {
                Ok(())
            } else {
                Err(forbidden(format!(
                    "cannot {verb} a token of another user ({:?})",
                    str_of(record, "owner_uuid")
                )))
            }
        }
        "logs" if verb != "create" => require_admin(call, &format!("{verb} logs")),
        "logs" => {
            if admin || owner == call.caller.uuid() {
                Ok(())
            } else {
                Err(forbidden(format!("cannot create a log owned by {owner:?}")))
            }
        }
        "collections" | "groups" => {
            let what = singular(plural);
            record_ok(what)?;
            if verb != "delete" && old.is_none_or(|o| o["owner_uuid"] != record["owner_uuid"]) {
                owner_ok(what)?;
            }
            Ok(())
        }
        "links" => {
            let permission = record["link_class"] == "permission"
                || old.is_some_and(|o| o["link_class"] == "permission");
            if permission {
                for head in [Some(record), old].into_iter().flatten() {
                    let head = str_of(head, "head_uuid");
                    if access.of_uuid(head) < MANAGE {
                        return Err(forbidden(format!(
                            "cannot {verb} a permission link: no manage permission on {head:?}"
                        )));
                    }
                }
                Ok(())
            } else {
                record_ok("link")?;
                if verb != "delete" {
                    owner_ok("link")?;
                }
                Ok(())
            }
        }
        _ => Err(ApiError::new(
            501,
            format!("this test API server does not {verb} {plural}"),
        )),
    }
}

/// Sets each attribute of `record` that is null or missing to its default.
fn fill_defaults<const N: usize>(record: &mut Value, defaults: [(&str, Value); N]) {
    for (k, default) in defaults {
        if record[k].is_null() {
            record[k] = default;
        }
    }
}

/// Stores `record` in `plural`, logs the change and answers it as the caller sees it.
fn save(
    call: &mut Call,
    plural: &str,
    event: &str,
    old: Option<&Value>,
    record: Value,
) -> Result<Value, ApiError> {
    call.store
        .put(plural, record.clone())
        .map_err(ApiError::internal)?;
    log_change(call, plural, event, old, Some(&record))?;
    Ok(present(&call.caller, &call.key, plural, record))
}

/// The attributes a log records of a record: all but manifests and token secrets, as Arvados
/// leaves them out.
fn logged_attributes(record: Option<&Value>) -> Value {
    let Some(Value::Object(map)) = record else {
        return Value::Null;
    };
    Value::Object(
        map.iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "manifest_text" | "unsigned_manifest_text" | "api_token"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Appends the log record of a change (`create`, `update`, `delete`) to `logs`, with a
/// sequential `id`, as Arvados does for every change (the SDK's event poller reads them).
fn log_change(
    call: &mut Call,
    plural: &str,
    event: &str,
    old: Option<&Value>,
    new: Option<&Value>,
) -> Result<(), ApiError> {
    if !logged(plural) {
        return Ok(());
    }
    let Some(object) = new.or(old) else {
        return Ok(());
    };
    let now = record::now();
    let uuid = state::new_uuid("logs");
    let owner = str_of(object, "owner_uuid").to_string();
    let object_uuid = str_of(object, "uuid").to_string();
    let log = json!({
        "kind": "arvados#log",
        "uuid": uuid,
        "id": call.store.next_log_id(),
        "owner_uuid": owner,
        "created_at": now,
        "modified_at": now,
        "modified_by_user_uuid": call.caller.uuid(),
        "etag": record::etag_for(&uuid, &now),
        "object_uuid": object_uuid,
        "object_owner_uuid": owner,
        "event_type": event,
        "event_at": now,
        "summary": format!("{event} of {object_uuid}"),
        "properties": {
            "old_attributes": logged_attributes(old),
            "new_attributes": logged_attributes(new),
        },
    });
    call.store.put("logs", log).map_err(ApiError::internal)
}

fn query_select(call: &Call, plural: &str) -> Result<Option<Vec<String>>, ApiError> {
    query::select_columns(&call.params, columns(plural))
}

fn is_pdh(s: &str) -> bool {
    let Some((hash, size)) = s.split_once('+') else {
        return false;
    };
    crate::locator::is_hash(hash) && !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit())
}

/// A stored record as `caller` sees it: collections get their manifest signed for the
/// caller's token with `key` (always, as Arvados signs with the cluster's key), groups say
/// whether the caller may write and manage them.
fn present(caller: &Caller, key: &[u8], plural: &str, mut record: Value) -> Value {
    if matches!(plural, "collections" | "groups") && record["is_trashed"] == false {
        // A trash_at that has come since the record was written trashes it.
        record["is_trashed"] = trashed(&record).into();
    }
    match plural {
        "collections" => {
            let text = record["manifest_text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            record["unsigned_manifest_text"] = text.clone().into();
            record["manifest_text"] = manifest::sign(&text, key, &caller.secret, unix_now()).into();
        }
        "groups" => {
            let level = caller.access.of(&record);
            record["can_write"] = (level >= WRITE).into();
            record["can_manage"] = (level >= MANAGE).into();
        }
        _ => {}
    }
    record
}

/// `POST /arvados/v1/RESOURCE`
pub fn create(call: &mut Call, plural: &str) -> Result<Value, ApiError> {
    let attrs = attributes(call, plural)?;
    if plural == "repositories" {
        return Err(ApiError::new(
            501,
            format!("this test API server does not create {plural}"),
        ));
    }
    if plural == "keep_services" {
        check_keep_service(&attrs)?;
    }
    if let Some(uuid) = attrs.get("uuid").and_then(Value::as_str) {
        if call.store.get(plural, uuid).is_some() {
            return Err(ApiError::unprocessable(format!(
                "{} {uuid:?} already exists",
                singular(plural)
            )));
        }
    }
    let mut record = new_record(plural, &attrs, &call.caller)?;
    if plural == "users" && !attrs.contains_key("owner_uuid") {
        record["owner_uuid"] = super::fixtures::SYSTEM_USER.into();
    }
    check_writable(call, plural, "create", &record, None)?;
    match plural {
        "keep_services" => fill_defaults(
            &mut record,
            [
                ("service_ssl_flag", json!(false)),
                ("service_type", json!("disk")),
                ("read_only", json!(false)),
            ],
        ),
        "keep_disks" => fill_keep_disk(call, &mut record)?,
        "collections" => prepare_collection(call, &mut record, None)?,
        "groups" => prepare_group(call, &mut record, None)?,
        "links" => prepare_link(&mut record)?,
        "logs" => prepare_log(call, &mut record),
        "users" => prepare_user(call, &mut record, None)?,
        "api_client_authorizations" => prepare_token(call, &mut record, None)?,
        _ => {}
    }
    save(call, plural, "create", None, record)
}

fn check_keep_service(attrs: &Map<String, Value>) -> Result<(), ApiError> {
    expect_type(attrs, "service_host", Value::is_string, "a string")?;
    expect_type(
        attrs,
        "service_port",
        |v| v.as_u64().is_some_and(|p| (1..=65535).contains(&p)),
        "a port number (1-65535)",
    )?;
    expect_type(
        attrs,
        "service_ssl_flag",
        Value::is_boolean,
        "true or false",
    )?;
    expect_type(attrs, "read_only", Value::is_boolean, "true or false")?;
    expect_type(
        attrs,
        "service_type",
        |v| {
            v.as_str()
                .is_some_and(|t| t == "disk" || t == "proxy" || t.starts_with("gateway:"))
        },
        "\"disk\", \"proxy\" or \"gateway:...\"",
    )?;
    Ok(())
}

fn fill_keep_disk(call: &Call, record: &mut Value) -> Result<(), ApiError> {
    let service_uuid = record["keep_service_uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let service = call
        .store
        .get("keep_services", &service_uuid)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "keep_service_uuid {service_uuid:?} names no keep service"
            ))
        })?;
    for k in ["service_host", "service_port", "service_ssl_flag"] {
        record[k] = service[k].clone();
    }
    fill_defaults(
        record,
        [("is_readable", json!(true)), ("is_writable", json!(true))],
    );
    Ok(())
}

/// Checks and normalises a collection's manifest, name and owner before it is stored.
fn prepare_collection(
    call: &Call,
    record: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let Some(text) = record["manifest_text"]
        .as_str()
        .map(str::to_string)
        .or_else(|| record["manifest_text"].is_null().then(String::new))
    else {
        return Err(ApiError::unprocessable(format!(
            "manifest_text must be a string, not {}",
            record["manifest_text"]
        )));
    };
    // The shape first, so a malformed manifest is named as such before any signature.
    let stored = manifest::strip_signatures(&text).map_err(manifest_error)?;
    let changed = old.is_none_or(|o| o["manifest_text"] != record["manifest_text"]);
    // Admins' manifests are taken as they come, as Arvados skips the check for them.
    if changed && call.enforce && !call.caller.is_admin() {
        manifest::verify(&text, &call.key, &call.caller.secret, unix_now(), false)
            .map_err(manifest_error)?;
    }
    let pdh = manifest::portable_data_hash(&stored).map_err(manifest_error)?;
    if let Some(given) = record["portable_data_hash"].as_str() {
        if old.is_none_or(|o| o["portable_data_hash"] != given) && given != pdh {
            return Err(ApiError::unprocessable(format!(
                "portable_data_hash {given:?} does not match the manifest ({pdh})"
            )));
        }
    }
    record["manifest_text"] = stored.into();
    record["portable_data_hash"] = pdh.into();
    unique_name(call, "collections", record)?;
    for (k, default) in [
        ("replication_desired", Value::Null),
        ("description", Value::Null),
        ("properties", json!({})),
        ("storage_classes_desired", json!(["default"])),
        ("trash_at", Value::Null),
        ("delete_at", Value::Null),
        ("is_trashed", json!(false)),
        ("version", json!(1)),
        ("preserve_version", json!(false)),
    ] {
        if record.get(k).is_none() {
            record[k] = default;
        }
    }
    expect_type(
        record.as_object().unwrap_or(&Map::new()),
        "properties",
        Value::is_object,
        "an object",
    )?;
    record["current_version_uuid"] = record["uuid"].clone();
    apply_trash(record, old);
    Ok(())
}

fn manifest_error(e: ManifestError) -> ApiError {
    match e {
        ManifestError::Permission { .. } => ApiError::new(403, format!("Forbidden: {e}")),
        ManifestError::Malformed { .. } => ApiError::unprocessable(format!("manifest_text: {e}")),
    }
}

/// A name already taken among the records of `plural` with the same owner is refused (422),
/// or with `ensure_unique_name` made unique by adding the time.
fn unique_name(call: &Call, plural: &str, record: &mut Value) -> Result<(), ApiError> {
    let Some(name) = record.get("name").filter(|n| !n.is_null()) else {
        return Ok(());
    };
    let Some(name) = name.as_str().map(str::to_string) else {
        return Err(ApiError::unprocessable(format!(
            "name must be a string, not {name}"
        )));
    };
    if trashed(record) {
        // Names are unique among what is not in the trash.
        return Ok(());
    }
    let owner = record["owner_uuid"].clone();
    let uuid = record["uuid"].clone();
    let taken = call.store.table(plural).any(|r| {
        r["owner_uuid"] == owner
            && r["name"] == name.as_str()
            && r["uuid"] != uuid
            && !old_version(r)
            && !trashed(r)
            && !record::is_deleted(r)
    });
    if taken {
        if !call.params.flag("ensure_unique_name") {
            return Err(ApiError::unprocessable(format!(
                "name {name:?} has already been taken by another {} of {owner}",
                singular(plural)
            )));
        }
        record["name"] = format!("{name} ({})", record::now()).into();
    }
    Ok(())
}

/// The trash attributes kept consistent, as Arvados keeps them: trashing sets `trash_at` (now
/// when not given), a `trash_at` in the past trashes, a trashed record is deleted
/// `TRASH_LIFETIME` after it was trashed unless `delete_at` says otherwise, and untrashing
/// clears both times.
fn apply_trash(record: &mut Value, old: Option<&Value>) {
    let was_trashed = old.is_some_and(trashed);
    let now = chrono::Utc::now();
    let trash_at = record["trash_at"].as_str().and_then(record::parse_time);
    if record["is_trashed"] == true && !was_trashed && trash_at.is_none_or(|t| t > now) {
        record["trash_at"] = record::format_time(now).into();
    } else if record["is_trashed"] == false && was_trashed {
        record["trash_at"] = Value::Null;
        record["delete_at"] = Value::Null;
    } else if trash_at.is_some_and(|t| t <= now) {
        record["is_trashed"] = true.into();
    }
    if !record["trash_at"].is_null() && record["delete_at"].is_null() {
        if let Some(t) = record["trash_at"].as_str().and_then(record::parse_time) {
            let lifetime = super::cluster::TRASH_LIFETIME as i64;
            record["delete_at"] =
                record::format_time(t + chrono::Duration::seconds(lifetime)).into();
        }
    }
}

/// Checks and normalises a group: its class, its name (unique among its owner's), trash.
fn prepare_group(call: &Call, record: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let class = &record["group_class"];
    if !class
        .as_str()
        .is_some_and(|c| matches!(c, "project" | "role" | "filter"))
    {
        return Err(ApiError::unprocessable(format!(
            "group_class must be \"project\", \"role\" or \"filter\", not {class}"
        )));
    }
    if old.is_some_and(|o| o["group_class"] != record["group_class"]) {
        return Err(ApiError::unprocessable("group_class cannot be changed"));
    }
    if record["name"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::unprocessable("a group needs a name"));
    }
    unique_name(call, "groups", record)?;
    fill_defaults(
        record,
        [
            ("description", Value::Null),
            ("properties", json!({})),
            ("is_trashed", json!(false)),
            ("frozen_by_uuid", Value::Null),
        ],
    );
    for k in ["trash_at", "delete_at"] {
        if record.get(k).is_none() {
            record[k] = Value::Null;
        }
    }
    expect_type(
        record.as_object().unwrap_or(&Map::new()),
        "properties",
        Value::is_object,
        "an object",
    )?;
    apply_trash(record, old);
    Ok(())
}

/// Checks a link: a class, a head, and for permission links a level as their name.
fn prepare_link(record: &mut Value) -> Result<(), ApiError> {
    if record["link_class"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::unprocessable("a link needs a link_class"));
    }
    if record["link_class"] == "permission" {
        let name = record["name"].as_str().unwrap_or_default();
        if permissions::level_of(name).is_none() {
            return Err(ApiError::unprocessable(format!(
                "a permission link's name must be can_read, can_write or can_manage, not {:?}",
                record["name"]
            )));
        }
        if record["tail_uuid"].as_str().is_none_or(str::is_empty) {
            return Err(ApiError::unprocessable(
                "a permission link needs a tail_uuid",
            ));
        }
    }
    if record["head_uuid"].as_str().is_none_or(str::is_empty) {
        return Err(ApiError::unprocessable("a link needs a head_uuid"));
    }
    fill_defaults(
        record,
        [
            ("name", Value::Null),
            ("tail_uuid", Value::Null),
            ("properties", json!({})),
        ],
    );
    Ok(())
}

/// Fills a log a client writes: its id and time.
fn prepare_log(call: &Call, record: &mut Value) {
    record["id"] = call.store.next_log_id().into();
    fill_defaults(
        record,
        [
            ("event_at", json!(record::now())),
            ("properties", json!({})),
            ("object_uuid", Value::Null),
            ("object_owner_uuid", Value::Null),
            ("event_type", Value::Null),
            ("summary", Value::Null),
        ],
    );
}

/// Fills a user an admin creates or changes: flags, a unique username, the full name.
fn prepare_user(call: &Call, record: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    fill_defaults(
        record,
        [
            ("is_active", json!(false)),
            ("is_admin", json!(false)),
            ("prefs", json!({})),
        ],
    );
    for k in [
        "email",
        "first_name",
        "last_name",
        "username",
        "identity_url",
    ] {
        if record.get(k).is_none() {
            record[k] = Value::Null;
        }
    }
    for k in ["is_active", "is_admin"] {
        expect_type(
            record.as_object().unwrap_or(&Map::new()),
            k,
            Value::is_boolean,
            "true or false",
        )?;
    }
    if let Some(name) = record["username"].as_str() {
        let uuid = record["uuid"].clone();
        if call
            .store
            .table("users")
            .any(|u| u["username"] == name && u["uuid"] != uuid)
        {
            return Err(ApiError::unprocessable(format!(
                "username {name:?} has already been taken"
            )));
        }
    }
    let first = record["first_name"].as_str().unwrap_or_default();
    let last = record["last_name"].as_str().unwrap_or_default();
    record["full_name"] = format!("{first} {last}").trim().to_string().into();
    record["is_invited"] =
        (record["is_active"] == true || old.is_some_and(|o| o["is_invited"] == true)).into();
    Ok(())
}

/// The user attributes a user may change on itself (an admin: all it may write).
const SELF_WRITABLE_USER: &[&str] = &["first_name", "last_name", "prefs"];

/// Checks a token: its user exists (and stays), its scopes are a list of strings (`["all"]`
/// by default); a new one gets its secret ([`state::new_secret`]).
fn prepare_token(call: &Call, record: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let owner = str_of(record, "owner_uuid").to_string();
    if old.is_some_and(|o| o["owner_uuid"] != owner.as_str()) {
        return Err(ApiError::unprocessable("a token's user cannot be changed"));
    }
    if call.store.get("users", &owner).is_none() {
        return Err(ApiError::unprocessable(format!(
            "owner_uuid {owner:?} is not a user"
        )));
    }
    fill_defaults(record, [("scopes", json!(["all"]))]);
    let scopes_ok = record["scopes"]
        .as_array()
        .is_some_and(|a| a.iter().all(Value::is_string));
    if !scopes_ok {
        return Err(ApiError::unprocessable(format!(
            "scopes must be a list of strings, not {}",
            record["scopes"]
        )));
    }
    if record.get("expires_at").is_none() {
        record["expires_at"] = Value::Null;
    }
    if old.is_none() {
        record["api_token"] = state::new_secret().into();
    }
    Ok(())
}

/// `PUT`/`PATCH /arvados/v1/RESOURCE/UUID`
pub fn update(call: &mut Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    let attrs = attributes(call, plural)?;
    let old = readable_record(call, plural, uuid)?;
    if plural == "keep_services" {
        check_keep_service(&attrs)?;
    }
    if attrs.get("uuid").is_some_and(|u| u != uuid) {
        return Err(ApiError::unprocessable(
            "uuid cannot be changed".to_string(),
        ));
    }
    let mut record = old.clone();
    let gives_preserve = attrs.contains_key("preserve_version");
    for (k, v) in attrs {
        record[k.as_str()] = v;
    }
    check_writable(call, plural, "update", &record, Some(&old))?;
    if plural == "collections" && old_version(&old) {
        return Err(ApiError::unprocessable(format!(
            "collection {uuid:?} is a past version of {}: it cannot be changed",
            old["current_version_uuid"]
        )));
    }
    let mut snapshot = None;
    match plural {
        "collections" => {
            prepare_collection(call, &mut record, Some(&old))?;
            snapshot = preserve_version(&mut record, &old, gives_preserve);
        }
        "groups" => prepare_group(call, &mut record, Some(&old))?,
        "links" => prepare_link(&mut record)?,
        "users" => prepare_user(call, &mut record, Some(&old))?,
        "api_client_authorizations" => prepare_token(call, &mut record, Some(&old))?,
        "keep_disks" => fill_keep_disk(call, &mut record)?,
        _ => {}
    }
    stamp(&mut record, &call.caller);
    if plural == "collections" {
        sync_old_versions(call, &record)?;
    }
    if let Some(snapshot) = snapshot {
        call.store
            .put("collections", snapshot)
            .map_err(ApiError::internal)?;
    }
    save(call, plural, "update", Some(&old), record)
}

/// The attributes whose change makes a new version of a collection.
const VERSIONED: &[&str] = &["manifest_text", "name", "description", "properties"];

/// The attributes a collection's old versions follow from the head.
const SYNCED: &[&str] = &["owner_uuid", "trash_at", "delete_at", "is_trashed"];

/// Collection versions, as Arvados keeps them (`Collections.CollectionVersioning`): when an
/// update of `old` into `record` changes a versioned attribute and `preserve_version` was or
/// is now true, or `old` was left unchanged for `Collections.PreserveVersionIfIdle` (and the
/// collection is not trashed), the old state is kept as a snapshot (the record answered: a new
/// uuid, `current_version_uuid` the head's) and the head's `version` goes up by one;
/// `preserve_version` is then false unless the update gave it (`gives_preserve`).
fn preserve_version(record: &mut Value, old: &Value, gives_preserve: bool) -> Option<Value> {
    let changed = VERSIONED.iter().any(|k| record[*k] != old[*k]);
    let idle = old["modified_at"]
        .as_str()
        .and_then(record::parse_time)
        .is_some_and(|t| {
            chrono::Utc::now() - t
                >= chrono::Duration::seconds(super::cluster::PRESERVE_VERSION_IF_IDLE as i64)
        });
    let asked = old["preserve_version"] == true || record["preserve_version"] == true || idle;
    if !changed || !asked || trashed(record) {
        return None;
    }
    let head = str_of(old, "uuid").to_string();
    let mut snapshot = old.clone();
    let uuid = state::new_uuid("collections");
    snapshot["uuid"] = uuid.clone().into();
    snapshot["current_version_uuid"] = head.into();
    snapshot["etag"] = record::etag_for(&uuid, str_of(old, "modified_at")).into();
    record["version"] = (old["version"].as_u64().unwrap_or(1) + 1).into();
    if !gives_preserve {
        record["preserve_version"] = false.into();
    }
    Some(snapshot)
}

/// A head collection's old versions follow its owner and trash attributes.
fn sync_old_versions(call: &mut Call, head: &Value) -> Result<(), ApiError> {
    let uuid = str_of(head, "uuid");
    let stale: Vec<Value> = call
        .store
        .table("collections")
        .filter(|r| r["current_version_uuid"] == uuid && old_version(r))
        .filter(|r| SYNCED.iter().any(|k| r[*k] != head[*k]))
        .cloned()
        .collect();
    for mut version in stale {
        for k in SYNCED {
            version[*k] = head[*k].clone();
        }
        call.store
            .put("collections", version)
            .map_err(ApiError::internal)?;
    }
    Ok(())
}

/// `DELETE /arvados/v1/RESOURCE/UUID`: collections, projects and filter groups go to the
/// trash ([`trash`], with `delete_at` at most the blob signature TTL away); anything else is
/// removed.
pub fn delete(call: &mut Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    let record = readable_record(call, plural, uuid)?;
    if trashable(plural, &record) {
        return move_to_trash(call, plural, record, true);
    }
    check_writable(call, plural, "delete", &record, Some(&record))?;
    call.store
        .remove(plural, uuid)
        .map_err(ApiError::internal)?;
    log_change(call, plural, "delete", Some(&record), None)?;
    if plural == "collections" && !old_version(&record) {
        let versions: Vec<String> = call
            .store
            .table("collections")
            .filter(|c| c["current_version_uuid"] == uuid && old_version(c))
            .filter_map(|c| c["uuid"].as_str().map(str::to_string))
            .collect();
        for v in versions {
            call.store
                .remove("collections", &v)
                .map_err(ApiError::internal)?;
        }
    }
    if plural == "keep_services" {
        let disks: Vec<String> = call
            .store
            .table("keep_disks")
            .filter(|d| d["keep_service_uuid"] == uuid)
            .filter_map(|d| d["uuid"].as_str().map(str::to_string))
            .collect();
        for d in disks {
            call.store
                .remove("keep_disks", &d)
                .map_err(ApiError::internal)?;
        }
    }
    Ok(present(&call.caller, &call.key, plural, record))
}

/// `POST /arvados/v1/RESOURCE/UUID/trash`: the collection, project or filter group goes to the
/// trash (already there: unchanged); it is deleted for good at its `delete_at`, by default the
/// trash lifetime away.
pub fn trash(call: &mut Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    let record = readable_record(call, plural, uuid)?;
    move_to_trash(call, plural, record, false)
}

fn move_to_trash(
    call: &mut Call,
    plural: &str,
    old: Value,
    deleting: bool,
) -> Result<Value, ApiError> {
    let uuid = str_of(&old, "uuid").to_string();
    check_trashable(plural, &old)?;
    if hidden_as_trash(&call.caller, &old) && !trashed(&old) {
        // Inside a trashed project: seen only with include_trash, and in the trash already.
        if !call.params.flag("include_trash") {
            return Err(not_found(plural, &uuid));
        }
    }
    if trashed(&old) && deleting && !call.params.flag("include_trash") {
        return Err(not_found(plural, &uuid));
    }
    let mut record = old.clone();
    let now = chrono::Utc::now();
    if !trashed(&old) {
        record["trash_at"] = record::format_time(now).into();
        record["is_trashed"] = true.into();
        record["delete_at"] = Value::Null;
        apply_trash(&mut record, Some(&old));
    }
    if deleting {
        // Deleted rather than trashed: gone once no signature given out can still be used.
        let trash_at = record["trash_at"].as_str().and_then(record::parse_time);
        let delete_at = record["delete_at"].as_str().and_then(record::parse_time);
        if let (Some(trash_at), Some(delete_at)) = (trash_at, delete_at) {
            let earliest =
                trash_at + chrono::Duration::seconds(crate::signature::DEFAULT_TTL as i64);
            if delete_at > earliest {
                record["delete_at"] = record::format_time(earliest).into();
            }
        }
    }
    check_writable(call, plural, "update", &record, Some(&old))?;
    if record == old {
        return Ok(present(&call.caller, &call.key, plural, record));
    }
    stamp(&mut record, &call.caller);
    if plural == "collections" {
        sync_old_versions(call, &record)?;
    }
    save(call, plural, "update", Some(&old), record)
}

/// `POST /arvados/v1/RESOURCE/UUID/untrash`: a trashed collection, project or filter group
/// back out of the trash (422 when it is not in it), its name made unique with
/// `ensure_unique_name` if another took it meanwhile (else 422).
pub fn untrash(call: &mut Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    let old = readable_record(call, plural, uuid)?;
    check_trashable(plural, &old)?;
    if !trashed(&old) {
        return Err(ApiError::unprocessable(format!(
            "{} {uuid:?} is not in the trash: it cannot be untrashed",
            singular(plural)
        )));
    }
    let mut record = old.clone();
    record["trash_at"] = Value::Null;
    record["is_trashed"] = false.into();
    apply_trash(&mut record, Some(&old));
    check_writable(call, plural, "update", &record, Some(&old))?;
    unique_name(call, plural, &mut record)?;
    stamp(&mut record, &call.caller);
    if plural == "collections" {
        sync_old_versions(call, &record)?;
    }
    save(call, plural, "update", Some(&old), record)
}

/// 422 unless `record` of `plural` is one that goes to the trash: a current collection, a
/// project or a filter group.
fn check_trashable(plural: &str, record: &Value) -> Result<(), ApiError> {
    if !trashable(plural, record) {
        return Err(ApiError::unprocessable(format!(
            "only collections, projects and filter groups go to the trash, not {} {}",
            singular(plural),
            record["uuid"]
        )));
    }
    if old_version(record) {
        return Err(ApiError::unprocessable(format!(
            "collection {} is a past version of {}: it follows its head in and out of the trash",
            record["uuid"], record["current_version_uuid"]
        )));
    }
    Ok(())
}

/// `POST /database/reset`
pub fn reset(call: &mut Call) -> Result<Value, ApiError> {
    require_admin(call, "reset the database")?;
    call.store.reset().map_err(ApiError::internal)?;
    Ok(json!({}))
}
