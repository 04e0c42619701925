//! A minimal, strict HTTP/1.1 head reader for checking the handshake bytes
//! the engine emits (independent of the engine's use of `httparse`).

use base64::Engine as _;
use sha1::{Digest, Sha1};

/// A parsed HTTP head.
#[derive(Debug, Clone)]
pub struct Head {
    /// The request or status line.
    pub start: String,
    /// Header fields in order.
    pub fields: Vec<(String, String)>,
    /// Bytes the head took, including the blank line.
    pub len: usize,
}

impl Head {
    /// Every value of a field (name compared ASCII case-insensitively).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of a field; an error if it is missing or repeated.
    pub fn one(&self, name: &str) -> Result<&str, String> {
        match self.all(name).as_slice() {
            [v] => Ok(v),
            [] => Err(format!("missing {name}")),
            _ => Err(format!("repeated {name}")),
        }
    }

    /// Does a comma-separated field hold `token`?
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.all(name)
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Can these fields go into a head as they are (token names, no control
/// bytes in values)?
pub fn fields_ok(fields: &[(String, String)]) -> bool {
    fields.iter().all(|(n, v)| {
        !n.is_empty()
            && n.bytes().all(is_tchar)
            && !v.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7F)
    })
}

/// Finds and parses the head at the front of `buf`. `None`: incomplete.
pub fn read_head(buf: &[u8]) -> Option<Result<Head, String>> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some(parse_head(&buf[..end]).map(|(start, fields)| Head {
        start,
        fields,
        len: end,
    }))
}

fn parse_head(head: &[u8]) -> Result<(String, Vec<(String, String)>), String> {
    let body = &head[..head.len() - 4];
    let mut lines = Vec::new();
    let mut rest = body;
    loop {
        match rest.windows(2).position(|w| w == b"\r\n") {
            Some(i) => {
                lines.push(&rest[..i]);
                rest = &rest[i + 2..];
            }
            None => {
                lines.push(rest);
                break;
            }
        }
    }
    for l in &lines {
        if l.iter().any(|&c| c == b'\r' || c == b'\n') {
            return Err(format!(
                "bare CR or LF in line {:?}",
                String::from_utf8_lossy(l)
            ));
        }
    }
    let start = std::str::from_utf8(lines[0])
        .map_err(|_| "start line is not UTF-8".to_string())?
        .to_string();
    let mut fields = Vec::new();
    for l in &lines[1..] {
        let colon = l.iter().position(|&c| c == b':').ok_or_else(|| {
            format!(
                "header line without a colon: {:?}",
                String::from_utf8_lossy(l)
            )
        })?;
        let name = &l[..colon];
        if name.is_empty() || !name.iter().all(|&c| is_tchar(c)) {
            return Err(format!(
                "bad header name {:?}",
                String::from_utf8_lossy(name)
            ));
        }
        let value = &l[colon + 1..];
        if value.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7F) {
            return Err(format!(
                "control byte in header value {:?}",
                String::from_utf8_lossy(value)
            ));
        }
        fields.push((
            String::from_utf8_lossy(name).into_owned(),
            String::from_utf8_lossy(value)
                .trim_matches([' ', '\t'])
                .to_string(),
        ));
    }
    Ok((start, fields))
}

/// The Sec-WebSocket-Accept value for a key (RFC 6455 4.2.2).
pub fn expected_accept(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// The status code of a response head, checking the status line's syntax.
pub fn status(head: &Head) -> Result<u16, String> {
    let s = head.start.as_bytes();
    let ok = s.len() >= 13
        && s.starts_with(b"HTTP/1.1 ")
        && s[9..12].iter().all(u8::is_ascii_digit)
        && s[12] == b' ';
    if !ok {
        return Err(format!("bad status line {:?}", head.start));
    }
    Ok(head.start[9..12].parse().unwrap())
}

/// Checks a 101 answer for `key`; returns the selected subprotocol.
pub fn check_switching(
    head: &Head,
    key: &str,
    offered: &[String],
) -> Result<Option<String>, String> {
    if status(head)? != 101 {
        return Err(format!("expected 101, got {:?}", head.start));
    }
    if !head.has_token("Upgrade", "websocket") {
        return Err("101 without Upgrade: websocket".into());
    }
    if !head.has_token("Connection", "upgrade") {
        return Err("101 without Connection: Upgrade".into());
    }
    let accept = head.one("Sec-WebSocket-Accept")?;
    if accept != expected_accept(key) {
        return Err(format!(
            "Sec-WebSocket-Accept {accept:?} does not match key {key:?}"
        ));
    }
    if !head.all("Sec-WebSocket-Extensions").is_empty() {
        return Err("101 enables an extension nobody offered".into());
    }
    match head.all("Sec-WebSocket-Protocol").as_slice() {
        [] => Ok(None),
        [p] if offered.iter().any(|o| o == p) => Ok(Some(p.to_string())),
        [p] => Err(format!(
            "101 selects subprotocol {p:?}, not among {offered:?}"
        )),
        _ => Err("101 with several Sec-WebSocket-Protocol fields".into()),
    }
}

/// Checks a refusal: a final status, a body of exactly Content-Length bytes
/// and `Connection: close`. Returns the status and the body length.
pub fn check_refusal(head: &Head) -> Result<(u16, usize), String> {
    let st = status(head)?;
    if !(200..=599).contains(&st) {
        return Err(format!(
            "refusal with status {st}, which is not a final HTTP status"
        ));
    }
    if !head.has_token("Connection", "close") {
        return Err("refusal without Connection: close".into());
    }
    let len: usize = head
        .one("Content-Length")?
        .parse()
        .map_err(|_| "bad Content-Length".to_string())?;
    Ok((st, len))
}

/// Checks a client's upgrade request; returns its key.
pub fn check_request(head: &Head) -> Result<String, String> {
    let parts: Vec<&str> = head.start.split(' ').collect();
    if parts.len() != 3 || parts[0] != "GET" || parts[2] != "HTTP/1.1" || parts[1].is_empty() {
        return Err(format!("bad request line {:?}", head.start));
    }
    head.one("Host")?;
    if !head.has_token("Upgrade", "websocket") || !head.has_token("Connection", "upgrade") {
        return Err("request without the upgrade fields".into());
    }
    if head.one("Sec-WebSocket-Version")? != "13" {
        return Err("Sec-WebSocket-Version is not 13".into());
    }
    let key = head.one("Sec-WebSocket-Key")?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => Ok(key.to_string()),
        _ => Err(format!(
            "Sec-WebSocket-Key {key:?} is not 16 bytes of base64"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_accept_and_heads() {
        assert_eq!(
            expected_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        let h = read_head(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nxx")
            .unwrap()
            .unwrap();
        assert_eq!(h.len, 129);
        assert_eq!(
            check_switching(&h, "dGhlIHNhbXBsZSBub25jZQ==", &[]).unwrap(),
            None
        );
        assert!(read_head(b"GET / HTTP/1.1\r\nA: b\nc\r\n\r\n")
            .unwrap()
            .is_err());
        assert!(read_head(b"GET / HTTP/1.1\r\n").is_none());
        let h = read_head(b"HTTP/1.1 0 Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(check_refusal(&h).is_err());
    }
}
