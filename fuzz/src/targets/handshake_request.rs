//! Server side of the upgrade: `parse_request` on arbitrary bytes never
//! panics and only completes on a request that really is a valid upgrade;
//! the 101 built for it by `accept_response` is valid HTTP with the right
//! accept key and no injected fields; and a request built from arbitrary
//! fields by `ClientRequest::encode` parses back to the same fields.

use arbitrary::{Arbitrary, Unstructured};
use base64::Engine as _;
use evsock::ws::handshake::{accept_response, parse_request, Parsed};
use evsock::ws::{Accept, ClientRequest, Config, OriginPolicy};
use evsock::SeededRng;

use crate::http::{self, read_head};
use crate::{ensure, Stop};

#[derive(Arbitrary, Debug)]
struct Fields {
    max_handshake: u16,
    max_headers: u8,
    ours: Vec<String>,
    origins: Option<(Vec<String>, bool)>,
    accept_protocol: Option<String>,
    accept_headers: Vec<(String, String)>,
    host: String,
    path: String,
    origin: Option<String>,
    offer: Vec<String>,
    extra: Vec<(String, String)>,
    seed: u64,
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c))
}

fn visible(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| (0x21..0x7F).contains(&c))
}

/// The target: the raw bytes are a request; the same bytes, read as
/// structure, give the configuration, the host's decision and a client
/// request to round-trip.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let mut u = Unstructured::new(data);
    let f = Fields::arbitrary(&mut u).ok();
    let cfg = match &f {
        Some(f) => Config {
            max_handshake_bytes: 64 + f.max_handshake as usize,
            max_headers: f.max_headers as usize,
            subprotocols: f.ours.iter().take(4).cloned().collect(),
            origin_policy: match &f.origins {
                None => OriginPolicy::Any,
                Some((o, m)) => OriginPolicy::AllowList {
                    origins: o.iter().take(4).cloned().collect(),
                    allow_missing: *m,
                },
            },
            ..Config::default()
        },
        None => Config::default(),
    };
    raw(data, &cfg, f.as_ref())?;
    if let Some(f) = &f {
        round_trip(f)?;
    }
    Ok(())
}

fn raw(data: &[u8], cfg: &Config, f: Option<&Fields>) -> Result<(), Stop> {
    let (req, n) = match parse_request(data, cfg) {
        Ok(Parsed::Complete(req, n)) => (req, n),
        Ok(Parsed::Partial) => {
            ensure!(
                data.len() < cfg.max_handshake_bytes,
                "request-limit",
                "{} bytes still partial, limit {}",
                data.len(),
                cfg.max_handshake_bytes
            );
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    ensure!(
        n <= data.len() && n <= cfg.max_handshake_bytes && data[..n].ends_with(b"\r\n\r\n"),
        "request-parse",
        "complete after {n} of {} bytes (limit {})",
        data.len(),
        cfg.max_handshake_bytes
    );
    ensure!(
        parse_request(&data[..n - 1], cfg) == Ok(Parsed::Partial),
        "request-parse",
        "a strict prefix of a complete request is not partial"
    );
    let key_ok = matches!(base64::engine::general_purpose::STANDARD.decode(req.key()), Ok(k) if k.len() == 16);
    ensure!(key_ok, "request-parse", "accepted key {:?}", req.key());
    ensure!(
        req.headers.len() <= cfg.max_headers,
        "request-parse",
        "{} headers accepted, limit {}",
        req.headers.len(),
        cfg.max_headers
    );
    ensure!(
        cfg.origin_policy.allows(req.origin.as_deref()),
        "request-origin",
        "origin {:?} accepted against {:?}",
        req.origin,
        cfg.origin_policy
    );
    let want = cfg
        .subprotocols
        .iter()
        .find(|o| req.subprotocols.contains(o));
    ensure!(
        req.selected_subprotocol.as_ref() == want,
        "request-subprotocol",
        "selected {:?}; ours {:?}, offered {:?}",
        req.selected_subprotocol,
        cfg.subprotocols,
        req.subprotocols
    );

    // The host's decision, and the 101 the engine writes for it.
    let accept = match f {
        Some(f) => Accept {
            subprotocol: f.accept_protocol.clone(),
            headers: f.accept_headers.iter().take(4).cloned().collect(),
        },
        None => Accept::default(),
    };
    // Connection::accept refuses fields that are not HTTP
    // (InvalidArgument) before it gets here; the connection target checks
    // that it does.
    if evsock::ws::handshake::check_fields(&accept.headers).is_err() {
        return Ok(());
    }
    // ... and extra headers that repeat the 101's own fields.
    if evsock::ws::handshake::check_not_handshake_fields(
        &accept.headers,
        evsock::ws::handshake::RESPONSE_FIELDS,
    )
    .is_err()
    {
        return Ok(());
    }
    // So does a subprotocol the client did not offer (RFC 6455 4.2.2).
    if accept
        .subprotocol
        .as_deref()
        .is_some_and(|p| !p.is_empty() && !req.subprotocols.iter().any(|o| o == p))
    {
        return Ok(());
    }
    let (resp, proto) = accept_response(&req, &accept);
    let head = match read_head(&resp) {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            return Err(crate::findings::violation(
                "accept-invalid-header",
                format!("{e}; response {:?}", String::from_utf8_lossy(&resp)),
            ))
        }
        None => {
            return Err(crate::findings::violation(
                "accept-response",
                "101 response has no end of head",
            ))
        }
    };
    ensure!(
        head.len == resp.len(),
        "accept-response",
        "bytes after the 101 head"
    );
    let fields = 3 + proto.is_some() as usize + accept.headers.len();
    ensure!(
        head.fields.len() == fields,
        "accept-injection",
        "{} header fields, expected {fields}: {:?}",
        head.fields.len(),
        head.fields
    );
    match http::check_switching(&head, req.key(), &req.subprotocols) {
        Ok(p) => ensure!(
            p == proto,
            "accept-response",
            "101 says {p:?}, engine reports {proto:?}"
        ),
        Err(e) => {
            // Open finding: check_fields lets Accept::headers repeat the
            // fields the 101 carries itself (Sec-WebSocket-Protocol, ...).
            let reserved = accept.headers.iter().any(|(n, _)| {
                let n = n.to_ascii_lowercase();
                n.starts_with("sec-websocket-") || n == "upgrade" || n == "connection"
            });
            return Err(crate::findings::violation(
                if reserved {
                    "accept-reserved-field"
                } else {
                    "accept-unoffered-subprotocol"
                },
                format!("{e} (accept {accept:?})"),
            ));
        }
    }
    Ok(())
}

fn round_trip(f: &Fields) -> Result<(), Stop> {
    let mut cr = ClientRequest::new(f.host.clone(), f.path.clone());
    cr.origin = f.origin.clone();
    cr.subprotocols = f.offer.iter().take(4).cloned().collect();
    cr.headers = f.extra.iter().take(4).cloned().collect();
    let (bytes, key) = cr.encode(&mut SeededRng::new(f.seed));
    // Whatever the fields, no field may be smuggled in.
    let fields =
        5 + cr.origin.is_some() as usize + !cr.subprotocols.is_empty() as usize + cr.headers.len();
    let lines = bytes.windows(2).filter(|w| w == b"\r\n").count();
    ensure!(
        lines == fields + 2,
        "request-injection",
        "{lines} CRLFs for {fields} fields: {:?}",
        String::from_utf8_lossy(&bytes)
    );

    let reserved = [
        "host",
        "upgrade",
        "connection",
        "origin",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
    ];
    let valid = visible(&cr.host)
        && cr.path.starts_with('/')
        && visible(&cr.path)
        && cr.origin.as_deref().is_none_or(visible)
        && cr.subprotocols.iter().all(|p| is_token(p))
        && cr.headers.iter().all(|(n, v)| {
            is_token(n) && !reserved.contains(&n.to_ascii_lowercase().as_str()) && visible(v)
        });
    let cfg = Config {
        max_headers: 64,
        max_handshake_bytes: 1 << 20,
        ..Config::default()
    };
    let parsed = parse_request(&bytes, &cfg);
    // Fields that are not HTTP are the host's to refuse, by
    // `ClientRequest::validate` (which `Connection::try_client` calls);
    // it must refuse every request it would encode as something else.
    if cr.validate().is_err() {
        return Ok(());
    }
    // Open finding: validate() lets extra headers repeat the fields the
    // engine writes itself (Sec-WebSocket-Key, Host, ...).
    let reserved_extra = cr
        .headers
        .iter()
        .any(|(n, _)| reserved.contains(&n.to_ascii_lowercase().as_str()));
    if !valid {
        // The engine took these fields without complaint, so what it
        // writes must at least be well-formed HTTP.
        return match read_head(&bytes) {
            Some(Ok(h)) if http::check_request(&h).is_ok() => Ok(()),
            other => Err(crate::findings::violation(
                if reserved_extra {
                    "request-reserved-field"
                } else {
                    "request-invalid-field"
                },
                format!(
                    "{cr:?} encoded as invalid HTTP {:?}: {other:?}",
                    String::from_utf8_lossy(&bytes)
                ),
            )),
        };
    }
    let req = match parsed {
        Ok(Parsed::Complete(req, n)) if n == bytes.len() => req,
        other => {
            return Err(crate::findings::violation(
                "request-roundtrip",
                format!(
                    "{cr:?} encoded as {:?} parses as {other:?}",
                    String::from_utf8_lossy(&bytes)
                ),
            ))
        }
    };
    ensure!(
        req.path == cr.path,
        "request-roundtrip",
        "path {:?} came back as {:?}",
        cr.path,
        req.path
    );
    ensure!(
        req.header("Host") == Some(cr.host.as_str()),
        "request-roundtrip",
        "host {:?} came back as {:?}",
        cr.host,
        req.header("Host")
    );
    ensure!(
        req.origin == cr.origin,
        "request-roundtrip",
        "origin {:?} came back as {:?}",
        cr.origin,
        req.origin
    );
    ensure!(
        req.subprotocols == cr.subprotocols,
        "request-roundtrip",
        "offer {:?} came back as {:?}",
        cr.subprotocols,
        req.subprotocols
    );
    ensure!(
        req.key() == key,
        "request-roundtrip",
        "key {key:?} came back as {:?}",
        req.key()
    );
    for (n, v) in &cr.headers {
        ensure!(
            req.headers
                .iter()
                .any(|(hn, hv)| hn == n && hv == v.as_bytes()),
            "request-roundtrip",
            "header {n}: {v} lost in {:?}",
            req.headers
        );
    }
    Ok(())
}
