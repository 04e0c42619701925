//! Connection-level behaviour: both roles talking to each other in memory,
//! with a fake clock. No sockets, no sleeping: time is just a number.

use bytes::Bytes;
use evsock::ws::{
    Accept, ClientRequest, CloseCode, Config, Connection, Error, Event, HandshakeError, Message,
    OpCode, OriginPolicy, Output, ProtocolError, Reject, State,
};
use evsock::SeededRng;

fn client(cfg: Config, seed: u64) -> Connection {
    let req = ClientRequest::new("localhost", "/chat");
    Connection::client(cfg, req, Box::new(SeededRng::new(seed)), 0)
}

/// Drains like a host: `poll_output` until `Wait`, returning the bytes and
/// the events.
fn drain(c: &mut Connection) -> (Vec<u8>, Vec<Event>) {
    let (mut out, mut evs) = (Vec::new(), Vec::new());
    loop {
        match c.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(e) => evs.push(e),
            Output::Wait(_) => return (out, evs),
        }
    }
}

/// Bytes only; asserts no event was pending (so none is silently lost).
fn drain_bytes(c: &mut Connection) -> Vec<u8> {
    let (out, evs) = drain(c);
    assert!(evs.is_empty(), "unexpected events {evs:?}");
    out
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

/// Moves bytes both ways until neither side has anything to say, feeding
/// them in chunks of `chunk` bytes. Server requests are accepted.
fn pump(
    now: u64,
    s: &mut Connection,
    c: &mut Connection,
    chunk: usize,
    se: &mut Vec<Event>,
    ce: &mut Vec<Event>,
) {
    loop {
        let (to_s, evc) = drain(c);
        ce.extend(evc);
        let (to_c, evs) = drain(s);
        let mut accepted = false;
        for e in evs {
            if let Event::Request(_) = e {
                s.accept(Accept::default()).unwrap();
                accepted = true;
            }
            se.push(e);
        }
        if to_s.is_empty() && to_c.is_empty() && !accepted {
            break;
        }
        for piece in to_s.chunks(chunk) {
            s.handle_input(now, piece);
        }
        for piece in to_c.chunks(chunk) {
            c.handle_input(now, piece);
        }
    }
}

fn open_pair(cfg: Config) -> (Connection, Connection) {
    let mut s = Connection::server(cfg.clone(), 0);
    let mut c = client(cfg, 1);
    let (mut se, mut ce) = (vec![], vec![]);
    pump(0, &mut s, &mut c, usize::MAX, &mut se, &mut ce);
    assert!(
        matches!(se.as_slice(), [Event::Request(_), Event::Open { .. }]),
        "{se:?}"
    );
    assert_eq!(ce, vec![Event::Open { subprotocol: None }]);
    (s, c)
}

#[test]
fn conversation_survives_any_chunking_and_closes_cleanly() {
    for chunk in [1, 2, 3, 7, 64, 1500, usize::MAX] {
        let cfg = Config::without_timers();
        let mut s = Connection::server(cfg.clone(), 0);
        let mut c = client(cfg, 42);
        let (mut se, mut ce) = (vec![], vec![]);
        pump(0, &mut s, &mut c, chunk, &mut se, &mut ce);
        assert_eq!(s.state(), State::Open);
        assert_eq!(c.state(), State::Open);
        let big = Bytes::from(vec![9u8; 100_000]);
        c.send_text("héllo").unwrap();
        c.send_binary(big.clone()).unwrap();
        s.send_text("from server").unwrap();
        s.send_binary(big.clone()).unwrap();
        c.send_fragment(OpCode::Text, "frag".as_bytes(), false)
            .unwrap();
        c.send_fragment(OpCode::Continuation, "mént".as_bytes(), true)
            .unwrap();
        se.clear();
        ce.clear();
        pump(1, &mut s, &mut c, chunk, &mut se, &mut ce);
        assert_eq!(
            se,
            vec![
                Event::Message(Message::Text("héllo".into())),
                Event::Message(Message::Binary(big.clone())),
                Event::Message(Message::Text("fragmént".into())),
            ],
            "chunk {chunk}"
        );
        assert_eq!(
            ce,
            vec![
                Event::Message(Message::Text("from server".into())),
                Event::Message(Message::Binary(big.clone())),
            ]
        );
        c.close(CloseCode::NORMAL, "done").unwrap();
        assert_eq!(c.state(), State::Closing);
        se.clear();
        ce.clear();
        pump(2, &mut s, &mut c, chunk, &mut se, &mut ce);
        // The server answered and finished; the client waits for TCP to end.
        match se.as_slice() {
            [Event::Closed(x)] => {
                assert!(x.clean && x.by_peer && x.error.is_none());
                assert_eq!((x.code, x.reason.as_str()), (CloseCode::NORMAL, "done"));
            }
            other => panic!("{other:?}"),
        }
        assert!(s.is_closed());
        assert!(ce.is_empty());
        c.handle_eof(3);
        match events(&mut c).as_slice() {
            [Event::Closed(x)] => {
                assert!(x.clean && !x.by_peer && x.error.is_none());
                assert_eq!(x.code, CloseCode::NORMAL);
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn same_seed_same_bytes() {
    let run = || {
        let (mut s, mut c) = open_pair(Config::without_timers());
        c.send_text("deterministic").unwrap();
        let wire = drain_bytes(&mut c);
        s.handle_input(0, &wire);
        wire
    };
    assert_eq!(run(), run());
}

/// `send_binary_slice` puts the same bytes on the wire as `send_binary`
/// (both roles, small and large payloads, masking keys from the same
/// seed), and refuses what `send_binary` refuses.
#[test]
fn send_binary_slice_matches_send_binary() {
    let payloads = [vec![], vec![7u8; 20], vec![1u8; 1024], vec![3u8; 100_000]];
    let wire = |slice: bool| {
        let (mut s, mut c) = open_pair(Config::without_timers());
        for p in &payloads {
            for conn in [&mut s, &mut c] {
                if slice {
                    conn.send_binary_slice(p).unwrap();
                } else {
                    conn.send_binary(Bytes::copy_from_slice(p)).unwrap();
                }
            }
        }
        let (to_c, to_s) = (drain_bytes(&mut s), drain_bytes(&mut c));
        s.handle_input(1, &to_s);
        c.handle_input(1, &to_c);
        let want: Vec<Event> = payloads
            .iter()
            .map(|p| Event::Message(Message::Binary(Bytes::copy_from_slice(p))))
            .collect();
        assert_eq!(events(&mut s), want);
        assert_eq!(events(&mut c), want);
        (to_c, to_s)
    };
    assert_eq!(wire(true), wire(false));

    let (_s, mut c) = open_pair(Config::without_timers());
    c.send_fragment(OpCode::Binary, b"part", false).unwrap();
    assert!(c.send_binary_slice(b"x").is_err(), "fragments in progress");
    c.send_fragment(OpCode::Continuation, b"", true).unwrap();
    c.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(
        c.send_binary_slice(b"x"),
        Err(Error::InvalidState(_))
    ));
}

#[test]
fn protocol_error_sends_1002_and_closes() {
    let (mut s, _c) = open_pair(Config::without_timers());
    // An unmasked frame from a client.
    s.handle_input(5, &[0x81, 0x01, b'x']);
    let (wire, evs) = drain(&mut s);
    assert_eq!(
        &wire[..4],
        &[0x88, wire[1], 0x03, 0xEA],
        "close 1002 expected: {wire:?}"
    );
    match evs.as_slice() {
        [Event::Closed(x)] => {
            assert_eq!(x.code, CloseCode::PROTOCOL_ERROR);
            assert_eq!(
                x.error,
                Some(Error::Protocol(ProtocolError::BadMasking { masked: false }))
            );
            assert!(!x.clean);
        }
        other => panic!("{other:?}"),
    }
    assert!(s.is_closed());
    assert!(s.send_text("late").is_err());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn invalid_utf8_and_too_big_get_their_codes() {
    let (mut s, mut c) = open_pair(Config {
        max_message_size: 10,
        ..Config::without_timers()
    });
    c.send_binary(vec![0u8; 11]).unwrap();
    s.handle_input(1, &drain_bytes(&mut c));
    let wire = drain(&mut s).0;
    assert_eq!(&wire[2..4], &1009u16.to_be_bytes());

    let (mut s, _c) = open_pair(Config::without_timers());
    // Masked text frame (key 0) holding 0xFF.
    s.handle_input(1, &[0x81, 0x81, 0, 0, 0, 0, 0xFF]);
    let wire = drain(&mut s).0;
    assert_eq!(&wire[2..4], &1007u16.to_be_bytes());
}

#[test]
fn frames_behind_the_request_are_kept() {
    let cfg = Config::without_timers();
    let mut c = client(cfg.clone(), 3);
    let request = drain_bytes(&mut c);
    let mut s = Connection::server(cfg, 0);
    let mut wire = request.clone();
    wire.extend_from_slice(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']); // "hi", key 0
    s.handle_input(0, &wire);
    assert!(matches!(events(&mut s).as_slice(), [Event::Request(_)]));
    s.accept(Accept::default()).unwrap();
    assert_eq!(
        events(&mut s),
        vec![
            Event::Open { subprotocol: None },
            Event::Message(Message::Text("hi".into()))
        ]
    );
}

#[test]
fn rejection_and_refused_origin_are_http_answers() {
    let cfg = Config::without_timers();
    let mut c = client(cfg.clone(), 3);
    let request = drain_bytes(&mut c);
    let mut s = Connection::server(cfg, 0);
    s.handle_input(0, &request);
    events(&mut s);
    s.reject(Reject::new(401, "who are you?")).unwrap();
    let resp = drain(&mut s).0;
    assert!(resp.starts_with(b"HTTP/1.1 401 Unauthorized\r\n"));
    assert!(resp.ends_with(b"who are you?"));
    assert!(s.is_closed());
    // The client reports the status and body.
    c.handle_input(0, &resp);
    match events(&mut c).as_slice() {
        [Event::Closed(x)] => assert_eq!(
            x.error,
            Some(Error::Handshake(HandshakeError::UnexpectedStatus {
                status: 401,
                body: b"who are you?".to_vec()
            }))
        ),
        other => panic!("{other:?}"),
    }

    let strict = Config {
        origin_policy: OriginPolicy::AllowList {
            origins: vec!["https://good.example".into()],
            allow_missing: false,
        },
        ..Config::without_timers()
    };
    let mut s = Connection::server(strict, 0);
    s.handle_input(0, &request);
    assert!(drain(&mut s).0.starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
    assert!(s.is_closed());
}

#[test]
fn keepalive_pings_and_dead_peer_detection() {
    let cfg = Config {
        ping_interval_ms: Some(1000),
        pong_timeout_ms: Some(500),
        ..Config::without_timers()
    };
    let (mut s, mut c) = open_pair(cfg);
    assert_eq!(s.poll_timeout(), Some(1000));
    // Nothing happens early.
    s.handle_timeout(999);
    assert!(drain_bytes(&mut s).is_empty());
    // The ping goes out; the client answers automatically.
    s.handle_timeout(1000);
    let ping = drain_bytes(&mut s);
    assert_eq!(ping[0], 0x89);
    assert_eq!(s.poll_timeout(), Some(1500));
    c.handle_input(1100, &ping);
    let (pong, evs) = drain(&mut c);
    assert!(matches!(evs.as_slice(), [Event::Ping(_)]));
    s.handle_input(1200, &pong);
    assert!(matches!(events(&mut s).as_slice(), [Event::Pong(_)]));
    assert_eq!(
        s.poll_timeout(),
        Some(2200),
        "next ping one interval after the pong"
    );
    // Now the client goes silent.
    s.handle_timeout(2200);
    assert_eq!(drain_bytes(&mut s)[0], 0x89);
    s.handle_timeout(2699);
    assert!(!s.is_closed());
    s.handle_timeout(2700);
    let (wire, evs) = drain(&mut s);
    assert_eq!(&wire[..4], &[0x88, wire[1], 0x03, 0xF3], "close 1011");
    match evs.as_slice() {
        [Event::Closed(x)] => assert_eq!(x.error, Some(Error::PongTimeout)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn idle_handshake_and_close_timeouts() {
    // Idle: the server starts a 1001 close, then gives up on the answer.
    let cfg = Config {
        idle_timeout_ms: Some(300),
        close_timeout_ms: Some(100),
        ..Config::without_timers()
    };
    let (mut s, mut c) = open_pair(cfg.clone());
    c.send_text("x").unwrap();
    s.handle_input(200, &drain_bytes(&mut c));
    assert_eq!(
        s.poll_timeout(),
        Some(500),
        "input pushes the idle deadline"
    );
    s.handle_timeout(500);
    let (wire, evs) = drain(&mut s);
    assert_eq!(&wire[2..4], &1001u16.to_be_bytes());
    // The message that arrived before the close is still delivered.
    assert_eq!(evs, vec![Event::Message(Message::Text("x".into()))]);
    assert_eq!(s.state(), State::Closing);
    assert_eq!(s.poll_timeout(), Some(600));
    s.handle_timeout(600);
    match events(&mut s).last() {
        Some(Event::Closed(x)) => assert_eq!(x.error, Some(Error::CloseTimeout)),
        other => panic!("{other:?}"),
    }

    // Handshake: a server that never gets a full request.
    let mut s = Connection::server(
        Config {
            handshake_timeout_ms: Some(50),
            ..Config::without_timers()
        },
        10,
    );
    s.handle_input(20, b"GET / HTTP/1.1\r\n");
    assert_eq!(s.poll_timeout(), Some(60));
    s.handle_timeout(60);
    match events(&mut s).as_slice() {
        [Event::Closed(x)] => assert_eq!(x.error, Some(Error::HandshakeTimeout)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn eof_without_close_is_abnormal() {
    let (mut s, _c) = open_pair(Config::without_timers());
    s.handle_eof(1);
    match events(&mut s).as_slice() {
        [Event::Closed(x)] => {
            assert_eq!(x.code, CloseCode::ABNORMAL);
            assert_eq!(x.error, Some(Error::UnexpectedEof));
            assert!(!x.clean);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ping_flood_is_answered_with_bounded_pongs() {
    let (mut s, _c) = open_pair(Config::without_timers());
    let mut wire = Vec::new();
    for i in 0..1000u16 {
        wire.extend_from_slice(&[0x89, 0x82, 0, 0, 0, 0]);
        wire.extend_from_slice(&i.to_be_bytes());
    }
    s.handle_input(1, &wire);
    let out = drain(&mut s).0;
    let pongs = out.len() / 4;
    assert_eq!(out.len() % 4, 0);
    assert!(pongs <= 16, "{pongs} pongs");
    assert_eq!(
        &out[out.len() - 2..],
        &999u16.to_be_bytes(),
        "the newest ping is answered"
    );
    // Autobahn 2.10: a handful of pings are each answered.
    let (mut s, _c) = open_pair(Config::without_timers());
    let mut wire = Vec::new();
    for i in 0..10u8 {
        wire.extend_from_slice(&[0x89, 0x81, 0, 0, 0, 0, i]);
    }
    s.handle_input(1, &wire);
    assert_eq!(drain(&mut s).0.len(), 30);
}

#[test]
fn api_misuse_is_an_error_not_a_panic() {
    let (mut s, mut c) = open_pair(Config {
        max_outbound_bytes: 100,
        ..Config::without_timers()
    });
    assert!(matches!(
        s.accept(Accept::default()),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        s.send_binary(vec![0u8; 200]),
        Err(Error::OutboundFull { limit: 100 })
    ));
    assert!(matches!(
        s.ping(&[0u8; 126]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.close(CloseCode(1005), ""),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        s.close(CloseCode::NORMAL, &"x".repeat(124)),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.send_fragment(OpCode::Continuation, b"x", true),
        Err(Error::InvalidState(_))
    ));
    c.send_fragment(OpCode::Binary, b"x", false).unwrap();
    assert!(matches!(
        c.send_text("interleaved"),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(
        c.send_fragment(OpCode::Text, &[0xFF], true),
        Err(Error::InvalidState(_))
    ));
    s.close(CloseCode::NORMAL, "").unwrap();
    assert!(matches!(
        s.close(CloseCode::NORMAL, ""),
        Err(Error::InvalidState(_))
    ));
    assert!(matches!(s.send_text("x"), Err(Error::InvalidState(_))));
    let mut fresh = Connection::server(Config::without_timers(), 0);
    assert!(matches!(fresh.send_text("x"), Err(Error::InvalidState(_))));
}

#[test]
fn server_payloads_are_not_copied() {
    // Compression would have to copy; without it, nothing is copied.
    let (mut s, _c) = open_pair(Config {
        deflate: None,
        ..Config::without_timers()
    });
    let big = Bytes::from(vec![1u8; 64 * 1024]);
    s.send_binary(big.clone()).unwrap();
    let chunks: Vec<Bytes> = std::iter::from_fn(|| s.poll_transmit()).collect();
    assert!(chunks.iter().any(|c| c.as_ptr() == big.as_ptr()));
    assert_eq!(s.buffered_amount(), 0);
}

/// Autobahn 3.2 / 5.15: a valid message and a bad frame in one read. The
/// echo of the message must leave before the close that the bad frame
/// causes, so decoding waits for the application.
#[test]
fn reply_to_a_message_precedes_the_failure_behind_it() {
    let (mut s, _c) = open_pair(Config::without_timers());
    let mut wire = vec![0x81, 0x82, 0, 0, 0, 0, b'o', b'k'];
    wire.extend_from_slice(&[0xA1, 0x80, 0, 0, 0, 0]); // RSV2 set: illegal
    s.handle_input(1, &wire);
    let mut out = Vec::new();
    let mut seen = Vec::new();
    loop {
        match s.poll_output() {
            Output::Transmit(b) => out.extend_from_slice(&b),
            Output::Event(Event::Message(m)) => {
                s.send(m.clone()).unwrap();
                seen.push(Event::Message(m));
            }
            Output::Event(e) => seen.push(e),
            Output::Wait(_) => break,
        }
    }
    assert_eq!(&out[..4], &[0x81, 0x02, b'o', b'k'], "echo first: {out:?}");
    assert_eq!(&out[4..8], &[0x88, out[5], 0x03, 0xEA], "then close 1002");
    assert!(matches!(seen.last(), Some(Event::Closed(c)) if c.code == CloseCode::PROTOCOL_ERROR));
}

/// A message and the peer's close in one read: the application may still
/// answer the message before the close reply goes out.
#[test]
fn reply_to_a_message_precedes_the_close_reply() {
    let (mut s, _c) = open_pair(Config::without_timers());
    let mut wire = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
    wire.extend_from_slice(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE8]);
    s.handle_input(1, &wire);
    match s.poll_event() {
        Some(Event::Message(m)) => s.send(m).unwrap(),
        other => panic!("{other:?}"),
    }
    let (out, evs) = drain(&mut s);
    assert_eq!(out, vec![0x81, 0x02, b'h', b'i', 0x88, 0x02, 0x03, 0xE8]);
    assert!(matches!(evs.as_slice(), [Event::Closed(c)] if c.clean && c.by_peer));
}

#[test]
fn deflate_round_trips_both_ways_and_sets_rsv1() {
    let (mut s, mut c) = open_pair(Config::without_timers());
    assert!(s.deflate().is_some() && c.deflate().is_some());
    let text = "the same words again and again ".repeat(100);
    for _ in 0..3 {
        c.send_text(&text).unwrap();
        s.send_text(&text).unwrap();
    }
    c.send_text("tiny").unwrap();
    let to_s = drain(&mut c).0;
    let to_c = drain(&mut s).0;
    assert_eq!(to_s[0], 0xC1, "client frame: FIN + RSV1 + text");
    assert_eq!(to_c[0], 0xC1, "server frame: FIN + RSV1 + text");
    assert!(
        to_s.len() < text.len(),
        "three messages compressed to {} bytes",
        to_s.len()
    );
    s.handle_input(1, &to_s);
    c.handle_input(1, &to_c);
    let want = |n| vec![Event::Message(Message::Text(text.as_str().into())); n];
    let mut got_s = want(3);
    got_s.push(Event::Message(Message::Text("tiny".into())));
    assert_eq!(drain(&mut s).1, got_s);
    assert_eq!(drain(&mut c).1, want(3));
}

#[test]
fn deflate_off_on_either_side_means_plain_frames() {
    for (server_on, client_on) in [(true, false), (false, true)] {
        let cfg = |on: bool| Config {
            deflate: if on { Some(Default::default()) } else { None },
            ..Config::without_timers()
        };
        let mut s = Connection::server(cfg(server_on), 0);
        let mut c = client(cfg(client_on), 1);
        let (mut se, mut ce) = (vec![], vec![]);
        pump(0, &mut s, &mut c, usize::MAX, &mut se, &mut ce);
        assert_eq!((s.deflate(), c.deflate()), (None, None));
        c.send_text(&"x".repeat(1000)).unwrap();
        assert_eq!(drain(&mut c).0[0], 0x81);
    }
}

#[test]
fn accept_selects_only_an_offered_subprotocol() {
    let offer = |protos: &[&str]| {
        let mut req = ClientRequest::new("localhost", "/chat");
        req.subprotocols = protos.iter().map(|p| p.to_string()).collect();
        let mut c = Connection::client(
            Config::without_timers(),
            req,
            Box::new(SeededRng::new(3)),
            0,
        );
        let mut s = Connection::server(Config::without_timers(), 0);
        s.handle_input(0, &drain_bytes(&mut c));
        assert!(matches!(events(&mut s).as_slice(), [Event::Request(_)]));
        (s, c)
    };
    let (mut s, mut c) = offer(&["chat", "superchat"]);
    for bad in ["v2", " ", "chat\r\nX-Injected: 1", "chat, superchat"] {
        let err = s.accept(Accept {
            subprotocol: Some(bad.into()),
            ..Accept::default()
        });
        assert!(matches!(err, Err(Error::InvalidArgument(_))), "{bad:?}");
        assert_eq!(s.state(), State::Handshake, "refused: still deciding");
        assert!(drain_bytes(&mut s).is_empty(), "nothing sent for {bad:?}");
    }
    // The host can still decide properly, and the client agrees.
    s.accept(Accept {
        subprotocol: Some("superchat".into()),
        ..Accept::default()
    })
    .unwrap();
    c.handle_input(0, &drain(&mut s).0);
    assert_eq!(
        events(&mut c),
        vec![Event::Open {
            subprotocol: Some("superchat".into())
        }]
    );
    // `Some("")` selects none, offered or not.
    let (mut s, _) = offer(&[]);
    s.accept(Accept {
        subprotocol: Some(String::new()),
        ..Accept::default()
    })
    .unwrap();
    assert!(!String::from_utf8(drain(&mut s).0)
        .unwrap()
        .contains("Sec-WebSocket-Protocol"));
}

#[test]
fn try_client_refuses_requests_that_are_not_http() {
    let build = |f: &dyn Fn(&mut ClientRequest)| {
        let mut req = ClientRequest::new("localhost:8080", "/chat?room=a");
        req.origin = Some("http://localhost:8080".into());
        req.subprotocols = vec!["chat".into()];
        req.headers = vec![("Authorization".into(), "Bearer x y".into())];
        f(&mut req);
        Connection::try_client(
            Config::without_timers(),
            req,
            Box::new(SeededRng::new(4)),
            0,
        )
    };
    let mut ok = build(&|_| {}).expect("a valid request");
    let bytes = drain_bytes(&mut ok);
    assert!(bytes.starts_with(b"GET /chat?room=a HTTP/1.1\r\nHost: localhost:8080\r\n"));
    type Edit<'a> = &'a dyn Fn(&mut ClientRequest);
    let bad: [(&str, Edit); 10] = [
        ("empty host", &|r| r.host.clear()),
        ("host with a space", &|r| r.host = "local host".into()),
        ("host with NUL", &|r| r.host = "a\0b".into()),
        ("path with CRLF", &|r| r.path = "/a\r\nX: y".into()),
        ("origin with a tab", &|r| {
            r.origin = Some("http://a\tb".into())
        }),
        ("empty subprotocol", &|r| r.subprotocols.push(String::new())),
        ("subprotocol list", &|r| {
            r.subprotocols = vec!["a, b".into()]
        }),
        ("header name not a token", &|r| {
            r.headers.push(("[ersi".into(), "1".into()))
        }),
        ("a second key", &|r| {
            r.headers.push((
                "sec-websocket-key".into(),
                "AAAAAAAAAAAAAAAAAAAAAA==".into(),
            ))
        }),
        ("a second host", &|r| {
            r.headers.push(("Host".into(), "evil".into()))
        }),
    ];
    for (what, f) in bad {
        assert!(
            matches!(build(f), Err(Error::InvalidArgument(_))),
            "{what} was accepted"
        );
    }
}

#[test]
fn zero_ping_interval_never_stays_due() {
    // Found by the connection fuzz target: with no pong timeout, a 0 ms
    // interval re-armed the ping for the same instant, so a host running
    // due timers in a loop sent pings forever without its clock moving.
    let cfg = Config {
        ping_interval_ms: Some(0),
        pong_timeout_ms: None,
        ..Config::without_timers()
    };
    let (mut s, _c) = open_pair(cfg);
    for now in [0, 1, 5] {
        let mut pings = 0;
        while let Some(d) = s.poll_timeout().filter(|&d| d <= now) {
            s.handle_timeout(now);
            pings += drain_bytes(&mut s).iter().filter(|&&b| b == 0x89).count();
            assert!(pings <= 1, "more than one ping at {now} (deadline {d})");
        }
        assert!(s.poll_timeout() > Some(now), "deadline still due at {now}");
    }
}

#[test]
fn accept_headers_cannot_override_the_handshake() {
    // Fuzz finding accept-reserved-field: a host's extra header could
    // select an unoffered subprotocol behind `accept`'s check.
    for name in ["Sec-WebSocket-Protocol", "sec-websocket-accept", "Upgrade"] {
        let mut s = Connection::server(Config::without_timers(), 0);
        let mut c = client(Config::without_timers(), 9);
        s.handle_input(0, &drain_bytes(&mut c));
        assert!(matches!(events(&mut s).as_slice(), [Event::Request(_)]));
        let r = s.accept(Accept {
            headers: vec![(name.into(), "x".into())],
            ..Accept::default()
        });
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{name}");
        assert!(drain_bytes(&mut s).is_empty(), "nothing sent for {name}");
    }
}

#[test]
fn text_continuations_are_checked_like_their_first_fragment() {
    // Fuzz finding send-fragment-utf8: only the first fragment of a text
    // message was checked.
    let (_s, mut c) = open_pair(Config::without_timers());
    c.send_fragment(OpCode::Text, b"caf", false).unwrap();
    assert!(matches!(
        c.send_fragment(OpCode::Continuation, &[0xC3], false),
        Err(Error::InvalidArgument(_))
    ));
    c.send_fragment(OpCode::Continuation, "\u{e9}!".as_bytes(), true)
        .unwrap();
    // Binary continuations carry any bytes.
    c.send_fragment(OpCode::Binary, &[0xFF], false).unwrap();
    c.send_fragment(OpCode::Continuation, &[0xC3], true)
        .unwrap();
}

/// Feeds `bytes` to `c` through `read_from` (straight into its buffer), in
/// reads of at most `chunk` bytes.
fn feed_in_place(c: &mut Connection, now: u64, bytes: &[u8], chunk: usize) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let mut piece = &rest[..chunk.min(rest.len())];
        let n = c.read_from(&mut piece, || now).expect("reading a slice");
        if n == 0 {
            return; // closed: the rest is not read
        }
        rest = &rest[n..];
    }
}

/// One whole conversation, each side receiving either with `handle_input`
/// or in place, in reads of `chunk` bytes: the events of both sides.
fn converse(in_place: bool, chunk: usize) -> (Vec<Event>, Vec<Event>) {
    let cfg = Config {
        deflate: None,
        ..Config::without_timers()
    };
    let mut s = Connection::server(cfg.clone(), 0);
    let mut c = client(cfg, 7);
    let (mut se, mut ce) = (Vec::new(), Vec::new());
    let big_text: String = "wide ✓ text, ".repeat(6_000);
    let big_binary: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut step = 0;
    loop {
        let (to_s, evc) = drain(&mut c);
        ce.extend(evc);
        let (to_c, evs) = drain(&mut s);
        for e in evs {
            if let Event::Request(_) = e {
                s.accept(Accept::default()).unwrap();
            }
            se.push(e);
        }
        if to_s.is_empty() && to_c.is_empty() && s.buffered_amount() == 0 {
            // Quiet: the client says the next thing.
            step += 1;
            match step {
                1 => c.send_text("hi").unwrap(),
                2 => c.send_text(&big_text).unwrap(),
                3 => c.send_binary(big_binary.clone()).unwrap(),
                4 => {
                    c.send_fragment(OpCode::Text, b"frag", false).unwrap();
                    c.ping(b"p").unwrap();
                    c.send_fragment(OpCode::Continuation, b"ments", true)
                        .unwrap();
                }
                5 => c.close(CloseCode::NORMAL, "done").unwrap(),
                _ => break,
            }
            continue;
        }
        for (to, bytes) in [(&mut s, to_s), (&mut c, to_c)] {
            if in_place {
                feed_in_place(to, 0, &bytes, chunk);
            } else {
                for piece in bytes.chunks(chunk) {
                    to.handle_input(0, piece);
                }
            }
        }
    }
    (se, ce)
}

#[test]
fn receiving_in_place_sees_the_same_conversation() {
    for chunk in [1, 5, 1500, 64 << 10, usize::MAX] {
        let (se, ce) = converse(false, chunk);
        assert!(se.len() >= 7, "{se:?}");
        assert!(
            matches!(se.last(), Some(Event::Closed(x)) if x.clean),
            "{se:?}"
        );
        assert_eq!(converse(true, chunk), (se, ce), "reads of {chunk}");
    }
}

#[test]
fn read_from_reports_end_of_stream_and_stops_when_closed() {
    let (mut s, _c) = open_pair(Config::without_timers());
    // End of stream: Ok(0), and the connection was told.
    assert_eq!(s.read_from(&mut &b""[..], || 1).unwrap(), 0);
    match events(&mut s).as_slice() {
        [Event::Closed(x)] => assert_eq!(x.error, Some(Error::UnexpectedEof)),
        other => panic!("{other:?}"),
    }
    // Closed: nothing is read, and the room is empty.
    let mut src = &b"\x81\x00"[..];
    assert_eq!(s.read_from(&mut src, || 2).unwrap(), 0);
    assert_eq!(src.len(), 2, "a closed connection read from its source");
    assert!(s.input_buffer().is_empty());
}

#[test]
fn read_from_passes_errors_through_and_takes_nothing() {
    struct WouldBlock;
    impl std::io::Read for WouldBlock {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            buf.fill(0x81); // scribbles, then fails: none of it counts
            Err(std::io::ErrorKind::WouldBlock.into())
        }
    }
    let (mut s, mut c) = open_pair(Config::without_timers());
    let err = s.read_from(&mut WouldBlock, || 1).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
    assert!(events(&mut s).is_empty());
    // The connection goes on as if the read never happened.
    c.send_text("after").unwrap();
    let bytes = drain_bytes(&mut c);
    feed_in_place(&mut s, 2, &bytes, usize::MAX);
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text("after".into()))]
    );
}

#[test]
fn commit_input_is_cut_to_the_room_and_needs_one() {
    let (mut s, mut c) = open_pair(Config::without_timers());
    // No room handed out: nothing is taken.
    s.commit_input(1, 100);
    assert!(events(&mut s).is_empty());
    c.send_text("x").unwrap();
    let bytes = drain_bytes(&mut c);
    let room = s.input_buffer();
    assert!(room.len() >= bytes.len());
    room[..bytes.len()].copy_from_slice(&bytes);
    s.commit_input(1, bytes.len());
    assert_eq!(
        events(&mut s),
        vec![Event::Message(Message::Text("x".into()))]
    );
}
