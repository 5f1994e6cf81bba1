//! `POST /update[/LABEL...]` (and go-omaha's `/v1/update/`): reads the Omaha request (at most
//! 1 MiB, parsed off the async workers when large), records the host, answers every app
//! (payloads per appid from metadata, the platform from the selection of [`crate::payload`])
//! and answers `text/xml`. Owns the update label (the path after `/update/`, checked to stay
//! under the static root); the URLs put into answers come from [`crate::urls`].

use std::sync::atomic::Ordering;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State as AxumState};
use axum::http::{header, HeaderMap, Response, StatusCode, Uri};
use cibox_runtime::httpd::Peer;
use cibox_runtime::response::{raw, HttpError, HttpResult};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use std::collections::HashSet;
use std::path::PathBuf;

use crate::metadata::{Choice, PayloadMeta};
use crate::omaha::{self, Answer, AppAnswer, AppRequest, DayStart, Offer, Steering, UpdateRequest};
use crate::paths::{clean_components, percent_decode};
use crate::state::{SharedState, State};
use crate::urls::{encode_path, site_base, static_base};

/// Largest update request body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// An Omaha answer: the XML exactly as rendered.
fn xml(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    raw(status, "text/xml; charset=utf-8", body)
}

/// Longest label accepted (a path under the static root, decoded).
pub const MAX_LABEL: usize = 512;

/// Bodies larger than this are parsed on the blocking pool, so that a large request never
/// holds an async worker.
const PARSE_INLINE: usize = 64 * 1024;

/// Checks a decoded label: a relative path under the static root of at most [`MAX_LABEL`]
/// bytes, without `..`, an absolute path, a backslash or control characters; it need not
/// exist. Returns it cleaned (`a//b/` -> `a/b`).
pub fn check_label(decoded: &str) -> Result<String, String> {
    if decoded.len() > MAX_LABEL {
        return Err(format!("bad label: longer than {MAX_LABEL} bytes"));
    }
    if let Some(c) = decoded.chars().find(|c| c.is_control() || *c == '\\') {
        return Err(format!("bad label: character {c:?} not allowed"));
    }
    let decoded = decoded.trim_start_matches('/');
    let parts = clean_components(decoded).map_err(|e| format!("bad label: {e}"))?;
    Ok(parts.join("/"))
}

/// The label a `/update/...` path names ("" for none), checked.
pub fn label_of(path: &str) -> Result<String, String> {
    let rest = path
        .strip_prefix("/update")
        .or_else(|| path.strip_prefix("/v1/update"))
        .unwrap_or("");
    let decoded = percent_decode(rest).map_err(|e| format!("bad label: {e}"))?;
    check_label(&decoded)
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, HttpError> {
    let too_big = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY as u64);
    let over = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {MAX_BODY} bytes"),
        )
    };
    if too_big {
        return Err(over());
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(over()),
        Err(e) => Err(HttpError::bad_request(format!(
            "cannot read request body: {e}"
        ))),
    }
}

/// Parses the body, off the async workers when it is large.
async fn parse(body: Bytes) -> Result<UpdateRequest, String> {
    let result = if body.len() <= PARSE_INLINE {
        omaha::parse_request(&body)
    } else {
        tokio::task::spawn_blocking(move || omaha::parse_request(&body))
            .await
            .map_err(|e| format!("parser failed: {e}"))?
    };
    result.map_err(|e| format!("bad update request: {e}"))
}

/// What one request needs to build answers.
struct Ctx<'a> {
    state: &'a State,
    headers: &'a HeaderMap,
    peer: &'a Peer,
    ip: String,
}

impl Ctx<'_> {
    /// An offer for a file, hashed (cached); `None` (logged) when it cannot be hashed.
    async fn offer(
        &self,
        codebase: String,
        name: &str,
        file: &std::path::Path,
        version: String,
        is_delta: bool,
    ) -> Option<Offer> {
        match self.state.digests.get(file).await {
            Ok(d) => Some(Offer {
                codebase,
                name: encode_path(name),
                size: d.size,
                sha1_b64: d.sha1_b64.clone(),
                sha256_b64: d.sha256_b64.clone(),
                sha256_hex: d.sha256_hex.clone(),
                version,
                is_delta,
                metadata_size: None,
                metadata_signature: None,
                public_key: None,
            }),
            Err(e) => {
                self.state
                    .logs
                    .error(format!("cannot hash payload {}: {e}", file.display()));
                None
            }
        }
    }

    /// The platform app's answer, from today's selection (factory config, --payload, ...).
    async fn platform(&self, app: &AppRequest, label: &str) -> Answer {
        let state = self.state;
        let selected = match state.selector.select(app, label).await {
            Ok(Some(selected)) => selected,
            Ok(None) => return Answer::NoUpdate,
            Err(e) => {
                state
                    .logs
                    .error(format!("update check from {}: no payload: {e}", self.ip));
                return Answer::NoUpdate;
            }
        };
        let base = static_base(state, self.headers, self.peer);
        let codebase = if selected.url_dir.is_empty() {
            format!("{base}/")
        } else {
            format!("{base}/{}/", encode_path(&selected.url_dir))
        };
        let Some(offer) = self
            .offer(
                codebase,
                &selected.name,
                &selected.file,
                selected.version.clone(),
                selected.is_delta,
            )
            .await
        else {
            return Answer::NoUpdate;
        };
        if selected
            .expected_sha1
            .as_ref()
            .is_some_and(|want| *want != offer.sha1_b64)
        {
            state.logs.error(format!(
                "{}: checksum in the factory config does not match the file; answering noupdate",
                selected.file.display()
            ));
            return Answer::NoUpdate;
        }
        Answer::Update(Box::new(offer))
    }

    /// An answer from a payload described by metadata, served under `/url_prefix/`, or at
    /// `address` (nebraska's payloads address) when one is set.
    async fn described(
        &self,
        url_prefix: &str,
        address: Option<&str>,
        meta: &PayloadMeta,
    ) -> Answer {
        let (dir, name) = match meta.url_path.rsplit_once('/') {
            Some((d, n)) => (format!("{}/", encode_path(d)), n),
            None => (String::new(), meta.url_path.as_str()),
        };
        let codebase = match address {
            Some(a) => format!("{}/{dir}", a.trim_end_matches('/')),
            None => format!(
                "{}/{}/{dir}",
                site_base(self.state, self.headers, self.peer),
                url_prefix
            ),
        };
        let offer = if meta.file.is_file() {
            self.offer(
                codebase,
                name,
                &meta.file,
                meta.target_version.clone(),
                meta.is_delta,
            )
            .await
        } else if let (true, Some(size), Some(hex), Some(b64)) = (
            address.is_some(),
            meta.size,
            meta.sha256_hex.as_ref(),
            meta.sha256_b64.as_ref(),
        ) {
            // Served elsewhere (nebraska's set-up): the metadata's size and hash, as nebraska
            // sends them (no SHA-1).
            Some(Offer {
                codebase,
                name: encode_path(name),
                size,
                sha1_b64: String::new(),
                sha256_b64: b64.clone(),
                sha256_hex: hex.clone(),
                version: meta.target_version.clone(),
                is_delta: meta.is_delta,
                ..Offer::default()
            })
        } else {
            // A payload described but missing would be offered at a URL that answers 404,
            // and without the SHA-1 the answer carries: no update, and the reason in the log.
            self.state.logs.error(format!(
                "payload {} is described by its metadata but missing: no update offered",
                meta.file.display()
            ));
            None
        };
        match offer {
            Some(offer) => Answer::Update(Box::new(Offer {
                metadata_size: meta.metadata_size,
                metadata_signature: Some(meta.metadata_signature.clone()),
                public_key: meta.public_key.clone(),
                ..offer
            })),
            None => Answer::NoUpdate,
        }
    }
}

/// `POST /update[/LABEL]`: answers every app of one update request; a request refused as bad
/// input is counted in [`crate::state::Stats::bad_requests`].
pub async fn handle(
    AxumState(state): SharedState,
    ConnectInfo(peer): ConnectInfo<Peer>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> HttpResult {
    let request = async {
        let overlay = query_steering(uri.query().unwrap_or("")).map_err(HttpError::bad_request)?;
        let request = read_request(uri.path(), &headers, body).await?;
        Ok::<_, HttpError>((overlay, request))
    }
    .await
    .inspect_err(|_| {
        state.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
    })?;
    let (overlay, request) = request;
    Ok(answer(&state, &peer, &headers, &overlay, request).await)
}

/// The steering flags nebraska takes from the query of `/update?...` (its runtime flags:
/// `critical_update`, `disable_payload_backoff`, `no_update`, `full_payload` true when
/// `True`, as nebraska reads them; `eol_date`, `failures_per_url`, `num_urls` numbers).
/// Empty values are ignored, as nebraska ignores them; other keys too.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QuerySteering {
    critical_update: Option<bool>,
    disable_payload_backoff: Option<bool>,
    no_update: Option<bool>,
    full_payload: Option<bool>,
    eol_date: Option<i64>,
    failures_per_url: Option<u32>,
    num_urls: Option<u32>,
}

impl QuerySteering {
    /// `steering` with these flags applied.
    fn apply(&self, mut steering: Steering) -> Steering {
        let s = &mut steering;
        s.critical_update = self.critical_update.unwrap_or(s.critical_update);
        s.disable_payload_backoff = self
            .disable_payload_backoff
            .unwrap_or(s.disable_payload_backoff);
        s.no_update = self.no_update.unwrap_or(s.no_update);
        s.full_payload = self.full_payload.or(s.full_payload);
        s.eol_date = self.eol_date.or(s.eol_date);
        s.failures_per_url = self.failures_per_url.or(s.failures_per_url);
        s.num_urls = self.num_urls.unwrap_or(s.num_urls);
        steering
    }
}

/// Reads the steering flags of an update URL's query; a number that is not one is an error
/// naming the flag.
pub fn query_steering(query: &str) -> Result<QuerySteering, String> {
    let mut out = QuerySteering::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode(&s.replace('+', " "));
        let (Ok(key), Ok(value)) = (decode(key), decode(value)) else {
            return Err(format!("bad query: {pair:?} is not percent-encoded text"));
        };
        // The first value of a key counts, as nebraska takes it.
        if value.is_empty() {
            continue;
        }
        let flag = || Some(value == "True");
        fn number<T: std::str::FromStr>(key: &str, value: &str) -> Result<Option<T>, String> {
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("bad query: {key}={value:?} is not a number"))
        }
        match key.as_str() {
            "critical_update" if out.critical_update.is_none() => out.critical_update = flag(),
            "disable_payload_backoff" if out.disable_payload_backoff.is_none() => {
                out.disable_payload_backoff = flag()
            }
            "no_update" if out.no_update.is_none() => out.no_update = flag(),
            "full_payload" if out.full_payload.is_none() => out.full_payload = flag(),
            "eol_date" if out.eol_date.is_none() => out.eol_date = number(&key, &value)?,
            "failures_per_url" if out.failures_per_url.is_none() => {
                out.failures_per_url = number(&key, &value)?
            }
            "num_urls" if out.num_urls.is_none() => out.num_urls = number(&key, &value)?,
            _ => {}
        }
    }
    Ok(out)
}

/// The steering one update request is answered with: the configured one, counted down by
/// `return_noupdate_starting` (nebraska's counter: a request with an update check before
/// the Nth counts it down, the Nth switches `no_update` on for good), then the flags of the
/// request's query, which steer this answer only.
fn steering_for(state: &State, request: &UpdateRequest, overlay: &QuerySteering) -> Steering {
    let steering = if request.has_update_check() {
        let mut current = state.steering.write().unwrap_or_else(|e| e.into_inner());
        match current.return_noupdate_starting {
            0 => {}
            1 => current.no_update = true,
            _ => current.return_noupdate_starting -= 1,
        }
        current.clone()
    } else {
        state.steering()
    };
    overlay.apply(steering)
}

/// The label and the Omaha request of an update request, or why it is refused.
async fn read_request(
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<(String, UpdateRequest), HttpError> {
    let body = read_body(headers, body).await?;
    let label = label_of(path).map_err(HttpError::bad_request)?;
    let request = parse(body).await.map_err(HttpError::bad_request)?;
    Ok((label, request))
}

/// The answer to a well-formed update request.
async fn answer(
    state: &State,
    peer: &Peer,
    headers: &HeaderMap,
    overlay: &QuerySteering,
    (label, request): (String, UpdateRequest),
) -> Response<Body> {
    let stats = &state.stats;
    let flavor = state
        .flavor
        .unwrap_or_else(|| omaha::Flavor::detect(&request));
    let ctx = Ctx {
        state,
        headers,
        peer,
        ip: peer.client_ip().to_string(),
    };
    let forced = state.hosts.record(&ctx.ip, &request);
    for event in request.apps.iter().flat_map(|a| &a.events) {
        state.metrics.event(event.event_result);
    }
    if !request.has_update_check() {
        stats.event_acks.fetch_add(1, Ordering::Relaxed);
    }
    let steering = steering_for(state, &request, overlay);
    let label = forced.unwrap_or(label);
    let install = request.is_install();
    let no_update = steering.no_update || steering.invalidate_last_update;
    // Files offered so far: one payload never answers two apps of a request.
    let mut used: HashSet<PathBuf> = HashSet::new();
    let mut answers: Vec<AppAnswer> = Vec::with_capacity(request.apps.len());
    for (i, app) in request.apps.iter().enumerate() {
        if !app.update_check {
            // An app that asks nothing gets no <updatecheck> (in an install, the platform
            // app's own status says noupdate, as nebraska answers it).
            answers.push(None);
            continue;
        }
        stats.update_checks.fetch_add(1, Ordering::Relaxed);
        // Installs look in --install-metadata first, as nebraska does.
        let indexes = if install {
            [&state.install_payloads, &state.payloads]
        } else {
            [&state.payloads, &None]
        };
        let described = indexes.into_iter().flatten().find(|p| {
            app.appid
                .as_deref()
                .is_some_and(|id| p.knows(id, steering.ignore_appid))
        });
        let answer = if no_update {
            Answer::NoUpdate
        } else if let Some(index) = described {
            let how = Choice {
                install,
                full_payload: steering.full_payload,
                ignore_appid: steering.ignore_appid,
                used: Some(&used),
            };
            match index.choose(app, &how) {
                Some(meta) => {
                    used.insert(meta.file.clone());
                    let install_index = index.url_prefix == "install-payloads";
                    let address = if install_index {
                        steering
                            .install_payloads_address
                            .as_deref()
                            .or(steering.update_payloads_address.as_deref())
                    } else {
                        steering.update_payloads_address.as_deref()
                    };
                    ctx.described(index.url_prefix, address, meta).await
                }
                None => Answer::NoUpdate,
            }
        } else if i == 0 {
            ctx.platform(app, &label).await
        } else {
            // An app nothing is known about (an unknown DLC): noupdate.
            Answer::NoUpdate
        };
        match answer {
            Answer::Update(_) => stats.updates.fetch_add(1, Ordering::Relaxed),
            Answer::NoUpdate => stats.noupdates.fetch_add(1, Ordering::Relaxed),
        };
        state.metrics.check(matches!(answer, Answer::Update(_)));
        answers.push(Some(answer));
    }
    xml(
        StatusCode::OK,
        omaha::render(&request, &answers, flavor, &steering, DayStart::now()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(label_of("/update").unwrap(), "");
        assert_eq!(label_of("/update/a/b%20c/").unwrap(), "a/b c");
        assert!(label_of("/update/a/%2e%2e/x").is_err());
        assert_eq!(label_of("/v1/update/").unwrap(), "");
        assert!(label_of("/update/a%0Ab").is_err());
        assert!(label_of(&format!("/update/{}", "a".repeat(MAX_LABEL + 1))).is_err());
        assert_eq!(
            check_label("eve-release/R90-13816.64.0").unwrap(),
            "eve-release/R90-13816.64.0"
        );
        assert!(check_label("a\\b").is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig {
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Whatever a client sends as a label, an accepted one stays under the root: no
            /// absolute path, no `..`, no control character, bounded length.
            #[test]
            fn accepted_labels_stay_under_the_root(
                parts in proptest::collection::vec(
                    prop_oneof![
                        Just("..".to_string()), Just(".".to_string()), Just(String::new()),
                        Just("a\\b".to_string()), Just("x\ny".to_string()), Just("%2e%2e".to_string()),
                        proptest::collection::vec(
                            proptest::sample::select(vec!['a', 'Z', '0', ' ', '.', '_', '~', '-']),
                            1..12,
                        )
                        .prop_map(|v| v.into_iter().collect::<String>()),
                    ],
                    0..8,
                ),
                leading in any::<bool>(),
            ) {
                let label = format!("{}{}", if leading { "/" } else { "" }, parts.join("/"));
                if let Ok(clean) = check_label(&label) {
                    prop_assert!(clean.len() <= MAX_LABEL);
                    prop_assert!(!clean.starts_with('/'));
                    prop_assert!(
                        clean.is_empty()
                            || clean.split('/').all(|c| c != ".." && c != "." && !c.is_empty())
                    );
                    prop_assert!(!clean.chars().any(|c| c.is_control() || c == '\\'));
                    let root = std::path::Path::new("/srv/static");
                    prop_assert!(root.join(&clean).starts_with(root));
                } else {
                    prop_assert!(parts.iter().any(|p| p == ".." || p.contains(['\\', '\n'])));
                }
            }
        }
    }
}
