//! The websocket event server (`/websocket` on the API server, the discovery document's
//! `websocketUrl`) through the real SDK's `arvados.events.subscribe`: events for new records
//! that match the filters and that the token's user may read, a replay from `last_log_id`, and
//! a refused bad token.

use crate::support::*;
use serde_json::Value;

/// Subscribes as the environment's user and as `spectator` (who may not read the active
/// user's collections), makes a group and a collection, and reports what each saw; then a
/// second subscription from the first log id replays the collection's create event.
const SUBSCRIBE: &str = r#"
import json, queue, arvados, arvados.events
api = arvados.api('v1')
mine, theirs = queue.Queue(100), queue.Queue(100)
filters = [['object_uuid', 'is_a', 'arvados#collection']]
ws = arvados.events.subscribe(api, filters, mine.put_nowait, poll_fallback=False)
spectator = arvados.api('v1', host=api._rootDesc['rootUrl'][8:-1], insecure=True,
    token='zw2f4gwx8hw8cjre7yp6v1zylhrhn3m5gvjq73rtpwhmknrybu')
other = arvados.events.subscribe(spectator, filters, theirs.put_nowait, poll_fallback=False)
first = mine.get(True, 10)
other_first = theirs.get(True, 10)
api.groups().create(body={'name': 'not a collection', 'group_class': 'project'}).execute()
coll = api.collections().create(body={'name': 'watched'}).execute()
event = mine.get(True, 10)
leftover = []
try:
    leftover.append(mine.get(True, 1))
except queue.Empty:
    pass
spectator_saw = []
try:
    spectator_saw.append(theirs.get(True, 1))
except queue.Empty:
    pass
ws.close()
other.close()
replayed = queue.Queue(100)
again = arvados.events.subscribe(api, filters + [['event_type', '=', 'create']],
    replayed.put_nowait, poll_fallback=False, last_log_id=event['id'] - 1)
replay_status = replayed.get(True, 10)
replay = replayed.get(True, 10)
again.close()
print(json.dumps({
    'url': api._rootDesc.get('websocketUrl'),
    'first': first, 'other_first': other_first, 'event': event, 'leftover': leftover,
    'spectator_saw': spectator_saw, 'collection': coll['uuid'],
    'replay_status': replay_status, 'replay': replay,
}))
"#;

#[test]
fn sdk_subscription_gets_the_create_event_of_a_new_collection() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", SUBSCRIBE], &env);
    let seen: Value = serde_json::from_str(&out).unwrap();
    assert!(
        seen["url"]
            .as_str()
            .unwrap()
            .starts_with("wss://127.0.0.1:"),
        "{seen}"
    );
    assert!(seen["url"].as_str().unwrap().ends_with("/websocket"));
    assert_eq!(seen["first"]["status"], 200, "{seen}");
    assert_eq!(seen["other_first"]["status"], 200, "{seen}");
    let event = &seen["event"];
    assert_eq!(event["object_uuid"], seen["collection"], "{seen}");
    assert_eq!(event["event_type"], "create");
    assert_eq!(event["kind"], "arvados#log");
    assert!(event["id"].as_u64().is_some());
    assert_eq!(
        seen["leftover"],
        serde_json::json!([]),
        "the group is filtered out"
    );
    assert_eq!(
        seen["spectator_saw"],
        serde_json::json!([]),
        "spectator may not read the active user's collection"
    );
    assert_eq!(seen["replay_status"]["status"], 200);
    assert_eq!(seen["replay"]["object_uuid"], seen["collection"], "{seen}");
    assert_eq!(seen["replay"]["id"], event["id"]);
}

const BAD_TOKEN: &str = r#"
import json, ssl, arvados
import websockets.sync.client as ws_client
import websockets.exceptions as ws_exc
url = arvados.api('v1')._rootDesc['websocketUrl']
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
answers = {}
for name, query in [('bad', '?api_token=nosuchtoken'), ('none', '')]:
    try:
        ws_client.connect(url + query, ssl_context=ctx, open_timeout=10).close()
        answers[name] = 'connected'
    except ws_exc.InvalidStatus as e:
        answers[name] = e.response.status_code
print(json.dumps(answers))
"#;

#[test]
fn a_bad_or_missing_token_is_refused_before_the_upgrade() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", BAD_TOKEN], &env);
    let answers: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answers["bad"], 401, "{answers}");
    assert_eq!(answers["none"], 401, "{answers}");
}

/// Opens the websocket as `arvados.events` does (websockets' threaded client, TLS), 600 times
/// over 4 threads, and counts what went wrong. That client reads the socket in a background
/// thread from the moment it connects, while its main thread writes the upgrade request, and
/// CPython's ssl does not make one TLS object safe for that: a post-handshake message from the
/// server (a TLS 1.3 session ticket) racing the request lost one connection in about 130,
/// mostly as a handshake response that never came.
const CONNECT_MANY: &str = r#"
import collections, json, os, ssl, threading
import arvados
import websockets.sync.client as ws_client
url = arvados.api('v1')._rootDesc['websocketUrl'] + '?api_token=' + os.environ['ARVADOS_API_TOKEN']
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
outcomes = collections.Counter()
lock = threading.Lock()
def connect_often():
    for _ in range(150):
        try:
            with ws_client.connect(url, ssl_context=ctx, open_timeout=10) as ws:
                ws.send(json.dumps({'method': 'subscribe', 'filters': []}))
                outcome = 'status %s' % json.loads(ws.recv(timeout=10))['status']
        except Exception as e:
            outcome = '%s: %s' % (type(e).__name__, e)
        with lock:
            outcomes[outcome] += 1
threads = [threading.Thread(target=connect_often) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(outcomes))
"#;

#[test]
fn the_sdk_websocket_client_connects_every_time() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", CONNECT_MANY], &env);
    let outcomes: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(outcomes, serde_json::json!({"status 200": 600}));
}

/// One HTTPS request with Python's ssl; whether the session got a ticket.
const SESSION_TICKET: &str = r#"
import os, socket, ssl
host, port = os.environ['ARVADOS_API_HOST'].rsplit(':', 1)
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection((host, int(port))) as raw, ctx.wrap_socket(raw) as tls:
    tls.sendall(b'GET /arvados/v1/config HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n')
    while tls.recv(65536):
        pass
    print(tls.version(), tls.session.has_ticket)
"#;

#[test]
fn the_api_server_sends_no_tls_session_ticket() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", SESSION_TICKET], &env);
    assert_eq!(out.trim(), "TLSv1.3 False");
}

/// `arv-ws -u UUID -i 1`, the SDK's command-line event watcher: it replays the collection's
/// create and update events, then prints a live one.
const ARV_WS: &str = r#"
import json, os, queue, subprocess, sys, threading
import arvados
api = arvados.api('v1')
coll = api.collections().create(body={'name': 'watched'}).execute()
api.collections().update(uuid=coll['uuid'], body={'collection': {'name': 'renamed'}}).execute()
api.collections().create(body={'name': 'not watched'}).execute()
tool = os.path.join(os.path.dirname(sys.executable), 'arv-ws')
watcher = subprocess.Popen([tool, '-u', coll['uuid'], '-i', '1', '--no-poll'],
    stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED='1'))
lines = queue.Queue()
threading.Thread(target=lambda: [lines.put(l) for l in watcher.stdout], daemon=True).start()
def event():
    try:
        return json.loads(lines.get(True, 20))
    except queue.Empty:
        watcher.kill()
        raise SystemExit('arv-ws printed no event within 20 s')
seen = [event(), event()]
api.collections().update(uuid=coll['uuid'], body={'collection': {'name': 'live'}}).execute()
seen.append(event())
watcher.terminate()
watcher.wait(10)
print(json.dumps([[e['event_type'], e['object_uuid'] == coll['uuid'],
    (e['properties'].get('new_attributes') or {}).get('name')] for e in seen]))
"#;

#[test]
fn arv_ws_replays_and_follows_the_events_of_one_collection() {
    let Some(python) = sdk_python() else { return };
    let stack = Stack::new();
    let env = stack.start_with_auth("active");
    let out = stack.sdk(&python, "python", &["-c", ARV_WS], &env);
    let seen: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        seen,
        serde_json::json!([
            ["create", true, "watched"],
            ["update", true, "renamed"],
            ["update", true, "live"]
        ])
    );
}
