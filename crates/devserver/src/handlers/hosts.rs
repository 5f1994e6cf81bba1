//! The host API: `/api/hosts` (the fleet, most recently seen first), `/api/hostinfo`,
//! `/api/hostlog` and `/api/setnextupdate` of one host, named by the path tail or `?ip=`
//! ([`HostKey`]).

use std::collections::HashMap;
use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, Query, State as AxumState};
use axum::http::request::Parts;
use axum::http::{StatusCode, Uri};
use cibox_runtime::response::{json, text, HttpError, HttpResult};

use crate::fleet;
use crate::paths::percent_decode;
use crate::state::SharedState;
use crate::update::{check_label, MAX_LABEL};

/// The host an `/api/NAME[/HOST]` request names: the path tail, else `?ip=`; an address in
/// canonical form, or a host name. None usable: 400 `No ip given.`
pub struct HostKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for HostKey {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<HostKey, HttpError> {
        host_key(&parts.uri)
            .map(HostKey)
            .ok_or_else(|| HttpError::bad_request("No ip given."))
    }
}

fn host_key(uri: &Uri) -> Option<String> {
    let tail = uri
        .path()
        .strip_prefix("/api/")
        .and_then(|rest| rest.split_once('/'))
        .map_or("", |(_, tail)| tail);
    let tail = percent_decode(tail.trim_matches('/')).ok()?;
    let ip = if tail.is_empty() {
        let Query(query) = Query::<HashMap<String, String>>::try_from_uri(uri).ok()?;
        query.get("ip")?.trim().to_string()
    } else {
        tail
    };
    // A host key is an address or a host name: bounded, no odd characters.
    if ip.is_empty()
        || ip.len() > 255
        || !ip
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:-_%[]".contains(&b))
    {
        return None;
    }
    Some(match ip.parse::<IpAddr>() {
        Ok(addr) => addr.to_canonical().to_string(),
        Err(_) => ip,
    })
}

/// `GET /api/hosts[?limit=N]`.
pub async fn hosts_list(
    AxumState(state): SharedState,
    Query(query): Query<HashMap<String, String>>,
) -> HttpResult {
    let limit = match query.get("limit") {
        None => fleet::DEFAULT_LIMIT,
        Some(limit) => limit
            .parse::<usize>()
            .map_err(|_| HttpError::bad_request("limit= must be a number"))?,
    };
    Ok(json(
        StatusCode::OK,
        &fleet::hosts_json(&state.hosts, limit),
    ))
}

/// `GET /api/hostinfo[/HOST]`.
pub async fn hostinfo(AxumState(state): SharedState, HostKey(ip): HostKey) -> HttpResult {
    Ok(json(StatusCode::OK, &state.hosts.info_json(&ip)))
}

/// `GET /api/hostlog[/HOST]`.
pub async fn hostlog(AxumState(state): SharedState, HostKey(ip): HostKey) -> HttpResult {
    Ok(json(StatusCode::OK, &state.hosts.log_json(&ip)))
}

/// `POST /api/setnextupdate[/HOST]` with a label as the body: the host's next update check
/// is answered from that label.
pub async fn setnextupdate(
    AxumState(state): SharedState,
    HostKey(ip): HostKey,
    body: Result<Bytes, BytesRejection>,
) -> HttpResult {
    let body = body.map_err(|_| HttpError::bad_request("Cannot read the label."))?;
    if body.len() > MAX_LABEL + 64 {
        return Err(HttpError::bad_request(format!(
            "Invalid label: longer than {MAX_LABEL} bytes."
        )));
    }
    let label = std::str::from_utf8(&body)
        .map_err(|_| HttpError::bad_request("Invalid label: not UTF-8."))?
        .trim();
    if label.is_empty() {
        return Err(HttpError::bad_request("No label provided."));
    }
    let clean =
        check_label(label).map_err(|e| HttpError::bad_request(format!("Invalid label: {e}.")))?;
    if clean.is_empty() {
        return Err(HttpError::bad_request("No label provided."));
    }
    state.hosts.set_next_update(&ip, &clean);
    Ok(text(StatusCode::OK, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uri: &str) -> Option<String> {
        host_key(&uri.parse().unwrap())
    }

    #[test]
    fn host_keys_from_path_or_query() {
        assert_eq!(key("/api/hostinfo/10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(
            key("/api/hostlog/::ffff:10.0.0.1/").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(
            key("/api/hostinfo?ip=%20dut-1%20").as_deref(),
            Some("dut-1")
        );
        assert_eq!(
            key("/api/setnextupdate/dut-2?ip=other").as_deref(),
            Some("dut-2")
        );
        assert_eq!(key("/api/hostinfo"), None);
        assert_eq!(key("/api/hostinfo/"), None);
        assert_eq!(key("/api/hostinfo/a%zz"), None);
        assert_eq!(key("/api/hostinfo/a%2Fb"), None);
        assert_eq!(key(&format!("/api/hostinfo/{}", "a".repeat(256))), None);
    }
}
