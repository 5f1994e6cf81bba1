//! Small pieces every resource method uses: reading an attribute, the usual refusals (404,
//! 403, admin only), defaults and type checks, the `modified_*` stamp.

use serde_json::{Map, Value};

use super::caller::{Call, Caller};
use super::schema::{columns, singular};
use crate::api::answer::ApiError;
use crate::api::query;
use crate::api::record;

pub(super) fn require_admin(call: &Call, what: &str) -> Result<(), ApiError> {
    if call.caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            format!("Forbidden: only an admin may {what}"),
        ))
    }
}

pub(super) fn not_found(plural: &str, uuid: &str) -> ApiError {
    ApiError::new(404, format!("{} {uuid:?} not found", singular(plural)))
}

pub(super) fn forbidden(what: String) -> ApiError {
    ApiError::new(403, format!("Forbidden: {what}"))
}

pub(super) fn str_of<'a>(record: &'a Value, key: &str) -> &'a str {
    record[key].as_str().unwrap_or_default()
}

pub(super) fn expect_type(
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

pub(super) fn stamp(record: &mut Value, caller: &Caller) {
    let now = record::now();
    let uuid = record["uuid"].as_str().unwrap_or_default().to_string();
    record["modified_at"] = now.clone().into();
    record["modified_by_user_uuid"] = caller.uuid().into();
    record["etag"] = record::etag_for(&uuid, &now).into();
}

/// Sets each attribute of `record` that is null or missing to its default.
pub(super) fn fill_defaults<const N: usize>(record: &mut Value, defaults: [(&str, Value); N]) {
    for (k, default) in defaults {
        if record[k].is_null() {
            record[k] = default;
        }
    }
}

pub(super) fn query_select(call: &Call, plural: &str) -> Result<Option<Vec<String>>, ApiError> {
    query::select_columns(&call.params, columns(plural))
}

pub(super) fn is_pdh(s: &str) -> bool {
    let Some((hash, size)) = s.split_once('+') else {
        return false;
    };
    crate::locator::is_hash(hash) && !size.is_empty() && size.bytes().all(|b| b.is_ascii_digit())
}
