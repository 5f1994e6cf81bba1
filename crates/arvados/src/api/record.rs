//! What every record carries besides its own attributes, shared by the fixtures and the live
//! records: timestamps as Arvados writes them ([`now`], [`normalize_time`]), etags
//! ([`etag_for`]), which kind a uuid names ([`KINDS`], [`kind_of_uuid`]), where a trashable
//! record stands in its life ([`is_trashed`], [`is_deleted`]), and what a collection holds
//! from the start ([`collection_defaults`]).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

/// The current time as Arvados writes it.
pub fn now() -> String {
    format_time(Utc::now())
}

/// A time as Arvados writes it: UTC, nine fractional digits, `Z`.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// The attributes every collection has from the start, with their values when none is given
/// (one version, not trashed, the default storage class); a fixture, a fixture file's record
/// and a created collection all start from these.
pub fn collection_defaults() -> [(&'static str, serde_json::Value); 9] {
    use serde_json::{json, Value};
    [
        ("replication_desired", Value::Null),
        ("description", Value::Null),
        ("properties", json!({})),
        ("storage_classes_desired", json!(["default"])),
        ("trash_at", Value::Null),
        ("delete_at", Value::Null),
        ("is_trashed", json!(false)),
        ("version", json!(1)),
        ("preserve_version", json!(false)),
    ]
}

/// Whether a collection or group is in the trash: marked so, or its `trash_at` has come.
pub fn is_trashed(record: &serde_json::Value) -> bool {
    record["is_trashed"] == true || time_has_come(&record["trash_at"])
}

/// Whether a trashed record's `delete_at` has come: Arvados deletes it for good then, so it
/// is seen nowhere, not even with `include_trash`.
pub fn is_deleted(record: &serde_json::Value) -> bool {
    time_has_come(&record["delete_at"])
}

fn time_has_come(time: &serde_json::Value) -> bool {
    time.as_str()
        .and_then(parse_time)
        .is_some_and(|t| t <= Utc::now())
}

/// `seconds` from now, as Arvados writes times.
pub fn from_now(seconds: i64) -> String {
    format_time(Utc::now() + chrono::Duration::seconds(seconds))
}

/// A time a client sent, as Arvados writes it (UTC, nine fractional digits): RFC 3339 with
/// any offset and any number of fractional digits, or a date and time without an offset
/// (UTC), `T` or a space between them. None when it is none of these.
pub fn normalize_time(text: &str) -> Option<String> {
    parse_time(text).map(format_time)
}

/// [`normalize_time`]'s parse.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f %z") {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// An etag that changes with the record's modification time.
pub fn etag_for(uuid: &str, modified_at: &str) -> String {
    let hex = crate::digest::md5_hex(format!("{uuid}@{modified_at}").as_bytes());
    hex[..25].to_string()
}

/// Arvados kinds and the uuid infix of each (`zzzzz-INFIX-...`), including kinds this server
/// does not store, so `is_a` filters and the uuids of other objects are understood.
pub const KINDS: &[(&str, &str)] = &[
    ("arvados#user", "tpzed"),
    ("arvados#apiClientAuthorization", "gj3su"),
    ("arvados#keepService", "bi6l4"),
    ("arvados#keepDisk", "penuu"),
    ("arvados#collection", "4zz18"),
    ("arvados#repository", "s0uqq"),
    ("arvados#group", "j7d0g"),
    ("arvados#link", "o0j2j"),
    ("arvados#log", "57u5n"),
    ("arvados#container", "dz642"),
    ("arvados#containerRequest", "xvhdp"),
    ("arvados#workflow", "7fd4e"),
    ("arvados#virtualMachine", "2x53u"),
    ("arvados#authorizedKey", "fngyi"),
    ("arvados#userAgreement", "gv0sa"),
];

/// The kind a uuid names by its infix (`zzzzz-4zz18-...` is `arvados#collection`).
pub fn kind_of_uuid(uuid: &str) -> Option<&'static str> {
    let mut parts = uuid.split('-');
    let (Some(_), Some(infix), Some(tail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if tail.len() != 15 {
        return None;
    }
    KINDS.iter().find(|k| k.1 == infix).map(|k| k.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_times_get_nine_fractional_digits_in_utc() {
        for (given, want) in [
            ("2024-05-06T07:08:09Z", "2024-05-06T07:08:09.000000000Z"),
            ("2024-05-06T07:08:09.5Z", "2024-05-06T07:08:09.500000000Z"),
            (
                "2024-05-06T09:08:09.123456+02:00",
                "2024-05-06T07:08:09.123456000Z",
            ),
            ("2024-05-06 07:08:09", "2024-05-06T07:08:09.000000000Z"),
            (
                "2024-05-06T07:08:09.123456789",
                "2024-05-06T07:08:09.123456789Z",
            ),
        ] {
            assert_eq!(normalize_time(given).as_deref(), Some(want), "{given}");
        }
        assert_eq!(normalize_time("yesterday"), None);
        assert_eq!(now().len(), "2024-05-06T07:08:09.000000000Z".len());
    }

    #[test]
    fn uuids_name_their_kind() {
        assert_eq!(
            kind_of_uuid("zzzzz-4zz18-fy296fx3hot09f7"),
            Some("arvados#collection")
        );
        assert_eq!(
            kind_of_uuid("zzzzz-j7d0g-v955i6s2oi1cbso"),
            Some("arvados#group")
        );
        assert_eq!(kind_of_uuid("zzzzz-zzzzz-zzzzzzzzzzzzzzz"), None);
        assert_eq!(kind_of_uuid("acbd18db4cc2f85cedef654fccc4a4d8+3"), None);
    }
}
