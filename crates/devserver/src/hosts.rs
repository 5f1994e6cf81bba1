//! What the server knows about its clients, keyed by IP: the latest host information (board,
//! version per app, last check, last event, the label forced for the next update) for at most
//! [`HOST_LIMIT`] hosts (the least recently seen are dropped), and, with `-l`, a bounded log
//! of their update requests with every event of every app. Everything sits behind one lock
//! that is never held across I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

use super::omaha::UpdateRequest;

/// At most this many host-log entries are kept (all hosts together); older ones are dropped.
pub const HOST_LOG_LIMIT: usize = 10_000;

/// At most this many hosts are remembered; past it, the least recently seen host is dropped
/// (with its forced label).
pub const HOST_LIMIT: usize = 10_000;

/// At most this many events are kept per host-log entry (a request may carry up to
/// 256 apps with 32 events each).
pub const EVENTS_PER_ENTRY: usize = 64;

/// At most this many apps' versions are remembered per host.
const APPS_PER_HOST: usize = 64;

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

#[derive(Default)]
struct Inner {
    /// Host -> (its age stamp, its information).
    info: HashMap<String, (u64, HostInfo)>,
    /// Age stamp -> host, oldest first.
    age: BTreeMap<u64, String>,
    next_stamp: u64,
    log: VecDeque<(String, LogEntry)>,
}

impl Inner {
    /// The host's entry, marked most recently seen; the oldest host is dropped past the limit.
    fn touch(&mut self, ip: &str, limit: usize) -> &mut HostInfo {
        self.next_stamp += 1;
        let stamp = self.next_stamp;
        match self.info.get_mut(ip) {
            Some((old, _)) => {
                self.age.remove(old);
                *old = stamp;
            }
            None => {
                while self.info.len() >= limit.max(1) {
                    let Some((_, oldest)) = self.age.pop_first() else {
                        break;
                    };
                    self.info.remove(&oldest);
                }
                self.info
                    .insert(ip.to_string(), (stamp, HostInfo::default()));
            }
        }
        self.age.insert(stamp, ip.to_string());
        &mut self.info.get_mut(ip).expect("just inserted").1
    }
}

/// The table of hosts.
pub struct Hosts {
    inner: Mutex<Inner>,
    keep_log: bool,
    log_limit: usize,
    host_limit: usize,
}

impl Hosts {
    /// A new table; `keep_log` is `-l`.
    pub fn new(keep_log: bool) -> Self {
        Self::with_limits(keep_log, HOST_LOG_LIMIT, HOST_LIMIT)
    }

    /// A new table keeping at most `log_limit` log entries and `host_limit` hosts.
    pub fn with_limits(keep_log: bool, log_limit: usize, host_limit: usize) -> Self {
        Hosts {
            inner: Mutex::default(),
            keep_log,
            log_limit,
            host_limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an update request from `ip`; returns the forced label if the request is an
    /// update check and one was set (it is used once: cleared here).
    pub fn record(&self, ip: &str, request: &UpdateRequest) -> Option<String> {
        // Host fields in UTC (cheap); the log keeps the devserver's local time.
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let platform = request.platform();
        let events: Vec<EventRecord> = request
            .apps
            .iter()
            .flat_map(|app| {
                app.events.iter().map(|e| EventRecord {
                    appid: app.appid.clone(),
                    event_type: e.event_type,
                    event_result: e.event_result,
                    error_code: e.error_code,
                })
            })
            .take(EVENTS_PER_ENTRY)
            .collect();
        let entry = self.keep_log.then(|| LogEntry {
            version: platform.version.clone(),
            track: platform.track.clone(),
            board: platform.board.clone(),
            event_type: platform.events.first().and_then(|e| e.event_type),
            event_result: platform.events.first().and_then(|e| e.event_result),
            previous_version: platform
                .events
                .first()
                .and_then(|e| e.previous_version.clone()),
            events: events.clone(),
            timestamp: chrono::Local::now().to_rfc3339(),
        });
        let mut inner = self.lock();
        let info = inner.touch(ip, self.host_limit);
        if let Some(v) = &platform.version {
            info.last_known_version = Some(v.clone());
        }
        if let Some(b) = &platform.board {
            info.board = Some(b.clone());
        }
        for app in &request.apps {
            if let (Some(id), Some(v)) = (&app.appid, &app.version) {
                if info.versions.len() < APPS_PER_HOST || info.versions.contains_key(id) {
                    info.versions.insert(id.clone(), v.clone());
                }
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
        if let Some(entry) = entry {
            if inner.log.len() >= self.log_limit {
                inner.log.pop_front();
            }
            inner.log.push_back((ip.to_string(), entry));
        }
        forced
    }

    /// Sets the label the next update check of `ip` will use.
    pub fn set_next_update(&self, ip: &str, label: &str) {
        let mut inner = self.lock();
        inner.touch(ip, self.host_limit).forced_update_label = Some(label.to_string());
    }

    /// `/api/hostinfo/<ip>`: the host's information, `{}` when unknown.
    pub fn info_json(&self, ip: &str) -> Value {
        let info = self
            .lock()
            .info
            .get(ip)
            .map(|(_, h)| h.clone())
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
            .filter_map(|ip| inner.info.get(ip).map(|(_, h)| (ip.clone(), h.clone())))
            .collect()
    }

    /// `/api/hostlog/<ip>`: the host's log entries, oldest first; `all`: `{ip: [...]}`.
    pub fn log_json(&self, ip: &str) -> Value {
        let inner = self.lock();
        if ip == "all" {
            let mut all: Map<String, Value> = Map::new();
            for (host, entry) in &inner.log {
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
                    .filter(|(host, _)| host == ip)
                    .filter_map(|(_, e)| serde_json::to_value(e).ok())
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::omaha::parse_request;

    #[test]
    fn log_is_bounded_and_label_used_once() {
        let hosts = Hosts::with_limits(true, 3, 100);
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
        let hosts = Hosts::with_limits(false, 10, 3);
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
        let hosts = Hosts::with_limits(true, 10, 10);
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
}
