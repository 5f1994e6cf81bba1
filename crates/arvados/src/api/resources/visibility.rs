//! What a caller sees: which records it may read (`readable`) and how a record is shown to
//! it (`present`: collections signed for its token, groups with its `can_write` and
//! `can_manage`).

use serde_json::Value;

use super::caller::{Call, Caller};
use super::common::{not_found, str_of};
use crate::api::answer::ApiError;
use crate::api::manifest;
use crate::api::permissions::{MANAGE, READ, WRITE};
use crate::api::record;

/// Whether `caller` may read `record` of `plural`. A token with limited scopes sees only
/// itself among the tokens, whoever its user is, so it cannot pick up a token with more.
pub(super) fn readable(caller: &Caller, plural: &str, record: &Value) -> bool {
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

/// The record `uuid` of `plural` if the caller may read it (in the trash or not; past its
/// `delete_at` it is gone), else 404.
pub(super) fn readable_record(call: &Call, plural: &str, uuid: &str) -> Result<Value, ApiError> {
    call.store
        .get(plural, uuid)
        .filter(|r| readable(&call.caller, plural, r) && !record::is_deleted(r))
        .cloned()
        .ok_or_else(|| not_found(plural, uuid))
}

/// A stored record as `caller` sees it: collections get their manifest signed for the
/// caller's token with `key` (always, as Arvados signs with the cluster's key), groups say
/// whether the caller may write and manage them.
pub(super) fn present(caller: &Caller, key: &[u8], plural: &str, mut record: Value) -> Value {
    if matches!(plural, "collections" | "groups") && record["is_trashed"] == false {
        // A trash_at that has come since the record was written trashes it.
        record["is_trashed"] = record::is_trashed(&record).into();
    }
    match plural {
        "collections" => {
            let text = record["manifest_text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            record["unsigned_manifest_text"] = text.clone().into();
            record["manifest_text"] =
                manifest::sign(&text, key, &caller.secret, crate::signature::now()).into();
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
