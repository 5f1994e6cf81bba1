//! `--fixtures DIR`: the fixture set read from an Arvados checkout's
//! `services/api/test/fixtures/*.yml` (DIR is the checkout or that directory) instead of the
//! built-in one. Each file is expanded as the small ERB it holds ([`super::erb`]), cut where
//! Arvados' own test helper cuts it (`# Test Helper trims the rest of the file`) and read as
//! YAML: one record per fixture name. Only the files of resources this server stores are
//! read (users, tokens, collections, groups, links, logs, repositories); the others are never
//! opened, so what they hold cannot stop a start. Rails' association shorthand `user: NAME`
//! in tokens becomes the owner's uuid; times become Arvados' nine-digit UTC times; the
//! attributes every record has are filled in as the built-in fixtures have them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use yaml_rust2::{Yaml, YamlLoader};

use super::fixtures::SYSTEM_USER;
use super::record;
use super::state::Tables;

/// The tables read, in the order they are read (users first: tokens name them).
pub const FILES: &[&str] = &[
    "users",
    "api_client_authorizations",
    "collections",
    "groups",
    "links",
    "logs",
    "repositories",
];

/// Where Arvados' own test helper stops reading a fixture file.
const TRIM_MARK: &str = "# Test Helper trims the rest of the file";

/// The time records without one get.
const DEFAULT_TIME: &str = "2015-01-01T00:00:00.000000000Z";

/// The fixture directory of `dir`: `dir` itself when it holds `users.yml`, else the checkout's
/// `services/api/test/fixtures`.
pub fn fixture_dir(dir: &Path) -> anyhow::Result<PathBuf> {
    for candidate in [dir.to_path_buf(), dir.join("services/api/test/fixtures")] {
        if candidate.join("users.yml").is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "--fixtures {}: neither it nor its services/api/test/fixtures holds users.yml \
         (give an Arvados checkout or its fixture directory)",
        dir.display()
    )
}

/// Reads the fixture set of `dir` (see the module documentation).
pub fn load(dir: &Path) -> anyhow::Result<Tables> {
    let dir = fixture_dir(dir)?;
    let now = chrono::Utc::now();
    let mut tables = Tables::new();
    let mut users: Vec<(String, String)> = Vec::new();
    for table in FILES {
        let path = dir.join(format!("{table}.yml"));
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let text = match text.find(TRIM_MARK) {
            Some(at) => &text[..at],
            None => &text,
        };
        let shown = path.display().to_string();
        let expanded = super::erb::expand(&shown, text, now)?;
        let docs = YamlLoader::load_from_str(&expanded)
            .map_err(|e| anyhow::anyhow!("{shown}: {e} (after ERB expansion)"))?;
        let Some(doc) = docs.into_iter().next() else {
            continue;
        };
        let Yaml::Hash(entries) = doc else {
            bail!("{shown}: not a mapping of fixture names to records");
        };
        let t = tables.entry(table.to_string()).or_default();
        for (name, fields) in entries {
            let name = yaml_key(&name);
            let Value::Object(fields) = to_json(&fields) else {
                bail!("{shown}: fixture {name:?} is not a mapping");
            };
            let record = complete(table, &name, fields, &users)
                .with_context(|| format!("{shown}: fixture {name:?}"))?;
            if *table == "users" {
                if let Some(uuid) = record["uuid"].as_str() {
                    users.push((name.clone(), uuid.to_string()));
                }
            }
            if let Some(uuid) = record["uuid"].as_str() {
                t.insert(uuid.to_string(), Arc::new(record));
            }
        }
    }
    anyhow::ensure!(
        tables.get("users").is_some_and(|u| !u.is_empty()),
        "{}: no users in users.yml",
        dir.display()
    );
    Ok(tables)
}

fn yaml_key(y: &Yaml) -> String {
    match y {
        Yaml::String(s) | Yaml::Real(s) => s.clone(),
        Yaml::Integer(n) => n.to_string(),
        Yaml::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(n) => json!(n),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(h.iter().map(|(k, v)| (yaml_key(k), to_json(v))).collect()),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

/// A time as fixture files write it (`2014-11-27 06:38:21.215463000 Z`,
/// `2014-04-21 15:37:48 -0400`, RFC 3339), as Arvados writes times.
fn fixture_time(text: &str) -> Option<String> {
    let text = text.trim();
    let text = match text
        .strip_suffix(" Z")
        .or_else(|| text.strip_suffix(" UTC"))
    {
        Some(t) => format!("{t} +0000"),
        None => text.to_string(),
    };
    record::normalize_time(&text)
}

/// One fixture record made whole: kind, owner, times, etag, and each resource's defaults.
fn complete(
    table: &str,
    name: &str,
    mut fields: Map<String, Value>,
    users: &[(String, String)],
) -> anyhow::Result<Value> {
    let Some(uuid) = fields
        .get("uuid")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        bail!("no uuid");
    };
    if table == "api_client_authorizations" {
        if let Some(user) = fields.remove("user") {
            let user = user.as_str().unwrap_or_default();
            let owner = users
                .iter()
                .find(|u| u.0 == user)
                .map(|u| u.1.clone())
                .with_context(|| format!("user {user:?} is no users.yml fixture"))?;
            fields.insert("owner_uuid".into(), owner.into());
        }
        fields.remove("api_client");
    }
    fields.remove("updated_at");
    for (key, value) in fields.iter_mut() {
        if key.ends_with("_at") {
            if let Some(text) = value.as_str() {
                *value = fixture_time(text)
                    .with_context(|| format!("{key}: {text:?} is not a time"))?
                    .into();
            }
        }
    }
    let kind = super::record::kind_of_uuid(&uuid).unwrap_or("arvados#object");
    let mut record = json!({
        "kind": kind,
        "owner_uuid": SYSTEM_USER,
        "created_at": DEFAULT_TIME,
        "modified_by_user_uuid": SYSTEM_USER,
    });
    for (k, v) in fields {
        record[k.as_str()] = v;
    }
    if record["modified_at"].is_null() {
        record["modified_at"] = record["created_at"].clone();
    }
    let modified = record["modified_at"]
        .as_str()
        .unwrap_or(DEFAULT_TIME)
        .to_string();
    record["etag"] = record::etag_for(&uuid, &modified).into();
    record["fixture_name"] = name.into();
    let defaults: Vec<(&str, Value)> = match table {
        "users" => vec![
            ("is_active", json!(false)),
            ("is_admin", json!(false)),
            ("prefs", json!({})),
            ("email", Value::Null),
            ("first_name", Value::Null),
            ("last_name", Value::Null),
            ("username", Value::Null),
            ("identity_url", Value::Null),
        ],
        "api_client_authorizations" => {
            vec![("scopes", json!(["all"])), ("expires_at", Value::Null)]
        }
        "collections" => [("manifest_text", json!("")), ("name", Value::Null)]
            .into_iter()
            .chain(record::collection_defaults())
            .collect(),
        "groups" => vec![
            ("description", Value::Null),
            ("properties", json!({})),
            ("trash_at", Value::Null),
            ("delete_at", Value::Null),
            ("is_trashed", json!(false)),
            ("frozen_by_uuid", Value::Null),
        ],
        "links" => vec![
            ("name", Value::Null),
            ("tail_uuid", Value::Null),
            ("properties", json!({})),
        ],
        _ => vec![],
    };
    for (k, v) in defaults {
        if record[k].is_null() {
            record[k] = v;
        }
    }
    match table {
        "users" => {
            let first = record["first_name"].as_str().unwrap_or_default();
            let last = record["last_name"].as_str().unwrap_or_default();
            record["full_name"] = format!("{first} {last}").trim().to_string().into();
            if record["is_invited"].is_null() {
                record["is_invited"] = record["is_active"].clone();
            }
        }
        "collections" => {
            let text = record["manifest_text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let stored = super::manifest::strip_signatures(&text)
                .map_err(|e| anyhow::anyhow!("manifest_text: {e}"))?;
            if record["portable_data_hash"].is_null() {
                record["portable_data_hash"] = super::manifest::portable_data_hash(&stored)
                    .map_err(|e| anyhow::anyhow!("manifest_text: {e}"))?
                    .into();
            }
            record["manifest_text"] = stored.into();
            if record["current_version_uuid"].is_null() {
                record["current_version_uuid"] = uuid.as_str().into();
            }
        }
        _ => {}
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_checkout_loads_with_its_erb_and_associations() {
        let dir = tempfile::tempdir().unwrap();
        let fixtures = dir.path().join("services/api/test/fixtures");
        std::fs::create_dir_all(&fixtures).unwrap();
        std::fs::write(
            fixtures.join("users.yml"),
            "active:\n  uuid: zzzzz-tpzed-xurymjxw79nv3jz\n  is_active: true\n  first_name: Active\n  created_at: 2014-11-27 06:38:21.215463000 Z\n",
        )
        .unwrap();
        std::fs::write(
            fixtures.join("api_client_authorizations.yml"),
            "active:\n  uuid: zzzzz-gj3su-077z32aux8dg2s1\n  user: active\n  api_token: tok\n  expires_at: 2038-01-01 00:00:00\n",
        )
        .unwrap();
        std::fs::write(
            fixtures.join("collections.yml"),
            "<% for i in 1..2 do %>\nc_<%=i%>:\n  uuid: zzzzz-4zz18-10gneyn6brkx<%= i.to_s.rjust(3, '0') %>\n  manifest_text: \". acbd18db4cc2f85cedef654fccc4a4d8+3 0:3:foo\\n\"\n  modified_at: <%= i.minute.ago.to_fs(:db) %>\n<% end %>\n# Test Helper trims the rest of the file\nbroken: <%= nonsense %>\n",
        )
        .unwrap();
        // Files of resources the server does not store are never read.
        std::fs::write(fixtures.join("containers.yml"), "x: <%= Digest::MD5 %>\n").unwrap();
        let tables = load(dir.path()).unwrap();
        let token = &tables["api_client_authorizations"]["zzzzz-gj3su-077z32aux8dg2s1"];
        assert_eq!(token["owner_uuid"], "zzzzz-tpzed-xurymjxw79nv3jz");
        assert_eq!(token["expires_at"], "2038-01-01T00:00:00.000000000Z");
        assert_eq!(token["scopes"], json!(["all"]));
        let c = &tables["collections"]["zzzzz-4zz18-10gneyn6brkx002"];
        assert_eq!(
            c["portable_data_hash"],
            "1f4b0bc7583c2a7f9102c395f4ffc5e3+45"
        );
        assert_eq!(c["fixture_name"], "c_2");
        assert_eq!(tables["collections"].len(), 2);
        assert_eq!(
            tables["users"]["zzzzz-tpzed-xurymjxw79nv3jz"]["created_at"],
            "2014-11-27T06:38:21.215463000Z"
        );
    }

    #[test]
    fn unsupported_erb_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("users.yml"),
            "a:\n  uuid: zzzzz-tpzed-000000000000000\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("groups.yml"),
            "g:\n  uuid: zzzzz-j7d0g-000000000000000\n  name: <%= SecureRandom.hex %>\n",
        )
        .unwrap();
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(
            e.contains("groups.yml:3") && e.contains("SecureRandom"),
            "{e}"
        );
        let e = format!("{:#}", load(&dir.path().join("nowhere")).unwrap_err());
        assert!(e.contains("users.yml"), "{e}");
    }
}
