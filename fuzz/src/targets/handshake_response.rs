//! Client side of the upgrade: `parse_response` on arbitrary bytes never
//! panics and only completes on a genuine 101 for our key and offer; a
//! response built from fields is accepted or refused exactly as RFC 6455
//! 4.1 says.

use arbitrary::{Arbitrary, Unstructured};
use evsock::ws::handshake::{parse_response, Parsed};
use evsock::ws::{deflate, ClientRequest, Config, HandshakeError};

use crate::http::expected_accept;
use crate::{ensure, Stop};

/// The key of the RFC 6455 example, so that real captures work as seeds.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

#[derive(Arbitrary, Debug)]
struct Fields {
    status: Option<u16>,
    bad_accept: Option<String>,
    no_upgrade: bool,
    no_connection: bool,
    /// Index into the offer, or a foreign protocol.
    protocol: Option<Result<u8, String>>,
    /// Random text, or a permessage-deflate response built from parts.
    extension: Option<Result<Vec<DeflateParam>, String>>,
    extra: Vec<(u8, u8)>,
    body: Vec<u8>,
    cut: u16,
    /// Parse with permessage-deflate turned off (nothing offered).
    no_deflate: bool,
}

/// One parameter of a permessage-deflate response.
#[derive(Arbitrary, Debug)]
enum DeflateParam {
    ServerNoContext,
    ClientNoContext,
    ServerBits(Option<u8>),
    ClientBits(Option<u8>),
    /// Another extension in the same header.
    Other,
    Unknown,
}

impl DeflateParam {
    fn text(&self) -> String {
        let bits = |name: &str, v: &Option<u8>| match v {
            None => name.to_string(),
            Some(b) => format!("{name}={}", b % 18),
        };
        match self {
            DeflateParam::ServerNoContext => "; server_no_context_takeover".into(),
            DeflateParam::ClientNoContext => "; client_no_context_takeover".into(),
            DeflateParam::ServerBits(v) => format!("; {}", bits("server_max_window_bits", v)),
            DeflateParam::ClientBits(v) => format!("; {}", bits("client_max_window_bits", v)),
            DeflateParam::Other => ", x-other".into(),
            DeflateParam::Unknown => "; whatever".into(),
        }
    }
}

/// Independent judgement of a permessage-deflate response (RFC 7692 5,
/// 7.1) to the engine's default offer (`server_no_context_takeover;
/// client_max_window_bits`), for an endpoint that cannot use 8-bit windows.
fn deflate_response_ok(params: &[DeflateParam]) -> bool {
    let mut seen = [false; 4];
    for p in params {
        let (i, ok) = match p {
            DeflateParam::ServerNoContext => (0, true),
            DeflateParam::ClientNoContext => (1, true),
            // The server may name its window even if we did not ask.
            DeflateParam::ServerBits(v) => (2, v.is_some_and(|b| (8..=15).contains(&(b % 18)))),
            // We offered the parameter without a value: any 9..15 is fine
            // (8 cannot be honoured by zlib, so refusing it is correct).
            DeflateParam::ClientBits(v) => (3, v.is_some_and(|b| (9..=15).contains(&(b % 18)))),
            DeflateParam::Other | DeflateParam::Unknown => return false,
        };
        if !ok || std::mem::replace(&mut seen[i], true) {
            return false;
        }
    }
    true
}

fn offer() -> ClientRequest {
    let mut r = ClientRequest::new("server.example.com", "/chat");
    r.subprotocols = vec!["chat".into(), "superchat".into()];
    r
}

fn header<'a>(h: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a str> {
    h.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

fn tokens(v: Option<&str>, t: &str) -> bool {
    v.is_some_and(|v| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t)))
}

/// The target: raw bytes as a response, and the same bytes as structure.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let req = offer();
    let cfg = Config::default();
    match parse_response(data, KEY, &req, &cfg) {
        Ok(Parsed::Complete(resp, n)) => {
            ensure!(
                n <= data.len() && data[..n].ends_with(b"\r\n\r\n"),
                "response-parse",
                "complete after {n} of {} bytes",
                data.len()
            );
            let h = &resp.headers;
            ensure!(
                header(h, "Sec-WebSocket-Accept").map(str::trim)
                    == Some(expected_accept(KEY).as_str()),
                "response-accept",
                "accepted a 101 with accept {:?}",
                header(h, "Sec-WebSocket-Accept")
            );
            ensure!(
                tokens(header(h, "Upgrade"), "websocket")
                    && tokens(header(h, "Connection"), "upgrade"),
                "response-parse",
                "accepted without the upgrade fields: {h:?}"
            );
            ensure!(
                resp.subprotocol
                    .as_ref()
                    .is_none_or(|p| req.subprotocols.contains(p)),
                "response-subprotocol",
                "accepted unoffered {:?}",
                resp.subprotocol
            );
            ensure!(
                parse_response(&data[..n - 1], KEY, &req, &cfg) == Ok(Parsed::Partial),
                "response-parse",
                "strict prefix not partial"
            );
        }
        Err(HandshakeError::UnexpectedStatus { body, .. }) => {
            ensure!(
                body.len() <= 4096,
                "response-memory",
                "kept {} bytes of body",
                body.len()
            );
        }
        _ => {}
    }
    let Ok(f) = Fields::arbitrary(&mut Unstructured::new(data)) else {
        return Ok(());
    };
    let cfg = if f.no_deflate {
        Config {
            deflate: None,
            ..cfg
        }
    } else {
        cfg
    };
    built(&f, &req, &cfg)
}

fn built(f: &Fields, req: &ClientRequest, cfg: &Config) -> Result<(), Stop> {
    let status = f.status.map_or(101, |s| 100 + s % 500);
    let mut r = format!("HTTP/1.1 {status} Whatever\r\n");
    if !f.no_upgrade {
        r += "Upgrade: WebSocket\r\n";
    }
    if !f.no_connection {
        r += "Connection: keep-alive, Upgrade\r\n";
    }
    let good = expected_accept(KEY);
    let accept: String = match &f.bad_accept {
        Some(s) => s
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(40)
            .collect(),
        None => good.clone(),
    };
    r += &format!("Sec-WebSocket-Accept: {accept}\r\n");
    let proto: Option<String> = match &f.protocol {
        None => None,
        Some(Ok(i)) => Some(req.subprotocols[*i as usize % 2].clone()),
        Some(Err(s)) => Some(
            s.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .take(20)
                .collect(),
        ),
    };
    if let Some(p) = &proto {
        r += &format!("Sec-WebSocket-Protocol: {p}\r\n");
    }
    let ext: Option<String> = f.extension.as_ref().map(|e| match e {
        Err(s) => s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect(),
        Ok(params) => {
            let mut v = String::from("permessage-deflate");
            for p in params.iter().take(6) {
                v += &p.text();
            }
            v
        }
    });
    // An alphanumeric value is never a valid permessage-deflate response.
    let ext_ok = match &f.extension {
        None => true,
        Some(Err(_)) => ext.as_ref().is_none_or(|e| e.is_empty()),
        Some(Ok(params)) => {
            cfg.deflate.is_some() && deflate_response_ok(&params[..params.len().min(6)])
        }
    };
    if let Some(e) = &ext {
        r += &format!("Sec-WebSocket-Extensions: {e}\r\n");
    }
    for (i, (a, b)) in f.extra.iter().take(8).enumerate() {
        r += &format!("X-Extra-{i}: {a}-{b}\r\n");
    }
    r += "\r\n";
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(&f.body);
    let head = bytes.len() - f.body.len();

    let cut = f.cut as usize % (bytes.len() + 1);
    if cut < head {
        ensure!(
            parse_response(&bytes[..cut], KEY, req, cfg) == Ok(Parsed::Partial),
            "response-parse",
            "prefix of {cut} bytes not partial"
        );
    }
    let got = parse_response(&bytes, KEY, req, cfg);
    let proto = proto.filter(|p| !p.is_empty());
    let expect_ok = status == 101
        && !f.no_upgrade
        && !f.no_connection
        && accept == good
        && proto.as_ref().is_none_or(|p| req.subprotocols.contains(p))
        && ext_ok;
    match got {
        Ok(Parsed::Complete(resp, n)) => {
            // What the connection does next: check the extension against
            // its offer; a refusal there fails the handshake.
            let agreed = match (&resp.extensions, &cfg.deflate) {
                (None, _) => Ok(None),
                (Some(e), Some(d)) => deflate::accept(e, d).map(Some),
                (Some(e), None) => {
                    return Err(crate::findings::violation(
                        "response-accepted-bad",
                        format!("extension {e:?} passed with deflate off"),
                    ))
                }
            };
            if agreed.is_err() {
                ensure!(
                    !expect_ok,
                    "response-refused-good",
                    "extension refused: {agreed:?} in {:?}",
                    String::from_utf8_lossy(&bytes)
                );
                return Ok(());
            }
            ensure!(
                expect_ok,
                "response-accepted-bad",
                "accepted {:?}",
                String::from_utf8_lossy(&bytes)
            );
            ensure!(
                n == head,
                "response-parse",
                "head is {head} bytes, parser took {n}"
            );
            ensure!(
                resp.subprotocol == proto,
                "response-subprotocol",
                "selected {:?}, server said {proto:?}",
                resp.subprotocol
            );
        }
        Err(HandshakeError::UnexpectedStatus { status: s, body }) => {
            ensure!(
                status != 101 && s == status,
                "response-parse",
                "status {status} reported as {s}"
            );
            ensure!(
                body[..] == f.body[..f.body.len().min(4096)],
                "response-parse",
                "body not reported as sent"
            );
        }
        other => {
            ensure!(
                !expect_ok,
                "response-refused-good",
                "refused {:?}: {other:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
    Ok(())
}
