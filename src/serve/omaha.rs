//! The Omaha update protocol as devserver speaks it: parsing requests (protocol 2.0, with the
//! `o:` namespace prefix, and 3.0) and rendering responses (update, noupdate, event ack),
//! both with quick-xml. Knows nothing about payloads or HTTP; see `docs/omaha.md`.

use std::borrow::Cow;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer};

/// The application id of Chrome OS, used when a request names none.
pub const CHROMEOS_APPID: &str = "{87efface-864d-49a5-9bb3-4b050a7c227a}";

/// Why a request body is not an update request we can answer (all map to HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum OmahaError {
    /// Nothing to parse.
    #[error("empty request body")]
    Empty,
    /// Not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// Well-formed, but the root is neither `<request>` nor `<gupdate>`.
    #[error("not an Omaha request: root element <{0}>")]
    NotOmaha(String),
    /// The `protocol` attribute is missing or names a version we do not speak.
    #[error("unsupported Omaha protocol {0:?} (expected 2.0 or 3.0)")]
    UnknownProtocol(String),
    /// The request holds no `<app>` element.
    #[error("request has no <app> element")]
    NoApp,
}

/// Protocol version of a request (and of its answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `<o:gupdate protocol="2.0">` (2011-2012 update_engine).
    V2,
    /// `<request protocol="3.0">`.
    V3,
}

/// The first `<event>` of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OmahaEvent {
    /// `eventtype`, when numeric.
    pub event_type: Option<i64>,
    /// `eventresult`, when numeric.
    pub event_result: Option<i64>,
    /// `previousversion`.
    pub previous_version: Option<String>,
}

/// The fields of a request the server uses (from its first `<app>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// Protocol version.
    pub protocol: Protocol,
    /// `appid`, echoed back.
    pub appid: Option<String>,
    /// The client's current version.
    pub version: Option<String>,
    /// The channel (`track`), e.g. `stable-channel`.
    pub track: Option<String>,
    /// The board (absent in CoreOS's client).
    pub board: Option<String>,
    /// The hardware class.
    pub hardware_class: Option<String>,
    /// Whether the client accepts a delta payload.
    pub delta_okay: bool,
    /// Whether an `<updatecheck>` is present (else this is an event report).
    pub update_check: bool,
    /// The first event, if any.
    pub event: Option<OmahaEvent>,
}

fn malformed(e: impl std::fmt::Display) -> OmahaError {
    OmahaError::Malformed(e.to_string())
}

fn attrs(e: &BytesStart<'_>) -> Result<Vec<(String, String)>, OmahaError> {
    let mut out = Vec::new();
    for attr in e.attributes() {
        let attr = attr.map_err(malformed)?;
        let key = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
        let value = attr.unescape_value().map_err(malformed)?.into_owned();
        out.push((key, value));
    }
    Ok(out)
}

fn get(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Parses an update request (protocol 2.0 or 3.0) from a body.
pub fn parse_request(body: &[u8]) -> Result<UpdateRequest, OmahaError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(OmahaError::Empty);
    }
    let mut reader = Reader::from_reader(body);
    reader.config_mut().check_end_names = true;
    let mut depth = 0usize;
    let mut root_seen = false;
    let mut protocol = None;
    // Depth of the first <app> while inside it.
    let mut in_app: Option<usize> = None;
    let mut apps_seen = 0usize;
    let mut request = UpdateRequest {
        protocol: Protocol::V3,
        appid: None,
        version: None,
        track: None,
        board: None,
        hardware_class: None,
        delta_okay: false,
        update_check: false,
        event: None,
    };
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            OmahaError::Malformed(format!("{e} at byte {}", reader.error_position()))
        })?;
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if in_app.is_some_and(|d| d == depth) {
                    in_app = None;
                }
                buf.clear();
                continue;
            }
            Event::Text(t) if depth == 0 => {
                let text = t.unescape().map_err(malformed)?;
                if !text.trim().is_empty() {
                    return Err(OmahaError::Malformed(
                        "text outside the root element".to_string(),
                    ));
                }
                (None, false)
            }
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
            if depth == 0 {
                if root_seen {
                    return Err(OmahaError::Malformed(
                        "more than one root element".to_string(),
                    ));
                }
                root_seen = true;
                if name != "request" && name != "gupdate" {
                    return Err(OmahaError::NotOmaha(name));
                }
                let a = attrs(&e)?;
                protocol = Some(match get(&a, "protocol").as_deref() {
                    Some("3.0") => Protocol::V3,
                    Some("2.0") => Protocol::V2,
                    Some(other) => return Err(OmahaError::UnknownProtocol(other.to_string())),
                    None => return Err(OmahaError::UnknownProtocol(String::new())),
                });
            } else if depth == 1 && name == "app" {
                apps_seen += 1;
                if apps_seen == 1 {
                    let a = attrs(&e)?;
                    request.appid = get(&a, "appid");
                    request.version = get(&a, "version");
                    request.track = get(&a, "track");
                    request.board = get(&a, "board");
                    request.hardware_class = get(&a, "hardware_class");
                    request.delta_okay = get(&a, "delta_okay").as_deref() == Some("true");
                    if !empty {
                        in_app = Some(depth);
                    }
                }
            } else if in_app.is_some_and(|d| depth == d + 1) {
                match name.as_str() {
                    "updatecheck" => request.update_check = true,
                    "event" if request.event.is_none() => {
                        let a = attrs(&e)?;
                        request.event = Some(OmahaEvent {
                            event_type: get(&a, "eventtype").and_then(|v| v.trim().parse().ok()),
                            event_result: get(&a, "eventresult")
                                .and_then(|v| v.trim().parse().ok()),
                            previous_version: get(&a, "previousversion"),
                        });
                    }
                    _ => {}
                }
            }
            if !empty {
                depth += 1;
            }
        }
        buf.clear();
    }
    if depth != 0 {
        return Err(OmahaError::Malformed(
            "document ends inside an element".to_string(),
        ));
    }
    request.protocol = protocol.ok_or_else(|| malformed("no root element"))?;
    if apps_seen == 0 {
        return Err(OmahaError::NoApp);
    }
    Ok(request)
}

/// A payload offered to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Base URL of the payload, ending with `/`.
    pub codebase: String,
    /// File name of the payload (the full URL is codebase + name).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Base64 SHA-1.
    pub sha1_b64: String,
    /// Base64 SHA-256 (empty when unknown).
    pub sha256_b64: String,
    /// Hex SHA-256 (empty when unknown).
    pub sha256_hex: String,
    /// Version announced (`ChromeOSVersion`, manifest version).
    pub version: String,
    /// Whether the payload is a delta.
    pub is_delta: bool,
    /// Whether to mark it critical (`deadline="now"`).
    pub critical: bool,
}

/// What the server answers to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An update is available.
    Update(Offer),
    /// No update.
    NoUpdate,
    /// The request held no `<updatecheck>`: acknowledge its event.
    EventAck,
}

/// Time fields of `<daystart>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayStart {
    /// Seconds since (local) midnight.
    pub elapsed_seconds: u32,
    /// Days since 2007-01-01.
    pub elapsed_days: i64,
}

impl DayStart {
    /// The current day start, in the local time zone as it was when first asked (the
    /// offset is looked up once, not per request).
    pub fn now() -> Self {
        static OFFSET: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
        let offset =
            *OFFSET.get_or_init(|| i64::from(chrono::Local::now().offset().local_minus_utc()));
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            + offset;
        // 2007-01-01 is day 13514 of the Unix epoch.
        DayStart {
            elapsed_seconds: unix.rem_euclid(86_400) as u32,
            elapsed_days: unix.div_euclid(86_400) - 13_514,
        }
    }
}

/// Server name sent in 3.0 responses.
const SERVER: &str = concat!("cibox-devserver/", env!("CARGO_PKG_VERSION"));

type W = Writer<Vec<u8>>;

fn empty(w: &mut W, name: &str, attributes: &[(&str, &str)]) {
    let mut e = BytesStart::new(name);
    for (k, v) in attributes {
        e.push_attribute((*k, *v));
    }
    // Writing into a Vec cannot fail.
    let _ = w.write_event(Event::Empty(e));
}

fn start(w: &mut W, name: &str, attributes: &[(&str, &str)]) {
    let mut e = BytesStart::new(name);
    for (k, v) in attributes {
        e.push_attribute((*k, *v));
    }
    let _ = w.write_event(Event::Start(e));
}

fn end(w: &mut W, name: &str) {
    let _ = w.write_event(Event::End(BytesEnd::new(name)));
}

/// Renders the answer to a request: the document, ready to send as `text/xml`.
pub fn render(request: &UpdateRequest, answer: &Answer, day: DayStart) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::with_capacity(1536), b' ', 2);
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let appid: Cow<'_, str> = match &request.appid {
        Some(id) => Cow::Borrowed(id),
        None => Cow::Borrowed(CHROMEOS_APPID),
    };
    let (seconds, days) = (
        day.elapsed_seconds.to_string(),
        day.elapsed_days.to_string(),
    );
    let root = match request.protocol {
        Protocol::V3 => {
            start(
                &mut w,
                "response",
                &[("protocol", "3.0"), ("server", SERVER)],
            );
            empty(
                &mut w,
                "daystart",
                &[("elapsed_seconds", &seconds), ("elapsed_days", &days)],
            );
            "response"
        }
        Protocol::V2 => {
            start(
                &mut w,
                "gupdate",
                &[
                    ("xmlns", "http://www.google.com/update2/response"),
                    ("protocol", "2.0"),
                ],
            );
            empty(&mut w, "daystart", &[("elapsed_seconds", &seconds)]);
            "gupdate"
        }
    };
    start(&mut w, "app", &[("appid", &appid), ("status", "ok")]);
    empty(&mut w, "ping", &[("status", "ok")]);
    if request.event.is_some() || matches!(answer, Answer::EventAck) {
        empty(&mut w, "event", &[("status", "ok")]);
    }
    match answer {
        Answer::EventAck => {}
        Answer::NoUpdate => empty(&mut w, "updatecheck", &[("status", "noupdate")]),
        Answer::Update(offer) => match request.protocol {
            Protocol::V3 => render_v3_update(&mut w, offer),
            Protocol::V2 => render_v2_update(&mut w, offer),
        },
    }
    end(&mut w, "app");
    end(&mut w, root);
    let mut out = w.into_inner();
    out.push(b'\n');
    out
}

fn bool_str(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn render_v3_update(w: &mut W, offer: &Offer) {
    let size = offer.size.to_string();
    start(w, "updatecheck", &[("status", "ok")]);
    start(w, "urls", &[]);
    empty(w, "url", &[("codebase", &offer.codebase)]);
    end(w, "urls");
    start(w, "manifest", &[("version", &offer.version)]);
    start(w, "packages", &[]);
    let mut package = vec![
        ("name", offer.name.as_str()),
        ("size", size.as_str()),
        ("required", "true"),
        ("hash", offer.sha1_b64.as_str()),
    ];
    if !offer.sha256_hex.is_empty() {
        package.push(("hash_sha256", offer.sha256_hex.as_str()));
    }
    empty(w, "package", &package);
    end(w, "packages");
    start(w, "actions", &[]);
    empty(w, "action", &[("event", "update"), ("run", &offer.name)]);
    let mut post = vec![
        ("event", "postinstall"),
        ("ChromeOSVersion", offer.version.as_str()),
    ];
    if !offer.sha256_b64.is_empty() {
        post.push(("sha256", offer.sha256_b64.as_str()));
    }
    post.push(("needsadmin", "false"));
    post.push(("IsDeltaPayload", bool_str(offer.is_delta)));
    if offer.critical {
        post.push(("deadline", "now"));
    }
    empty(w, "action", &post);
    end(w, "actions");
    end(w, "manifest");
    end(w, "updatecheck");
}

fn render_v2_update(w: &mut W, offer: &Offer) {
    let size = offer.size.to_string();
    let url = format!("{}{}", offer.codebase, offer.name);
    let mut a = vec![
        ("codebase", url.as_str()),
        ("hash", offer.sha1_b64.as_str()),
    ];
    if !offer.sha256_b64.is_empty() {
        a.push(("sha256", offer.sha256_b64.as_str()));
    }
    a.extend([
        ("size", size.as_str()),
        ("needsadmin", "false"),
        ("IsDelta", bool_str(offer.is_delta)),
        ("status", "ok"),
        ("ChromeOSVersion", offer.version.as_str()),
    ]);
    if offer.critical {
        a.push(("deadline", "now"));
    }
    empty(w, "updatecheck", &a);
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<request protocol="3.0" updater="ChromeOSUpdateEngine" ismachine="1">
  <os version="Indy" platform="Chrome OS" sp="1.0.0_x86_64"/>
  <app appid="{DEADBEEF-0000-0000-0000-000000000001}" version="1.0.0" track="stable-channel"
       board="amd64-generic" hardware_class="FAKE-HWID" delta_okay="false" lang="en-US">
    <ping active="1" a="1" r="1"/>
    <updatecheck/>
    <event eventtype="3" eventresult="2" previousversion="0.9.0"/>
  </app>
</request>"#;

    const V2: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<o:gupdate xmlns:o="http://www.google.com/update2/request" protocol="2.0" version="ChromeOSUpdateEngine-0.1.0.0">
  <o:os version="Indy" platform="Chrome OS" sp="0.9.0_x86"></o:os>
  <o:app appid="{87efface-864d-49a5-9bb3-4b050a7c227a}" version="0.9.0" track="dev-channel" board="x86-generic" delta_okay="true">
    <o:ping active="0"></o:ping>
    <o:updatecheck></o:updatecheck>
  </o:app>
</o:gupdate>"#;

    #[test]
    fn parses_3_0() {
        let r = parse_request(V3.as_bytes()).unwrap();
        assert_eq!(r.protocol, Protocol::V3);
        assert_eq!(
            r.appid.as_deref(),
            Some("{DEADBEEF-0000-0000-0000-000000000001}")
        );
        assert_eq!(r.board.as_deref(), Some("amd64-generic"));
        assert_eq!(r.track.as_deref(), Some("stable-channel"));
        assert!(r.update_check);
        assert!(!r.delta_okay);
        let ev = r.event.unwrap();
        assert_eq!(ev.event_type, Some(3));
        assert_eq!(ev.event_result, Some(2));
        assert_eq!(ev.previous_version.as_deref(), Some("0.9.0"));
    }

    #[test]
    fn parses_2_0_with_prefix() {
        let r = parse_request(V2.as_bytes()).unwrap();
        assert_eq!(r.protocol, Protocol::V2);
        assert_eq!(r.version.as_deref(), Some("0.9.0"));
        assert!(r.update_check && r.delta_okay && r.event.is_none());
    }

    #[test]
    fn refuses_bad_input() {
        assert!(matches!(parse_request(b"  "), Err(OmahaError::Empty)));
        assert!(matches!(
            parse_request(b"<request protocol=\"3.0\"><app>"),
            Err(OmahaError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(b"<request protocol=\"3.0\"></app></request>"),
            Err(OmahaError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(b"<request protocol=\"4.0\"><app/></request>"),
            Err(OmahaError::UnknownProtocol(p)) if p == "4.0"
        ));
        assert!(matches!(
            parse_request(b"<html/>"),
            Err(OmahaError::NotOmaha(_))
        ));
        assert!(matches!(
            parse_request(b"<request protocol=\"3.0\"/>"),
            Err(OmahaError::NoApp)
        ));
        assert!(matches!(
            parse_request(b"<request protocol=\"3.0\"><app appid=\"\xff\"/></request>"),
            Err(OmahaError::Malformed(_))
        ));
        assert!(matches!(
            parse_request(b"<request protocol=\"3.0\"><app appid=\"&bogus;\"/></request>"),
            Err(OmahaError::Malformed(_))
        ));
        // An updatecheck outside <app> does not count.
        let r = parse_request(b"<request protocol=\"3.0\"><app/><updatecheck/></request>").unwrap();
        assert!(!r.update_check);
    }

    #[test]
    fn renders_escaped_attributes_and_critical() {
        let mut req = parse_request(V3.as_bytes()).unwrap();
        req.appid = Some("a\"<&>".to_string());
        let offer = Offer {
            codebase: "http://h/static/".into(),
            name: "update.gz".into(),
            size: 36,
            sha1_b64: "kGcOinJ0vA8vdYX53FN0F5BdwfY=".into(),
            sha256_b64: "x".into(),
            sha256_hex: "y".into(),
            version: "9999.0.0".into(),
            is_delta: false,
            critical: true,
        };
        let day = DayStart {
            elapsed_seconds: 1,
            elapsed_days: 2,
        };
        let text = String::from_utf8(render(&req, &Answer::Update(offer), day)).unwrap();
        assert!(text.contains(r#"appid="a&quot;&lt;&amp;&gt;""#), "{text}");
        assert!(text.contains(r#"deadline="now""#), "{text}");
        assert!(text.contains(r#"<event status="ok"/>"#), "{text}");
    }
}
