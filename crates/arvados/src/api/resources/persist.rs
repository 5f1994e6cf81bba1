//! Writing records: the attributes a create or update sends, a new record's uuid and stamps,
//! and saving a change with the log record it leaves (`logs`, which the SDK's event poller
//! and the websocket event server read).

use serde_json::{json, Map, Value};

use super::caller::{Call, Caller};
use super::common::{stamp, str_of};
use super::schema::{kind_of, logged, resource, singular, TIME_ATTRIBUTES};
use super::visibility::present;
use crate::api::answer::ApiError;
use crate::api::record;
use crate::api::state;

/// The attributes sent for a create or update: `{"collection": {...}}` or the attributes
/// themselves, every one of them checked against what the resource accepts, times
/// normalised ([`TIME_ATTRIBUTES`]).
pub(super) fn attributes(call: &Call, plural: &str) -> Result<Map<String, Value>, ApiError> {
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

pub(super) fn new_record(
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

/// Stores `record` in `plural`, logs the change and answers it as the caller sees it.
pub(super) fn save(
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
pub(super) fn logged_attributes(record: Option<&Value>) -> Value {
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
pub(super) fn log_change(
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
