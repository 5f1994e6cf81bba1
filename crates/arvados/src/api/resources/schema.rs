//! The resources this server implements ([`RESOURCES`]): their names, kinds, columns and
//! writable attributes, which attributes hold times, which get a log record, and the Arvados
//! resources answered 501.

/// A resource this server implements.
#[derive(Debug)]
pub struct Resource {
    /// Its name in paths (`keep_services`).
    pub plural: &'static str,
    /// Its name in request bodies (`keep_service`).
    pub singular: &'static str,
    /// Its schema name (`KeepService`; the kind is `arvados#keepService`).
    pub kind: &'static str,
    /// Its attributes (what filters, order and select may name).
    pub columns: &'static [&'static str],
    /// What create and update accept.
    pub writable: &'static [&'static str],
}

/// A resource's columns: the ones every record has (uuid, owner, times, etag), then its own.
macro_rules! record_columns {
    ($($own:literal),* $(,)?) => {
        &[
            "uuid",
            "owner_uuid",
            "created_at",
            "modified_at",
            "modified_by_user_uuid",
            "etag",
            $($own),*
        ]
    };
}

/// The resources this server implements.
pub const RESOURCES: &[Resource] = &[
    Resource {
        plural: "users",
        singular: "user",
        kind: "User",
        columns: record_columns![
            "email",
            "first_name",
            "last_name",
            "full_name",
            "username",
            "is_active",
            "is_admin",
            "is_invited",
            "identity_url",
            "prefs",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "email",
            "first_name",
            "last_name",
            "username",
            "is_active",
            "is_admin",
            "identity_url",
            "prefs",
        ],
    },
    Resource {
        plural: "api_client_authorizations",
        singular: "api_client_authorization",
        kind: "ApiClientAuthorization",
        columns: record_columns!["api_token", "expires_at", "scopes",],
        writable: &["owner_uuid", "scopes", "expires_at"],
    },
    Resource {
        plural: "keep_services",
        singular: "keep_service",
        kind: "KeepService",
        columns: record_columns![
            "service_host",
            "service_port",
            "service_ssl_flag",
            "service_type",
            "read_only",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "service_host",
            "service_port",
            "service_ssl_flag",
            "service_type",
            "read_only",
        ],
    },
    Resource {
        plural: "keep_disks",
        singular: "keep_disk",
        kind: "KeepDisk",
        columns: record_columns![
            "keep_service_uuid",
            "node_uuid",
            "filesystem_uuid",
            "ping_secret",
            "bytes_total",
            "bytes_free",
            "is_readable",
            "is_writable",
            "last_read_at",
            "last_write_at",
            "last_ping_at",
            "service_host",
            "service_port",
            "service_ssl_flag",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "keep_service_uuid",
            "node_uuid",
            "filesystem_uuid",
            "ping_secret",
            "bytes_total",
            "bytes_free",
            "is_readable",
            "is_writable",
        ],
    },
    Resource {
        plural: "collections",
        singular: "collection",
        kind: "Collection",
        columns: record_columns![
            "name",
            "description",
            "manifest_text",
            "portable_data_hash",
            "replication_desired",
            "replication_confirmed",
            "properties",
            "storage_classes_desired",
            "trash_at",
            "delete_at",
            "is_trashed",
            "version",
            "current_version_uuid",
            "preserve_version",
            "unsigned_manifest_text",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "name",
            "description",
            "manifest_text",
            "portable_data_hash",
            "replication_desired",
            "properties",
            "storage_classes_desired",
            "trash_at",
            "delete_at",
            "is_trashed",
            "preserve_version",
        ],
    },
    Resource {
        plural: "repositories",
        singular: "repository",
        kind: "Repository",
        columns: record_columns![
            "name",
            "writable_by",
            "readable_by",
            "clone_urls",
            "fetch_url",
            "push_url",
        ],
        writable: &[],
    },
    Resource {
        plural: "groups",
        singular: "group",
        kind: "Group",
        columns: record_columns![
            "name",
            "group_class",
            "description",
            "properties",
            "trash_at",
            "delete_at",
            "is_trashed",
            "frozen_by_uuid",
            "writable_by",
            "can_write",
            "can_manage",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "name",
            "group_class",
            "description",
            "properties",
            "trash_at",
            "delete_at",
            "is_trashed",
            "frozen_by_uuid",
        ],
    },
    Resource {
        plural: "links",
        singular: "link",
        kind: "Link",
        columns: record_columns!["link_class", "name", "tail_uuid", "head_uuid", "properties"],
        writable: &[
            "uuid",
            "owner_uuid",
            "link_class",
            "name",
            "tail_uuid",
            "head_uuid",
            "properties",
        ],
    },
    Resource {
        plural: "logs",
        singular: "log",
        kind: "Log",
        columns: record_columns![
            "id",
            "object_uuid",
            "object_owner_uuid",
            "event_type",
            "event_at",
            "summary",
            "properties",
        ],
        writable: &[
            "uuid",
            "owner_uuid",
            "object_uuid",
            "object_owner_uuid",
            "event_type",
            "event_at",
            "summary",
            "properties",
        ],
    },
    // Listed and read only, and never holding a record: arv-copy lists a project's workflows.
    Resource {
        plural: "workflows",
        singular: "workflow",
        kind: "Workflow",
        columns: record_columns!["name", "description", "definition"],
        writable: &[],
    },
    Resource {
        plural: "computed_permissions",
        singular: "computed_permission",
        kind: "ComputedPermission",
        columns: &["user_uuid", "target_uuid", "perm_level"],
        writable: &[],
    },
];

/// Attributes that hold times: what a client sends there is normalised as Arvados writes
/// times (UTC, nine fractional digits).
pub const TIME_ATTRIBUTES: &[&str] = &[
    "trash_at",
    "delete_at",
    "expires_at",
    "event_at",
    "last_read_at",
    "last_write_at",
    "last_ping_at",
];

/// Resources whose changes leave a log record.
pub(super) fn logged(plural: &str) -> bool {
    !matches!(plural, "logs" | "computed_permissions")
}

/// Resources of the real Arvados API this test server does not implement (answered 501).
pub const NOT_IMPLEMENTED: &[&str] = &[
    "api_clients",
    "authorized_keys",
    "container_requests",
    "containers",
    "humans",
    "job_tasks",
    "jobs",
    "nodes",
    "pipeline_instances",
    "pipeline_templates",
    "specimens",
    "traits",
    "virtual_machines",
    "user_agreements",
    "vocabularies",
    "sys",
    "credentials",
];

/// The description of resource `plural`.
pub fn resource(plural: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.plural == plural)
}

pub(super) fn columns(plural: &str) -> &'static [&'static str] {
    resource(plural).map(|r| r.columns).unwrap_or(&[])
}

pub(super) fn kind_of(plural: &str) -> String {
    let kind = resource(plural).map(|r| r.kind).unwrap_or("Object");
    let mut chars = kind.chars();
    chars
        .next()
        .map(|c| c.to_ascii_lowercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

pub(super) fn singular(plural: &str) -> &'static str {
    resource(plural).map(|r| r.singular).unwrap_or("record")
}
