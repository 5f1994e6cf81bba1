//! The fleet page: `GET /hosts` (HTML that refreshes itself every 2 s, laid out as cards
//! so it reads on a phone) and `GET /api/hosts` (JSON it reads: every device seen, newest
//! first, with its board, version per app, last check, last event and forced next update).
//! Client-supplied text is only ever inserted as text, never as markup.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response};
use serde_json::{json, Value};

use super::hosts::Hosts;

const PAGE: &str = include_str!("assets/fleet.html");

/// `GET /hosts`.
pub fn page() -> Response<Body> {
    let mut r = Response::new(Body::from(PAGE));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    r
}

/// Hosts `/api/hosts` lists unless `?limit=` asks for more (up to every host kept).
pub const DEFAULT_LIMIT: usize = 1000;

/// `GET /api/hosts[?limit=N]`: the `limit` most recently seen hosts.
pub fn hosts_json(hosts: &Hosts, limit: usize) -> Value {
    Value::Array(
        hosts
            .all()
            .into_iter()
            .take(limit)
            .map(|(ip, info)| {
                let mut v = serde_json::to_value(info).unwrap_or_else(|_| json!({}));
                if let Value::Object(map) = &mut v {
                    map.insert("ip".into(), Value::String(ip));
                }
                v
            })
            .collect(),
    )
}
