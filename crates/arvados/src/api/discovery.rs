//! The discovery document (`GET /discovery/v1/apis/arvados/v1/rest`): the Google API
//! description the Python SDK builds its client from, listing exactly the resources and methods
//! this server implements, plus the Arvados fields the SDK reads (`uuidPrefix`,
//! `blobSignatureTtl`, `defaultCollectionReplication`, `maxRequestSize`, ...).

use serde_json::{json, Map, Value};

use super::resources::RESOURCES;
use crate::signature::DEFAULT_TTL;

/// Which methods each resource offers: `(name, http method, path after the resource, kind)`
/// where kind is `list`, `one` (answers a record), `one-uuid` (takes `{uuid}`), `untrash`
/// (`one-uuid` with `ensure_unique_name`), `create`, `update` or `contents`.
fn methods(plural: &str) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    if plural == "computed_permissions" {
        return vec![("list", "GET", "", "list")];
    }
    let mut m = vec![
        ("list", "GET", "", "list"),
        ("get", "GET", "/{uuid}", "one-uuid"),
    ];
    match plural {
        "users" | "api_client_authorizations" => m.push(("current", "GET", "/current", "one")),
        "keep_services" => m.push(("accessible", "GET", "/accessible", "list")),
        "groups" => {
            m.push(("contents", "GET", "/contents", "contents"));
            m.push(("shared", "GET", "/shared", "shared"));
        }
        "links" => m.push((
            "get_permissions",
            "GET",
            "/{uuid}/get_permissions",
            "permissions",
        )),
        _ => {}
    }
    if matches!(
        plural,
        "keep_services"
            | "keep_disks"
            | "collections"
            | "groups"
            | "links"
            | "logs"
            | "api_client_authorizations"
    ) {
        m.push(("create", "POST", "", "create"));
        m.push(("update", "PUT", "/{uuid}", "update"));
        m.push(("delete", "DELETE", "/{uuid}", "one-uuid"));
    }
    if matches!(plural, "collections" | "groups") {
        m.push(("trash", "POST", "/{uuid}/trash", "one-uuid"));
        m.push(("untrash", "POST", "/{uuid}/untrash", "untrash"));
    }
    if plural == "users" {
        m.push(("create", "POST", "", "create"));
        m.push(("update", "PUT", "/{uuid}", "update"));
    }
    m
}

fn param(kind: &str, location: &str, description: &str) -> Value {
    json!({"type": kind, "location": location, "required": false, "description": description})
}

fn list_parameters() -> Map<String, Value> {
    let mut p = Map::new();
    for (name, kind, description) in [
        (
            "filters",
            "array",
            "Conditions: [[attribute, operator, operand], ...]",
        ),
        ("where", "object", "Attribute values to match"),
        (
            "order",
            "array",
            "Attributes to sort by, each optionally followed by asc or desc",
        ),
        ("select", "array", "Attributes to return"),
        ("distinct", "boolean", "Return each distinct object once"),
        ("limit", "integer", "Maximum number of items (default 100)"),
        ("offset", "integer", "Number of items to skip"),
        ("count", "string", "\"exact\" or \"none\""),
        (
            "cluster_id",
            "string",
            "Cluster to ask (only this one exists)",
        ),
        (
            "bypass_federation",
            "boolean",
            "Ignored: there is no federation",
        ),
        ("include_trash", "boolean", "Include trashed items"),
        (
            "include_old_versions",
            "boolean",
            "Include old versions of collections",
        ),
    ] {
        p.insert(name.into(), param(kind, "query", description));
    }
    p
}

fn uuid_parameter() -> Value {
    json!({"type": "string", "location": "path", "required": true, "description": "The object's uuid"})
}

fn method(plural: &str, singular: &str, kind: &str, m: (&str, &str, &str, &str)) -> Value {
    let (name, http, suffix, shape) = m;
    let mut parameters = match shape {
        "list" | "permissions" => list_parameters(),
        "shared" => {
            let mut p = list_parameters();
            p.insert(
                "include".into(),
                param(
                    "string",
                    "query",
                    "owner_uuid: the groups' owners in included",
                ),
            );
            p
        }
        "contents" => {
            let mut p = list_parameters();
            p.insert(
                "uuid".into(),
                param(
                    "string",
                    "query",
                    "The project or user whose contents to list",
                ),
            );
            for (name, kind, description) in [
                (
                    "recursive",
                    "boolean",
                    "Include the contents of subprojects",
                ),
                (
                    "include",
                    "array",
                    "Related records to include (owner_uuid)",
                ),
                ("exclude_home_project", "boolean", "Ignored by this server"),
            ] {
                p.insert(name.into(), param(kind, "query", description));
            }
            p
        }
        _ => Map::new(),
    };
    if suffix.contains("{uuid}") {
        parameters.insert("uuid".into(), uuid_parameter());
    }
    if matches!(shape, "one-uuid" | "untrash" | "create" | "update") {
        parameters.insert(
            "select".into(),
            param("array", "query", "Attributes to return"),
        );
        parameters.insert(
            "include_trash".into(),
            param("boolean", "query", "Include trashed items"),
        );
    }
    if matches!(shape, "create" | "untrash") {
        parameters.insert(
            "ensure_unique_name".into(),
            param(
                "boolean",
                "query",
                "Add a timestamp to the name when it is taken",
            ),
        );
    }
    if shape == "create" {
        parameters.insert(
            "cluster_id".into(),
            param("string", "query", "Cluster to create on"),
        );
    }
    if matches!(shape, "create" | "update") {
        for p in ["replace_files", "replace_segments"] {
            parameters.insert(
                p.into(),
                param("object", "query", "Not supported by this server"),
            );
        }
    }
    let response = if shape == "contents" {
        "ObjectList".to_string()
    } else if matches!(shape, "list" | "shared" | "permissions") {
        format!("{kind}List")
    } else {
        kind.to_string()
    };
    let mut value = json!({
        "id": format!("arvados.{plural}.{name}"),
        "path": format!("{plural}{suffix}"),
        "httpMethod": http,
        "description": format!("{name} {plural}"),
        "parameters": parameters,
        "response": {"$ref": response},
        "scopes": ["https://api.arvados.org/auth/arvados"],
    });
    if suffix.contains("{uuid}") {
        value["parameterOrder"] = json!(["uuid"]);
    }
    if matches!(shape, "create" | "update") {
        value["request"] = json!({
            "required": true,
            "properties": {singular: {"$ref": kind}},
        });
    }
    value
}

/// The uuid type infix of records of schema `kind` (`Collection` -> `4zz18`), when they have
/// uuids.
fn uuid_infix(kind: &str) -> Option<&'static str> {
    let mut chars = kind.chars();
    let first = chars.next()?;
    let name = format!("arvados#{}{}", first.to_ascii_lowercase(), chars.as_str());
    super::record::KINDS
        .iter()
        .find(|k| k.0 == name)
        .map(|k| k.1)
}

fn schemas() -> Map<String, Value> {
    let mut s = Map::new();
    for r in RESOURCES {
        let (kind, columns) = (r.kind, r.columns);
        let properties: Map<String, Value> = columns
            .iter()
            .map(|c| (c.to_string(), json!({"type": "string"})))
            .collect();
        let mut schema =
            json!({"id": kind, "type": "object", "description": kind, "properties": properties});
        if let Some(infix) = uuid_infix(kind) {
            // What clients (arv-copy) read to tell a uuid's type from its infix.
            schema["uuidPrefix"] = json!(infix);
        }
        s.insert(kind.into(), schema);
        let list = format!("{kind}List");
        s.insert(
            list.clone(),
            json!({
                "id": list,
                "type": "object",
                "description": format!("A list of {kind} records"),
                "properties": {
                    "kind": {"type": "string"},
                    "etag": {"type": "string"},
                    "self_link": {"type": "string"},
                    "offset": {"type": "integer"},
                    "limit": {"type": "integer"},
                    "items_available": {"type": "integer"},
                    "items": {"type": "array", "items": {"$ref": kind}},
                },
            }),
        );
    }
    s.insert(
        "ObjectList".into(),
        json!({
            "id": "ObjectList",
            "type": "object",
            "description": "A list of records of several kinds",
            "properties": {
                "kind": {"type": "string"},
                "offset": {"type": "integer"},
                "limit": {"type": "integer"},
                "items_available": {"type": "integer"},
                "items": {"type": "array", "items": {"type": "object"}},
                "included": {"type": "array", "items": {"type": "object"}},
            },
        }),
    );
    s.insert(
        "Config".into(),
        json!({"id": "Config", "type": "object", "description": "Cluster configuration"}),
    );
    s
}

/// The document, with URLs on `host` (the `Host` the client used).
pub fn document(host: &str) -> Value {
    let mut resources = Map::new();
    for r in RESOURCES {
        let (plural, singular, kind) = (r.plural, r.singular, r.kind);
        let methods: Map<String, Value> = methods(plural)
            .into_iter()
            .map(|m| (m.0.to_string(), method(plural, singular, kind, m)))
            .collect();
        resources.insert(plural.into(), json!({"methods": methods}));
    }
    resources.insert(
        "configs".into(),
        json!({"methods": {"get": {
            "id": "arvados.configs.get",
            "path": "config",
            "httpMethod": "GET",
            "description": "The exported cluster configuration",
            "parameters": {},
            "response": {"$ref": "Config"},
        }}}),
    );
    let root = format!("https://{host}/");
    json!({
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": "arvados:v1",
        "name": "arvados",
        "version": "v1",
        "revision": "20240101",
        "source_version": concat!("cibox-", env!("CARGO_PKG_VERSION")),
        "packageVersion": env!("CARGO_PKG_VERSION"),
        "title": "cibox test API server",
        "description": "An Arvados-compatible API server for test runs (users, API tokens, keep services and disks, collections, groups, links, logs, computed permissions, repositories)",
        "protocol": "rest",
        "rootUrl": root,
        "servicePath": "arvados/v1/",
        "basePath": "/arvados/v1/",
        "baseUrl": format!("{root}arvados/v1/"),
        "websocketUrl": format!("wss://{host}/websocket"),
        "batchPath": "batch",
        "uuidPrefix": super::fixtures::CLUSTER,
        "defaultTrashLifetime": DEFAULT_TTL,
        "blobSignatureTtl": DEFAULT_TTL,
        "maxRequestSize": super::answer::MAX_BODY,
        "maxItemsPerResponse": 1000,
        "defaultCollectionReplication": 2,
        "dockerImageFormats": ["v2"],
        "remoteHosts": {},
        "remoteHostsViaDNS": false,
        "parameters": {
            "alt": {"type": "string", "description": "Data format for the response", "default": "json", "enum": ["json"], "location": "query"},
            "prettyPrint": {"type": "boolean", "description": "Indented answers", "default": "true", "location": "query"},
        },
        "auth": {"oauth2": {"scopes": {"https://api.arvados.org/auth/arvados": {"description": "View and manage objects"}}}},
        "schemas": schemas(),
        "resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reference_has_a_schema() {
        let doc = document("127.0.0.1:1");
        let schemas = doc["schemas"].as_object().unwrap();
        for (name, res) in doc["resources"].as_object().unwrap() {
            for (m, desc) in res["methods"].as_object().unwrap() {
                if let Some(r) = desc["response"]["$ref"].as_str() {
                    assert!(schemas.contains_key(r), "{name}.{m} -> {r}");
                }
                assert!(desc["path"].is_string() && desc["httpMethod"].is_string());
            }
        }
        assert_eq!(doc["rootUrl"], "https://127.0.0.1:1/");
        assert_eq!(doc["websocketUrl"], "wss://127.0.0.1:1/websocket");
    }
}
