//! What the server knows about its clients, keyed by IP: the latest host information (last
//! event, last version, the label forced for the next update) and, with `-l`, a bounded log of
//! their update requests. Everything sits behind one lock that is never held across I/O.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{Map, Value};

use super::omaha::UpdateRequest;

/// At most this many host-log entries are kept (all hosts together); older ones are dropped.
pub const HOST_LOG_LIMIT: usize = 10_000;

/// At most this many hosts are remembered; past it, hosts without a forced label are forgotten.
const HOST_LIMIT: usize = 65_536;

/// Host information reported by `/api/hostinfo`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HostInfo {
    /// Last update event type received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_type: Option<i64>,
    /// Last update event result received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_status: Option<i64>,
    /// Last version the host reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_known_version: Option<String>,
    /// Label the next update check of this host will use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forced_update_label: Option<String>,
}

/// One host-log entry.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    /// Client version.
    pub version: Option<String>,
    /// Client track.
    pub track: Option<String>,
    /// Client board.
    pub board: Option<String>,
    /// Event type (when the request held an event).
    pub event_type: Option<i64>,
    /// Event result.
    pub event_result: Option<i64>,
    /// Previous version named by the event.
    pub previous_version: Option<String>,
    /// When the request arrived (RFC 3339).
    pub timestamp: String,
}

#[derive(Default)]
struct Inner {
    info: HashMap<String, HostInfo>,
    log: VecDeque<(String, LogEntry)>,
}

/// The table of hosts.
pub struct Hosts {
    inner: Mutex<Inner>,
    keep_log: bool,
    log_limit: usize,
}

impl Hosts {
    /// A new table; `keep_log` is `-l`.
    pub fn new(keep_log: bool) -> Self {
        Self::with_limit(keep_log, HOST_LOG_LIMIT)
    }

    /// A new table keeping at most `log_limit` log entries.
    pub fn with_limit(keep_log: bool, log_limit: usize) -> Self {
        Hosts {
            inner: Mutex::default(),
            keep_log,
            log_limit,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an update request from `ip`; returns the forced label if the request is an
    /// update check and one was set (it is used once: cleared here).
    pub fn record(&self, ip: &str, request: &UpdateRequest) -> Option<String> {
        let entry = self.keep_log.then(|| LogEntry {
            version: request.version.clone(),
            track: request.track.clone(),
            board: request.board.clone(),
            event_type: request.event.as_ref().and_then(|e| e.event_type),
            event_result: request.event.as_ref().and_then(|e| e.event_result),
            previous_version: request
                .event
                .as_ref()
                .and_then(|e| e.previous_version.clone()),
            timestamp: chrono::Local::now().to_rfc3339(),
        });
        let mut inner = self.lock();
        if inner.info.len() >= HOST_LIMIT && !inner.info.contains_key(ip) {
            inner.info.retain(|_, h| h.forced_update_label.is_some());
        }
        let info = inner.info.entry(ip.to_string()).or_default();
        if let Some(v) = &request.version {
            info.last_known_version = Some(v.clone());
        }
        if let Some(event) = &request.event {
            if event.event_type.is_some() {
                info.last_event_type = event.event_type;
            }
            if event.event_result.is_some() {
                info.last_event_status = event.event_result;
            }
        }
        let forced = if request.update_check {
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
        inner
            .info
            .entry(ip.to_string())
            .or_default()
            .forced_update_label = Some(label.to_string());
    }

    /// `/api/hostinfo/<ip>`: the host's information, `{}` when unknown.
    pub fn info_json(&self, ip: &str) -> Value {
        let info = self.lock().info.get(ip).cloned().unwrap_or_default();
        serde_json::to_value(info).unwrap_or(Value::Object(Map::new()))
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
    use crate::serve::omaha::parse_request;

    #[test]
    fn log_is_bounded_and_label_used_once() {
        let hosts = Hosts::with_limit(true, 3);
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
}
