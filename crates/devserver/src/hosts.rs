//! What the server knows about its clients, keyed by IP: the latest host information (board,
//! version per app, last check, last event, the label forced for the next update) and, with
//! `-l`, a log of their update requests with every event of every app. Everything sits behind
//! one lock that is never held across I/O.
//!
//! All of it comes from unauthenticated clients, so all of it is bounded here, where it is
//! stored, whatever the parser let through ([`Limits`]): every text field of a request is cut
//! to [`MAX_FIELD`] bytes (with a marker saying how much was cut), a host keeps at most
//! [`APPS_PER_HOST`] apps' versions in at most [`APP_BYTES_PER_HOST`] bytes, the host table
//! holds at most [`HOST_LIMIT`] hosts in [`HOST_TABLE_BYTES`] (the least recently seen are
//! dropped), and the host log at most [`HOST_LOG_LIMIT`] entries in [`HOST_LOG_BYTES`] (the
//! oldest are dropped). Bytes are counted as what the records hold (text, collections,
//! the records themselves), an estimate close to the heap they take.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

use super::omaha::UpdateRequest;

/// At most this many host-log entries are kept (all hosts together); older ones are dropped.
pub const HOST_LOG_LIMIT: usize = 10_000;

/// At most this many bytes of host-log entries are kept (all hosts together); older ones are
/// dropped.
pub const HOST_LOG_BYTES: usize = 8 * 1024 * 1024;

/// At most this many hosts are remembered; past it, the least recently seen host is dropped
/// (with its forced label).
pub const HOST_LIMIT: usize = 10_000;

/// At most this many bytes of host information are kept (all hosts together); past it, the
/// least recently seen hosts are dropped.
pub const HOST_TABLE_BYTES: usize = 16 * 1024 * 1024;

/// At most this many events are kept per host-log entry (a request may carry up to
/// 256 apps with 32 events each).
pub const EVENTS_PER_ENTRY: usize = 64;

/// At most this many apps' versions are remembered per host.
pub const APPS_PER_HOST: usize = 64;

/// At most this many bytes of apps' versions (appids and versions) are remembered per host;
/// apps past it are not recorded.
pub const APP_BYTES_PER_HOST: usize = 16 * 1024;

/// Longest text field recorded from an update request (appid, version, track, board,
/// previous version), in bytes: a longer one is cut and ends with a marker such as
/// `...[491234 bytes cut]`. A forced label is kept whole: its callers bound it
/// (`update::MAX_LABEL`), and cutting it would name another path.
pub const MAX_FIELD: usize = 256;

/// Room kept at the end of a cut field for its marker.
const MARKER_ROOM: usize = 32;

/// `text`, or its start and a marker naming how many bytes were cut when it is longer than
/// [`MAX_FIELD`] (the result never is).
pub fn clip(text: &str) -> String {
    if text.len() <= MAX_FIELD {
        return text.to_owned();
    }
    let mut keep = MAX_FIELD - MARKER_ROOM;
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}...[{} bytes cut]", &text[..keep], text.len() - keep)
}

fn clip_opt(text: &Option<String>) -> Option<String> {
    text.as_deref().map(clip)
}

/// The bounds of a [`Hosts`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Host-log entries, all hosts together.
    pub log_entries: usize,
    /// Host-log bytes, all hosts together.
    pub log_bytes: usize,
    /// Hosts.
    pub hosts: usize,
    /// Bytes of host information, all hosts together.
    pub host_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            log_entries: HOST_LOG_LIMIT,
            log_bytes: HOST_LOG_BYTES,
            hosts: HOST_LIMIT,
            host_bytes: HOST_TABLE_BYTES,
        }
    }
}

/// One event of one app, as recorded.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct EventRecord {
    /// The app that reported it.
    pub appid: Option<String>,
    /// `eventtype`.
    pub event_type: Option<i64>,
    /// `eventresult`.
    pub event_result: Option<i64>,
    /// `errorcode`.
    pub error_code: Option<i64>,
}

/// Host information reported by `/api/hostinfo`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostInfo {
    /// Last update event type received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_type: Option<i64>,
    /// Last update event result received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_status: Option<i64>,
    /// Last version the host reported (its platform app).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known_version: Option<String>,
    /// Label the next update check of this host will use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_update_label: Option<String>,
    /// The board the host reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub board: Option<String>,
    /// Version per appid.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub versions: BTreeMap<String, String>,
    /// When the host last asked for an update (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<String>,
    /// The last event it reported, with its app.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event: Option<EventRecord>,
    /// When it was last heard from (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

/// One host-log entry.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Client version (platform app).
    pub version: Option<String>,
    /// Client track.
    pub track: Option<String>,
    /// Client board.
    pub board: Option<String>,
    /// Event type of the platform app's first event.
    pub event_type: Option<i64>,
    /// Its result.
    pub event_result: Option<i64>,
    /// Previous version named by that event.
    pub previous_version: Option<String>,
    /// Every event of every app, in request order (at most [`EVENTS_PER_ENTRY`]).
    pub events: Vec<EventRecord>,
    /// When the request arrived (RFC 3339).
    pub timestamp: String,
}

fn text_bytes(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::capacity)
}

/// What a map entry costs beyond its key and value (a B-tree node's share, roughly).
const MAP_ENTRY: usize = 32;

impl EventRecord {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() + text_bytes(&self.appid)
    }
}

impl LogEntry {
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + text_bytes(&self.version)
            + text_bytes(&self.track)
            + text_bytes(&self.board)
            + text_bytes(&self.previous_version)
            + self.timestamp.capacity()
            + (self.events.capacity() - self.events.len()) * std::mem::size_of::<EventRecord>()
            + self.events.iter().map(EventRecord::bytes).sum::<usize>()
    }
}

impl HostInfo {
    /// Bytes of its apps' versions.
    fn app_bytes(&self) -> usize {
        self.versions
            .iter()
            .map(|(k, v)| {
                k.capacity() + v.capacity() + 2 * std::mem::size_of::<String>() + MAP_ENTRY
            })
            .sum()
    }

    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + text_bytes(&self.last_known_version)
            + text_bytes(&self.forced_update_label)
            + text_bytes(&self.board)
            + text_bytes(&self.last_check)
            + text_bytes(&self.last_seen)
            + self.last_event.as_ref().map_or(0, EventRecord::bytes)
            + self.app_bytes()
    }

    /// Records `version` for `appid` (both cut to [`MAX_FIELD`]) unless that would take the
    /// host past [`APPS_PER_HOST`] apps or [`APP_BYTES_PER_HOST`] bytes.
    fn set_version(&mut self, appid: &str, version: &str) {
        let (appid, version) = (clip(appid), clip(version));
        if let Some(v) = self.versions.get_mut(&appid) {
            *v = version;
            return;
        }
        let cost =
            appid.capacity() + version.capacity() + 2 * std::mem::size_of::<String>() + MAP_ENTRY;
        if self.versions.len() < APPS_PER_HOST && self.app_bytes() + cost <= APP_BYTES_PER_HOST {
            self.versions.insert(appid, version);
        }
    }
}

/// One remembered host.
struct Host {
    /// Its age stamp (a key of [`Inner::age`]).
    stamp: u64,
    info: HostInfo,
    /// What it costs, as last counted.
    bytes: usize,
}

/// What a host costs besides its information: its key, twice (the table and the age order).
fn host_overhead(ip: &str) -> usize {
    2 * (ip.len() + std::mem::size_of::<String>() + MAP_ENTRY)
        + std::mem::size_of::<Host>()
        + std::mem::size_of::<u64>()
}

#[derive(Default)]
struct Inner {
    /// Host -> its age stamp, information and cost.
    info: HashMap<String, Host>,
    /// Age stamp -> host, oldest first.
    age: BTreeMap<u64, String>,
    next_stamp: u64,
    /// Bytes of every host in `info`.
    host_bytes: usize,
    /// Host-log entries, oldest first, with their host and cost.
    log: VecDeque<(String, LogEntry, usize)>,
    /// Bytes of every entry in `log`.
    log_bytes: usize,
}

impl Inner {
    /// The host's entry, marked most recently seen; the oldest host is dropped past the limit.
    fn touch(&mut self, ip: &str, limit: usize) -> &mut HostInfo {
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        match self.info.get_mut(ip) {
            Some(host) => {
                self.age.remove(&host.stamp);
                host.stamp = stamp;
            }
            None => {
                while self.info.len() >= limit.max(1) {
                    if !self.drop_oldest() {
                        break;
                    }
                }
                let info = HostInfo::default();
                let bytes = host_overhead(ip) + info.bytes();
                self.host_bytes += bytes;
                self.info
                    .insert(ip.to_string(), Host { stamp, info, bytes });
            }
        }
        self.age.insert(stamp, ip.to_string());
        &mut self.info.get_mut(ip).expect("just inserted").info
    }

    /// Drops the least recently seen host; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some((_, oldest)) = self.age.pop_first() else {
            return false;
        };
        if let Some(host) = self.info.remove(&oldest) {
            self.host_bytes -= host.bytes;
        }
        true
    }

    /// Counts `ip`'s bytes again after a change, then drops the least recently seen other
    /// hosts while the table is over `budget` (`ip`, just touched, is the youngest).
    fn settle(&mut self, ip: &str, budget: usize) {
        if let Some(host) = self.info.get_mut(ip) {
            let bytes = host_overhead(ip) + host.info.bytes();
            self.host_bytes = self.host_bytes - host.bytes + bytes;
            host.bytes = bytes;
        }
        while self.host_bytes > budget && self.info.len() > 1 {
            if !self.drop_oldest() {
                break;
            }
        }
    }

    /// Appends a host-log entry, then drops the oldest while the log is over its limits (the
    /// new entry always stays).
    fn log_push(&mut self, ip: &str, entry: LogEntry, limits: &Limits) {
        let bytes = entry.bytes() + ip.len() + std::mem::size_of::<(String, LogEntry, usize)>();
        self.log_bytes += bytes;
        self.log.push_back((ip.to_string(), entry, bytes));
        while self.log.len() > 1
            && (self.log.len() > limits.log_entries.max(1) || self.log_bytes > limits.log_bytes)
        {
            if let Some((_, _, old)) = self.log.pop_front() {
                self.log_bytes -= old;
            }
        }
    }
}

/// The table of hosts.
pub struct Hosts {
    inner: Mutex<Inner>,
    keep_log: bool,
    limits: Limits,
}

impl Hosts {
    /// A new table with the default [`Limits`]; `keep_log` is `-l`.
    pub fn new(keep_log: bool) -> Self {
        Self::with_limits(keep_log, Limits::default())
    }

    /// A new table within these limits.
    pub fn with_limits(keep_log: bool, limits: Limits) -> Self {
        Hosts {
            inner: Mutex::default(),
            keep_log,
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an update request from `ip`; returns the forced label if the request is an
    /// update check and one was set (it is used once: cleared here). Every text kept is cut
    /// to [`MAX_FIELD`] bytes.
    pub fn record(&self, ip: &str, request: &UpdateRequest) -> Option<String> {
        // Host fields in UTC (cheap); the log keeps the devserver's local time.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let platform = request.platform();
        let mut events: Vec<EventRecord> = Vec::new();
        for app in &request.apps {
            if events.len() == EVENTS_PER_ENTRY {
                break;
            }
            if app.events.is_empty() {
                continue;
            }
            // One cut appid per app, cloned for its events.
            let appid = clip_opt(&app.appid);
            events.extend(
                app.events
                    .iter()
                    .take(EVENTS_PER_ENTRY - events.len())
                    .map(|e| EventRecord {
                        appid: appid.clone(),
                        event_type: e.event_type,
                        event_result: e.event_result,
                        error_code: e.error_code,
                    }),
            );
        }
        events.shrink_to_fit();
        let entry = self.keep_log.then(|| LogEntry {
            version: clip_opt(&platform.version),
            track: clip_opt(&platform.track),
            board: clip_opt(&platform.board),
            event_type: platform.events.first().and_then(|e| e.event_type),
            event_result: platform.events.first().and_then(|e| e.event_result),
            previous_version: platform
                .events
                .first()
                .and_then(|e| clip_opt(&e.previous_version)),
            events: events.clone(),
            timestamp: chrono::Local::now().to_rfc3339(),
        });
        let mut inner = self.lock();
        let info = inner.touch(ip, self.limits.hosts);
        if let Some(v) = &platform.version {
            info.last_known_version = Some(clip(v));
        }
        if let Some(b) = &platform.board {
            info.board = Some(clip(b));
        }
        for app in &request.apps {
            if let (Some(id), Some(v)) = (&app.appid, &app.version) {
                info.set_version(id, v);
            }
        }
        if let Some(event) = platform.events.last() {
            if event.event_type.is_some() {
                info.last_event_type = event.event_type;
            }
            if event.event_result.is_some() {
                info.last_event_status = event.event_result;
            }
        }
        if let Some(last) = events.last() {
            info.last_event = Some(last.clone());
        }
        info.last_seen = Some(now.clone());
        let forced = if request.has_update_check() {
            info.last_check = Some(now);
            info.forced_update_label.take()
        } else {
            None
        };
        inner.settle(ip, self.limits.host_bytes);
        if let Some(entry) = entry {
            inner.log_push(ip, entry, &self.limits);
        }
        forced
    }

    /// Sets the label the next update check of `ip` will use.
    pub fn set_next_update(&self, ip: &str, label: &str) {
        let mut inner = self.lock();
        inner.touch(ip, self.limits.hosts).forced_update_label = Some(label.to_string());
        inner.settle(ip, self.limits.host_bytes);
    }

    /// `/api/hostinfo/<ip>`: the host's information, `{}` when unknown.
    pub fn info_json(&self, ip: &str) -> Value {
        let info = self
            .lock()
            .info
            .get(ip)
            .map(|host| host.info.clone())
            .unwrap_or_default();
        serde_json::to_value(info).unwrap_or(Value::Object(Map::new()))
    }

    /// Every host, most recently seen first, with its information.
    pub fn all(&self) -> Vec<(String, HostInfo)> {
        let inner = self.lock();
        inner
            .age
            .values()
            .rev()
            .filter_map(|ip| {
                inner
                    .info
                    .get(ip)
                    .map(|host| (ip.clone(), host.info.clone()))
            })
            .collect()
    }

    /// `/api/hostlog/<ip>`: the host's log entries, oldest first; `all`: `{ip: [...]}`.
    pub fn log_json(&self, ip: &str) -> Value {
        let inner = self.lock();
        if ip == "all" {
            let mut all: Map<String, Value> = Map::new();
            for (host, entry, _) in &inner.log {
                let list = all
                    .entry(host.clone())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let (Value::Array(list), Ok(v)) = (list, serde_json::to_value(entry)) {
                    list.push(v);
                }
            }
            Value::Object(all)
        } else {
            Value::Array(
                inner
                    .log
                    .iter()
                    .filter(|(host, _, _)| host == ip)
                    .filter_map(|(_, e, _)| serde_json::to_value(e).ok())
                    .collect(),
            )
        }
    }

    /// Number of hosts known.
    pub fn count(&self) -> usize {
        self.lock().info.len()
    }

    /// Number of host-log entries kept.
    pub fn log_len(&self) -> usize {
        self.lock().log.len()
    }

    /// Bytes the host log holds, as counted against [`Limits::log_bytes`].
    pub fn log_bytes(&self) -> usize {
        self.lock().log_bytes
    }

    /// Bytes the host table holds, as counted against [`Limits::host_bytes`].
    pub fn host_bytes(&self) -> usize {
        self.lock().host_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omaha::parse_request;

    fn limits(log_entries: usize, hosts: usize) -> Limits {
        Limits {
            log_entries,
            hosts,
            ..Limits::default()
        }
    }

    #[test]
    fn log_is_bounded_and_label_used_once() {
        let hosts = Hosts::with_limits(true, limits(3, 100));
        let req = parse_request(
            br#"<request protocol="3.0"><app version="1.2"><updatecheck/></app></request>"#,
        )
        .unwrap();
        hosts.set_next_update("10.0.0.1", "lbl");
        assert_eq!(hosts.record("10.0.0.1", &req).as_deref(), Some("lbl"));
        assert_eq!(hosts.record("10.0.0.1", &req), None);
        for _ in 0..5 {
            hosts.record("10.0.0.2", &req);
        }
        assert_eq!(hosts.log_len(), 3);
        assert_eq!(hosts.log_json("10.0.0.1"), Value::Array(vec![]));
        assert_eq!(hosts.info_json("10.0.0.1")["last_known_version"], "1.2");
        assert_eq!(hosts.info_json("nobody"), serde_json::json!({}));
    }

    #[test]
    fn host_table_is_bounded_oldest_dropped() {
        let hosts = Hosts::with_limits(false, limits(10, 3));
        for i in 0..5 {
            hosts.set_next_update(&format!("10.0.0.{i}"), "lbl");
        }
        assert_eq!(hosts.count(), 3);
        assert_eq!(hosts.info_json("10.0.0.0"), serde_json::json!({}));
        assert_eq!(hosts.info_json("10.0.0.4")["forced_update_label"], "lbl");
        // Being seen again makes a host young: 10.0.0.2 survives the next newcomer.
        let req =
            parse_request(br#"<request protocol="3.0"><app version="1"/></request>"#).unwrap();
        hosts.record("10.0.0.2", &req);
        hosts.set_next_update("10.0.0.9", "lbl");
        assert_eq!(hosts.info_json("10.0.0.2")["last_known_version"], "1");
        assert_eq!(hosts.info_json("10.0.0.3"), serde_json::json!({}));
        let order: Vec<String> = hosts.all().into_iter().map(|(ip, _)| ip).collect();
        assert_eq!(order, ["10.0.0.9", "10.0.0.2", "10.0.0.4"]);
    }

    #[test]
    fn every_event_of_every_app_is_logged() {
        let hosts = Hosts::with_limits(true, limits(10, 10));
        let req = parse_request(
            br#"<request protocol="3.0"><app appid="p" version="2" board="b"><event eventtype="3" eventresult="1"/></app><app appid="dlc" version="1"><event eventtype="13" eventresult="0" errorcode="9"/></app></request>"#,
        )
        .unwrap();
        hosts.record("10.0.0.1", &req);
        let log = hosts.log_json("10.0.0.1");
        assert_eq!(
            log[0]["events"],
            serde_json::json!([
                {"appid": "p", "event_type": 3, "event_result": 1, "error_code": null},
                {"appid": "dlc", "event_type": 13, "event_result": 0, "error_code": 9},
            ])
        );
        let info = hosts.info_json("10.0.0.1");
        assert_eq!(info["versions"], serde_json::json!({"p": "2", "dlc": "1"}));
        assert_eq!(info["last_event"]["appid"], "dlc");
        assert_eq!(info["board"], "b");
    }

    /// A request from one app with an appid of `len` bytes and `events` events.
    fn big_request(len: usize, events: usize) -> UpdateRequest {
        let appid = "a".repeat(len);
        let events = r#"<event eventtype="3" eventresult="1" previousversion="1"/>"#.repeat(events);
        parse_request(
            format!(r#"<request protocol="3.0"><app appid="{appid}" version="2" board="b">{events}</app></request>"#)
                .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn fields_are_cut_with_a_marker() {
        assert_eq!(clip("short"), "short");
        let exact = "x".repeat(MAX_FIELD);
        assert_eq!(clip(&exact), exact);
        let cut = clip(&"y".repeat(500_000));
        assert!(cut.len() <= MAX_FIELD, "{}", cut.len());
        assert!(cut.starts_with("yyyy"));
        assert!(cut.ends_with(&format!(
            "...[{} bytes cut]",
            500_000 - (MAX_FIELD - MARKER_ROOM)
        )));
        // Cut on a character boundary.
        let cut = clip(&"é".repeat(MAX_FIELD));
        assert!(cut.len() <= MAX_FIELD && cut.contains("bytes cut]"));
    }

    #[test]
    fn forced_labels_are_kept_whole() {
        let hosts = Hosts::new(false);
        let label = format!("board-release/{}", "R".repeat(400));
        hosts.set_next_update("10.0.0.1", &label);
        assert_eq!(hosts.info_json("10.0.0.1")["forced_update_label"], label);
    }

    #[test]
    fn long_appids_are_cut_in_log_and_table() {
        let hosts = Hosts::new(true);
        hosts.record("10.0.0.1", &big_request(100_000, 32));
        let log = hosts.log_json("10.0.0.1");
        let text = log.to_string();
        assert!(
            text.len() < 32 * 1024,
            "host log holds {} bytes",
            text.len()
        );
        assert!(log[0]["events"][0]["appid"]
            .as_str()
            .unwrap()
            .ends_with("bytes cut]"));
        let info = hosts.info_json("10.0.0.1");
        assert!(info.to_string().len() < 4096);
        assert!(hosts.log_bytes() < 32 * 1024, "{}", hosts.log_bytes());
        assert!(hosts.host_bytes() < 4096, "{}", hosts.host_bytes());
    }

    #[test]
    fn log_is_bounded_in_bytes_oldest_dropped() {
        let hosts = Hosts::with_limits(
            true,
            Limits {
                log_bytes: 64 * 1024,
                ..Limits::default()
            },
        );
        for i in 0..200 {
            hosts.record(&format!("10.0.0.{}", i % 7), &big_request(1000, 32));
        }
        assert!(hosts.log_bytes() <= 64 * 1024, "{}", hosts.log_bytes());
        let kept = hosts.log_len();
        assert!(kept > 1 && kept < 200, "{kept}");
        // The newest are the ones kept: host 10.0.0.(199 % 7) made the last entry.
        let last = format!("10.0.0.{}", 199 % 7);
        assert!(!hosts.log_json(&last).as_array().unwrap().is_empty());
    }

    #[test]
    fn host_table_is_bounded_in_bytes_and_apps_per_host() {
        let hosts = Hosts::with_limits(
            false,
            Limits {
                host_bytes: 64 * 1024,
                ..Limits::default()
            },
        );
        // One host naming 256 apps with long ids keeps at most its own share.
        let apps: String = (0..256)
            .map(|i| {
                format!(
                    r#"<app appid="{i}-{}" version="{}"/>"#,
                    "z".repeat(2000),
                    "v".repeat(2000)
                )
            })
            .collect();
        let req = parse_request(format!(r#"<request protocol="3.0">{apps}</request>"#).as_bytes())
            .unwrap();
        hosts.record("10.0.0.1", &req);
        let info = hosts.info_json("10.0.0.1");
        let versions = info["versions"].as_object().unwrap();
        assert!(!versions.is_empty() && versions.len() <= APPS_PER_HOST);
        assert!(
            hosts.host_bytes() <= APP_BYTES_PER_HOST + 4096,
            "{}",
            hosts.host_bytes()
        );
        // Many such hosts: the table stays in its budget, the newest host is kept.
        for i in 0..50 {
            hosts.record(&format!("10.0.1.{i}"), &req);
        }
        assert!(hosts.host_bytes() <= 64 * 1024, "{}", hosts.host_bytes());
        assert!(hosts.count() < 51);
        assert_ne!(hosts.info_json("10.0.1.49"), serde_json::json!({}));
        assert_eq!(hosts.info_json("10.0.0.1"), serde_json::json!({}));
    }
}
