//! Who may read, write or manage what, as Arvados computes it: a user manages itself and
//! what it owns; a `permission` link (`can_read`, `can_write`, `can_manage`) from a user or
//! group to an object grants that level on it to whoever holds the link's tail (the lower of
//! the two levels along the way); a group (project or role) passes what its holders may do on
//! to what it owns, subprojects included. Admins may do everything.
//!
//! [`Access::compute`] walks the links and groups of a [`Store`] once per request (a fixed
//! point over the permission links and group ownership); [`computed`] lists the result for
//! every user as the `computed_permissions` resource does.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::record;
use super::state::Store;

/// `can_read`.
pub const READ: u8 = 1;
/// `can_write`.
pub const WRITE: u8 = 2;
/// `can_manage`.
pub const MANAGE: u8 = 3;

/// The level a permission link's name grants, if it is one.
pub fn level_of(name: &str) -> Option<u8> {
    match name {
        "can_read" => Some(READ),
        "can_write" => Some(WRITE),
        "can_manage" => Some(MANAGE),
        _ => None,
    }
}

/// The name of a level.
pub fn level_name(level: u8) -> &'static str {
    match level {
        MANAGE => "can_manage",
        WRITE => "can_write",
        _ => "can_read",
    }
}

/// What one user may do: its level on each user, group or object it reaches; and, since
/// what is in a trashed project is hidden as the project is, which groups are in the trash.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// An admin may do everything.
    pub admin: bool,
    /// uuid -> level, for what is reached through links and group ownership.
    pub levels: HashMap<String, u8>,
    /// The groups in the trash: trashed themselves, or inside a trashed project.
    pub trashed_groups: HashSet<String>,
}

impl Access {
    /// What `user` may do among the records of `store`.
    pub fn compute(store: &Store, user: &Value) -> Access {
        let uuid = user["uuid"].as_str().unwrap_or_default();
        Access {
            admin: user["is_admin"] == true,
            levels: reach(store, uuid),
            trashed_groups: trashed_groups(store),
        }
    }

    /// Whether `record` is hidden as trash: trashed itself, or owned by a group in the trash.
    pub fn in_trash(&self, record: &Value) -> bool {
        record::is_trashed(record)
            || record["owner_uuid"]
                .as_str()
                .is_some_and(|owner| self.trashed_groups.contains(owner))
    }

    /// The caller's level on the object `uuid` alone (0: none).
    pub fn of_uuid(&self, uuid: &str) -> u8 {
        if self.admin {
            return MANAGE;
        }
        self.levels.get(uuid).copied().unwrap_or(0)
    }

    /// The caller's level on `record`: on the record itself, or through its owner.
    pub fn of(&self, record: &Value) -> u8 {
        let own = record["uuid"].as_str().map_or(0, |u| self.of_uuid(u));
        let owner = record["owner_uuid"].as_str().map_or(0, |u| self.of_uuid(u));
        own.max(owner)
    }
}

/// The groups in the trash: those trashed themselves and everything they own, down the tree.
fn trashed_groups(store: &Store) -> HashSet<String> {
    let groups: Vec<&Value> = store.table("groups").collect();
    let mut trashed: HashSet<String> = groups
        .iter()
        .filter(|g| record::is_trashed(g))
        .filter_map(|g| g["uuid"].as_str().map(str::to_string))
        .collect();
    add_groups_below(&mut trashed, &groups);
    trashed
}

/// Adds to `uuids` every group of `groups` owned by one of them, down the tree.
pub fn add_groups_below(uuids: &mut HashSet<String>, groups: &[&Value]) {
    loop {
        let before = uuids.len();
        for g in groups {
            let owner = g["owner_uuid"].as_str().unwrap_or_default();
            if uuids.contains(owner) {
                if let Some(uuid) = g["uuid"].as_str() {
                    uuids.insert(uuid.to_string());
                }
            }
        }
        if uuids.len() == before {
            return;
        }
    }
}

/// Every uuid `user` reaches and its level there.
fn reach(store: &Store, user: &str) -> HashMap<String, u8> {
    let mut levels: HashMap<String, u8> = HashMap::new();
    if user.is_empty() {
        return levels;
    }
    levels.insert(user.to_string(), MANAGE);
    // (tail, head, level) of every permission link; (owner, group) of every group.
    let links: Vec<(&str, &str, u8)> = store
        .table("links")
        .filter(|l| l["link_class"] == "permission")
        .filter_map(|l| {
            Some((
                l["tail_uuid"].as_str()?,
                l["head_uuid"].as_str()?,
                level_of(l["name"].as_str()?)?,
            ))
        })
        .collect();
    let groups: Vec<(&str, &str)> = store
        .table("groups")
        .filter_map(|g| Some((g["owner_uuid"].as_str()?, g["uuid"].as_str()?)))
        .collect();
    loop {
        let mut changed = false;
        let mut raise = |levels: &mut HashMap<String, u8>, uuid: &str, level: u8| {
            let entry = levels.entry(uuid.to_string()).or_insert(0);
            if *entry < level {
                *entry = level;
                changed = true;
            }
        };
        for &(tail, head, level) in &links {
            if let Some(&have) = levels.get(tail) {
                raise(&mut levels, head, have.min(level));
            }
        }
        for &(owner, group) in &groups {
            if let Some(&have) = levels.get(owner) {
                raise(&mut levels, group, have);
            }
        }
        if !changed {
            return levels;
        }
    }
}

/// The `computed_permissions` rows: for every user, each user or group it reaches (itself
/// included) with its level.
pub fn computed(store: &Store) -> Vec<Value> {
    let mut rows = Vec::new();
    for user in store.table("users") {
        let Some(uuid) = user["uuid"].as_str() else {
            continue;
        };
        let mut reached: Vec<(String, u8)> = reach(store, uuid)
            .into_iter()
            .filter(|(target, _)| {
                matches!(
                    super::record::kind_of_uuid(target),
                    Some("arvados#user" | "arvados#group")
                )
            })
            .collect();
        reached.sort();
        for (target, level) in reached {
            rows.push(json!({
                "user_uuid": uuid,
                "target_uuid": target,
                "perm_level": level_name(level),
            }));
        }
    }
    rows
}
