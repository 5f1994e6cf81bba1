//! Who may create, change or delete what, as Arvados decides (`check_writable`).

use serde_json::Value;

use super::caller::Call;
use super::common::{forbidden, require_admin, str_of};
use super::schema::{resource, singular};
use crate::api::answer::ApiError;
use crate::api::permissions::{MANAGE, WRITE};

/// Whether the caller may `verb` (create, update, delete) `record` of `plural` (for an update,
/// `old` is the record before it), as Arvados decides: keep services and disks, users and
/// the changing of logs are for admins; collections and groups need write permission on the
/// record (and on its new owner); permission links need manage permission on their head;
/// other links need write permission on their owner. Tokens and repositories are read-only
/// here (501).
pub(super) fn check_writable(
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

/// The user attributes a user may change on itself (an admin: all it may write).
pub(super) const SELF_WRITABLE_USER: &[&str] = &["first_name", "last_name", "prefs"];
