//! The API server's records: one table (uuid -> JSON record) per resource, kept in memory and
//! written to a JSON file in the run directory after every change, so a restarted server in the
//! same run directory picks them up. [`Store::reset`] puts the fixtures back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use super::fixtures;

/// The resources the server stores, with their uuid type infix.
pub const TABLES: &[(&str, &str)] = &[
    ("users", "tpzed"),
    ("api_client_authorizations", "gj3su"),
    ("keep_services", "bi6l4"),
    ("keep_disks", "penuu"),
    ("collections", "4zz18"),
    ("repositories", "s0uqq"),
];

/// Every table, uuid -> record.
pub type Tables = BTreeMap<String, BTreeMap<String, Value>>;

/// The records and where they are saved.
#[derive(Debug)]
pub struct Store {
    tables: Tables,
    file: Option<PathBuf>,
}

/// A new uuid for `table`: `zzzzz-INFIX-` and 15 random base-36 characters.
pub fn new_uuid(table: &str) -> String {
    let infix = TABLES
        .iter()
        .find(|t| t.0 == table)
        .map(|t| t.1)
        .unwrap_or("xxxxx");
    let raw = uuid::Uuid::new_v4().as_u128();
    let mut n = raw;
    let mut tail = String::new();
    for _ in 0..15 {
        let d = (n % 36) as u32;
        n /= 36;
        tail.push(char::from_digit(d, 36).unwrap_or('0'));
    }
    format!("{}-{infix}-{tail}", fixtures::CLUSTER)
}

fn fixture_tables(keep: Option<&Tables>) -> Tables {
    let mut tables = Tables::new();
    for (name, _) in TABLES {
        tables.insert(name.to_string(), BTreeMap::new());
    }
    let mut put = |table: &str, records: Vec<Value>| {
        let t = tables.entry(table.to_string()).or_default();
        for r in records {
            if let Some(uuid) = r["uuid"].as_str() {
                t.insert(uuid.to_string(), r);
            }
        }
    };
    put("users", fixtures::users());
    put(
        "api_client_authorizations",
        fixtures::api_client_authorizations(),
    );
    put("repositories", fixtures::repositories());
    // Keep services and disks describe the servers running in this test stack, not fixture
    // data: a reset keeps them, so servers registered by start_keep stay reachable.
    if let Some(old) = keep {
        for table in ["keep_services", "keep_disks"] {
            if let Some(t) = old.get(table) {
                tables.insert(table.to_string(), t.clone());
            }
        }
    }
    tables
}

impl Store {
    /// The records saved in `file` when it holds a readable state, else the fixtures (and
    /// `file` is written).
    pub fn open(file: Option<PathBuf>) -> anyhow::Result<Store> {
        let loaded = file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice::<Tables>(&bytes).ok());
        let store = Store {
            tables: loaded.unwrap_or_else(|| fixture_tables(None)),
            file,
        };
        store.save()?;
        Ok(store)
    }

    /// Writes the records to the state file (atomically).
    pub fn save(&self) -> anyhow::Result<()> {
        if let Some(file) = &self.file {
            let bytes = serde_json::to_vec(&self.tables)?;
            cibox_runtime::process::write_atomic(file, &bytes, 0o600).map_err(|e| {
                anyhow::anyhow!("cannot write the state file {}: {e}", file.display())
            })?;
        }
        Ok(())
    }

    /// Back to the fixtures (keeping the registered Keep services).
    pub fn reset(&mut self) -> anyhow::Result<()> {
        self.tables = fixture_tables(Some(&self.tables));
        self.save()
    }

    /// One table.
    pub fn table(&self, name: &str) -> impl Iterator<Item = &Value> {
        self.tables.get(name).into_iter().flat_map(|t| t.values())
    }

    /// A record by uuid.
    pub fn get(&self, table: &str, uuid: &str) -> Option<&Value> {
        self.tables.get(table)?.get(uuid)
    }

    /// Inserts or replaces a record (by its `uuid`) and saves.
    pub fn put(&mut self, table: &str, record: Value) -> anyhow::Result<()> {
        let uuid = record["uuid"].as_str().unwrap_or_default().to_string();
        self.tables
            .entry(table.to_string())
            .or_default()
            .insert(uuid, record);
        self.save()
    }

    /// Removes a record and saves; the removed record, if there was one.
    pub fn remove(&mut self, table: &str, uuid: &str) -> anyhow::Result<Option<Value>> {
        let removed = self.tables.get_mut(table).and_then(|t| t.remove(uuid));
        if removed.is_some() {
            self.save()?;
        }
        Ok(removed)
    }

    /// The token record whose secret is `secret`.
    pub fn token(&self, secret: &str) -> Option<&Value> {
        self.table("api_client_authorizations")
            .find(|t| t["api_token"].as_str() == Some(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn state_survives_a_reopen_and_reset_restores_fixtures() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api.state.json");
        let mut store = Store::open(Some(file.clone())).unwrap();
        let fixture_users = store.table("users").count();
        store
            .put(
                "collections",
                json!({"uuid": "zzzzz-4zz18-aaaaaaaaaaaaaaa"}),
            )
            .unwrap();
        store
            .put(
                "keep_services",
                json!({"uuid": "zzzzz-bi6l4-aaaaaaaaaaaaaaa"}),
            )
            .unwrap();
        store.remove("users", fixtures::SYSTEM_USER).unwrap();
        let mut again = Store::open(Some(file)).unwrap();
        assert_eq!(again.table("collections").count(), 1);
        assert_eq!(again.table("users").count(), fixture_users - 1);
        again.reset().unwrap();
        assert_eq!(again.table("collections").count(), 0);
        assert_eq!(again.table("users").count(), fixture_users);
        assert_eq!(again.table("keep_services").count(), 1);
    }

    #[test]
    fn uuids_have_the_table_infix() {
        let u = new_uuid("collections");
        assert!(u.starts_with("zzzzz-4zz18-"), "{u}");
        assert_eq!(u.len(), 27);
        assert_ne!(u, new_uuid("collections"));
    }
}
