//! Engine bugs found by the fuzz targets in `fuzz/`, one test each, so they
//! stay fixed even where the fuzz crate is not built. The reproducers that
//! found them are in `fuzz/regressions/`.

use bytes::Bytes;
use evsock::ws::{Accept, ClientRequest, Config, Connection, Error, Event, Output, Reject};
use evsock::SeededRng;

fn drain(c: &mut Connection) -> (Vec<u8>, Vec<Event>) {
    let (mut bytes, mut events) = (Vec::new(), Vec::new());
    loop {
        match c.poll_output() {
            Output::Transmit(b) => bytes.extend_from_slice(&b),
            Output::Event(e) => events.push(e),
            Output::Wait(_) => return (bytes, events),
        }
    }
}

fn server_with_request() -> Connection {
    let cfg = Config::without_timers();
    let mut c = Connection::client(
        cfg.clone(),
        ClientRequest::new("h", "/"),
        Box::new(SeededRng::new(1)),
        0,
    );
    let request = drain(&mut c).0;
    let mut s = Connection::server(cfg, 0);
    s.handle_input(0, &request);
    assert!(matches!(drain(&mut s).1.as_slice(), [Event::Request(_)]));
    s
}

/// connection-1: `reject` wrote any u16 as the status ("HTTP/1.1 29586
/// Error", or a 101 that switched nothing).
#[test]
fn reject_refuses_a_status_that_is_not_a_final_http_status() {
    for status in [0, 99, 101, 199, 600, 29586] {
        let mut s = server_with_request();
        assert!(
            matches!(
                s.reject(Reject::new(status, "no")),
                Err(Error::InvalidArgument(_))
            ),
            "{status}"
        );
        // Nothing went out; the host can still decide properly.
        assert!(drain(&mut s).0.is_empty());
        s.reject(Reject::new(403, "no")).unwrap();
        assert!(drain(&mut s).0.starts_with(b"HTTP/1.1 403 "));
    }
    for status in [200, 302, 400, 599] {
        let mut s = server_with_request();
        s.reject(Reject::new(status, "no")).unwrap();
        let out = drain(&mut s).0;
        assert!(out.starts_with(format!("HTTP/1.1 {status} ").as_bytes()));
    }
}

/// connection-2: header fields the host added were written as given, so
/// an empty or spaced name, or a control byte in a value, made the 503
/// (or the 101) invalid HTTP.
#[test]
fn accept_and_reject_refuse_header_fields_that_are_not_http() {
    let bad: [(&str, &str); 5] = [
        ("", "v"),
        ("Bad Name", "v"),
        ("X:y", "v"),
        ("X-Ok", "a\u{0}b"),
        ("X-Ok", "a\u{7f}"),
    ];
    for (n, v) in bad {
        let headers = vec![(n.to_string(), v.to_string())];
        let mut s = server_with_request();
        let r = s.reject(Reject {
            status: 503,
            headers: headers.clone(),
            body: vec![],
        });
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{n:?}: {v:?}");
        let r = s.accept(Accept {
            subprotocol: None,
            headers,
        });
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{n:?}: {v:?}");
        assert!(drain(&mut s).0.is_empty());
    }
    let mut s = server_with_request();
    s.accept(Accept {
        subprotocol: None,
        headers: vec![("Set-Cookie".into(), "a=b;\tc=\u{e9}".into())],
    })
    .unwrap();
    let out = drain(&mut s).0;
    assert!(out.starts_with(b"HTTP/1.1 101 "));
}

/// deflate-1: compressing an empty message after another one (context
/// kept) spun forever: zlib emits nothing for a repeated sync flush, and
/// the loop waited for the `00 00 FF FF` marker.
#[test]
fn an_empty_message_compresses_after_another_one() {
    use bytes::BytesMut;
    use evsock::ws::deflate::{Deflater, Inflater};
    for reset in [false, true] {
        let mut d = Deflater::new(15, 3, reset);
        let mut i = Inflater::new(15, reset);
        for msg in [&b"hello hello"[..], b"", b"", b"hello again", b""] {
            let wire = d.compress(msg).to_vec();
            let mut out = BytesMut::new();
            i.inflate(&wire, &mut out, 1 << 10, None).unwrap();
            i.finish_message(&mut out, 1 << 10, None).unwrap();
            assert_eq!(&out[..], msg, "reset {reset}");
        }
    }
}

/// session-1: a client that queued a reliable message before connecting,
/// then waited past `resume_buffer_age_ms` for the welcome, evicted the
/// message after its hello had promised it (`lo`); the server waited for
/// an id that never came and took the next one as out of order.
#[test]
fn a_message_promised_in_the_hello_is_not_evicted_during_the_handshake() {
    use evsock::session::{new_session_id, Config, MessageKind, Output, Session, SessionEvent};
    let cfg = Config {
        resume_buffer_age_ms: 100,
        handshake_timeout_ms: 10_000,
        ping_interval_ms: None,
        idle_timeout_ms: None,
        ..Config::default()
    };
    fn sends(s: &mut Session, events: &mut Vec<SessionEvent>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(o) = s.poll_output() {
            match o {
                Output::Send { payload, .. } => out.push(payload.to_vec()),
                Output::Event(e) => events.push(e),
            }
        }
        out
    }
    let (mut ce, mut se) = (Vec::new(), Vec::new());
    let mut c = Session::client(cfg.clone(), Box::new(SeededRng::new(1)));
    let id = c
        .send_reliable(0, "app/x", Bytes::from_static(b"1"))
        .unwrap();
    assert_eq!(id, 1);
    c.handle_connected(10);
    let hello = sends(&mut c, &mut ce);
    // The welcome is slow: the message is now older than the age limit.
    c.handle_timeout(500);
    let sid = new_session_id(&mut SeededRng::new(2));
    let mut s = Session::server(cfg, &sid, Box::new(SeededRng::new(3))).unwrap();
    s.handle_connected(500);
    for m in &hello {
        s.handle_message(500, MessageKind::Text, m);
    }
    for m in sends(&mut s, &mut se) {
        c.handle_message(500, MessageKind::Text, &m);
    }
    c.send_reliable(501, "app/x", Bytes::from_static(b"2"))
        .unwrap();
    for m in sends(&mut c, &mut ce) {
        s.handle_message(502, MessageKind::Text, &m);
    }
    sends(&mut s, &mut se);
    let got: Vec<Option<u64>> = se
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { id, .. } => Some(*id),
            SessionEvent::Error(e) => panic!("server error {e:?}"),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![Some(1), Some(2)]);
}
