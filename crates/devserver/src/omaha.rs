//! The Omaha update protocol: parsing requests (protocol 2.0, with the `o:` namespace prefix,
//! and 3.0; every `<app>` of a request) and rendering responses, one `<app>` answer per
//! requested app, in the format of the client family that asked ([`Flavor`]). Both with
//! quick-xml. Knows nothing about payloads or HTTP.
//!
//! Parsing is linear in the size of the body and bounded: at most [`MAX_APPS`] apps,
//! [`MAX_ATTRIBUTES`] attributes per element, [`MAX_EVENTS`] events per app and
//! [`MAX_DEPTH`] nested elements; past a bound the request is refused with the reason.

use std::collections::HashSet;

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer};

/// The application id of Chrome OS, used when a request names none.
pub const CHROMEOS_APPID: &str = "{87efface-864d-49a5-9bb3-4b050a7c227a}";

/// Most `<app>` elements one request may hold (the platform, its DLCs and miniOS fit).
pub const MAX_APPS: usize = 256;
/// Most attributes one element may carry (update_engine sends about 20 on `<app>`).
pub const MAX_ATTRIBUTES: usize = 128;
/// Most `<event>` elements one app may report in a request.
pub const MAX_EVENTS: usize = 32;
/// Deepest element nesting accepted (real requests nest 3 deep).
pub const MAX_DEPTH: usize = 32;

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
    /// More apps than [`MAX_APPS`].
    #[error("more than {MAX_APPS} <app> elements in one request")]
    TooManyApps,
    /// An element with more attributes than [`MAX_ATTRIBUTES`].
    #[error("<{0}> has more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes(String),
    /// An app with more events than [`MAX_EVENTS`].
    #[error("an <app> reports more than {MAX_EVENTS} events")]
    TooManyEvents,
    /// Elements nested deeper than [`MAX_DEPTH`].
    #[error("elements nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Protocol version of a request (and of its answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `<o:gupdate protocol="2.0">` (2011-2012 update_engine).
    V2,
    /// `<request protocol="3.0">`.
    V3,
}

/// The client family a response is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Flavor {
    /// ChromiumOS update_engine (and nebraska's answers): `hash_sha256` in hex, `fp`,
    /// metadata size and signature, `IsDeltaPayload`.
    #[default]
    ChromeOs,
    /// CoreOS and Flatcar (go-omaha, Flatcar's update_engine): every hash in base64,
    /// `IsDelta`, `DisablePayloadBackoff`.
    CoreOs,
}

impl Flavor {
    /// The family a request comes from: CoreOS when its updater (`updater` or root
    /// `version`) is go-omaha or Flatcar's update_engine, its `<os platform>` is CoreOS,
    /// Flatcar or a bare OS name such as `linux`, or an app carries `machineid`/`bootid`;
    /// else ChromeOS.
    pub fn detect(request: &UpdateRequest) -> Flavor {
        let updater = request
            .updater
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let platform = request
            .os_platform
            .as_deref()
            .unwrap_or("")
            .to_ascii_lowercase();
        let coreos_updater = updater.starts_with("go-omaha")
            || (updater.starts_with("update_engine") && !updater.contains("chrome"));
        let coreos_platform = matches!(platform.as_str(), "coreos" | "flatcar" | "linux");
        if coreos_updater || coreos_platform || request.apps.iter().any(|a| a.coreos_ids) {
            Flavor::CoreOs
        } else {
            Flavor::ChromeOs
        }
    }
}

/// One `<event>` of an app.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OmahaEvent {
    /// `eventtype`, when numeric.
    pub event_type: Option<i64>,
    /// `eventresult`, when numeric.
    pub event_result: Option<i64>,
    /// `errorcode`, when numeric.
    pub error_code: Option<i64>,
    /// `previousversion`.
    pub previous_version: Option<String>,
}

/// One `<app>` of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRequest {
    /// `appid`, echoed back.
    pub appid: Option<String>,
    /// The client's current version of the app (`0.0.0.0` for a DLC to install).
    pub version: Option<String>,
    /// The channel (`track`, or go-omaha's group), e.g. `stable-channel`.
    pub track: Option<String>,
    /// The board (absent in CoreOS's client).
    pub board: Option<String>,
    /// The hardware class.
    pub hardware_class: Option<String>,
    /// Whether the client accepts a delta payload.
    pub delta_okay: bool,
    /// Whether the app carries CoreOS's `machineid` or `bootid`.
    pub coreos_ids: bool,
    /// Whether an `<updatecheck>` is present.
    pub update_check: bool,
    /// Whether that `<updatecheck>` says `rollback_allowed="true"`.
    pub rollback_allowed: bool,
    /// Whether a `<ping>` is present.
    pub ping: bool,
    /// The events reported, in order.
    pub events: Vec<OmahaEvent>,
}

/// The fields of a request the server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRequest {
    /// Protocol version.
    pub protocol: Protocol,
    /// The updater: the root's `updater`, else its `version` (go-omaha, Flatcar).
    pub updater: Option<String>,
    /// `<os platform>`.
    pub os_platform: Option<String>,
    /// Every app, in request order (at least one).
    pub apps: Vec<AppRequest>,
}

impl UpdateRequest {
    /// The platform app: the first one (the only one of older clients).
    pub fn platform(&self) -> &AppRequest {
        &self.apps[0]
    }

    /// Whether any app asks for an update.
    pub fn has_update_check(&self) -> bool {
        self.apps.iter().any(|a| a.update_check)
    }

    /// An install request: apps at version `0.0.0.0` ask to be installed while the platform
    /// app sends no update check.
    pub fn is_install(&self) -> bool {
        !self.platform().update_check
            && self
                .apps
                .iter()
                .skip(1)
                .any(|a| a.update_check && a.version.as_deref() == Some(INSTALL_VERSION))
    }
}

/// The version an app reports when it is not installed yet.
pub const INSTALL_VERSION: &str = "0.0.0.0";

fn malformed(e: impl std::fmt::Display) -> OmahaError {
    OmahaError::Malformed(e.to_string())
}

/// The attributes of an element, unescaped when `keep` (else only counted and checked):
/// duplicates refused in linear time (quick-xml's own duplicate check compares every pair),
/// and at most [`MAX_ATTRIBUTES`].
fn attrs(e: &BytesStart<'_>, name: &str, keep: bool) -> Result<Vec<(String, String)>, OmahaError> {
    // Small elements compare keys in a short list; larger ones switch to a set.
    const LIST: usize = 16;
    let mut out = Vec::new();
    let mut keys: Vec<&[u8]> = Vec::new();
    let mut set: Option<HashSet<&[u8]>> = None;
    let mut iter = e.attributes();
    iter.with_checks(false);
    for attr in iter {
        let attr = attr.map_err(malformed)?;
        if keys.len() == MAX_ATTRIBUTES {
            return Err(OmahaError::TooManyAttributes(name.to_string()));
        }
        let key = attr.key.into_inner();
        let duplicate = match &mut set {
            Some(set) => !set.insert(key),
            None => keys.contains(&key),
        };
        if duplicate {
            return Err(OmahaError::Malformed(format!(
                "duplicate attribute {:?} on <{name}>",
                String::from_utf8_lossy(key)
            )));
        }
        keys.push(key);
        if keys.len() == LIST && set.is_none() {
            set = Some(keys.iter().copied().collect());
        }
        if keep {
            let local = String::from_utf8_lossy(attr.key.local_name().as_ref()).into_owned();
            let value = attr.unescape_value().map_err(malformed)?.into_owned();
            // XML 1.0 has no way to carry these (not even as `&#1;`): a value holding one
            // could only be echoed as a malformed answer.
            if let Some(c) = value.chars().find(|c| !is_xml_char(*c)) {
                return Err(OmahaError::Malformed(format!(
                    "attribute {local:?} on <{name}> holds the character U+{:04X}, which XML 1.0 does not allow",
                    u32::from(c)
                )));
            }
            out.push((local, value));
        }
    }
    Ok(out)
}

/// Whether XML 1.0 allows `c` in a document (its `Char` production).
pub fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn get(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn number(attrs: &[(String, String)], name: &str) -> Option<i64> {
    get(attrs, name).and_then(|v| v.trim().parse().ok())
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
    let mut request = UpdateRequest {
        protocol: Protocol::V3,
        updater: None,
        os_platform: None,
        apps: Vec::new(),
    };
    let mut protocol = None;
    // Whether we are directly inside the last <app>.
    let mut in_app = false;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            OmahaError::Malformed(format!("{e} at byte {}", reader.error_position()))
        })?;
        let (start, empty) = match event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    in_app = false;
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
            // Every element's attributes are counted and checked for duplicates; those of
            // the elements read are unescaped.
            let read = depth == 0
                || (depth == 1 && (name == "os" || name == "app"))
                || (depth == 2 && in_app && (name == "event" || name == "updatecheck"));
            let a = attrs(&e, &name, read)?;
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
                protocol = Some(match get(&a, "protocol").as_deref() {
                    Some("3.0") => Protocol::V3,
                    Some("2.0") => Protocol::V2,
                    Some(other) => return Err(OmahaError::UnknownProtocol(other.to_string())),
                    None => return Err(OmahaError::UnknownProtocol(String::new())),
                });
                request.updater = get(&a, "updater").or_else(|| get(&a, "version"));
            } else if depth == 1 && name == "os" {
                request.os_platform = get(&a, "platform");
            } else if depth == 1 && name == "app" {
                if request.apps.len() == MAX_APPS {
                    return Err(OmahaError::TooManyApps);
                }
                request.apps.push(AppRequest {
                    appid: get(&a, "appid"),
                    version: get(&a, "version"),
                    track: get(&a, "track").or_else(|| get(&a, "group")),
                    board: get(&a, "board"),
                    hardware_class: get(&a, "hardware_class"),
                    delta_okay: get(&a, "delta_okay").as_deref() == Some("true"),
                    coreos_ids: get(&a, "machineid").is_some() || get(&a, "bootid").is_some(),
                    ..AppRequest::default()
                });
                in_app = !empty;
            } else if depth == 2 && in_app {
                let app = request.apps.last_mut().expect("inside an app");
                match name.as_str() {
                    "updatecheck" => {
                        app.update_check = true;
                        app.rollback_allowed =
                            get(&a, "rollback_allowed").as_deref() == Some("true");
                    }
                    "ping" => app.ping = true,
                    "event" => {
                        if app.events.len() == MAX_EVENTS {
                            return Err(OmahaError::TooManyEvents);
                        }
                        app.events.push(OmahaEvent {
                            event_type: number(&a, "eventtype"),
                            event_result: number(&a, "eventresult"),
                            error_code: number(&a, "errorcode"),
                            previous_version: get(&a, "previousversion"),
                        });
                    }
                    _ => {}
                }
            }
            if !empty {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(OmahaError::TooDeep);
                }
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
    if request.apps.is_empty() {
        return Err(OmahaError::NoApp);
    }
    Ok(request)
}

/// A payload offered to one app.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Offer {
    /// Base URL of the payload, ending with `/`.
    pub codebase: String,
    /// File name of the payload (the full URL is codebase + name).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Base64 SHA-1 (empty when unknown: a payload described by metadata and not on disk).
    pub sha1_b64: String,
    /// Base64 SHA-256 (empty when unknown).
    pub sha256_b64: String,
    /// Hex SHA-256 (empty when unknown).
    pub sha256_hex: String,
    /// Version announced (`ChromeOSVersion`, manifest version).
    pub version: String,
    /// Whether the payload is a delta.
    pub is_delta: bool,
    /// Size of the payload's metadata (update_engine checks it before downloading).
    pub metadata_size: Option<u64>,
    /// Base64 RSA signature of the metadata (`Some("")` for an unsigned payload described
    /// by metadata: nebraska writes the attribute empty).
    pub metadata_signature: Option<String>,
    /// Base64 public key the client checks the payload with (`PublicKeyRsa`).
    pub public_key: Option<String>,
}

/// How answers are steered (command line and the runtime configuration endpoint,
/// `/update_config`, which takes and shows these fields as JSON, with nebraska's names and
/// defaults).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Steering {
    /// Mark updates critical (`deadline="now"`).
    pub critical_update: bool,
    /// Answer every update check with noupdate.
    pub no_update: bool,
    /// `DisablePayloadBackoff="true"`.
    pub disable_payload_backoff: bool,
    /// End-of-life date (days since the Unix epoch), sent as `_eol_date`.
    pub eol_date: Option<i64>,
    /// Offer the payload as a rollback (`_rollback="true"`, to apps that allow it).
    pub is_rollback: bool,
    /// How often the client may fail on each URL before moving on
    /// (`MaxFailureCountPerUrl`).
    pub failures_per_url: Option<u32>,
    /// How many `<url>` elements an update answer carries (nebraska's default: 1).
    pub num_urls: u32,
    /// `true`: only full payloads; `false`: only deltas; `null`: a delta when the client
    /// takes one, else the full payload.
    pub full_payload: Option<bool>,
    /// When no described payload matches an app's appid, take any that fits.
    pub ignore_appid: bool,
    /// `N > 0`: the Nth update or install request and every later one get noupdate (each
    /// request before it counts it down).
    pub return_noupdate_starting: u32,
    /// Answer noupdate with `_invalidate_last_update="true"` (update_engine then
    /// invalidates an update waiting in the inactive partition).
    pub invalidate_last_update: bool,
    /// nebraska's base URL of update payloads described by metadata (else this server's
    /// `/payloads/`).
    pub update_payloads_address: Option<String>,
    /// The same for install payloads (else `update_payloads_address`, else this server's
    /// `/install-payloads/`).
    pub install_payloads_address: Option<String>,
}

impl Default for Steering {
    fn default() -> Self {
        Steering {
            critical_update: false,
            no_update: false,
            disable_payload_backoff: false,
            eol_date: None,
            is_rollback: false,
            failures_per_url: None,
            num_urls: 1,
            full_payload: None,
            ignore_appid: false,
            return_noupdate_starting: 0,
            invalidate_last_update: false,
            update_payloads_address: None,
            install_payloads_address: None,
        }
    }
}

/// The firmware and kernel key versions nebraska announces with a rollback (`1.1`: no
/// version roll ever happened, as on most devices).
const ROLLBACK_KEY_VERSION: &str = "1.1";
/// The suffixes of nebraska's `_firmware_version*` and `_kernel_version*` attributes.
const ROLLBACK_VERSION_SUFFIXES: [&str; 6] = ["", "_0", "_1", "_2", "_3", "_4"];
/// The Chrome version nebraska writes on every postinstall action.
const CHROME_VERSION: &str = "1.0.0.0";

/// The answer to one app's update check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// An update is available.
    Update(Box<Offer>),
    /// No update.
    NoUpdate,
}

/// What the server answers to one app: its update check's answer (`None` when it sent
/// none).
pub type AppAnswer = Option<Answer>;

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

/// Renders the answer to a request, one `<app>` per requested app (`answers[i]` answers
/// `request.apps[i]`): the document, ready to send as `text/xml`. A `<ping>` is acknowledged
/// only for an app that sent one, and each event sent gets one `<event status="ok"/>`.
pub fn render(
    request: &UpdateRequest,
    answers: &[AppAnswer],
    flavor: Flavor,
    steering: &Steering,
    day: DayStart,
) -> Vec<u8> {
    let mut w = Writer::new_with_indent(Vec::with_capacity(1536), b' ', 2);
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
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
    let install = request.is_install();
    for (app, answer) in request.apps.iter().zip(answers) {
        let appid = app.appid.as_deref().unwrap_or(CHROMEOS_APPID);
        // nebraska's install shape: an app that asks nothing in an install (the platform)
        // is answered by the app's own status, without an <updatecheck>.
        let status = if install && !app.update_check {
            "noupdate"
        } else {
            "ok"
        };
        start(&mut w, "app", &[("appid", appid), ("status", status)]);
        if app.ping {
            empty(&mut w, "ping", &[("status", "ok")]);
        }
        for _ in &app.events {
            empty(&mut w, "event", &[("status", "ok")]);
        }
        match answer {
            None => {}
            Some(Answer::NoUpdate) => {
                let eol = steering.eol_date.map(|d| d.to_string());
                let mut a = vec![("status", "noupdate")];
                if steering.invalidate_last_update {
                    a.push(("_invalidate_last_update", "true"));
                }
                if let Some(eol) = &eol {
                    a.push(("_eol_date", eol));
                }
                empty(&mut w, "updatecheck", &a);
            }
            Some(Answer::Update(offer)) => match request.protocol {
                Protocol::V3 => render_v3_update(&mut w, app, offer, flavor, steering),
                Protocol::V2 => render_v2_update(&mut w, offer, steering),
            },
        }
        end(&mut w, "app");
    }
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

fn render_v3_update(
    w: &mut W,
    app: &AppRequest,
    offer: &Offer,
    flavor: Flavor,
    steering: &Steering,
) {
    let size = offer.size.to_string();
    let eol = steering.eol_date.map(|d| d.to_string());
    let mut check = vec![("status", "ok")];
    // A rollback is offered only to an app that allows one, with the key versions nebraska
    // announces (update_engine refuses a rollback image without them).
    let rollback_names: Vec<(String, String)> = ROLLBACK_VERSION_SUFFIXES
        .iter()
        .map(|s| {
            (
                format!("_firmware_version{s}"),
                format!("_kernel_version{s}"),
            )
        })
        .collect();
    if steering.is_rollback && app.rollback_allowed {
        check.push(("_rollback", "true"));
        for (firmware, kernel) in &rollback_names {
            check.push((firmware.as_str(), ROLLBACK_KEY_VERSION));
            check.push((kernel.as_str(), ROLLBACK_KEY_VERSION));
        }
    }
    if let Some(eol) = &eol {
        check.push(("_eol_date", eol.as_str()));
    }
    start(w, "updatecheck", &check);
    start(w, "urls", &[]);
    for _ in 0..steering.num_urls {
        empty(w, "url", &[("codebase", &offer.codebase)]);
    }
    end(w, "urls");
    start(w, "manifest", &[("version", &offer.version)]);
    start(w, "packages", &[]);
    // nebraska writes the hex digest in upper case (base64.b16encode), and update_engine
    // keeps `fp` as text: the same case as nebraska's, so a fingerprint compares equal.
    let hex = offer.sha256_hex.to_ascii_uppercase();
    let fp = format!("1.{hex}");
    let mut package = vec![
        ("name", offer.name.as_str()),
        ("size", size.as_str()),
        ("required", "true"),
    ];
    if !offer.sha1_b64.is_empty() {
        package.push(("hash", offer.sha1_b64.as_str()));
    }
    match flavor {
        // update_engine of ChromiumOS reads hex; nebraska adds the fingerprint.
        Flavor::ChromeOs if !offer.sha256_hex.is_empty() => {
            package.push(("hash_sha256", hex.as_str()));
            package.push(("fp", fp.as_str()));
        }
        // go-omaha's Package.Verify compares base64.
        Flavor::CoreOs if !offer.sha256_b64.is_empty() => {
            package.push(("hash_sha256", offer.sha256_b64.as_str()));
        }
        _ => {}
    }
    empty(w, "package", &package);
    end(w, "packages");
    start(w, "actions", &[]);
    empty(w, "action", &[("event", "update"), ("run", &offer.name)]);
    let metadata_size = offer.metadata_size.map(|m| m.to_string());
    let mut post = vec![
        ("event", "postinstall"),
        ("ChromeOSVersion", offer.version.as_str()),
    ];
    if !offer.sha256_b64.is_empty() {
        post.push(("sha256", offer.sha256_b64.as_str()));
    }
    post.push(("needsadmin", "false"));
    match flavor {
        Flavor::ChromeOs => {
            post.push(("ChromeVersion", CHROME_VERSION));
            post.push(("IsDeltaPayload", bool_str(offer.is_delta)));
            post.push(("MaxDaysToScatter", "14"));
            post.push((
                "DisablePayloadBackoff",
                bool_str(steering.disable_payload_backoff),
            ));
            if let Some(m) = &metadata_size {
                post.push(("MetadataSize", m.as_str()));
            }
            if let Some(sig) = &offer.metadata_signature {
                post.push(("MetadataSignatureRsa", sig.as_str()));
            }
            if let Some(key) = &offer.public_key {
                post.push(("PublicKeyRsa", key.as_str()));
            }
        }
        Flavor::CoreOs => {
            post.push(("IsDelta", bool_str(offer.is_delta)));
            if steering.disable_payload_backoff {
                post.push(("DisablePayloadBackoff", "true"));
            }
        }
    }
    let failures = steering.failures_per_url.map(|n| n.to_string());
    if let Some(n) = &failures {
        post.push(("MaxFailureCountPerUrl", n.as_str()));
    }
    if steering.critical_update {
        post.push(("deadline", "now"));
    }
    empty(w, "action", &post);
    end(w, "actions");
    end(w, "manifest");
    end(w, "updatecheck");
}

fn render_v2_update(w: &mut W, offer: &Offer, steering: &Steering) {
    let size = offer.size.to_string();
    let url = format!("{}{}", offer.codebase, offer.name);
    let mut a = vec![("codebase", url.as_str())];
    if !offer.sha1_b64.is_empty() {
        a.push(("hash", offer.sha1_b64.as_str()));
    }
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
    if steering.critical_update {
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

    fn day() -> DayStart {
        DayStart {
            elapsed_seconds: 1,
            elapsed_days: 2,
        }
    }

    #[test]
    fn parses_3_0() {
        let r = parse_request(V3.as_bytes()).unwrap();
        assert_eq!(r.protocol, Protocol::V3);
        let app = r.platform();
        assert_eq!(
            app.appid.as_deref(),
            Some("{DEADBEEF-0000-0000-0000-000000000001}")
        );
        assert_eq!(app.board.as_deref(), Some("amd64-generic"));
        assert_eq!(app.track.as_deref(), Some("stable-channel"));
        assert!(app.update_check && app.ping);
        assert!(!app.delta_okay);
        assert_eq!(
            app.events,
            vec![OmahaEvent {
                event_type: Some(3),
                event_result: Some(2),
                error_code: None,
                previous_version: Some("0.9.0".into()),
            }]
        );
        assert_eq!(Flavor::detect(&r), Flavor::ChromeOs);
    }

    #[test]
    fn parses_2_0_with_prefix() {
        let r = parse_request(V2.as_bytes()).unwrap();
        assert_eq!(r.protocol, Protocol::V2);
        let app = r.platform();
        assert_eq!(app.version.as_deref(), Some("0.9.0"));
        assert!(app.update_check && app.delta_okay && app.events.is_empty());
    }

    #[test]
    fn every_app_is_parsed() {
        let r = parse_request(
            br#"<request protocol="3.0"><app appid="p" version="1"><updatecheck/></app>
            <app appid="d1" version="0.0.0.0"><updatecheck/><event eventtype="13" eventresult="1" errorcode="7"/></app>
            <app appid="d2" version="1"><ping/></app></request>"#,
        )
        .unwrap();
        let ids: Vec<_> = r.apps.iter().map(|a| a.appid.clone().unwrap()).collect();
        assert_eq!(ids, ["p", "d1", "d2"]);
        assert!(r.apps[1].update_check && !r.apps[2].update_check && r.apps[2].ping);
        assert_eq!(r.apps[1].events[0].error_code, Some(7));
        assert!(!r.is_install());
        let install = parse_request(
            br#"<request protocol="3.0"><app appid="p" version="1"/><app appid="d" version="0.0.0.0"><updatecheck/></app></request>"#,
        )
        .unwrap();
        assert!(install.is_install());
    }

    #[test]
    fn coreos_clients_are_recognised() {
        let go_omaha = parse_request(
            br#"<request protocol="3.0" version="go-omaha" userid="u"><os platform="linux"/><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="1.0.0" track="stable" machineid="m"><updatecheck/></app></request>"#,
        )
        .unwrap();
        assert_eq!(Flavor::detect(&go_omaha), Flavor::CoreOs);
        let flatcar = parse_request(
            br#"<request protocol="3.0" version="update_engine-0.4.10"><os platform="Flatcar"/><app appid="x" version="1"><updatecheck/></app></request>"#,
        )
        .unwrap();
        assert_eq!(Flavor::detect(&flatcar), Flavor::CoreOs);
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
        assert!(matches!(
            parse_request(b"<request protocol=\"3.0\"><app a=\"1\" a=\"2\"/></request>"),
            Err(OmahaError::Malformed(m)) if m.contains("duplicate")
        ));
        // An updatecheck outside <app> does not count.
        let r = parse_request(b"<request protocol=\"3.0\"><app/><updatecheck/></request>").unwrap();
        assert!(!r.platform().update_check);
    }

    fn with_attributes(n: usize) -> Vec<u8> {
        let mut body = b"<request protocol=\"3.0\"><app appid=\"x\"".to_vec();
        for i in 0..n {
            body.extend_from_slice(format!(" a{i}=\"v\"").as_bytes());
        }
        body.extend_from_slice(b"><updatecheck/></app></request>");
        body
    }

    fn with_apps(n: usize) -> Vec<u8> {
        let mut body = b"<request protocol=\"3.0\">".to_vec();
        for i in 0..n {
            body.extend_from_slice(format!("<app appid=\"d{i}\"><updatecheck/></app>").as_bytes());
        }
        body.extend_from_slice(b"</request>");
        body
    }

    #[test]
    fn bounds_attributes_apps_events_and_depth() {
        assert!(parse_request(&with_attributes(MAX_ATTRIBUTES - 1)).is_ok());
        assert!(matches!(
            parse_request(&with_attributes(MAX_ATTRIBUTES)),
            Err(OmahaError::TooManyAttributes(e)) if e == "app"
        ));
        // The hostile request of the report: 95,000 attributes in under 1 MiB.
        let started = std::time::Instant::now();
        assert!(matches!(
            parse_request(&with_attributes(95_000)),
            Err(OmahaError::TooManyAttributes(_))
        ));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Attributes of elements the server does not read are bounded too.
        let mut os = b"<request protocol=\"3.0\"><os".to_vec();
        for i in 0..=MAX_ATTRIBUTES {
            os.extend_from_slice(format!(" a{i}=\"\"").as_bytes());
        }
        os.extend_from_slice(b"/><app/></request>");
        assert!(matches!(
            parse_request(&os),
            Err(OmahaError::TooManyAttributes(e)) if e == "os"
        ));
        assert_eq!(
            parse_request(&with_apps(MAX_APPS)).unwrap().apps.len(),
            MAX_APPS
        );
        assert!(matches!(
            parse_request(&with_apps(MAX_APPS + 1)),
            Err(OmahaError::TooManyApps)
        ));
        let events = format!(
            "<request protocol=\"3.0\"><app>{}</app></request>",
            "<event eventtype=\"1\"/>".repeat(MAX_EVENTS + 1)
        );
        assert!(matches!(
            parse_request(events.as_bytes()),
            Err(OmahaError::TooManyEvents)
        ));
        let deep = format!(
            "<request protocol=\"3.0\"><app/>{}{}</request>",
            "<x>".repeat(MAX_DEPTH),
            "</x>".repeat(MAX_DEPTH)
        );
        assert!(matches!(
            parse_request(deep.as_bytes()),
            Err(OmahaError::TooDeep)
        ));
    }

    fn offer() -> Offer {
        Offer {
            codebase: "http://h/static/".into(),
            name: "update.gz".into(),
            size: 36,
            sha1_b64: "kGcOinJ0vA8vdYX53FN0F5BdwfY=".into(),
            sha256_b64: "hgfZ19hcsA5OGUN3f4SDtoO0kzT24o+JsGgjNVCVEy0=".into(),
            sha256_hex: "8607d9d7d85cb00e4e1943777f8483b683b49334f6e28f89b06823355095132d".into(),
            version: "9999.0.0".into(),
            is_delta: false,
            metadata_size: Some(10),
            metadata_signature: Some("c2ln".into()),
            public_key: None,
        }
    }

    #[test]
    fn renders_escaped_attributes_and_critical() {
        let mut req = parse_request(V3.as_bytes()).unwrap();
        req.apps[0].appid = Some("a\"<&>".to_string());
        let steering = Steering {
            critical_update: true,
            ..Steering::default()
        };
        let answers = [Some(Answer::Update(Box::new(offer())))];
        let text =
            String::from_utf8(render(&req, &answers, Flavor::ChromeOs, &steering, day())).unwrap();
        assert!(text.contains(r#"appid="a&quot;&lt;&amp;&gt;""#), "{text}");
        assert!(text.contains(r#"deadline="now""#), "{text}");
        assert!(text.contains(r#"<event status="ok"/>"#), "{text}");
        assert!(text.contains(r#"MetadataSize="10""#), "{text}");
        assert!(text.contains(r#"fp="1.8607D9"#), "{text}");
    }

    #[test]
    fn acknowledges_only_what_was_sent() {
        let req = parse_request(
            br#"<request protocol="3.0"><app appid="a"><updatecheck/></app><app appid="b"><ping/><event eventtype="3"/><event eventtype="14"/></app></request>"#,
        )
        .unwrap();
        let text = String::from_utf8(render(
            &req,
            &[Some(Answer::NoUpdate), None],
            Flavor::ChromeOs,
            &Steering::default(),
            day(),
        ))
        .unwrap();
        let back = parse_response(text.as_bytes());
        assert_eq!(
            back,
            vec![
                ("a".to_string(), false, 0, Some("noupdate".to_string())),
                ("b".to_string(), true, 2, None),
            ],
            "{text}"
        );
    }

    #[test]
    fn coreos_flavor_uses_base64_sha256() {
        let req = parse_request(
            br#"<request protocol="3.0" version="go-omaha"><app appid="x" version="1"><updatecheck/></app></request>"#,
        )
        .unwrap();
        let text = String::from_utf8(render(
            &req,
            &[Some(Answer::Update(Box::new(offer())))],
            Flavor::CoreOs,
            &Steering::default(),
            day(),
        ))
        .unwrap();
        assert!(
            text.contains(r#"hash_sha256="hgfZ19hcsA5OGUN3f4SDtoO0kzT24o+JsGgjNVCVEy0=""#),
            "{text}"
        );
        assert!(!text.contains("<ping"), "{text}");
        assert!(text.contains(r#"IsDelta="false""#), "{text}");
    }

    /// Each `<app>` of a response: appid, ping acked, events acked, updatecheck status.
    fn parse_response(xml: &[u8]) -> Vec<(String, bool, usize, Option<String>)> {
        let mut reader = Reader::from_reader(xml);
        let mut out: Vec<(String, bool, usize, Option<String>)> = Vec::new();
        let mut buf = Vec::new();
        loop {
            match reader.read_event_into(&mut buf).unwrap() {
                Event::Eof => break,
                Event::Start(e) | Event::Empty(e) => {
                    let a = attrs(&e, "x", true).unwrap();
                    match e.local_name().as_ref() {
                        b"app" => out.push((get(&a, "appid").unwrap(), false, 0, None)),
                        b"ping" => out.last_mut().unwrap().1 = true,
                        b"event" => out.last_mut().unwrap().2 += 1,
                        b"updatecheck" => out.last_mut().unwrap().3 = get(&a, "status"),
                        _ => {}
                    }
                }
                _ => {}
            }
            buf.clear();
        }
        out
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = String> {
            proptest::collection::vec(
                prop_oneof![
                    Just("a".to_string()),
                    Just("0.0.0.0".to_string()),
                    Just("&amp;".to_string()),
                    Just("&lt;&gt;".to_string()),
                    Just("&#x41;".to_string()),
                    Just("é".to_string()),
                    Just(" ".to_string()),
                ],
                0..4,
            )
            .prop_map(|v| v.concat())
        }

        #[derive(Debug, Clone)]
        struct App {
            attrs: Vec<(String, String)>,
            check: bool,
            ping: bool,
            events: usize,
        }

        fn app() -> impl Strategy<Value = App> {
            (
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("appid"),
                            Just("version"),
                            Just("track"),
                            Just("board"),
                            Just("x")
                        ],
                        value(),
                    ),
                    0..5,
                ),
                any::<bool>(),
                any::<bool>(),
                0..3usize,
            )
                .prop_map(|(attrs, check, ping, events)| {
                    let mut seen = HashSet::new();
                    let attrs = attrs
                        .into_iter()
                        .filter(|(k, _)| seen.insert(*k))
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    App {
                        attrs,
                        check,
                        ping,
                        events,
                    }
                })
        }

        fn document(apps: &[App]) -> String {
            let mut doc = String::from("<request protocol=\"3.0\"><os platform=\"Chrome OS\"/>");
            for a in apps {
                doc.push_str("<app");
                for (k, v) in &a.attrs {
                    doc.push_str(&format!(" {k}=\"{v}\""));
                }
                doc.push('>');
                if a.ping {
                    doc.push_str("<ping active=\"1\"/>");
                }
                if a.check {
                    doc.push_str("<updatecheck/>");
                }
                for i in 0..a.events {
                    doc.push_str(&format!("<event eventtype=\"{i}\" eventresult=\"1\"/>"));
                }
                doc.push_str("</app>");
            }
            doc.push_str("</request>");
            doc
        }

        fn unescape(v: &str) -> String {
            v.replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#x41;", "A")
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 64,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Arbitrary bytes never panic the parser.
            #[test]
            fn never_panics_on_bytes(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = parse_request(&body);
            }

            /// Mutations of a valid request (bytes replaced, invalid UTF-8 among them) never
            /// panic.
            #[test]
            fn never_panics_on_mutated_requests(
                cuts in proptest::collection::vec((0..600usize, any::<u8>()), 1..8)
            ) {
                let mut body = V3.as_bytes().to_vec();
                for (at, byte) in cuts {
                    let at = at % body.len();
                    body[at] = byte;
                }
                let _ = parse_request(&body);
            }

            /// Any well-formed request of any shape parses to what it says, and its answer
            /// parses back to one `<app>` per app with exactly the acks asked for.
            #[test]
            fn requests_round_trip(apps in proptest::collection::vec(app(), 1..12)) {
                let doc = document(&apps);
                let parsed = parse_request(doc.as_bytes()).unwrap();
                prop_assert_eq!(parsed.apps.len(), apps.len());
                for (got, want) in parsed.apps.iter().zip(&apps) {
                    let attr = |n: &str| want.attrs.iter().find(|(k, _)| k == n).map(|(_, v)| unescape(v));
                    prop_assert_eq!(got.appid.clone(), attr("appid"));
                    prop_assert_eq!(got.version.clone(), attr("version"));
                    prop_assert_eq!(got.track.clone(), attr("track"));
                    prop_assert_eq!(got.update_check, want.check);
                    prop_assert_eq!(got.ping, want.ping);
                    prop_assert_eq!(got.events.len(), want.events);
                }
                let answers: Vec<AppAnswer> = parsed
                    .apps
                    .iter()
                    .map(|a| a.update_check.then_some(Answer::NoUpdate))
                    .collect();
                let xml = render(&parsed, &answers, Flavor::ChromeOs, &Steering::default(), day());
                let back = parse_response(&xml);
                prop_assert_eq!(back.len(), apps.len());
                for ((appid, ping, events, check), (got, want)) in back.iter().zip(parsed.apps.iter().zip(&apps)) {
                    prop_assert_eq!(appid.as_str(), got.appid.as_deref().unwrap_or(CHROMEOS_APPID));
                    prop_assert_eq!(*ping, want.ping);
                    prop_assert_eq!(*events, want.events);
                    prop_assert_eq!(check.is_some(), want.check);
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig {
                cases: 16,
                failure_persistence: None,
                ..ProptestConfig::default()
            })]

            /// Several thousand attributes or apps: parsed up to the bound, refused past it.
            #[test]
            fn thousands_of_attributes_and_apps(n in 1..6_000usize) {
                let attributes = parse_request(&with_attributes(n));
                if n < MAX_ATTRIBUTES {
                    prop_assert!(attributes.is_ok());
                } else {
                    prop_assert!(matches!(attributes, Err(OmahaError::TooManyAttributes(_))));
                }
                let apps = parse_request(&with_apps(n));
                if n <= MAX_APPS {
                    prop_assert_eq!(apps.unwrap().apps.len(), n);
                } else {
                    prop_assert!(matches!(apps, Err(OmahaError::TooManyApps)));
                }
            }
        }

        /// Work grows linearly: parsing 4n attributes or apps costs about 4 times n, never
        /// 16 (the quadratic duplicate check took 14 s for 95,000 attributes). Attributes
        /// are spread over elements so that no bound is reached.
        #[test]
        fn time_is_linear_in_the_input() {
            fn spread(n: usize) -> Vec<u8> {
                let per = MAX_ATTRIBUTES;
                let mut body =
                    b"<request protocol=\"3.0\"><app appid=\"x\"><updatecheck/>".to_vec();
                for e in 0..n / per {
                    body.extend_from_slice(format!("<extra{e}").as_bytes());
                    for i in 0..per {
                        body.extend_from_slice(format!(" attribute{i}=\"&amp;v\"").as_bytes());
                    }
                    body.extend_from_slice(b"/>");
                }
                body.extend_from_slice(b"</app></request>");
                body
            }
            fn best_of(body: &[u8]) -> std::time::Duration {
                (0..9)
                    .map(|_| {
                        let t = std::time::Instant::now();
                        let _ = parse_request(body);
                        t.elapsed()
                    })
                    .min()
                    .unwrap()
            }
            let cases = [
                (spread(4_096), spread(16_384)),
                (with_apps(MAX_APPS / 4), with_apps(MAX_APPS)),
            ];
            for (small, large) in cases {
                assert!(parse_request(&large).is_ok());
                // Linear is ~4x; quadratic would be ~16x. On a loaded machine one measurement
                // may be disturbed: linear passes one of three attempts, quadratic none.
                let ratios: Vec<f64> = (0..3)
                    .map(|_| {
                        let (t1, t4) = (best_of(&small), best_of(&large));
                        t4.as_secs_f64() / t1.as_secs_f64().max(1e-6)
                    })
                    .collect();
                assert!(
                    ratios.iter().any(|r| *r < 10.0),
                    "4n/n time ratios: {ratios:?}"
                );
            }
        }
    }
}
