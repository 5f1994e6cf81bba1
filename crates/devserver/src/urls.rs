//! The URLs this server hands out (payload codebases, xbuddy answers): `--urlbase`, else the
//! request's (X-Forwarded-)Proto and (X-Forwarded-)Host, else our own address, with
//! `--proxy_port` applied; and the percent-encoding of the paths put into them.

use axum::http::HeaderMap;
use cibox_runtime::httpd::Peer;

use crate::state::State;

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

/// `scheme://host[:port]` of this server as the client reached it: the request's
/// (X-Forwarded-)Host, else our own address, with `--proxy_port` applied.
pub fn site_base(state: &State, headers: &HeaderMap, peer: &Peer) -> String {
    let scheme = match first_value(headers, "x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    let host = first_value(headers, "x-forwarded-host")
        .or_else(|| first_value(headers, "host"))
        .filter(|h| plausible_host(h))
        .map(str::to_string)
        .unwrap_or_else(|| peer.local.to_string());
    let host = match state.proxy_port {
        Some(p) => with_port(&host, p),
        None => host,
    };
    format!("{scheme}://{host}")
}

/// The URL the static directory is reached at, without trailing slash.
pub fn static_base(state: &State, headers: &HeaderMap, peer: &Peer) -> String {
    if let Some(base) = &state.urlbase {
        return base.trim_end_matches('/').to_string();
    }
    let suffix = if state.serve_only {
        "/static/archive"
    } else {
        "/static"
    };
    format!("{}{suffix}", site_base(state, headers, peer))
}

/// Percent-encodes what a URL path segment cannot hold as is.
pub fn encode_path(path: &str) -> String {
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
}
