//! `POST /update[/LABEL...]`: reads the Omaha request (at most 1 MiB), records the host,
//! picks the payload, and answers `text/xml`. Also owns the payload URL base: `--urlbase`,
//! else the request's (X-Forwarded-)Host with `--proxy_port` applied.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::omaha::{self, Answer, DayStart, Offer};
use super::paths::{clean_components, percent_decode};
use super::router::{text, ConnInfo, State};

/// Largest update request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;

fn first_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn plausible_host(host: &str) -> bool {
    host.bytes()
        .all(|b| b.is_ascii_graphic() && !b"/\\\"'<>?#@".contains(&b))
}

/// `host[:port]` with its port replaced by `port`.
pub fn with_port(host: &str, port: u16) -> String {
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((addr, _)) = rest.split_once(']') {
            return format!("[{addr}]:{port}");
        }
    }
    match host.rsplit_once(':') {
        Some((name, p)) if !name.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{name}:{port}")
        }
        _ if host.matches(':').count() > 1 => format!("[{host}]:{port}"),
        _ => format!("{host}:{port}"),
    }
}

/// The URL the static directory is reached at, without trailing slash.
pub fn static_base(state: &State, headers: &HeaderMap, conn: &ConnInfo) -> String {
    if let Some(base) = &state.urlbase {
        return base.trim_end_matches('/').to_string();
    }
    let scheme = match first_value(headers, "x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = first_value(headers, "x-forwarded-host")
        .or_else(|| first_value(headers, "host"))
        .filter(|h| plausible_host(h))
        .map(str::to_string)
        .unwrap_or_else(|| conn.local.to_string());
    let host = match state.proxy_port {
        Some(p) => with_port(&host, p),
        None => host,
    };
    let suffix = if state.serve_only {
        "/static/archive"
    } else {
        "/static"
    };
    format!("{scheme}://{host}{suffix}")
}

/// Percent-encodes what a URL path segment cannot hold as is.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn xml(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml; charset=utf-8"),
    );
    r
}

/// The label a `/update/...` path names ("" for none), checked.
pub fn label_of(path: &str) -> Result<String, String> {
    let rest = path.strip_prefix("/update").unwrap_or("");
    let decoded = percent_decode(rest).map_err(|e| format!("bad label: {e}"))?;
    let decoded = decoded.trim_start_matches('/');
    let parts = clean_components(decoded).map_err(|e| format!("bad label: {e}"))?;
    Ok(parts.join("/"))
}

/// Handles one update request.
pub async fn handle(
    state: &State,
    conn: &ConnInfo,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response<Body> {
    let stats = &state.stats;
    let bad = |status: StatusCode, msg: String| {
        stats.bad_requests.fetch_add(1, Ordering::Relaxed);
        text(status, msg)
    };
    let too_big = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    if too_big {
        return bad(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        );
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return bad(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_BODY} bytes"),
            )
        }
        Err(e) => {
            return bad(
                StatusCode::BAD_REQUEST,
                format!("cannot read request body: {e}"),
            )
        }
    };
    let label = match label_of(path) {
        Ok(l) => l,
        Err(e) => return bad(StatusCode::BAD_REQUEST, e),
    };
    let request = match omaha::parse_request(&body) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("bad update request: {e}")),
    };
    let ip = conn.client_ip().to_string();
    let forced = state.hosts.record(&ip, &request);
    if !request.update_check {
        stats.event_acks.fetch_add(1, Ordering::Relaxed);
        return xml(
            StatusCode::OK,
            omaha::render(&request, &Answer::EventAck, DayStart::now()),
        );
    }
    stats.update_checks.fetch_add(1, Ordering::Relaxed);
    let label = forced.unwrap_or(label);
    let answer = match state.selector.select(&request, &label).await {
        Ok(Some(selected)) => match state.digests.get(&selected.file).await {
            Ok(d) => {
                if selected
                    .expected_sha1
                    .as_ref()
                    .is_some_and(|want| *want != d.sha1_b64)
                {
                    state.logs.error(format!(
                        "{}: checksum in the factory config does not match the file; \
                         answering noupdate",
                        selected.file.display()
                    ));
                    Answer::NoUpdate
                } else {
                    let base = static_base(state, headers, conn);
                    let codebase = if selected.url_dir.is_empty() {
                        format!("{base}/")
                    } else {
                        format!("{base}/{}/", encode_path(&selected.url_dir))
                    };
                    Answer::Update(Offer {
                        codebase,
                        name: encode_path(&selected.name),
                        size: d.size,
                        sha1_b64: d.sha1_b64.clone(),
                        sha256_b64: d.sha256_b64.clone(),
                        sha256_hex: d.sha256_hex.clone(),
                        version: selected.version,
                        is_delta: selected.is_delta,
                        critical: state.critical,
                    })
                }
            }
            Err(e) => {
                state.logs.error(format!("cannot hash payload: {e}"));
                Answer::NoUpdate
            }
        },
        Ok(None) => Answer::NoUpdate,
        Err(e) => {
            state
                .logs
                .error(format!("update check from {ip}: no payload: {e}"));
            Answer::NoUpdate
        }
    };
    match answer {
        Answer::Update(_) => stats.updates.fetch_add(1, Ordering::Relaxed),
        _ => stats.noupdates.fetch_add(1, Ordering::Relaxed),
    };
    xml(
        StatusCode::OK,
        omaha::render(&request, &answer, DayStart::now()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_replacement() {
        assert_eq!(with_port("example.com:8080", 90), "example.com:90");
        assert_eq!(with_port("example.com", 90), "example.com:90");
        assert_eq!(with_port("[::1]:8080", 90), "[::1]:90");
        assert_eq!(with_port("::1", 90), "[::1]:90");
    }

    #[test]
    fn labels() {
        assert_eq!(label_of("/update").unwrap(), "");
        assert_eq!(label_of("/update/a/b%20c/").unwrap(), "a/b c");
        assert!(label_of("/update/a/%2e%2e/x").is_err());
    }
}
