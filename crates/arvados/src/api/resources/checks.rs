//! Each kind's own rules on a create or update: keep services and disks, collections
//! (manifests, signatures, versions), groups, links, logs, users and tokens.

use serde_json::{json, Map, Value};

use super::caller::Call;
use super::common::{expect_type, fill_defaults, str_of};
use super::lifecycle::{apply_trash, old_version, unique_name};
use crate::api::answer::ApiError;
use crate::api::manifest::{self, ManifestError};
use crate::api::permissions;
use crate::api::record;
use crate::api::state;

pub(super) fn check_keep_service(attrs: &Map<String, Value>) -> Result<(), ApiError> {
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

pub(super) fn fill_keep_disk(call: &Call, record: &mut Value) -> Result<(), ApiError> {
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
pub(super) fn prepare_collection(
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
        manifest::verify(
            &text,
            &call.key,
            &call.caller.secret,
            crate::signature::now(),
            false,
        )
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
    for (k, default) in record::collection_defaults() {
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

pub(super) fn manifest_error(e: ManifestError) -> ApiError {
    match e {
        ManifestError::Permission { .. } => ApiError::new(403, format!("Forbidden: {e}")),
        ManifestError::Malformed { .. } => ApiError::unprocessable(format!("manifest_text: {e}")),
    }
}

/// Checks and normalises a group: its class, its name (unique among its owner's), trash.
pub(super) fn prepare_group(
    call: &Call,
    record: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
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
pub(super) fn prepare_link(record: &mut Value) -> Result<(), ApiError> {
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
pub(super) fn prepare_log(call: &Call, record: &mut Value) {
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
pub(super) fn prepare_user(
    call: &Call,
    record: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
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

/// Checks a token: its user exists (and stays), its scopes are a list of strings (`["all"]`
/// by default); a new one gets its secret ([`state::new_secret`]).
pub(super) fn prepare_token(
    call: &Call,
    record: &mut Value,
    old: Option<&Value>,
) -> Result<(), ApiError> {
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

/// The attributes whose change makes a new version of a collection.
pub(super) const VERSIONED: &[&str] = &["manifest_text", "name", "description", "properties"];

/// The attributes a collection's old versions follow from the head.
pub(super) const SYNCED: &[&str] = &["owner_uuid", "trash_at", "delete_at", "is_trashed"];

/// Collection versions, as Arvados keeps them (`Collections.CollectionVersioning`): when an
/// update of `old` into `record` changes a versioned attribute and `preserve_version` was or
/// is now true, or `old` was left unchanged for `Collections.PreserveVersionIfIdle` (and the
/// collection is not trashed), the old state is kept as a snapshot (the record answered: a new
/// uuid, `current_version_uuid` the head's) and the head's `version` goes up by one;
/// `preserve_version` is then false unless the update gave it (`gives_preserve`).
pub(super) fn preserve_version(
    record: &mut Value,
    old: &Value,
    gives_preserve: bool,
) -> Option<Value> {
    let changed = VERSIONED.iter().any(|k| record[*k] != old[*k]);
    let idle = old["modified_at"]
        .as_str()
        .and_then(record::parse_time)
        .is_some_and(|t| {
            chrono::Utc::now() - t
                >= chrono::Duration::seconds(crate::api::cluster::PRESERVE_VERSION_IF_IDLE as i64)
        });
    let asked = old["preserve_version"] == true || record["preserve_version"] == true || idle;
    if !changed || !asked || record::is_trashed(record) {
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
pub(super) fn sync_old_versions(call: &mut Call, head: &Value) -> Result<(), ApiError> {
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
