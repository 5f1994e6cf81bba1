//! What each resource's methods do: who may call them, which attributes they accept, and the
//! records they answer with. The HTTP side (parsing, authentication, errors on the wire) is
//! [`super::router`] and [`super::answer`]; storage is [`super::state`].

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::answer::{ApiError, MAX_BODY};
use super::manifest::{self, ManifestError};
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
    /// The blob signing key shared with the keepstores, when there is one.
    pub key: Option<Vec<u8>>,
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
        writable: &[],
    },
    Resource {
        plural: "api_client_authorizations",
        singular: "api_client_authorization",
        kind: "ApiClientAuthorization",
        columns: record_columns!["api_token", "expires_at", "scopes",],
        writable: &[],
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
];

/// Resources of the real Arvados API this test server does not implement (answered 501).
pub const NOT_IMPLEMENTED: &[&str] = &[
    "api_clients",
    "authorized_keys",
    "container_requests",
    "containers",
    "groups",
    "humans",
    "job_tasks",
    "jobs",
    "links",
    "logs",
    "nodes",
    "pipeline_instances",
    "pipeline_templates",
    "specimens",
    "traits",
    "virtual_machines",
    "workflows",
    "user_agreements",
    "vocabularies",
    "sys",
    "credentials",
    "computed_permissions",
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
        "users" => record["uuid"] == me,
        "api_client_authorizations" | "collections" => record["owner_uuid"] == me,
        "repositories" => {
            record["owner_uuid"] == me
                || record["readable_by"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|u| u == me))
        }
        _ => false,
    }
}

/// The attributes sent for a create or update: `{"collection": {...}}` or the attributes
/// themselves, every one of them checked against what the resource accepts.
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
    for key in attrs.keys() {
        if !writable.contains(&key.as_str()) {
            return Err(ApiError::unprocessable(format!(
                "unknown or read-only attribute {key:?} for {single}"
            )));
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

/// `GET /arvados/v1/RESOURCE`, over `records`, a snapshot of the table taken under the lock:
/// the filtering, sorting and signing happen without it.
pub fn list(
    caller: &Caller,
    params: &Params,
    key: Option<&[u8]>,
    plural: &str,
    records: Vec<Arc<Value>>,
) -> Result<Value, ApiError> {
    let records: Vec<Value> = records
        .into_iter()
        .filter(|r| readable(caller, plural, r))
        .map(|r| present(caller, key, plural, Arc::unwrap_or_clone(r)))
        .collect();
    query::list(&kind_of(plural), records, params, columns(plural))
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
            .find(|c| c["portable_data_hash"] == uuid && readable(&call.caller, plural, c))
            .cloned()
            .ok_or_else(|| not_found(plural, uuid))?;
        let mut by_hash = present(&call.caller, call.key.as_deref(), plural, found);
        by_hash["uuid"] = uuid.into();
        return Ok(by_hash);
    }
    let record = readable_record(call, plural, uuid)?;
    let select = query_select(call, plural)?;
    Ok(query::project(
        present(&call.caller, call.key.as_deref(), plural, record),
        select.as_deref(),
    ))
}

/// The record `uuid` of `plural` if the caller may read it, else 404.
fn readable_record(call: &Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    call.store
        .get(plural, uuid)
        .filter(|r| readable(&call.caller, plural, r))
        .cloned()
        .ok_or_else(|| not_found(plural, uuid))
}

/// Whether the caller may `verb` (create, update, delete) records of `plural`: keep services
/// and disks are for admins (`admin_verb` names what a refusal says they may do), collections
/// for anyone; the other resources are read-only here (501).
fn check_writable(call: &Call, plural: &str, verb: &str, admin_verb: &str) -> Result<(), ApiError> {
    match plural {
        "keep_services" | "keep_disks" => {
            require_admin(call, &format!("{admin_verb} {}", plural.replace('_', " ")))
        }
        "collections" => Ok(()),
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

/// Stores `record` in `plural` and answers it as the caller sees it.
fn save(call: &mut Call, plural: &str, record: Value) -> Result<Value, ApiError> {
    call.store
        .put(plural, record.clone())
        .map_err(ApiError::internal)?;
    Ok(present(&call.caller, call.key.as_deref(), plural, record))
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
/// caller's token with `key`.
fn present(caller: &Caller, key: Option<&[u8]>, plural: &str, mut record: Value) -> Value {
    if plural == "collections" {
        let text = record["manifest_text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        record["unsigned_manifest_text"] = text.clone().into();
        if let Some(key) = key {
            record["manifest_text"] = manifest::sign(&text, key, &caller.secret, unix_now()).into();
        }
    }
    record
}

/// `POST /arvados/v1/RESOURCE`
pub fn create(call: &mut Call, plural: &str) -> Result<Value, ApiError> {
    let attrs = attributes(call, plural)?;
    check_writable(call, plural, "create", "register")?;
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
        _ => {}
    }
    save(call, plural, record)
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
    let owner = record["owner_uuid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if owner != call.caller.uuid() && !call.caller.is_admin() {
        return Err(ApiError::new(
            403,
            format!("Forbidden: cannot give a collection to {owner:?}"),
        ));
    }
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
    if changed {
        if let Some(key) = &call.key {
            manifest::verify(
                &text,
                key,
                &call.caller.secret,
                unix_now(),
                call.caller.is_admin(),
            )
            .map_err(manifest_error)?;
        }
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
    if let Some(name) = record.get("name").filter(|n| !n.is_null()) {
        let Some(name) = name.as_str().map(str::to_string) else {
            return Err(ApiError::unprocessable(format!(
                "name must be a string, not {name}"
            )));
        };
        let uuid = record["uuid"].clone();
        let taken = |n: &str| {
            call.store
                .table("collections")
                .any(|c| c["owner_uuid"] == owner.as_str() && c["name"] == n && c["uuid"] != uuid)
        };
        if taken(&name) {
            if !call.params.flag("ensure_unique_name") {
                return Err(ApiError::unprocessable(format!(
                    "name {name:?} has already been taken by another collection of {owner}"
                )));
            }
            let unique = format!("{name} ({})", record::now());
            record["name"] = unique.into();
        }
    }
    for (k, default) in [
        ("replication_desired", Value::Null),
        ("description", Value::Null),
        ("properties", json!({})),
        ("storage_classes_desired", json!(["default"])),
        ("trash_at", Value::Null),
        ("delete_at", Value::Null),
        ("is_trashed", json!(false)),
        ("version", json!(1)),
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
    Ok(())
}

fn manifest_error(e: ManifestError) -> ApiError {
    match e {
        ManifestError::Permission { .. } => ApiError::new(403, format!("Forbidden: {e}")),
        ManifestError::Malformed { .. } => ApiError::unprocessable(format!("manifest_text: {e}")),
    }
}

/// `PUT`/`PATCH /arvados/v1/RESOURCE/UUID`
pub fn update(call: &mut Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    let attrs = attributes(call, plural)?;
    let old = readable_record(call, plural, uuid)?;
    check_writable(call, plural, "update", "change")?;
    if plural == "keep_services" {
        check_keep_service(&attrs)?;
    }
    if attrs.get("uuid").is_some_and(|u| u != uuid) {
        return Err(ApiError::unprocessable(
            "uuid cannot be changed".to_string(),
        ));
    }
    let mut record = old.clone();
    for (k, v) in attrs {
        record[k.as_str()] = v;
    }
    match plural {
        "collections" => prepare_collection(call, &mut record, Some(&old))?,
        "keep_disks" => fill_keep_disk(call, &mut record)?,
        _ => {}
    }
    stamp(&mut record, &call.caller);
    save(call, plural, record)
}

/// `DELETE /arvados/v1/RESOURCE/UUID`
pub fn delete(call: &mut Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    let record = readable_record(call, plural, uuid)?;
    check_writable(call, plural, "delete", "delete")?;
    call.store
        .remove(plural, uuid)
        .map_err(ApiError::internal)?;
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
    Ok(present(&call.caller, call.key.as_deref(), plural, record))
}

/// `POST /database/reset`
pub fn reset(call: &mut Call) -> Result<Value, ApiError> {
    require_admin(call, "reset the database")?;
    call.store.reset().map_err(ApiError::internal)?;
    Ok(json!({}))
}

/// The exported cluster configuration (`GET /arvados/v1/config`): what the SDK looks at.
pub fn config() -> Value {
    json!({
        "ClusterID": super::fixtures::CLUSTER,
        "StorageClasses": {"default": {"Default": true, "Priority": 0}},
        "Collections": {
            "DefaultReplication": 2,
            "CollectionVersioning": false,
            "BlobSigningTTL": format!("{}s", crate::signature::DEFAULT_TTL),
        },
        "API": {"MaxRequestSize": MAX_BODY},
        "Services": {},
    })
}
