//! Options objects passed from JavaScript, and their checked conversion into
//! engine settings.
//!
//! N-API already rejects values of the wrong JS type; what is checked here
//! is everything a type cannot say: ranges, integers, header syntax, and
//! options that make no sense for the role.

use std::sync::Arc;

use evsock::ws::{Accept, ClientRequest, Config, DeflateConfig, OriginPolicy, Reject};
use indexmap::IndexMap;
use napi::Either;
use napi_derive::napi;

use crate::error::{arg, ArgError};

/// The largest integer a JS number holds exactly (2^53 - 1).
pub const MAX_SAFE: f64 = 9_007_199_254_740_991.0;

/// Settings of one connection. Every field is optional; the defaults suit a
/// browser-facing server (16 MiB messages, a ping every 30 s, a 10 s
/// handshake timeout).
///
/// Durations are milliseconds of the clock the host passes in as `now`;
/// `0` turns that timer off.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct ConnectionOptions {
    /// `false` starts from a configuration with every timer off (the
    /// host runs its own); the `*Ms` fields below still apply on top.
    /// Default `true`.
    pub timers: Option<bool>,
    /// Largest frame payload accepted; larger frames close with 1009.
    /// Default 16 MiB.
    pub max_frame_size: Option<f64>,
    /// Largest message accepted, summed over its fragments (1009).
    /// Default 16 MiB.
    pub max_message_size: Option<f64>,
    /// Most fragments in one message (1008). Default 131072.
    pub max_fragments: Option<f64>,
    /// Largest upgrade request or response head (431). Default 16 KiB.
    pub max_handshake_bytes: Option<f64>,
    /// Most header fields in the upgrade request (431), at most 1024.
    /// Default 64.
    pub max_headers: Option<f64>,
    /// Most bytes queued for writing before a send throws
    /// `outbound_full`. Default 64 MiB.
    pub max_outbound_bytes: Option<f64>,
    /// Send a keep-alive ping this long after the last one was answered.
    /// Default 30000; `0` disables.
    pub ping_interval_ms: Option<f64>,
    /// Fail the connection (1011) when a ping goes unanswered this long.
    /// Default 30000; `0` disables.
    pub pong_timeout_ms: Option<f64>,
    /// Close (1001) when nothing arrives for this long. Default off.
    pub idle_timeout_ms: Option<f64>,
    /// Give up on a handshake that takes longer. Default 10000.
    pub handshake_timeout_ms: Option<f64>,
    /// Stop waiting for the peer's side of the closing handshake after
    /// this long. Default 5000.
    pub close_timeout_ms: Option<f64>,
    /// Answer pings automatically. Default `true`.
    pub auto_pong: Option<bool>,
    /// Bytes of read and write buffer kept between messages, at most
    /// 16 MiB. Default 4096.
    pub buffer_retain: Option<f64>,
    /// Server: subprotocols spoken, most preferred first (the first one the
    /// client also offers is selected). Client: subprotocols offered.
    pub subprotocols: Option<Vec<String>>,
    /// Server only: accept only these Origin values (ASCII
    /// case-insensitive); other requests are answered 403.
    pub origins: Option<Vec<String>>,
    /// Server only, with `origins`: also accept requests without an Origin
    /// header (non-browser clients). Default `false`.
    pub allow_missing_origin: Option<bool>,
    /// permessage-deflate (RFC 7692): `false` turns it off, `true` or an
    /// object with overrides turns it on. On by default (browsers offer it
    /// on every connection); memory is spent only once a message is
    /// actually compressed.
    #[napi(ts_type = "boolean | DeflateOptions")]
    pub deflate: Option<Either<bool, DeflateOptions>>,
    /// Client only: the Origin header to send.
    pub origin: Option<String>,
    /// Client only: extra request headers, for example `Authorization`.
    pub headers: Option<IndexMap<String, String>>,
    /// Client only: seed for a deterministic generator of the handshake key
    /// and masking keys. For tests only: it makes masks predictable. By
    /// default keys come from the operating system's random source.
    pub seed: Option<f64>,
}

/// permessage-deflate preferences. The `server*` names are RFC 7692's: they
/// mean the server's compressor whichever side this connection is.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct DeflateOptions {
    /// Messages shorter than this many bytes are sent uncompressed.
    /// Default 256.
    pub threshold: Option<f64>,
    /// Compression level 0-9. Default 3.
    pub level: Option<f64>,
    /// Largest window (as a power of two, 9-15) the server may use.
    /// Default 15.
    pub server_max_window_bits: Option<f64>,
    /// Largest window (9-15) the client may use. Default 15.
    pub client_max_window_bits: Option<f64>,
    /// The server compresses each message on its own. Default `true`.
    pub server_no_context_takeover: Option<bool>,
    /// The client compresses each message on its own. Default `false`.
    pub client_no_context_takeover: Option<bool>,
}

fn deflate(d: &Either<bool, DeflateOptions>) -> Result<Option<DeflateConfig>, ArgError> {
    let o = match d {
        Either::A(false) => return Ok(None),
        Either::A(true) => return Ok(Some(DeflateConfig::default())),
        Either::B(o) => o,
    };
    let mut c = DeflateConfig::default();
    if let Some(v) = o.threshold {
        c.threshold = size("deflate.threshold", v, 0.0, MAX_SAFE)?;
    }
    if let Some(v) = o.level {
        c.level = integer("deflate.level", v, 0.0, 9.0)? as u32;
    }
    if let Some(v) = o.server_max_window_bits {
        c.server_max_window_bits = integer("deflate.serverMaxWindowBits", v, 9.0, 15.0)? as u8;
    }
    if let Some(v) = o.client_max_window_bits {
        c.client_max_window_bits = integer("deflate.clientMaxWindowBits", v, 9.0, 15.0)? as u8;
    }
    if let Some(b) = o.server_no_context_takeover {
        c.server_no_context_takeover = b;
    }
    if let Some(b) = o.client_no_context_takeover {
        c.client_no_context_takeover = b;
    }
    Ok(Some(c))
}

/// The host's decision to accept an upgrade request.
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct AcceptOptions {
    /// The subprotocol to select. Omitted or `null` keeps the configured
    /// choice (`selectedSubprotocol` of the request event); `""` selects
    /// none. It must be one the client offered.
    pub subprotocol: Option<String>,
    /// Extra response headers, for example `Set-Cookie`.
    pub headers: Option<IndexMap<String, String>>,
}

fn number(name: &str, v: f64, min: f64, max: f64) -> Result<f64, ArgError> {
    if !v.is_finite() {
        return Err(arg(format!("{name} must be a finite number, got {v}")));
    }
    if v < min || v > max {
        return Err(arg(format!(
            "{name} must be between {min} and {max}, got {v}"
        )));
    }
    Ok(v)
}

/// A non-negative integer within `min..=max`.
pub fn integer(name: &str, v: f64, min: f64, max: f64) -> Result<u64, ArgError> {
    let v = number(name, v, min, max)?;
    if v.fract() != 0.0 {
        return Err(arg(format!("{name} must be an integer, got {v}")));
    }
    Ok(v as u64)
}

fn size(name: &str, v: f64, min: f64, max: f64) -> Result<usize, ArgError> {
    let n = integer(name, v, min, max)?;
    usize::try_from(n).map_err(|_| arg(format!("{name} is too large for this platform")))
}

/// A duration in milliseconds: `0` means off.
fn duration(name: &str, v: f64) -> Result<Option<u64>, ArgError> {
    let v = number(name, v, 0.0, MAX_SAFE)?;
    Ok(if v == 0.0 {
        None
    } else {
        Some(v.floor() as u64)
    })
}

/// A time in milliseconds, as passed to every input call (`now`).
pub fn time(v: f64) -> Result<u64, ArgError> {
    Ok(number("now", v, 0.0, MAX_SAFE)?.floor() as u64)
}

/// RFC 7230 `tchar`: what header names and subprotocol tokens are made of.
fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

fn token(what: &str, s: &str) -> Result<(), ArgError> {
    if s.is_empty() || !s.chars().all(is_tchar) {
        return Err(arg(format!(
            "{what} {s:?} is not a valid HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    Ok(())
}

fn header_value(name: &str, v: &str) -> Result<(), ArgError> {
    if v.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
        return Err(arg(format!(
            "header {name:?} contains CR, LF or NUL, which may not appear in a header value"
        )));
    }
    Ok(())
}

/// Checks extra headers and turns them into the engine's list. `reserved`
/// names are managed by the handshake itself.
pub fn headers(
    map: Option<&IndexMap<String, String>>,
    reserved: &[&str],
) -> Result<Vec<(String, String)>, ArgError> {
    let Some(map) = map else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        token("header name", name)?;
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(arg(format!(
                "header {name:?} is set by the WebSocket handshake and cannot be overridden"
            )));
        }
        header_value(name, value)?;
        out.push((name.clone(), value.clone()));
    }
    Ok(out)
}

const CLIENT_RESERVED: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "origin",
];

const SERVER_RESERVED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "content-length",
    "transfer-encoding",
];

fn subprotocols(list: &[String]) -> Result<Vec<String>, ArgError> {
    for p in list {
        token("subprotocol", p)?;
    }
    Ok(list.to_vec())
}

/// Which end a connection is; decides which options apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// `Connection.server`.
    Server,
    /// `Connection.client`.
    Client,
}

/// Builds the engine configuration, refusing options of the other role.
pub fn config(o: &ConnectionOptions, side: Side) -> Result<Arc<Config>, ArgError> {
    match side {
        Side::Server => {
            for (set, name) in [
                (o.origin.is_some(), "origin"),
                (o.headers.is_some(), "headers"),
                (o.seed.is_some(), "seed"),
            ] {
                if set {
                    return Err(arg(format!("option {name} only applies to clients")));
                }
            }
        }
        Side::Client => {
            for (set, name) in [
                (o.origins.is_some(), "origins"),
                (o.allow_missing_origin.is_some(), "allowMissingOrigin"),
            ] {
                if set {
                    return Err(arg(format!("option {name} only applies to servers")));
                }
            }
        }
    }
    let mut c = if o.timers == Some(false) {
        Config::without_timers()
    } else {
        Config::default()
    };
    const MIB: f64 = 1024.0 * 1024.0;
    if let Some(v) = o.max_frame_size {
        c.max_frame_size = size("maxFrameSize", v, 0.0, MAX_SAFE)?;
    }
    if let Some(v) = o.max_message_size {
        c.max_message_size = size("maxMessageSize", v, 0.0, MAX_SAFE)?;
    }
    if let Some(v) = o.max_fragments {
        c.max_fragments = size("maxFragments", v, 1.0, MAX_SAFE)?;
    }
    if let Some(v) = o.max_handshake_bytes {
        c.max_handshake_bytes = size("maxHandshakeBytes", v, 64.0, 64.0 * MIB)?;
    }
    if let Some(v) = o.max_headers {
        c.max_headers = size("maxHeaders", v, 4.0, 1024.0)?;
    }
    if let Some(v) = o.max_outbound_bytes {
        c.max_outbound_bytes = size("maxOutboundBytes", v, 0.0, MAX_SAFE)?;
    }
    if let Some(v) = o.buffer_retain {
        c.buffer_retain = size("bufferRetain", v, 0.0, 16.0 * MIB)?;
    }
    for (v, name, slot) in [
        (
            o.ping_interval_ms,
            "pingIntervalMs",
            &mut c.ping_interval_ms,
        ),
        (o.pong_timeout_ms, "pongTimeoutMs", &mut c.pong_timeout_ms),
        (o.idle_timeout_ms, "idleTimeoutMs", &mut c.idle_timeout_ms),
        (
            o.handshake_timeout_ms,
            "handshakeTimeoutMs",
            &mut c.handshake_timeout_ms,
        ),
        (
            o.close_timeout_ms,
            "closeTimeoutMs",
            &mut c.close_timeout_ms,
        ),
    ] {
        if let Some(v) = v {
            *slot = duration(name, v)?;
        }
    }
    if let Some(b) = o.auto_pong {
        c.auto_pong = b;
    }
    if let Some(d) = &o.deflate {
        c.deflate = deflate(d)?;
    }
    if side == Side::Server {
        if let Some(list) = &o.subprotocols {
            c.subprotocols = subprotocols(list)?;
        }
        if let Some(origins) = &o.origins {
            for origin in origins {
                header_value("Origin", origin)?;
            }
            c.origin_policy = OriginPolicy::AllowList {
                origins: origins.clone(),
                allow_missing: o.allow_missing_origin.unwrap_or(false),
            };
        } else if o.allow_missing_origin.is_some() {
            return Err(arg("option allowMissingOrigin needs origins"));
        }
    }
    Ok(Arc::new(c))
}

/// Builds the client's upgrade request from a `ws://` or `wss://` URL.
pub fn client_request(url: &str, o: &ConnectionOptions) -> Result<ClientRequest, ArgError> {
    if url.len() > 8192 {
        return Err(arg("url is longer than 8192 bytes"));
    }
    if url.chars().any(|c| c.is_control()) {
        return Err(arg("url contains control characters"));
    }
    let mut req = ClientRequest::from_url(url)
        .map_err(|e| arg(format!("url {url:?} is not a WebSocket URL: {e}")))?;
    if let Some(list) = &o.subprotocols {
        req.subprotocols = subprotocols(list)?;
    }
    if let Some(origin) = &o.origin {
        header_value("Origin", origin)?;
        req.origin = Some(origin.clone());
    }
    req.headers = headers(o.headers.as_ref(), CLIENT_RESERVED)?;
    Ok(req)
}

/// The client's seed, if a deterministic generator was asked for.
pub fn seed(o: &ConnectionOptions) -> Result<Option<u64>, ArgError> {
    o.seed
        .map(|s| integer("seed", s, 0.0, MAX_SAFE))
        .transpose()
}

/// Converts the host's acceptance.
pub fn accept(o: Option<&AcceptOptions>) -> Result<Accept, ArgError> {
    let Some(o) = o else {
        return Ok(Accept::default());
    };
    if let Some(p) = &o.subprotocol {
        if !p.is_empty() {
            token("subprotocol", p)?;
        }
    }
    Ok(Accept {
        subprotocol: o.subprotocol.clone(),
        headers: headers(o.headers.as_ref(), SERVER_RESERVED)?,
    })
}

/// Converts the host's refusal.
pub fn reject(
    status: f64,
    body: Vec<u8>,
    hdrs: Option<&IndexMap<String, String>>,
) -> Result<Reject, ArgError> {
    let status = integer("status", status, 300.0, 599.0)? as u16;
    if body.len() > 1 << 20 {
        return Err(arg("reject body is larger than 1 MiB"));
    }
    Ok(Reject {
        status,
        headers: headers(hdrs, SERVER_RESERVED)?,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_engine() {
        let c = config(&ConnectionOptions::default(), Side::Server).unwrap();
        let d = Config::default();
        assert_eq!(c.ping_interval_ms, d.ping_interval_ms);
        assert_eq!(c.max_frame_size, d.max_frame_size);
        let c = config(
            &ConnectionOptions {
                timers: Some(false),
                ..Default::default()
            },
            Side::Server,
        )
        .unwrap();
        assert_eq!(c.ping_interval_ms, None);
        assert_eq!(c.handshake_timeout_ms, None);
    }

    #[test]
    fn zero_turns_a_timer_off_and_fractions_round_down() {
        let o = ConnectionOptions {
            ping_interval_ms: Some(0.0),
            pong_timeout_ms: Some(1500.9),
            ..Default::default()
        };
        let c = config(&o, Side::Client).unwrap();
        assert_eq!(c.ping_interval_ms, None);
        assert_eq!(c.pong_timeout_ms, Some(1500));
    }

    #[test]
    fn bad_numbers_are_refused_with_the_option_name() {
        for (o, needle) in [
            (
                ConnectionOptions {
                    max_frame_size: Some(-1.0),
                    ..Default::default()
                },
                "maxFrameSize",
            ),
            (
                ConnectionOptions {
                    max_headers: Some(1e9),
                    ..Default::default()
                },
                "maxHeaders",
            ),
            (
                ConnectionOptions {
                    max_fragments: Some(2.5),
                    ..Default::default()
                },
                "integer",
            ),
            (
                ConnectionOptions {
                    idle_timeout_ms: Some(f64::NAN),
                    ..Default::default()
                },
                "finite",
            ),
            (
                ConnectionOptions {
                    buffer_retain: Some(1e12),
                    ..Default::default()
                },
                "bufferRetain",
            ),
        ] {
            let e = config(&o, Side::Server).unwrap_err();
            assert!(e.0.contains(needle), "{e} lacks {needle}");
        }
    }

    #[test]
    fn options_of_the_other_role_are_refused() {
        let o = ConnectionOptions {
            seed: Some(1.0),
            ..Default::default()
        };
        assert!(config(&o, Side::Server).unwrap_err().0.contains("clients"));
        let o = ConnectionOptions {
            origins: Some(vec!["https://a".into()]),
            ..Default::default()
        };
        assert!(config(&o, Side::Client).unwrap_err().0.contains("servers"));
    }

    #[test]
    fn headers_and_subprotocols_are_checked() {
        let mut h = IndexMap::new();
        h.insert("X-Ok".to_string(), "fine".to_string());
        assert_eq!(headers(Some(&h), CLIENT_RESERVED).unwrap().len(), 1);
        h.insert("X-Bad".to_string(), "a\r\nInjected: yes".to_string());
        assert!(headers(Some(&h), CLIENT_RESERVED).is_err());
        let mut h = IndexMap::new();
        h.insert("Bad Name".to_string(), "v".to_string());
        assert!(headers(Some(&h), CLIENT_RESERVED).is_err());
        let mut h = IndexMap::new();
        h.insert("sec-websocket-key".to_string(), "v".to_string());
        assert!(headers(Some(&h), CLIENT_RESERVED)
            .unwrap_err()
            .0
            .contains("handshake"));
        let o = ConnectionOptions {
            subprotocols: Some(vec!["chat, v2".into()]),
            ..Default::default()
        };
        assert!(config(&o, Side::Server).is_err());
        assert!(client_request("ws://h/", &o).is_err());
    }

    #[test]
    fn urls_and_statuses() {
        let o = ConnectionOptions::default();
        let r = client_request("ws://example.com:9001/chat?x=1", &o).unwrap();
        assert_eq!(r.host, "example.com:9001");
        assert_eq!(r.path, "/chat?x=1");
        assert!(client_request("http://example.com/", &o).is_err());
        assert!(client_request("ws://exa\nmple.com/", &o).is_err());
        assert!(reject(200.0, vec![], None).is_err());
        assert!(reject(401.5, vec![], None).is_err());
        assert_eq!(reject(401.0, b"no".to_vec(), None).unwrap().status, 401);
    }

    #[test]
    fn deflate_can_be_turned_off_or_tuned() {
        let off = ConnectionOptions {
            deflate: Some(Either::A(false)),
            ..Default::default()
        };
        assert!(config(&off, Side::Server).unwrap().deflate.is_none());
        let tuned = ConnectionOptions {
            deflate: Some(Either::B(DeflateOptions {
                level: Some(9.0),
                client_max_window_bits: Some(10.0),
                ..Default::default()
            })),
            ..Default::default()
        };
        let d = config(&tuned, Side::Client)
            .unwrap()
            .deflate
            .clone()
            .unwrap();
        assert_eq!((d.level, d.client_max_window_bits), (9, 10));
        let bad = ConnectionOptions {
            deflate: Some(Either::B(DeflateOptions {
                server_max_window_bits: Some(8.0),
                ..Default::default()
            })),
            ..Default::default()
        };
        assert!(config(&bad, Side::Server)
            .unwrap_err()
            .0
            .contains("serverMaxWindowBits"));
    }

    #[test]
    fn time_is_checked_and_floored() {
        assert_eq!(time(12.7).unwrap(), 12);
        assert!(time(-1.0).is_err());
        assert!(time(f64::INFINITY).is_err());
    }
}
