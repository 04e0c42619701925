//! The plain-HTTP side of the chat host: parsing request heads and routing
//! GETs to the embedded static files, the test hooks, or the WebSocket
//! upgrade (which goes to the hub with the bytes already read).
//!
//! The static files are compiled into the binary with `include_bytes!`: the
//! demo then runs from any working directory (`cargo run`, the e2e test, a
//! copied binary) and serves exactly the page it was built with, and the
//! route table is a fixed list of names, so no request path ever reaches the
//! file system and path traversal is impossible by construction. Cargo
//! rebuilds the binary when one of the files changes.

/// Longest request head accepted (431 beyond it).
pub const MAX_HEAD: usize = 16 << 10;
/// Most header fields in one request.
const MAX_HEADERS: usize = 64;

/// A static file: URL path, content type, bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: include_bytes!("../static/index.html"),
    },
    Asset {
        path: "/static/index.html",
        content_type: HTML,
        body: include_bytes!("../static/index.html"),
    },
    Asset {
        path: "/static/chat.js",
        content_type: JS,
        body: include_bytes!("../static/chat.js"),
    },
    Asset {
        path: "/static/chat.css",
        content_type: CSS,
        body: include_bytes!("../static/chat.css"),
    },
    Asset {
        path: "/evsock.js",
        content_type: JS,
        body: include_bytes!("../../../browser/evsock.js"),
    },
    Asset {
        path: "/msgpack.js",
        content_type: JS,
        body: include_bytes!("../../../browser/msgpack.js"),
    },
];

/// A parsed request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The path without the query.
    pub path: String,
    /// The query string without `?` (empty if none).
    pub query: String,
    /// Whether the client asked for `Connection: close` (or spoke HTTP/1.0
    /// without keep-alive).
    pub close: bool,
    /// Whether the request carries a body (`Content-Length` > 0 or
    /// `Transfer-Encoding`), which this server never reads.
    pub has_body: bool,
    /// Bytes the head takes in the buffer.
    pub len: usize,
}

/// Why a request head was refused; each maps to an HTTP status.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed (400).
    Malformed(&'static str),
    /// Longer than [`MAX_HEAD`] or more than 64 header fields (431).
    TooLarge,
}

impl HeadError {
    /// The response to send before closing.
    pub fn response(&self) -> Vec<u8> {
        match self {
            HeadError::Malformed(why) => {
                response(400, "text/plain; charset=utf-8", why.as_bytes(), true)
            }
            HeadError::TooLarge => response(
                431,
                "text/plain; charset=utf-8",
                b"request head too large\n",
                true,
            ),
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` if it is not
/// complete yet.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return if buf.len() > MAX_HEAD {
                Err(HeadError::TooLarge)
            } else {
                Ok(None)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Malformed("malformed request\n")),
    };
    if len > MAX_HEAD {
        return Err(HeadError::TooLarge);
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    if !target.starts_with('/') {
        return Err(HeadError::Malformed("request target must be a path\n"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let mut close = req.version == Some(0);
    let mut has_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.split(',').any(|t| t.trim() == "close") {
                close = true;
            }
            if v.split(',').any(|t| t.trim() == "keep-alive") {
                close = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            has_body |= h.value.iter().any(|&b| b != b'0' && b != b' ');
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    Ok(Some(Head {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        close,
        has_body,
        len,
    }))
}

/// The value of `name` in a query string (`a=1&user=bob`), percent-decoded;
/// `None` if absent or not valid UTF-8 after decoding.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(v);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Whether `s` is a chat user name: 1 to 32 of `[A-Za-z0-9_-]`.
pub fn valid_user(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    /// Answer with these bytes (a whole response); `close` after writing.
    Respond { bytes: Vec<u8>, close: bool },
    /// `/ws`: hand the connection and its bytes to the hub.
    Upgrade,
    /// `/test/drop?user=NAME` with test hooks on.
    Drop { user: String },
}

/// Routes a parsed head.
pub fn route(head: &Head, test_hooks: bool) -> Route {
    let close = head.close || head.has_body;
    if head.path == "/ws" {
        return Route::Upgrade;
    }
    if head.has_body {
        // A GET with a body, or a POST: we never read bodies, so the stream
        // cannot be kept in step; refuse and close.
        return Route::Respond {
            bytes: response(
                if head.method == "GET" || head.method == "HEAD" {
                    400
                } else {
                    405
                },
                "text/plain; charset=utf-8",
                b"request bodies are not accepted\n",
                true,
            ),
            close: true,
        };
    }
    if head.method != "GET" && head.method != "HEAD" {
        let mut bytes = response(
            405,
            "text/plain; charset=utf-8",
            b"only GET and HEAD\n",
            close,
        );
        // Insert the Allow header after the status line.
        let at = bytes.windows(2).position(|w| w == b"\r\n").unwrap_or(0) + 2;
        bytes.splice(at..at, b"allow: GET, HEAD\r\n".iter().copied());
        return Route::Respond { bytes, close };
    }
    if head.path == "/test/drop" && test_hooks {
        return match query_param(&head.query, "user") {
            Some(user) if valid_user(&user) => Route::Drop { user },
            _ => Route::Respond {
                bytes: response(400, "text/plain; charset=utf-8", b"bad user name\n", close),
                close,
            },
        };
    }
    let mut bytes = match ASSETS.iter().find(|a| a.path == head.path) {
        Some(a) => response(200, a.content_type, a.body, close),
        None => response(404, "text/plain; charset=utf-8", b"not found\n", close),
    };
    if head.method == "HEAD" {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(bytes.len(), |p| p + 4);
        bytes.truncate(end);
    }
    Route::Respond { bytes, close }
}

/// A whole HTTP/1.1 response.
pub fn response(status: u16, content_type: &str, body: &[u8], close: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             cache-control: no-store\r\nx-content-type-options: nosniff\r\n{}\r\n",
            reason(status),
            body.len(),
            if close { "connection: close\r\n" } else { "" },
        )
        .as_bytes(),
    );
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Head {
        parse_head(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap()
            .unwrap()
    }

    fn respond(r: Route) -> (String, Vec<u8>, bool) {
        match r {
            Route::Respond { bytes, close } => {
                let end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                (
                    String::from_utf8(bytes[..end].to_vec()).unwrap(),
                    bytes[end..].to_vec(),
                    close,
                )
            }
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[test]
    fn serves_the_page_and_the_client_with_their_types() {
        for (path, ty, file) in [
            (
                "/",
                "text/html",
                &include_bytes!("../static/index.html")[..],
            ),
            (
                "/static/chat.js",
                "text/javascript",
                &include_bytes!("../static/chat.js")[..],
            ),
            (
                "/static/chat.css",
                "text/css",
                &include_bytes!("../static/chat.css")[..],
            ),
            (
                "/evsock.js",
                "text/javascript",
                &include_bytes!("../../../browser/evsock.js")[..],
            ),
        ] {
            let (head, body, close) = respond(route(&get(path), false));
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {head}");
            assert!(
                head.contains(&format!("content-type: {ty}")),
                "{path}: {head}"
            );
            assert!(head.contains(&format!("content-length: {}\r\n", file.len())));
            assert_eq!(body, file, "{path}");
            assert!(!close);
        }
    }

    #[test]
    fn unknown_paths_and_traversal_are_404() {
        for path in [
            "/nope",
            "/static/",
            "/static/../Cargo.toml",
            "/static/%2e%2e/src/main.rs",
            "/static/..%2f..%2fCargo.toml",
            "/static//etc/passwd",
            "/static/chat.js/",
            "/evsock.js/../static/chat.js",
            "/test/drop?user=bob",
        ] {
            let (head, body, _) = respond(route(&get(path), false));
            assert!(head.starts_with("HTTP/1.1 404 "), "{path}: {head}");
            assert_eq!(body, b"not found\n");
        }
    }

    #[test]
    fn head_requests_get_headers_only() {
        let h = parse_head(b"HEAD /static/chat.css HTTP/1.1\r\n\r\n")
            .unwrap()
            .unwrap();
        let (head, body, _) = respond(route(&h, false));
        assert!(head.contains("content-type: text/css"));
        assert!(body.is_empty());
    }

    #[test]
    fn other_methods_and_bodies_are_refused() {
        let h = parse_head(b"DELETE / HTTP/1.1\r\n\r\n").unwrap().unwrap();
        let (head, _, close) = respond(route(&h, false));
        assert!(
            head.starts_with("HTTP/1.1 405 ") && head.contains("allow: GET, HEAD\r\n"),
            "{head}"
        );
        assert!(!close);
        let h = parse_head(b"POST / HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        let (head, _, close) = respond(route(&h, false));
        assert!(head.starts_with("HTTP/1.1 405 ") && close);
        let h = parse_head(b"GET / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        let (head, _, close) = respond(route(&h, false));
        assert!(head.starts_with("HTTP/1.1 400 ") && close);
        let h = parse_head(b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.has_body);
    }

    #[test]
    fn heads_split_anywhere_wait_for_the_rest() {
        let req = b"GET /ws?user=bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\nEXTRA";
        let end = req.len() - 5;
        for cut in 0..end {
            assert_eq!(parse_head(&req[..cut]), Ok(None), "cut {cut}");
        }
        let h = parse_head(req).unwrap().unwrap();
        assert_eq!(h.len, end);
        assert_eq!((h.path.as_str(), h.query.as_str()), ("/ws", "user=bob"));
        assert_eq!(route(&h, false), Route::Upgrade);
    }

    #[test]
    fn bad_and_huge_heads_are_typed_errors() {
        assert!(matches!(
            parse_head(b"GET\x01 / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        assert!(matches!(
            parse_head(b"GET http://x/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::Malformed(_))
        ));
        let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
        big.extend_from_slice(&vec![b'a'; MAX_HEAD]);
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..100 {
            many.extend_from_slice(format!("h{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_head(&many), Err(HeadError::TooLarge));
        assert!(HeadError::TooLarge.response().starts_with(b"HTTP/1.1 431 "));
    }

    #[test]
    fn connection_close_and_http10() {
        let h = parse_head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let (head, _, close) = respond(route(&h, false));
        assert!(close && head.contains("connection: close"));
        assert!(
            parse_head(b"GET / HTTP/1.0\r\n\r\n")
                .unwrap()
                .unwrap()
                .close
        );
        assert!(
            !parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                .unwrap()
                .unwrap()
                .close
        );
    }

    #[test]
    fn drop_hook_only_with_test_hooks_and_a_valid_name() {
        assert_eq!(
            route(&get("/test/drop?user=bob"), true),
            Route::Drop { user: "bob".into() }
        );
        assert_eq!(
            route(&get("/test/drop?x=1&user=a%2Db"), true),
            Route::Drop { user: "a-b".into() }
        );
        for bad in [
            "/test/drop",
            "/test/drop?user=",
            "/test/drop?user=a%20b",
            "/test/drop?user=%ff",
        ] {
            let (head, _, _) = respond(route(&get(bad), true));
            assert!(head.starts_with("HTTP/1.1 400 "), "{bad}: {head}");
        }
    }

    #[test]
    fn query_params_and_names() {
        assert_eq!(query_param("user=alice", "user").as_deref(), Some("alice"));
        assert_eq!(
            query_param("a=1&user=b%5Fc&user=z", "user").as_deref(),
            Some("b_c")
        );
        assert_eq!(query_param("user", "user").as_deref(), Some(""));
        assert_eq!(query_param("a=1", "user"), None);
        assert_eq!(query_param("user=%4", "user"), None);
        assert!(valid_user("Alice_01-x"));
        for bad in ["", "a b", "é", "a/b", &"x".repeat(33)] {
            assert!(!valid_user(bad), "{bad}");
        }
        assert!(valid_user(&"x".repeat(32)));
    }
}
