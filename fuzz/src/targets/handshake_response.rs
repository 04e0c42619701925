//! Client side of the upgrade: `parse_response` on arbitrary bytes never
//! panics and only completes on a genuine 101 for our key and offer; a
//! response built from fields is accepted or refused exactly as RFC 6455
//! 4.1 says.

use arbitrary::{Arbitrary, Unstructured};
use evsock::ws::handshake::{parse_response, Parsed};
use evsock::ws::{ClientRequest, Config, HandshakeError};

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
    extension: Option<String>,
    extra: Vec<(u8, u8)>,
    body: Vec<u8>,
    cut: u16,
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
    let ext: Option<String> = f.extension.as_ref().map(|s| {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(20)
            .collect()
    });
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
        && ext.as_ref().is_none_or(|e| e.is_empty());
    match got {
        Ok(Parsed::Complete(resp, n)) => {
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
