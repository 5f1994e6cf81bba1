//! Where a collection or group stands in its life, as Arvados keeps it: in the trash (itself,
//! or inside a trashed project), a past version of another collection, and the name it holds
//! (unique among its owner's records outside the trash).

use serde_json::Value;

use super::caller::{Call, Caller};
use super::common::str_of;
use super::schema::singular;
use crate::api::answer::ApiError;
use crate::api::record;

/// Whether `caller` sees `record` of `plural` as trash: a collection or group trashed itself,
/// or inside a trashed project (hidden unless `include_trash`). Other records (logs, links,
/// ...) are never trash, whoever owns them.
pub(super) fn hidden_as_trash(caller: &Caller, plural: &str, record: &Value) -> bool {
    matches!(plural, "collections" | "groups") && caller.access.in_trash(record)
}

/// Whether collections or groups of this class go to the trash when deleted (role groups are
/// deleted at once, as they carry permissions rather than data).
pub(super) fn trashable(plural: &str, record: &Value) -> bool {
    match plural {
        "collections" => true,
        "groups" => record["group_class"] != "role",
        _ => false,
    }
}

/// Whether a collection record is a snapshot of an older version of another (its
/// `current_version_uuid` names the head): hidden from lists unless `include_old_versions`.
pub(super) fn old_version(record: &Value) -> bool {
    record["current_version_uuid"]
        .as_str()
        .is_some_and(|head| head != str_of(record, "uuid"))
}

/// The trash attributes kept consistent, as Arvados keeps them: trashing sets `trash_at` (now
/// when not given), a `trash_at` in the past trashes, a trashed record is deleted
/// `TRASH_LIFETIME` after it was trashed unless `delete_at` says otherwise, and untrashing
/// clears both times.
pub(super) fn apply_trash(record: &mut Value, old: Option<&Value>) {
    let was_trashed = old.is_some_and(record::is_trashed);
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
            let lifetime = crate::api::cluster::TRASH_LIFETIME as i64;
            record["delete_at"] =
                record::format_time(t + chrono::Duration::seconds(lifetime)).into();
        }
    }
}

/// A name already taken among the records of `plural` with the same owner is refused (422),
/// or with `ensure_unique_name` made unique by adding the time.
pub(super) fn unique_name(call: &Call, plural: &str, record: &mut Value) -> Result<(), ApiError> {
    let Some(name) = record.get("name").filter(|n| !n.is_null()) else {
        return Ok(());
    };
    let Some(name) = name.as_str().map(str::to_string) else {
        return Err(ApiError::unprocessable(format!(
            "name must be a string, not {name}"
        )));
    };
    if record::is_trashed(record) {
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
            && !record::is_trashed(r)
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

/// 422 unless `record` of `plural` is one that goes to the trash: a current collection, a
/// project or a filter group.
pub(super) fn check_trashable(plural: &str, record: &Value) -> Result<(), ApiError> {
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
