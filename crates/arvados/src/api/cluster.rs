//! The test cluster's settings: its blob signing key (the API server signs every manifest
//! locator with it, and `start_keep` gives it to the keepstores unless told another) and the
//! configuration `GET /arvados/v1/config` exports, with the values of Arvados' own test
//! cluster that the Python SDK consults (`Collections.CollectionVersioning`, the storage
//! classes, the default replication, ...).

use serde_json::{json, Value};

use super::answer::MAX_BODY;
use super::fixtures::CLUSTER;
use crate::signature::DEFAULT_TTL;

/// The test cluster's blob signing key (`Collections.BlobSigningKey` of Arvados' test
/// configuration), used when the run directory has no key file of its own.
pub const BLOB_SIGNING_KEY: &str = "zfhgfenhffzltr9dixws36j1yhksjoll2grmku38mi7yxd66h5j4q9w4jzanezacp8s6q0ro3hxakfye02152hncy6zml2ed0uc";

/// The run-directory file (beside the key file) `start_keep` writes when its keepstores
/// enforce signatures: the API server then refuses a non-admin's unsigned locators too.
pub const ENFORCE_FILE: &str = "keep.enforce_permissions";

/// How long a trashed record stays before it is deleted (`Collections.DefaultTrashLifetime`).
pub const TRASH_LIFETIME: u64 = 1_209_600;

/// The default replication of a collection's blocks.
pub const DEFAULT_REPLICATION: u64 = 2;

/// `Collections.PreserveVersionIfIdle`, in seconds: an update of a collection left unchanged
/// this long keeps its old state as a version, `preserve_version` or not (Arvados' default).
pub const PRESERVE_VERSION_IF_IDLE: u64 = 10;

/// `Ns` as the configuration writes durations.
fn seconds(n: u64) -> String {
    format!("{n}s")
}

/// The exported cluster configuration (`GET /arvados/v1/config`).
pub fn config() -> Value {
    json!({
        "ClusterID": CLUSTER,
        "StorageClasses": {"default": {"Default": true, "Priority": 0}},
        "Collections": {
            "DefaultReplication": DEFAULT_REPLICATION,
            "CollectionVersioning": true,
            "PreserveVersionIfIdle": seconds(PRESERVE_VERSION_IF_IDLE),
            "BlobSigning": true,
            "BlobSigningTTL": seconds(DEFAULT_TTL),
            "DefaultTrashLifetime": seconds(TRASH_LIFETIME),
            "TrashSweepInterval": "-1s",
            "TrustAllContent": false,
            "ForwardSlashNameSubstitution": "/",
            "S3FolderObjects": true,
            "ManagedProperties": {},
            "WebDAVCache": {"TTL": "300s"},
        },
        "API": {
            "MaxRequestSize": MAX_BODY,
            "MaxItemsPerResponse": 1000,
            "RequestTimeout": "30s",
            "AsyncPermissionsUpdateInterval": "20s",
            "MaxIndexDatabaseRead": 134_217_728,
        },
        "Users": {
            "AnonymousUserToken": super::fixtures::token("anonymous").unwrap_or_default(),
            "UserProfileNotificationAddress": "arvados@example.com",
            "AutoSetupNewUsers": false,
            "NewUsersAreActive": false,
            "CanCreateRoleGroups": true,
            "RoleGroupsVisibleToAll": true,
            "ActivityLoggingPeriod": "24h",
        },
        "Containers": {
            "SupportedDockerImageFormats": {"v1": {}, "v2": {}},
            "DefaultKeepCacheRAM": 268_435_456,
        },
        "Login": {"Test": {"Enable": true}},
        "TLS": {"Insecure": true},
        "Workbench": {"SiteName": "cibox test cluster"},
        "Mail": {},
        "RemoteClusters": {},
        "Volumes": {},
        "Services": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdk_sees_versioning_and_a_default_storage_class() {
        let c = config();
        assert_eq!(c["Collections"]["CollectionVersioning"], true);
        assert_eq!(c["StorageClasses"]["default"]["Default"], true);
        assert_eq!(c["ClusterID"], "zzzzz");
    }
}
