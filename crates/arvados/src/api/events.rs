//! The websocket event server the Arvados SDK's `arvados.events.EventClient` and `arv-ws`
//! use, at `wss://HOST:PORT/websocket` on the API server's own port (the discovery document's
//! `websocketUrl`).
//!
//! The client connects with its token (`?api_token=TOKEN`, or an `Authorization` header):
//! a missing, unknown or expired token is refused with 401 before the upgrade, an inactive
//! user with 403, and past [`MAX_SESSIONS`] sessions at once with 503. Then it sends JSON
//! messages, Arvados' "v0" protocol:
//!
//! * `{"method":"subscribe","filters":[...],"last_log_id":N}`: answered `{"status":200}`
//!   (or `{"status":400,"errors":[...]}` for filters the `logs` list would refuse), then,
//!   with `last_log_id`, the `logs` records after that id that match, oldest first; from then
//!   on each new `logs` record that matches.
//! * `{"method":"unsubscribe","filters":[...]}`: drops the subscription with exactly these
//!   filters (`{"status":200}`, or 404 when there is none).
//!
//! An event is a `logs` record as the `logs` list would show it to the caller, plus a
//! `msgID` counting the session's events; it is sent once however many subscriptions match.
//! Matching is the `logs` list's own ([`resources::list`]: Arvados filter syntax and who may
//! read which log), with the caller looked up again for each batch of new records, so a
//! permission given after the connection counts and a token that stops working ends it
//! (close code 1008).
//!
//! New records come from the store's bounded broadcast feed ([`super::state::Store::follow_logs`]).
//! A session that falls more than [`super::state::LOG_FEED_CAPACITY`] records behind is closed
//! (1011): the SDK reconnects and resubscribes with the last id it saw, and gets the rest
//! replayed. The server pings every [`PING_EVERY`]; a client silent (no message, no pong) for
//! [`SILENT_LIMIT`] is dropped, as is one that does not take an event within [`SEND_TIMEOUT`].
//! Sessions end with the process (the HTTP front end hands upgraded connections over and does
//! not wait for them at shutdown).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use cibox_runtime::response::HttpError;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::broadcast::Receiver;
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::answer::ApiError;
use super::body::RequestBody;
use super::query::Params;
use super::resources::{self, Caller};
use super::router::{self, Server};

/// Where the event server answers, on the API server's own address.
pub const PATH: &str = "/websocket";
/// Websocket sessions served at once.
pub const MAX_SESSIONS: usize = 256;
/// Subscriptions one session may hold.
pub const MAX_SUBSCRIPTIONS: usize = 100;
/// The largest message a client may send.
pub const MAX_MESSAGE: usize = 1 << 20;
/// How often the server pings a session.
pub const PING_EVERY: Duration = Duration::from_secs(30);
/// How long a client may send nothing (not even a pong) before it is dropped.
pub const SILENT_LIMIT: Duration = Duration::from_secs(90);
/// How long a client may take to accept one message.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// New records looked at together (one caller look-up for all of them).
const BATCH: usize = 256;

static SESSIONS: Semaphore = Semaphore::const_new(MAX_SESSIONS);

/// The credentials a session was opened with, to look the caller up again.
#[derive(Clone)]
struct Credentials {
    authorization: Option<String>,
    query: String,
}

impl Credentials {
    /// The caller now, refused when its token no longer works or its user is inactive.
    fn caller(&self, server: &Server) -> Result<Caller, ApiError> {
        let req = router::Request {
            method: "GET".into(),
            path: PATH.into(),
            query: self.query.clone(),
            authorization: self.authorization.clone(),
            host: String::new(),
            external: false,
            method_override: None,
            body: RequestBody::new(Body::empty(), 0),
            form_body: false,
        };
        let params = Params::from_query(&self.query);
        let caller = router::authenticate(server, &req, &params)?;
        if !caller.is_active() {
            return Err(ApiError::new(403, "Forbidden: user is not active"));
        }
        Ok(caller)
    }
}

/// `GET /websocket`: authenticates, then upgrades to a session.
pub async fn upgrade(
    State(server): State<Arc<Server>>,
    headers: HeaderMap,
    uri: Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, HttpError> {
    let credentials = Credentials {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        query: uri.query().unwrap_or_default().to_string(),
    };
    let check = {
        let (server, credentials) = (server.clone(), credentials.clone());
        tokio::task::spawn_blocking(move || {
            let caller = credentials.caller(&server)?;
            Ok::<_, ApiError>((caller, server.store().follow_logs()))
        })
    };
    let checked = check
        .await
        .unwrap_or_else(|e| Err(ApiError::new(500, format!("authentication failed: {e}"))));
    let (caller, feed) = match checked {
        Ok(found) => found,
        Err(e) => {
            tracing::info!("GET {PATH} {}", e.status);
            return Err(e.into());
        }
    };
    let Ok(ws) = ws else {
        tracing::info!("GET {PATH} 400");
        return Err(ApiError::new(
            400,
            format!("{PATH} is the websocket event server: connect with a websocket client"),
        )
        .into());
    };
    let Ok(permit) = SESSIONS.try_acquire() else {
        tracing::info!("GET {PATH} 503");
        return Err(ApiError::new(503, "too many websocket sessions").into());
    };
    tracing::info!("GET {PATH} 101 ({})", caller.uuid());
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            let mut session = Session {
                socket,
                server,
                credentials,
                caller: Arc::new(caller),
                subscriptions: Vec::new(),
                sent: 0,
                _permit: permit,
            };
            let end = session.run(feed).await;
            session.close(end).await;
        }))
}

/// One subscription: its filters, and the last log id it has been served up to.
struct Subscription {
    filters: Value,
    params: Params,
    after: u64,
}

/// Why a session ends: the client left, or the server closes with a code and reason.
enum End {
    ClientGone,
    Close(u16, &'static str),
}

struct Session {
    socket: WebSocket,
    server: Arc<Server>,
    credentials: Credentials,
    caller: Arc<Caller>,
    subscriptions: Vec<Subscription>,
    sent: u64,
    _permit: SemaphorePermit<'static>,
}

impl Session {
    async fn run(&mut self, mut feed: Receiver<Arc<Value>>) -> End {
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        let mut heard = Instant::now();
        loop {
            tokio::select! {
                message = self.socket.recv() => {
                    heard = Instant::now();
                    let text = match message {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return End::ClientGone,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Text(text))) => text.as_str().to_string(),
                        Some(Ok(Message::Binary(bytes))) => {
                            String::from_utf8_lossy(&bytes).into_owned()
                        }
                    };
                    if let Err(end) = self.on_message(&text).await {
                        return end;
                    }
                }
                got = feed.recv() => {
                    let first = match got {
                        Ok(log) => log,
                        Err(RecvError::Lagged(_)) if self.subscriptions.is_empty() => {
                            feed = feed.resubscribe();
                            continue;
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::info!("{PATH}: closing a session {n} events behind");
                            return End::Close(1011, "too far behind: reconnect with last_log_id");
                        }
                        Err(RecvError::Closed) => return End::Close(1001, "server stopping"),
                    };
                    if self.subscriptions.is_empty() {
                        continue;
                    }
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match feed.try_recv() {
                            Ok(log) => batch.push(log),
                            Err(TryRecvError::Lagged(_)) => {
                                return End::Close(1011, "too far behind: reconnect with last_log_id");
                            }
                            Err(_) => break,
                        }
                    }
                    if let Err(end) = self.deliver(batch).await {
                        return end;
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() >= SILENT_LIMIT {
                        return End::Close(1001, "no answer to pings");
                    }
                    if let Err(end) = self.send(Message::Ping(Default::default())).await {
                        return end;
                    }
                }
            }
        }
    }

    /// One client message: a subscription, or the end of one.
    async fn on_message(&mut self, text: &str) -> Result<(), End> {
        let message: Value = match serde_json::from_str(text) {
            Ok(Value::Object(m)) => Value::Object(m),
            _ => return self.status(400, "a message must be a JSON object").await,
        };
        let filters = match &message["filters"] {
            Value::Null => json!([]),
            f @ Value::Array(_) => f.clone(),
            other => {
                let why = format!("filters must be an array, not {other}");
                return self.status(400, &why).await;
            }
        };
        match message["method"].as_str() {
            Some("subscribe") => {
                let last_log_id = match &message["last_log_id"] {
                    Value::Null => None,
                    v => match v
                        .as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    {
                        Some(id) => Some(id),
                        None => return self.status(400, "last_log_id must be a log id").await,
                    },
                };
                self.subscribe(filters, last_log_id).await
            }
            Some("unsubscribe") => {
                let before = self.subscriptions.len();
                self.subscriptions.retain(|s| s.filters != filters);
                if self.subscriptions.len() < before {
                    self.status(200, "").await
                } else {
                    self.status(404, "no subscription with these filters").await
                }
            }
            _ => {
                self.status(400, "method must be \"subscribe\" or \"unsubscribe\"")
                    .await
            }
        }
    }

    async fn subscribe(&mut self, filters: Value, last_log_id: Option<u64>) -> Result<(), End> {
        if self.subscriptions.len() >= MAX_SUBSCRIPTIONS {
            let why = format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection");
            return self.status(429, &why).await;
        }
        let mut params = Params(Default::default());
        params.0.insert("filters".into(), filters.clone());
        // Filters the logs list refuses are refused here too.
        if let Err(e) = resources::list(&self.caller, &params, &[], "logs", Vec::new()) {
            let why = e.message.clone();
            return self.status(400, &why).await;
        }
        let server = self.server.clone();
        let credentials = self.credentials.clone();
        let looked = tokio::task::spawn_blocking(move || {
            let store = server.store();
            let current = store.next_log_id().saturating_sub(1);
            let older = match last_log_id {
                Some(_) => store.snapshot("logs"),
                None => Vec::new(),
            };
            drop(store);
            (current, older, credentials.caller(&server))
        })
        .await;
        let Ok((current, mut older, caller)) = looked else {
            return Err(End::Close(1011, "internal error"));
        };
        self.caller = Arc::new(caller.map_err(|_| End::Close(1008, "the token no longer works"))?);
        let subscription = Subscription {
            filters,
            params,
            after: current,
        };
        self.status(200, "").await?;
        if let Some(last) = last_log_id {
            older.retain(|l| {
                l["id"]
                    .as_u64()
                    .is_some_and(|id| id > last && id <= current)
            });
            older.sort_by_key(|l| l["id"].as_u64());
            for log in older {
                if let Some(event) =
                    matching(&self.caller, std::slice::from_ref(&subscription), 0, &log)
                {
                    self.event(event).await?;
                }
            }
        }
        self.subscriptions.push(subscription);
        Ok(())
    }

    /// Sends the records of `batch` that a subscription matches, with the caller looked up
    /// again first.
    async fn deliver(&mut self, batch: Vec<Arc<Value>>) -> Result<(), End> {
        let server = self.server.clone();
        let credentials = self.credentials.clone();
        let caller = tokio::task::spawn_blocking(move || credentials.caller(&server))
            .await
            .map_err(|_| End::Close(1011, "internal error"))?;
        self.caller = Arc::new(caller.map_err(|_| End::Close(1008, "the token no longer works"))?);
        let caller = self.caller.clone();
        for log in batch {
            if let Some(event) = matching(&caller, &self.subscriptions, u64::MAX, &log) {
                self.event(event).await?;
            }
        }
        Ok(())
    }

    async fn event(&mut self, mut event: Value) -> Result<(), End> {
        self.sent += 1;
        event["msgID"] = self.sent.into();
        self.send(Message::Text(event.to_string().into())).await
    }

    /// A status message: `{"status":N}`, with the reason as `errors` when there is one.
    async fn status(&mut self, status: u16, why: &str) -> Result<(), End> {
        let message = if why.is_empty() {
            json!({"status": status})
        } else {
            json!({"status": status, "errors": [why]})
        };
        self.send(Message::Text(message.to_string().into())).await
    }

    async fn send(&mut self, message: Message) -> Result<(), End> {
        match tokio::time::timeout(SEND_TIMEOUT, self.socket.send(message)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::ClientGone),
            Err(_) => Err(End::Close(1008, "the client does not read its events")),
        }
    }

    async fn close(mut self, end: End) {
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: reason.into(),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.socket.send(Message::Close(Some(frame))),
            )
            .await;
        }
    }
}

/// The event for `log`, as the `logs` list shows it to `caller`, when one of `subscriptions`
/// matches it: past the subscription's `after` (ignored when `replay` is 0: the log is one
/// being replayed), within its filters, and readable by the caller.
fn matching(
    caller: &Caller,
    subscriptions: &[Subscription],
    replay: u64,
    log: &Arc<Value>,
) -> Option<Value> {
    let id = log["id"].as_u64().unwrap_or(0);
    subscriptions
        .iter()
        .filter(|s| replay == 0 || id > s.after)
        .find_map(|s| {
            let listed = resources::list(caller, &s.params, &[], "logs", vec![log.clone()]).ok()?;
            listed["items"].get(0).cloned()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_filter_set_matches_and_an_old_id_does_not() {
        let log = Arc::new(json!({"id": 5, "uuid": "zzzzz-57u5n-000000000000005",
            "object_uuid": "zzzzz-4zz18-000000000000001", "event_type": "create"}));
        let admin = Caller {
            token: json!({"scopes": ["all"]}),
            secret: String::new(),
            user: json!({"uuid": "zzzzz-tpzed-d9tiejq69daie8f", "is_admin": true, "is_active": true}),
            access: Default::default(),
        };
        let sub = |filters: Value, after| {
            let mut params = Params(Default::default());
            params.0.insert("filters".into(), filters.clone());
            Subscription {
                filters,
                params,
                after,
            }
        };
        assert!(matching(&admin, &[sub(json!([]), 4)], u64::MAX, &log).is_some());
        assert!(matching(&admin, &[sub(json!([]), 5)], u64::MAX, &log).is_none());
        assert!(matching(&admin, &[sub(json!([]), 5)], 0, &log).is_some());
        let other = json!([["event_type", "=", "update"]]);
        assert!(matching(&admin, &[sub(other, 0)], u64::MAX, &log).is_none());
        let collections = json!([["object_uuid", "is_a", "arvados#collection"]]);
        assert!(matching(&admin, &[sub(collections, 0)], u64::MAX, &log).is_some());
    }
}
