//! What every record carries besides its own attributes, shared by the fixtures and the live
//! records: timestamps as Arvados writes them ([`now`]) and etags ([`etag_for`]).

/// The current time as Arvados writes it.
pub fn now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// An etag that changes with the record's modification time.
pub fn etag_for(uuid: &str, modified_at: &str) -> String {
    let hex = crate::digest::md5_hex(format!("{uuid}@{modified_at}").as_bytes());
    hex[..25].to_string()
}
