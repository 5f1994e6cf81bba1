//! The read-only answers over snapshots taken under the store's lock (filtering, sorting
//! and signing happen without it): lists, `groups/contents`, `groups/shared`,
//! `links/UUID/get_permissions` and `keep_services/accessible`.

use std::sync::Arc;

use serde_json::Value;

use super::caller::Caller;
use super::common::{forbidden, not_found, str_of};
use super::lifecycle::{hidden_as_trash, old_version};
use super::schema::{columns, kind_of};
use super::visibility::{present, readable};
use crate::api::answer::ApiError;
use crate::api::permissions::{self, MANAGE, READ};
use crate::api::query::{self, Params};
use crate::api::record;
use crate::api::state::Store;

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
                && (include_trash || !hidden_as_trash(caller, plural, r))
                && (include_old || !old_version(r))
        })
        .map(|r| present(caller, key, plural, Arc::unwrap_or_clone(r)))
        .collect();
    query::list(&kind_of(plural), records, params, columns(plural))
}

/// The resources `groups/contents` lists.
pub(super) const CONTENT_TABLES: &[&str] = &["collections", "groups"];

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
    let include_trash = params.flag("include_trash");
    // A project in the trash (or inside one) is found only with include_trash, as in Arvados.
    match found {
        Some((plural, r))
            if readable(caller, plural, r)
                && !record::is_deleted(r)
                && (include_trash || !hidden_as_trash(caller, plural, r)) => {}
        _ => return Err(not_found("groups", &target)),
    }
    let include_old = params.flag("include_old_versions");
    let mut owners = std::collections::HashSet::from([target.clone()]);
    if params.flag("recursive") {
        let below: Vec<&Value> = find("groups")
            .iter()
            .map(|g| g.as_ref())
            .filter(|g| !record::is_deleted(g) && (include_trash || !record::is_trashed(g)))
            .collect();
        permissions::add_groups_below(&mut owners, &below);
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
                && (include_trash || !hidden_as_trash(caller, plural, r))
                && (include_old || !old_version(r))
            {
                records.push(present(caller, key, plural, r.as_ref().clone()));
            }
        }
    }
    let mut answer = query::list("object", records, params, &columns)?;
    include_owners(
        caller,
        params,
        key,
        &mut answer,
        find("groups"),
        find("users"),
    );
    Ok(answer)
}

/// With `include=owner_uuid` (as text or a list), the owners of the listed items that the
/// caller reads, among `groups` and `users`, go in `included`.
fn include_owners(
    caller: &Caller,
    params: &Params,
    key: &[u8],
    answer: &mut Value,
    groups: &[Arc<Value>],
    users: &[Arc<Value>],
) {
    // A list came decoded (the router parses JSON text of arrays); text is a name or several.
    let wanted = match params.get("include") {
        Some(Value::String(s)) => s
            .split(',')
            .any(|w| w.trim().trim_matches('"') == "owner_uuid"),
        Some(Value::Array(a)) => a.iter().any(|w| w == "owner_uuid"),
        _ => false,
    };
    if !wanted {
        return;
    }
    let owners: std::collections::HashSet<String> = answer["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| str_of(i, "owner_uuid").to_string())
        .collect();
    let included: Vec<Value> = [("groups", groups), ("users", users)]
        .into_iter()
        .flat_map(|(plural, records)| records.iter().map(move |r| (plural, r)))
        .filter(|(plural, r)| owners.contains(str_of(r, "uuid")) && readable(caller, plural, r))
        .map(|(plural, r)| present(caller, key, plural, r.as_ref().clone()))
        .collect();
    answer["included"] = included.into();
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
    include_owners(caller, params, key, &mut answer, &groups, &users);
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
