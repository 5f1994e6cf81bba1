//! The methods that work under the store's lock: `users/current`, `api_client_authorizations/current`,
//! get, create, update, delete (into the trash for what goes there), trash, untrash and the
//! database reset.

use serde_json::{json, Value};

use super::authority::check_writable;
use super::caller::Call;
use super::checks::{
    check_keep_service, fill_keep_disk, prepare_collection, prepare_group, prepare_link,
    prepare_log, prepare_token, prepare_user, preserve_version, sync_old_versions,
};
use super::common::{fill_defaults, is_pdh, not_found, query_select, require_admin, stamp, str_of};
use super::lifecycle::{
    apply_trash, check_trashable, hidden_as_trash, old_version, trashable, unique_name,
};
use super::persist::{attributes, log_change, new_record, save};
use super::schema::singular;
use super::visibility::{present, readable, readable_record};
use crate::api::answer::ApiError;
use crate::api::query;
use crate::api::record;

/// `GET /arvados/v1/users/current`
pub fn users_current(call: &Call) -> Result<Value, ApiError> {
    Ok(call.caller.user.clone())
}

/// `GET /arvados/v1/api_client_authorizations/current`
pub fn tokens_current(call: &Call) -> Result<Value, ApiError> {
    Ok(call.caller.token.clone())
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
                    && !hidden_as_trash(&call.caller, plural, c)
                    && readable(&call.caller, plural, c)
            })
            .cloned()
            .ok_or_else(|| not_found(plural, uuid))?;
        let mut by_hash = present(&call.caller, &call.key, plural, found);
        by_hash["uuid"] = uuid.into();
        return Ok(by_hash);
    }
    let record = readable_record(call, plural, uuid)?;
    if hidden_as_trash(&call.caller, plural, &record) && !call.params.flag("include_trash") {
        return Err(not_found(plural, uuid));
    }
    let select = query_select(call, plural)?;
    Ok(query::project(
        present(&call.caller, &call.key, plural, record),
        select.as_deref(),
    ))
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
        record["owner_uuid"] = crate::api::fixtures::SYSTEM_USER.into();
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

pub(super) fn move_to_trash(
    call: &mut Call,
    plural: &str,
    old: Value,
    deleting: bool,
) -> Result<Value, ApiError> {
    check_trashable(plural, &old)?;
    let in_trash = record::is_trashed(&old);
    // Found without include_trash only when neither it nor its project is in the trash,
    // except that trashing what is in the trash already changes nothing.
    let needs_include_trash = if in_trash {
        deleting
    } else {
        hidden_as_trash(&call.caller, plural, &old)
    };
    if needs_include_trash && !call.params.flag("include_trash") {
        return Err(not_found(plural, str_of(&old, "uuid")));
    }
    let mut record = old.clone();
    if !in_trash {
        // Trashed now; delete_at recomputed from the new trash_at.
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
    if !record::is_trashed(&old) {
        return Err(ApiError::unprocessable(format!(
            "{} {uuid:?} is not in the trash: it cannot be untrashed",
            singular(plural)
        )));
    }
    let mut record = old.clone();
    // Out of the trash: apply_trash clears trash_at and delete_at.
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

/// `POST /database/reset`
pub fn reset(call: &mut Call) -> Result<Value, ApiError> {
    require_admin(call, "reset the database")?;
    call.store.reset().map_err(ApiError::internal)?;
    Ok(json!({}))
}
