//! The HTTP/1.1 upgrade handshake (RFC 6455 section 4) for both roles.
//!
//! The server side parses a request incrementally, checks it, and hands the
//! host a [`Request`] to accept or reject. The client side builds a request
//! and checks the server's 101 response.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::config::Config;
use super::error::HandshakeError;
use crate::rng::Rng;

const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key.
pub fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Finds the end of an HTTP head (`\r\n\r\n`), returning its length.
fn head_len(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

/// Does a comma-separated header value list contain `token`
/// (ASCII case-insensitively)?
pub fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A client's upgrade request, as handed to the server host for a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request target, for example `/chat?room=1`.
    pub path: String,
    /// Every header field, in order, with names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The Origin header, if any.
    pub origin: Option<String>,
    /// Subprotocols the client offered, in its order.
    pub subprotocols: Vec<String>,
    /// Extensions the client offered (raw header values).
    pub extensions: Vec<String>,
    /// The subprotocol the server's configuration would select.
    pub selected_subprotocol: Option<String>,
    key: String,
}

impl Request {
    /// The first header with this name (ASCII case-insensitive), if UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    /// The Sec-WebSocket-Key the client sent.
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// The host's decision to accept an upgrade.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Accept {
    /// The subprotocol to select. `None` keeps the configuration's choice
    /// ([`Request::selected_subprotocol`]); `Some("")` selects none; any
    /// other value must be one the client offered.
    pub subprotocol: Option<String>,
    /// Extra response headers (for example Set-Cookie).
    pub headers: Vec<(String, String)>,
}

/// The host's decision to refuse an upgrade with an HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// The HTTP status, for example 401 or 403.
    pub status: u16,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// The response body (sent as text/plain).
    pub body: Vec<u8>,
}

impl Reject {
    /// A rejection with a status and a short text body.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Reject {
        Reject {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

/// The reason phrase for the statuses we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// Result of feeding bytes to a handshake parser.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// More bytes are needed.
    Partial,
    /// The head was complete; `usize` bytes of the input belonged to it.
    Complete(T, usize),
}

/// Server side: parses and checks an upgrade request from the front of
/// `buf`.
pub fn parse_request(buf: &[u8], config: &Config) -> Result<Parsed<Request>, HandshakeError> {
    let len = match head_len(buf) {
        Some(n) if n <= config.max_handshake_bytes => n,
        Some(_) => {
            return Err(HandshakeError::HeadersTooLarge {
                limit: config.max_handshake_bytes,
            })
        }
        None if buf.len() >= config.max_handshake_bytes => {
            return Err(HandshakeError::HeadersTooLarge {
                limit: config.max_handshake_bytes,
            })
        }
        None => return Ok(Parsed::Partial),
    };
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HandshakeError::MalformedHttp("incomplete head".into()))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders {
                limit: config.max_headers,
            })
        }
        Err(e) => return Err(HandshakeError::MalformedHttp(e.to_string())),
    }
    let method = req.method.unwrap_or("");
    if method != "GET" {
        return Err(HandshakeError::MethodNotAllowed(method.to_string()));
    }
    if req.version != Some(1) {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    let path = req.path.unwrap_or("/").to_string();
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    let get = |name: &str| -> Option<&str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    // All values of a header that may be repeated, joined as a list.
    let get_all = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect()
    };
    if get("Host").is_none() {
        return Err(HandshakeError::MissingHeader("Host"));
    }
    if !get_all("Upgrade")
        .iter()
        .any(|t| t.eq_ignore_ascii_case("websocket"))
    {
        return Err(HandshakeError::MissingHeader("Upgrade"));
    }
    if !get_all("Connection")
        .iter()
        .any(|t| t.eq_ignore_ascii_case("upgrade"))
    {
        return Err(HandshakeError::MissingHeader("Connection"));
    }
    match get("Sec-WebSocket-Version") {
        Some(v) if v.trim() == "13" => {}
        Some(v) => return Err(HandshakeError::UnsupportedVersion(v.to_string())),
        None => return Err(HandshakeError::UnsupportedVersion(String::new())),
    }
    let key = get("Sec-WebSocket-Key")
        .map(str::trim)
        .ok_or(HandshakeError::MissingHeader("Sec-WebSocket-Key"))?;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Key")),
    }
    let origin = get("Origin").map(|s| s.trim().to_string());
    if !config.origin_policy.allows(origin.as_deref()) {
        return Err(HandshakeError::OriginRefused(origin.unwrap_or_default()));
    }
    let subprotocols = get_all("Sec-WebSocket-Protocol");
    let extensions = get_all("Sec-WebSocket-Extensions");
    let selected_subprotocol = config
        .subprotocols
        .iter()
        .find(|ours| subprotocols.iter().any(|p| p == *ours))
        .cloned();
    Ok(Parsed::Complete(
        Request {
            path,
            key: key.to_string(),
            headers,
            origin,
            subprotocols,
            extensions,
            selected_subprotocol,
        },
        len,
    ))
}

/// Server side: the 101 response accepting `req`. The caller checks that
/// `accept.subprotocol` is one the client offered ([`Connection::accept`]
/// does).
///
/// [`Connection::accept`]: super::Connection::accept
pub fn accept_response(req: &Request, accept: &Accept) -> (Vec<u8>, Option<String>) {
    accept_response_with(req, accept, None)
}

/// Server side: the 101 response accepting `req`, with the negotiated
/// `Sec-WebSocket-Extensions` value, if any.
pub fn accept_response_with(
    req: &Request,
    accept: &Accept,
    extensions: Option<&str>,
) -> (Vec<u8>, Option<String>) {
    let proto = match &accept.subprotocol {
        None => req.selected_subprotocol.clone(),
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p.clone()),
    };
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    out.extend_from_slice(accept_key(req.key.as_bytes()).as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(p) = &proto {
        push_header(&mut out, "Sec-WebSocket-Protocol", p);
    }
    if let Some(e) = extensions {
        push_header(&mut out, "Sec-WebSocket-Extensions", e);
    }
    for (n, v) in &accept.headers {
        push_header(&mut out, n, v);
    }
    out.extend_from_slice(b"\r\n");
    (out, proto)
}

/// Checks header fields a host adds to a response: names must be RFC 9110
/// tokens and values free of control bytes (HTAB aside), or the response
/// would not be HTTP.
pub fn check_fields(headers: &[(String, String)]) -> Result<(), &'static str> {
    for (n, v) in headers {
        if !is_token(n) {
            return Err("a header name must be a non-empty token");
        }
        if v.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7F) {
            return Err("a header value must not contain control bytes");
        }
    }
    Ok(())
}

/// Fields a client request carries from the handshake itself.
pub const REQUEST_FIELDS: &[&str] = &[
    "Host",
    "Upgrade",
    "Connection",
    "Origin",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

/// Fields a 101 response carries from the handshake itself (the
/// subprotocol and extensions are chosen through [`Accept`] and the
/// configuration, never by a header).
pub const RESPONSE_FIELDS: &[&str] = &[
    "Upgrade",
    "Connection",
    "Sec-WebSocket-Accept",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

/// Refuses extra header fields that repeat one of `own`, the fields the
/// handshake writes itself: a second copy would make the message
/// ambiguous (two keys) or contradict what was negotiated.
pub fn check_not_handshake_fields(
    headers: &[(String, String)],
    own: &[&str],
) -> Result<(), &'static str> {
    if headers
        .iter()
        .any(|(n, _)| own.iter().any(|o| o.eq_ignore_ascii_case(n)))
    {
        return Err("extra headers must not repeat fields the handshake sets (Host, Upgrade, Connection, Origin, Sec-WebSocket-*)");
    }
    Ok(())
}

/// An RFC 9110 token: one or more tchars (header names, subprotocols).
pub fn is_token(s: &str) -> bool {
    let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    !s.is_empty() && s.bytes().all(tchar)
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    // Header injection guard: CR and LF never reach the wire.
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    out.extend_from_slice(clean(name).as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(clean(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Server side: an HTTP error response. Always ends with `Connection: close`.
pub fn error_response(status: u16, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    if status == 426 {
        out.extend_from_slice(b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n");
    }
    if status == 405 {
        out.extend_from_slice(b"Allow: GET\r\n");
    }
    for (n, v) in headers {
        push_header(&mut out, n, v);
    }
    out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n");
    out.extend_from_slice(
        format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

/// What a client connects to, and with which options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRequest {
    /// The Host header value, for example `example.com:8080`.
    pub host: String,
    /// The request target, for example `/chat`.
    pub path: String,
    /// The Origin header to send, if any.
    pub origin: Option<String>,
    /// Subprotocols to offer, most preferred first.
    pub subprotocols: Vec<String>,
    /// Extra request headers (for example Authorization or Cookie).
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` on `host`.
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> ClientRequest {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            origin: None,
            subprotocols: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Builds a request from a `ws://` or `wss://` URL. TLS, for `wss`, is
    /// the host's business; only the Host header and path come from here.
    pub fn from_url(url: &str) -> Result<ClientRequest, HandshakeError> {
        let rest = url
            .strip_prefix("ws://")
            .or_else(|| url.strip_prefix("wss://"))
            .ok_or(HandshakeError::InvalidHeader(
                "URL scheme (ws:// or wss://)",
            ))?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let authority = authority.rsplit('@').next().unwrap_or(authority);
        if authority.is_empty() || authority.contains(char::is_whitespace) {
            return Err(HandshakeError::InvalidHeader("URL host"));
        }
        let path = path.split('#').next().unwrap_or("/").to_string();
        Ok(ClientRequest::new(authority, path))
    }

    /// Builds the request bytes with a fresh key; returns them and the key.
    /// Checks that the request encodes as valid HTTP: the host, path and
    /// origin hold no spaces or control bytes, the host is not empty, each
    /// subprotocol is a non-empty RFC 9110 token, and every extra header
    /// passes [`check_fields`] and is not one the handshake writes itself
    /// (Host, Upgrade, Connection, Origin, Sec-WebSocket-*: set those
    /// through the request's fields). [`Connection::try_client`] calls it;
    /// [`ClientRequest::encode`] itself only guards against injection.
    ///
    /// [`Connection::try_client`]: super::Connection::try_client
    pub fn validate(&self) -> Result<(), &'static str> {
        let plain = |s: &str| !s.bytes().any(|c| c <= b' ' || c == 0x7F);
        if self.host.is_empty() || !plain(&self.host) {
            return Err("the host must be non-empty, without spaces or control bytes");
        }
        if !plain(&self.path) {
            return Err("the path must not contain spaces or control bytes");
        }
        if self.origin.as_deref().is_some_and(|o| !plain(o)) {
            return Err("the origin must not contain spaces or control bytes");
        }
        if !self.subprotocols.iter().all(|p| is_token(p)) {
            return Err("each subprotocol must be a non-empty token");
        }
        check_fields(&self.headers)?;
        check_not_handshake_fields(&self.headers, REQUEST_FIELDS)
    }

    /// Encodes the request with a fresh key from `rng`; returns the bytes
    /// and the key. CR and LF in fields never reach the wire, but other
    /// invalid fields do: call [`ClientRequest::validate`] first for
    /// requests built from untrusted input.
    pub fn encode(&self, rng: &mut dyn Rng) -> (Vec<u8>, String) {
        let mut raw = [0u8; 16];
        rng.fill(&mut raw);
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut out = Vec::with_capacity(256);
        let clean = |s: &str| s.replace(['\r', '\n', ' '], "");
        // An empty request-target is not HTTP; the root is what was meant.
        let path = match clean(&self.path) {
            p if p.is_empty() => "/".to_string(),
            p => p,
        };
        out.extend_from_slice(format!("GET {path} HTTP/1.1\r\n").as_bytes());
        push_header(&mut out, "Host", &self.host);
        out.extend_from_slice(b"Upgrade: websocket\r\nConnection: Upgrade\r\n");
        push_header(&mut out, "Sec-WebSocket-Key", &key);
        out.extend_from_slice(b"Sec-WebSocket-Version: 13\r\n");
        if let Some(o) = &self.origin {
            push_header(&mut out, "Origin", o);
        }
        if !self.subprotocols.is_empty() {
            push_header(
                &mut out,
                "Sec-WebSocket-Protocol",
                &self.subprotocols.join(", "),
            );
        }
        for (n, v) in &self.headers {
            push_header(&mut out, n, v);
        }
        out.extend_from_slice(b"\r\n");
        (out, key)
    }
}

/// The server's accepted response, as checked by the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The subprotocol the server selected, if any.
    pub subprotocol: Option<String>,
    /// Every header field of the response.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The extensions the server enabled (only ever ones we offered).
    pub extensions: Option<String>,
}

/// Client side: parses and checks the server's response to `req`.
pub fn parse_response(
    buf: &[u8],
    key: &str,
    req: &ClientRequest,
    config: &Config,
) -> Result<Parsed<Response>, HandshakeError> {
    let len = match head_len(buf) {
        Some(n) if n <= config.max_handshake_bytes => n,
        None if buf.len() < config.max_handshake_bytes => return Ok(Parsed::Partial),
        _ => {
            return Err(HandshakeError::HeadersTooLarge {
                limit: config.max_handshake_bytes,
            })
        }
    };
    let mut headers = vec![httparse::EMPTY_HEADER; config.max_headers];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(&buf[..len]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HandshakeError::MalformedHttp("incomplete head".into()))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HandshakeError::TooManyHeaders {
                limit: config.max_headers,
            })
        }
        Err(e) => return Err(HandshakeError::MalformedHttp(e.to_string())),
    }
    let status = resp.code.unwrap_or(0);
    let headers: Vec<(String, Vec<u8>)> = resp
        .headers
        .iter()
        .map(|h| (h.name.to_string(), h.value.to_vec()))
        .collect();
    if status != 101 {
        let body_end = buf.len().min(len + 4096);
        return Err(HandshakeError::UnexpectedStatus {
            status,
            body: buf[len..body_end].to_vec(),
        });
    }
    let get = |name: &str| -> Option<&str> {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    };
    if !get("Upgrade").is_some_and(|v| has_token(v, "websocket")) {
        return Err(HandshakeError::MissingHeader("Upgrade"));
    }
    if !get("Connection").is_some_and(|v| has_token(v, "upgrade")) {
        return Err(HandshakeError::MissingHeader("Connection"));
    }
    if get("Sec-WebSocket-Accept").map(str::trim) != Some(accept_key(key.as_bytes()).as_str()) {
        return Err(HandshakeError::BadAccept);
    }
    let subprotocol = match get("Sec-WebSocket-Protocol").map(str::trim) {
        None | Some("") => None,
        Some(p) if req.subprotocols.iter().any(|o| o == p) => Some(p.to_string()),
        Some(p) => return Err(HandshakeError::UnofferedSubprotocol(p.to_string())),
    };
    // Extensions are checked against our offer by the connection; without
    // an offer, any extension is one we did not ask for.
    let extensions = match get("Sec-WebSocket-Extensions").map(str::trim) {
        None | Some("") => None,
        Some(e) if config.deflate.is_none() => {
            return Err(HandshakeError::UnofferedExtension(e.to_string()))
        }
        Some(e) => Some(e.to_string()),
    };
    Ok(Parsed::Complete(
        Response {
            subprotocol,
            headers,
            extensions,
        },
        len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeededRng;

    const REQ: &str = "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nOrigin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\nSec-WebSocket-Version: 13\r\n\r\n";

    #[test]
    fn empty_path_is_sent_as_the_root() {
        // Found by the handshake_request fuzz target: "GET  HTTP/1.1".
        for path in ["", " ", "\r\n"] {
            let (bytes, _) = ClientRequest::new("h", path).encode(&mut SeededRng::new(1));
            assert!(bytes.starts_with(b"GET / HTTP/1.1\r\n"), "{path:?}");
        }
    }

    #[test]
    fn rfc_accept_key() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_rfc_request_on_any_split() {
        let config = Config {
            subprotocols: vec!["superchat".into()],
            ..Config::default()
        };
        for cut in 0..REQ.len() {
            assert_eq!(
                parse_request(&REQ.as_bytes()[..cut], &config).unwrap(),
                Parsed::Partial
            );
        }
        let mut bytes = REQ.as_bytes().to_vec();
        bytes.extend_from_slice(b"\x81\x80"); // early frame bytes are not consumed
        match parse_request(&bytes, &config).unwrap() {
            Parsed::Complete(r, n) => {
                assert_eq!(n, REQ.len());
                assert_eq!(r.path, "/chat");
                assert_eq!(r.origin.as_deref(), Some("http://example.com"));
                assert_eq!(r.subprotocols, vec!["chat", "superchat"]);
                assert_eq!(r.selected_subprotocol.as_deref(), Some("superchat"));
                let (resp, proto) = accept_response(&r, &Accept::default());
                assert_eq!(proto.as_deref(), Some("superchat"));
                let resp = String::from_utf8(resp).unwrap();
                assert!(resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
                assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
                assert!(resp.ends_with("Sec-WebSocket-Protocol: superchat\r\n\r\n"));
            }
            other => panic!("{other:?}"),
        }
    }

    fn status_of(req: &str, config: &Config) -> u16 {
        parse_request(req.as_bytes(), config).unwrap_err().status()
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        let c = Config::default();
        assert_eq!(status_of(&REQ.replace("GET", "POST"), &c), 405);
        assert_eq!(status_of(&REQ.replace("HTTP/1.1", "HTTP/1.0"), &c), 505);
        assert_eq!(
            status_of(&REQ.replace("Upgrade: websocket\r\n", ""), &c),
            426
        );
        assert_eq!(
            status_of(
                &REQ.replace("Connection: keep-alive, Upgrade", "Connection: close"),
                &c
            ),
            400
        );
        assert_eq!(
            status_of(&REQ.replace("Version: 13", "Version: 8"), &c),
            426
        );
        assert_eq!(
            status_of(&REQ.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), &c),
            400
        );
        assert_eq!(
            status_of(&REQ.replace("Host: server.example.com\r\n", ""), &c),
            400
        );
        assert_eq!(status_of("GARBAGE\r\n\r\n", &c), 400);
        let strict = Config {
            origin_policy: crate::ws::OriginPolicy::AllowList {
                origins: vec!["https://ok.example".into()],
                allow_missing: false,
            },
            ..Config::default()
        };
        assert_eq!(status_of(REQ, &strict), 403);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(20_000));
        assert_eq!(status_of(&long, &c), 431);
        let many: String = (0..100).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            status_of(&REQ.replace("\r\n\r\n", &format!("\r\n{many}\r\n")), &c),
            431
        );
        let err = error_response(426, &[], b"no");
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
        assert!(err.contains("Sec-WebSocket-Version: 13\r\n"));
        assert!(err.ends_with("Content-Length: 2\r\nConnection: close\r\n\r\nno"));
    }

    #[test]
    fn client_round_trip_and_checks() {
        let mut rng = SeededRng::new(1);
        let mut req =
            ClientRequest::from_url("ws://localhost:9001/runCase?case=1&agent=x").unwrap();
        assert_eq!(req.host, "localhost:9001");
        assert_eq!(req.path, "/runCase?case=1&agent=x");
        req.subprotocols = vec!["chat".into()];
        let (bytes, key) = req.encode(&mut rng);
        let config = Config {
            subprotocols: vec!["chat".into()],
            ..Config::default()
        };
        let parsed = match parse_request(&bytes, &config).unwrap() {
            Parsed::Complete(r, _) => r,
            Parsed::Partial => panic!(),
        };
        assert_eq!(parsed.key(), key);
        let (resp, _) = accept_response(&parsed, &Accept::default());
        for cut in 0..resp.len() {
            assert_eq!(
                parse_response(&resp[..cut], &key, &req, &config).unwrap(),
                Parsed::Partial
            );
        }
        match parse_response(&resp, &key, &req, &config).unwrap() {
            Parsed::Complete(r, n) => {
                assert_eq!(n, resp.len());
                assert_eq!(r.subprotocol.as_deref(), Some("chat"));
            }
            Parsed::Partial => panic!(),
        }
        // A wrong accept value is refused.
        assert_eq!(
            parse_response(&resp, "AAAAAAAAAAAAAAAAAAAAAA==", &req, &config),
            Err(HandshakeError::BadAccept)
        );
        let forbidden = error_response(403, &[], b"go away");
        match parse_response(&forbidden, &key, &req, &config) {
            Err(HandshakeError::UnexpectedStatus { status: 403, body }) => {
                assert_eq!(body, b"go away")
            }
            other => panic!("{other:?}"),
        }
        assert!(ClientRequest::from_url("http://x/").is_err());
        assert_eq!(ClientRequest::from_url("ws://h").unwrap().path, "/");
        assert_eq!(ClientRequest::from_url("ws://h?x=1").unwrap().path, "/?x=1");
    }

    #[test]
    fn header_injection_is_neutralised() {
        let r = Request {
            path: "/".into(),
            headers: vec![],
            origin: None,
            subprotocols: vec![],
            extensions: vec![],
            selected_subprotocol: None,
            key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        };
        let accept = Accept {
            subprotocol: None,
            headers: vec![("X-A".into(), "v\r\nSet-Cookie: evil".into())],
        };
        let (resp, _) = accept_response(&r, &accept);
        let resp = String::from_utf8(resp).unwrap();
        assert!(!resp.contains("\r\nSet-Cookie"));
    }
}
