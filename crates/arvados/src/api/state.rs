//! The API server's records: one table (uuid -> JSON record) per resource, kept in memory and
//! saved in a journal file in the run directory, so a restarted server in the same run
//! directory picks them up. [`Store::reset`] puts the fixtures back.
//!
//! The file is JSON lines: the first line is every table (a snapshot), each further line one
//! change (`{"put":[TABLE,RECORD]}` or `{"remove":[TABLE,UUID]}`), appended as it is made, so a
//! small write costs its own size, not the whole store's. When the changes outgrow the
//! snapshot (and at least [`COMPACT_AFTER`]), the file is rewritten as one snapshot
//! (atomically), which keeps the cost of each write amortised constant. A torn last line (a
//! crash while appending) is ignored when the file is read. A file of one line is the old
//! format, read as it is.
//!
//! Records are shared (`Arc`), so a list call can take a snapshot of a table under the lock
//! and do its filtering, sorting and signing after letting it go.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

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
    ("groups", "j7d0g"),
    ("links", "o0j2j"),
    ("logs", "57u5n"),
    ("workflows", "7fd4e"),
];

/// Appended changes may grow to this size before the journal is compacted, however small the
/// snapshot.
pub const COMPACT_AFTER: u64 = 4 << 20;

/// Every table, uuid -> record.
pub type Tables = BTreeMap<String, BTreeMap<String, Arc<Value>>>;

/// The records and where they are saved.
#[derive(Debug)]
pub struct Store {
    tables: Tables,
    /// What [`Store::reset`] restores (the built-in fixtures, or those `--fixtures` loaded).
    fixtures: Arc<Tables>,
    file: Option<PathBuf>,
    /// The journal, open for appending, once written.
    journal: Option<std::fs::File>,
    /// Bytes of the snapshot line and of the changes after it.
    snapshot_bytes: u64,
    change_bytes: u64,
    /// Every `logs` record put, for the event server's subscribers ([`Store::follow_logs`]).
    log_feed: tokio::sync::broadcast::Sender<Arc<Value>>,
    /// The largest log id put since the store opened: ids keep growing across resets.
    last_log_id: u64,
}

/// Log ids up to this one are left to fixtures (Arvados' own fixture logs take the low ids,
/// and clients such as the SDK's event tests ask for the logs after id 1).
pub const RESERVED_LOG_IDS: u64 = 100;

/// Log records the feed holds for a subscriber that has not taken them yet; one that falls
/// further behind is told it lagged (and the event server drops it).
pub const LOG_FEED_CAPACITY: usize = 1024;

/// One appended change.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Change {
    Put(String, Arc<Value>),
    Remove(String, String),
}

/// The tables saved in `file`: its snapshot line and the changes after it (stopping at the
/// first unreadable line), or None when there is no readable snapshot.
fn load(file: &std::path::Path) -> Option<Tables> {
    let mut lines = std::io::BufReader::new(std::fs::File::open(file).ok()?).split(b'\n');
    let mut tables: Tables = serde_json::from_slice(&lines.next()?.ok()?).ok()?;
    for line in lines {
        let Some(change) = line
            .ok()
            .and_then(|l| serde_json::from_slice::<Change>(&l).ok())
        else {
            break;
        };
        match change {
            Change::Put(table, record) => {
                let uuid = record["uuid"].as_str().unwrap_or_default().to_string();
                tables.entry(table).or_default().insert(uuid, record);
            }
            Change::Remove(table, uuid) => {
                if let Some(t) = tables.get_mut(&table) {
                    t.remove(&uuid);
                }
            }
        }
    }
    Some(tables)
}

/// A new token secret: 50 random characters of `[0-9a-z]`, the length of Arvados' own (from
/// three v4 uuids, 122 random bits each, 20 base-36 digits taken from each).
pub fn new_secret() -> String {
    let mut secret = String::new();
    while secret.len() < 50 {
        let mut n = uuid::Uuid::new_v4().as_u128();
        for _ in 0..20 {
            secret.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
            n /= 36;
        }
    }
    secret.truncate(50);
    secret
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

/// The built-in fixture set ([`fixtures`]), one table per resource.
pub fn builtin_fixtures() -> Tables {
    let mut tables = Tables::new();
    for (name, records) in fixtures::all() {
        let t = tables.entry(name.to_string()).or_default();
        for r in records {
            if let Some(uuid) = r["uuid"].as_str() {
                t.insert(uuid.to_string(), Arc::new(r.clone()));
            }
        }
    }
    tables
}

/// The fixture set with every table present and, when `keep` is given, its keep services and
/// disks kept.
fn fixture_tables(set: &Tables, keep: Option<&Tables>) -> Tables {
    let mut tables = set.clone();
    for (name, _) in TABLES {
        tables.entry(name.to_string()).or_default();
    }
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
    /// The records saved in `file` when it holds a readable state, else the fixture set
    /// `fixtures` (and `file` is written); a reset restores `fixtures`.
    pub fn open(file: Option<PathBuf>, fixtures: Tables) -> anyhow::Result<Store> {
        let loaded = file.as_deref().and_then(load);
        let mut store = Store {
            tables: loaded.unwrap_or_else(|| fixture_tables(&fixtures, None)),
            fixtures: Arc::new(fixtures),
            file,
            journal: None,
            snapshot_bytes: 0,
            change_bytes: 0,
            log_feed: tokio::sync::broadcast::channel(LOG_FEED_CAPACITY).0,
            last_log_id: 0,
        };
        store.save()?;
        Ok(store)
    }

    /// Writes every record to the state file as one snapshot (atomically), starting a new
    /// journal.
    pub fn save(&mut self) -> anyhow::Result<()> {
        self.journal = None;
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut bytes = serde_json::to_vec(&self.tables)?;
        bytes.push(b'\n');
        cibox_runtime::process::write_atomic(file, &bytes, 0o600)
            .map_err(|e| anyhow::anyhow!("cannot write the state file {}: {e}", file.display()))?;
        self.snapshot_bytes = bytes.len() as u64;
        self.change_bytes = 0;
        Ok(())
    }

    /// Appends one change to the journal, or compacts it when the changes have outgrown the
    /// snapshot.
    fn record(&mut self, change: Change) -> anyhow::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if self.change_bytes > self.snapshot_bytes.max(COMPACT_AFTER) {
            return self.save();
        }
        let mut line = serde_json::to_vec(&change)?;
        line.push(b'\n');
        let fail = |e: std::io::Error| {
            anyhow::anyhow!("cannot write the state file {}: {e}", file.display())
        };
        if self.journal.is_none() {
            let opened = std::fs::OpenOptions::new()
                .append(true)
                .open(file)
                .map_err(fail)?;
            self.journal = Some(opened);
        }
        if let Some(journal) = &mut self.journal {
            if let Err(e) = journal.write_all(&line) {
                // A torn line would hide every later change: start again from a snapshot.
                tracing::warn!("appending to the state file: {e}; rewriting it");
                return self.save();
            }
        }
        self.change_bytes += line.len() as u64;
        Ok(())
    }

    /// Back to the fixtures (keeping the registered Keep services).
    pub fn reset(&mut self) -> anyhow::Result<()> {
        self.tables = fixture_tables(&self.fixtures, Some(&self.tables));
        self.save()
    }

    /// One table.
    pub fn table(&self, name: &str) -> impl Iterator<Item = &Value> {
        self.tables
            .get(name)
            .into_iter()
            .flat_map(|t| t.values().map(|v| v.as_ref()))
    }

    /// One table's records, shared: what a caller may keep after letting the lock go.
    pub fn snapshot(&self, name: &str) -> Vec<Arc<Value>> {
        self.tables
            .get(name)
            .map(|t| t.values().cloned().collect())
            .unwrap_or_default()
    }

    /// A record by uuid.
    pub fn get(&self, table: &str, uuid: &str) -> Option<&Value> {
        self.tables.get(table)?.get(uuid).map(|v| v.as_ref())
    }

    /// Inserts or replaces a record (by its `uuid`) and saves.
    pub fn put(&mut self, table: &str, record: Value) -> anyhow::Result<()> {
        let uuid = record["uuid"].as_str().unwrap_or_default().to_string();
        let record = Arc::new(record);
        self.tables
            .entry(table.to_string())
            .or_default()
            .insert(uuid, record.clone());
        if table == "logs" {
            self.last_log_id = self.last_log_id.max(record["id"].as_u64().unwrap_or(0));
            // No subscriber is not an error.
            let _ = self.log_feed.send(record.clone());
        }
        self.record(Change::Put(table.to_string(), record))
    }

    /// Follows the `logs` records put from now on (bounded: see [`LOG_FEED_CAPACITY`]).
    pub fn follow_logs(&self) -> tokio::sync::broadcast::Receiver<Arc<Value>> {
        self.log_feed.subscribe()
    }

    /// Removes a record and saves; the removed record, if there was one.
    pub fn remove(&mut self, table: &str, uuid: &str) -> anyhow::Result<Option<Value>> {
        let removed = self.tables.get_mut(table).and_then(|t| t.remove(uuid));
        if removed.is_some() {
            self.record(Change::Remove(table.to_string(), uuid.to_string()))?;
        }
        Ok(removed.map(Arc::unwrap_or_clone))
    }

    /// The next log id: one more than the largest there is or was since the store opened (a
    /// reset does not bring ids back), and above [`RESERVED_LOG_IDS`].
    pub fn next_log_id(&self) -> u64 {
        self.table("logs")
            .filter_map(|l| l["id"].as_u64())
            .max()
            .unwrap_or(0)
            .max(self.last_log_id)
            .max(RESERVED_LOG_IDS)
            + 1
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
        let mut store = Store::open(Some(file.clone()), builtin_fixtures()).unwrap();
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
        let mut again = Store::open(Some(file), builtin_fixtures()).unwrap();
        let fixture_collections = builtin_fixtures()["collections"].len();
        assert_eq!(again.table("collections").count(), fixture_collections + 1);
        assert_eq!(again.table("users").count(), fixture_users - 1);
        again.reset().unwrap();
        assert_eq!(
            again.table("collections").count(),
            builtin_fixtures()["collections"].len()
        );
        assert_eq!(again.table("users").count(), fixture_users);
        assert_eq!(again.table("keep_services").count(), 1);
    }

    #[test]
    fn small_writes_append_and_big_journals_compact() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("api.state.json");
        let mut store = Store::open(Some(file.clone()), builtin_fixtures()).unwrap();
        let big = "x".repeat(3 << 20);
        for i in 0..5 {
            let uuid = format!("zzzzz-4zz18-{i:015}");
            store
                .put("collections", json!({"uuid": uuid, "manifest_text": big}))
                .unwrap();
        }
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&file).unwrap();
        let before = meta.len();
        assert!(before < 6 * (3 << 20), "compacted, not doubled: {before}");
        // A tiny write appends its own line: the file grows by about its size.
        store
            .put(
                "collections",
                json!({"uuid": "zzzzz-4zz18-tinytinytinytin"}),
            )
            .unwrap();
        let after = std::fs::metadata(&file).unwrap();
        assert_eq!(after.ino(), meta.ino(), "appended to, not rewritten");
        let after = after.len();
        assert!(
            after > before && after - before < 200,
            "{before} -> {after}"
        );
        store
            .remove("collections", "zzzzz-4zz18-000000000000001")
            .unwrap();
        // A torn last line is ignored.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"{\"put\":[\"collections\",{\"uu")
            .unwrap();
        let again = Store::open(Some(file.clone()), builtin_fixtures()).unwrap();
        assert_eq!(
            again.table("collections").count(),
            builtin_fixtures()["collections"].len() + 5
        );
        assert!(again
            .get("collections", "zzzzz-4zz18-tinytinytinytin")
            .is_some());
        assert!(again
            .get("collections", "zzzzz-4zz18-000000000000001")
            .is_none());
        assert_eq!(
            std::fs::read(&file)
                .unwrap()
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            1
        );
    }

    #[test]
    fn uuids_have_the_table_infix() {
        let u = new_uuid("collections");
        assert!(u.starts_with("zzzzz-4zz18-"), "{u}");
        assert_eq!(u.len(), 27);
        assert_ne!(u, new_uuid("collections"));
    }
}
