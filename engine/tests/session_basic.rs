//! End-to-end behaviour of a client and a server `Session` wired together.

use bytes::Bytes;
use evsock::session::*;
use evsock::SeededRng;

fn cfg() -> Config {
    Config {
        ping_interval_ms: None,
        idle_timeout_ms: None,
        ack_delay_ms: 10,
        ..Config::default()
    }
}

struct Pair {
    c: Session,
    s: Session,
    now: u64,
    c_events: Vec<SessionEvent>,
    s_events: Vec<SessionEvent>,
    /// Frames sent client->server and server->client, for inspection.
    c_sent: Vec<Bytes>,
    s_sent: Vec<Bytes>,
    connected: bool,
}

impl Pair {
    fn new(c: Config, s: Config) -> Pair {
        let mut p = Pair {
            c: Session::client(c, Box::new(SeededRng::new(1))),
            s: Session::server(s, "S1", Box::new(SeededRng::new(2))).unwrap(),
            now: 0,
            c_events: vec![],
            s_events: vec![],
            c_sent: vec![],
            s_sent: vec![],
            connected: false,
        };
        p.connect();
        p
    }

    fn connect(&mut self) {
        self.connected = true;
        self.c.handle_connected(self.now);
        self.s.handle_connected(self.now);
        self.pump();
    }

    fn disconnect(&mut self) {
        self.connected = false;
        self.c.handle_disconnected(self.now);
        self.s.handle_disconnected(self.now);
        self.pump();
    }

    /// Delivers everything until quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(o) = self.c.poll_output() {
                moved = true;
                match o {
                    Output::Send { kind, payload } => {
                        self.c_sent.push(payload.clone());
                        if self.connected {
                            self.s.handle_message_bytes(self.now, kind, payload);
                        }
                    }
                    Output::Event(e) => self.c_events.push(e),
                }
            }
            while let Some(o) = self.s.poll_output() {
                moved = true;
                match o {
                    Output::Send { kind, payload } => {
                        self.s_sent.push(payload.clone());
                        if self.connected {
                            self.c.handle_message_bytes(self.now, kind, payload);
                        }
                    }
                    Output::Event(e) => self.s_events.push(e),
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn advance(&mut self, ms: u64) {
        let end = self.now + ms;
        loop {
            let next = [self.c.poll_timeout(), self.s.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.c.handle_timeout(self.now);
                    self.s.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = end;
    }
}

fn text(b: &Bytes) -> &str {
    std::str::from_utf8(b).unwrap()
}

/// The ids of the reliable messages among `events`, in order.
fn reliable_ids(events: &[SessionEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { id, .. } => *id,
            _ => None,
        })
        .collect()
}

#[test]
fn handshake_bytes_are_exact() {
    let p = Pair::new(cfg(), cfg());
    assert_eq!(text(&p.c_sent[0]), r#"["evs/hello",{"v":1,"rx":0,"lo":1}]"#);
    assert_eq!(
        text(&p.s_sent[0]),
        r#"["evs/welcome",{"v":1,"sid":"S1","st":"new","rx":0,"lo":1}]"#
    );
    let est = SessionEvent::Established {
        session_id: "S1".into(),
        resumed: false,
    };
    assert_eq!(p.c_events, vec![est.clone()]);
    assert_eq!(p.s_events, vec![est]);
    assert_eq!(p.c.session_id(), Some("S1"));
}

#[test]
fn reliable_message_is_acked_and_released() {
    let mut p = Pair::new(cfg(), cfg());
    let id =
        p.c.send_reliable(0, "chat/send", Bytes::from_static(br#"{"text":"hi"}"#))
            .unwrap();
    assert_eq!(id, 1);
    p.pump();
    assert_eq!(
        text(p.c_sent.last().unwrap()),
        r#"["chat/send",{"text":"hi"},{"id":1}]"#
    );
    assert!(matches!(
        p.s_events.last(),
        Some(SessionEvent::Message { id: Some(1), event, .. }) if event.as_str() == "chat/send"
    ));
    assert_eq!(p.c.unacked_messages(), 1);
    p.advance(10);
    assert_eq!(
        text(p.s_sent.last().unwrap()),
        r#"["evs/ack",null,{"ack":1}]"#
    );
    assert_eq!(p.c.unacked_messages(), 0);
}

#[test]
fn request_reply_both_directions() {
    let mut p = Pair::new(cfg(), cfg());
    let r =
        p.c.request(0, "user/get", Bytes::from_static(b"42"), 5000)
            .unwrap();
    p.pump();
    let Some(SessionEvent::Request {
        req, timeout_ms, ..
    }) = p.s_events.last().cloned()
    else {
        panic!("{:?}", p.s_events)
    };
    assert_eq!((req, timeout_ms), (r, 5000));
    p.s.reply(0, req, Bytes::from_static(br#"{"name":"ann"}"#))
        .unwrap();
    p.pump();
    // The reply piggy-backs the ack of the request.
    assert_eq!(
        text(p.s_sent.last().unwrap()),
        r#"["evs/reply",{"name":"ann"},{"id":1,"re":1,"ack":1}]"#
    );
    assert_eq!(
        p.c_events.last(),
        Some(&SessionEvent::Reply {
            req: r,
            data: Bytes::from_static(br#"{"name":"ann"}"#)
        })
    );
    assert_eq!(
        p.s.reply(0, req, Bytes::new()),
        Err(SendError::UnknownRequest)
    );

    // Server to client, answered with an error.
    let r2 = p.s.request(0, "ui/confirm", Bytes::new(), 1000).unwrap();
    p.pump();
    let Some(SessionEvent::Request { req, .. }) = p.c_events.last().cloned() else {
        panic!()
    };
    p.c.reply_error(0, req, Bytes::from_static(br#""no""#))
        .unwrap();
    p.pump();
    assert_eq!(
        p.s_events.last(),
        Some(&SessionEvent::RequestFailed {
            req: r2,
            error: RequestError::Remote(Bytes::from_static(br#""no""#))
        })
    );
    assert_eq!(p.c.pending_requests() + p.s.pending_requests(), 0);
}

#[test]
fn request_times_out_exactly_once() {
    let mut p = Pair::new(cfg(), cfg());
    let r = p.c.request(0, "slow/op", Bytes::new(), 300).unwrap();
    p.pump();
    p.advance(299);
    assert!(!p
        .c_events
        .iter()
        .any(|e| matches!(e, SessionEvent::RequestFailed { .. })));
    p.advance(1);
    let fails: Vec<_> = p
        .c_events
        .iter()
        .filter(|e| matches!(e, SessionEvent::RequestFailed { .. }))
        .collect();
    assert_eq!(
        fails,
        vec![&SessionEvent::RequestFailed {
            req: r,
            error: RequestError::Timeout
        }]
    );
    // A late reply is dropped, not reported a second time.
    let Some(SessionEvent::Request { req, .. }) = p.s_events.last().cloned() else {
        panic!()
    };
    // The server's copy expired too.
    assert_eq!(
        p.s.reply(p.now, req, Bytes::new()),
        Err(SendError::UnknownRequest)
    );
}

#[test]
fn resume_retransmits_and_dedups() {
    let mut p = Pair::new(cfg(), cfg());
    p.c.send_reliable(0, "a/x", Bytes::from_static(b"1"))
        .unwrap();
    p.pump();
    // Drop the link before any ack; the client sends more while offline.
    p.disconnect();
    p.c.send_reliable(p.now, "a/x", Bytes::from_static(b"2"))
        .unwrap();
    let r =
        p.c.request(p.now, "a/q", Bytes::from_static(b"3"), 10_000)
            .unwrap();
    assert!(
        p.c_events.is_empty()
            || !p
                .c_events
                .iter()
                .any(|e| matches!(e, SessionEvent::Message { .. }))
    );
    // The client is told when to reconnect.
    let t = p.c.poll_timeout().unwrap();
    assert!(t <= 500);
    p.advance(t);
    assert_eq!(p.c_events.last(), Some(&SessionEvent::Reconnect));
    p.connect();
    assert_eq!(
        text(&p.c_sent[p.c_sent.len() - 2]),
        r#"["evs/hello",{"v":1,"sid":"S1","rx":0,"lo":1}]"#
    );
    let msgs: Vec<_> = p
        .s_events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { data, .. } | SessionEvent::Request { data, .. } => {
                Some(text(data).to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(msgs, ["1", "2", "3"], "{:?}", p.s_events);
    assert!(p.s_events.contains(&SessionEvent::Established {
        session_id: "S1".into(),
        resumed: true
    }));
    let Some(SessionEvent::Request { req, .. }) = p.s_events.last().cloned() else {
        panic!()
    };
    // The server replies while the link is down; the reply arrives on resume.
    p.disconnect();
    p.s.reply(p.now, req, Bytes::from_static(b"\"ok\""))
        .unwrap();
    p.advance(600);
    p.connect();
    assert_eq!(
        p.c_events.last(),
        Some(&SessionEvent::Reply {
            req: r,
            data: Bytes::from_static(b"\"ok\"")
        })
    );
    // A duplicated delivery of an old frame is dropped.
    let n = p.s_events.len();
    let old = p
        .c_sent
        .iter()
        .find(|f| text(f).contains("\"id\":2"))
        .unwrap()
        .clone();
    p.s.handle_message_bytes(p.now, MessageKind::Text, old);
    p.pump();
    assert_eq!(p.s_events.len(), n);
}

#[test]
fn unknown_session_is_reset_and_requests_fail() {
    let mut p = Pair::new(cfg(), cfg());
    let r = p.c.request(0, "a/q", Bytes::new(), 10_000).unwrap();
    p.disconnect();
    // The server lost the session; the host makes a fresh one.
    p.s = Session::server(cfg(), "S2", Box::new(SeededRng::new(3))).unwrap();
    p.c_events.clear();
    p.connect();
    assert_eq!(
        text(p.s_sent.last().unwrap()),
        r#"["evs/welcome",{"v":1,"sid":"S2","st":"reset","rx":0,"lo":1}]"#
    );
    assert_eq!(
        p.c_events,
        vec![
            SessionEvent::RequestFailed {
                req: r,
                error: RequestError::ResumeFailed
            },
            SessionEvent::Reset {
                unconfirmed: Some((1, 1))
            },
            SessionEvent::Established {
                session_id: "S2".into(),
                resumed: false
            }
        ]
    );
    assert_eq!(p.c.send_reliable(p.now, "a/x", Bytes::new()), Ok(1));
}

#[test]
fn server_session_expires_after_resume_window() {
    let mut p = Pair::new(
        cfg(),
        Config {
            resume_window_ms: 1000,
            ..cfg()
        },
    );
    let r = p.s.request(0, "a/q", Bytes::new(), 600_000).unwrap();
    p.disconnect();
    p.s_events.clear();
    let t = p.s.poll_timeout().unwrap();
    assert_eq!(t, 1000);
    p.s.handle_timeout(t);
    p.pump();
    assert_eq!(
        p.s_events,
        vec![
            SessionEvent::RequestFailed {
                req: r,
                error: RequestError::SessionClosed
            },
            SessionEvent::Expired
        ]
    );
    assert!(p.s.is_closed());
    assert_eq!(p.s.poll_timeout(), None);
}

#[test]
fn evicted_messages_are_reported_as_a_gap() {
    let small = Config {
        resume_buffer_bytes: 100,
        ..cfg()
    };
    let mut p = Pair::new(cfg(), small);
    p.disconnect();
    for i in 0..20 {
        p.s.send_reliable(p.now, "feed/item", Bytes::from(format!("{i}")))
            .unwrap();
    }
    assert!(p.s.unacked_bytes() <= 100);
    p.advance(600);
    p.connect();
    let Some(SessionEvent::Gap { from, to }) = p
        .c_events
        .iter()
        .find(|e| matches!(e, SessionEvent::Gap { .. }))
        .cloned()
    else {
        panic!("{:?}", p.c_events)
    };
    assert_eq!(from, 1);
    let got = reliable_ids(&p.c_events);
    assert_eq!(got.first(), Some(&(to + 1)));
    assert_eq!(*got.last().unwrap(), 20);
    assert!(got.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(text(
        p.s_sent
            .iter()
            .rev()
            .find(|f| text(f).contains("welcome"))
            .unwrap()
    )
    .contains(&format!("\"lost\":[1,{to}]")));
}

#[test]
fn bad_inputs_give_typed_errors() {
    let mut p = Pair::new(cfg(), cfg());
    for bad in [
        &b"{}"[..],
        b"[",
        b"[\"evs/nope\"]",
        b"[\"a/b\",1,{\"id\":9}]",
    ] {
        p.s.handle_message(p.now, MessageKind::Text, bad);
    }
    p.pump();
    let codes: Vec<&str> = p
        .s_events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Error(e) => Some(e.code()),
            _ => None,
        })
        .collect();
    assert_eq!(
        codes,
        [
            "envelope",
            "envelope",
            "unknown_protocol_event",
            "out_of_order"
        ]
    );
    assert_eq!(
        p.s_events.last(),
        Some(&SessionEvent::CloseTransport {
            reason: CloseReason::ProtocolError
        })
    );
    assert_eq!(
        p.c.send(0, "evs/x", Bytes::new()),
        Err(SendError::ReservedEvent)
    );
    assert_eq!(
        p.c.send(0, "bad id", Bytes::new()),
        Err(SendError::BadEventId)
    );
    assert!(matches!(
        p.c.send(0, "a/b", Bytes::from_static(b"{")),
        Err(SendError::InvalidData(_))
    ));
    assert_eq!(
        p.c.request(0, "a/b", Bytes::new(), 0),
        Err(SendError::BadTimeout)
    );
}

#[test]
fn batching_packs_pushes_into_one_frame() {
    let mut p = Pair::new(
        cfg(),
        Config {
            batch_window_ms: 5,
            ..cfg()
        },
    );
    let before = p.s_sent.len();
    for i in 0..3 {
        p.s.send(p.now, "feed/tick", Bytes::from(format!("{i}")))
            .unwrap();
    }
    p.pump();
    assert_eq!(p.s_sent.len(), before);
    assert_eq!(p.s.poll_timeout(), Some(5));
    p.advance(5);
    assert_eq!(
        text(&p.s_sent[before]),
        r#"[["feed/tick",0],["feed/tick",1],["feed/tick",2]]"#
    );
    let n = p
        .c_events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Message { .. }))
        .count();
    assert_eq!(n, 3);
}

#[test]
fn msgpack_sessions_work_end_to_end() {
    let mut p = Pair::new(
        Config {
            format: Format::MsgPack,
            ..cfg()
        },
        cfg(),
    );
    assert_eq!(p.s.format(), Format::MsgPack);
    let data = p.c.encode(&serde_json::json!({"text": "hi"})).unwrap();
    let r = p.c.request(0, "chat/send", data, 1000).unwrap();
    p.pump();
    let Some(SessionEvent::Request { req, data, .. }) = p.s_events.last().cloned() else {
        panic!()
    };
    let v: serde_json::Value = Format::MsgPack.decode(&data).unwrap();
    assert_eq!(v["text"], "hi");
    let reply = p.s.encode(&7u32).unwrap();
    p.s.reply(0, req, reply).unwrap();
    p.pump();
    assert_eq!(
        p.c_events.last(),
        Some(&SessionEvent::Reply {
            req: r,
            data: Bytes::from_static(&[7])
        })
    );
}

#[test]
fn idle_connection_is_pinged_then_dropped() {
    let c = Config {
        ping_interval_ms: Some(100),
        idle_timeout_ms: Some(250),
        ..cfg()
    };
    let mut p = Pair::new(c, cfg());
    p.advance(100);
    assert_eq!(text(p.c_sent.last().unwrap()), r#"["evs/ping"]"#);
    assert_eq!(text(p.s_sent.last().unwrap()), r#"["evs/pong"]"#);
    // The server goes silent.
    p.connected = false;
    p.advance(400);
    assert!(p.c_events.contains(&SessionEvent::CloseTransport {
        reason: CloseReason::IdleTimeout
    }));
    assert_eq!(p.c_events.last(), Some(&SessionEvent::Reconnect));
}

#[test]
fn go_away_retry_after_is_honoured() {
    let mut p = Pair::new(cfg(), cfg());
    p.s.go_away(0, 7000);
    p.pump();
    assert_eq!(text(p.s_sent.last().unwrap()), r#"["evs/bye",{"ra":7000}]"#);
    assert!(p.c_events.contains(&SessionEvent::CloseTransport {
        reason: CloseReason::GoAway
    }));
    p.connected = false;
    assert_eq!(p.c.poll_timeout(), Some(7000));
}

#[test]
fn close_ends_both_sides() {
    let mut p = Pair::new(cfg(), cfg());
    let r = p.s.request(0, "a/q", Bytes::new(), 1000).unwrap();
    p.pump();
    p.c.close(0);
    p.pump();
    assert!(p.c.is_closed() && p.s.is_closed());
    assert!(p.s_events.contains(&SessionEvent::Closed { by_peer: true }));
    assert!(p.s_events.contains(&SessionEvent::RequestFailed {
        req: r,
        error: RequestError::SessionClosed
    }));
    assert_eq!(
        p.c.send_reliable(0, "a/b", Bytes::new()),
        Err(SendError::Closed)
    );
}

#[test]
fn a_tiny_message_limit_still_lets_the_protocol_resume() {
    // Fuzz finding session-control-too-large: with max_message_bytes 96 a
    // welcome naming a lost range is longer than the limit, and the client
    // dropped it, so the resume could never complete.
    let tiny = Config {
        max_message_bytes: 70,
        resume_buffer_bytes: 40,
        ..cfg()
    };
    let mut p = Pair::new(tiny.clone(), tiny);
    p.disconnect();
    for i in 0..20 {
        p.s.send_reliable(p.now, "f/x", Bytes::from(format!("{i}")))
            .unwrap();
    }
    p.advance(600);
    p.connect();
    let welcome = p
        .s_sent
        .iter()
        .rev()
        .find(|f| text(f).contains("welcome"))
        .cloned()
        .unwrap();
    assert!(
        welcome.len() > 70,
        "the case needs a long welcome: {}",
        text(&welcome)
    );
    assert!(
        p.c_events
            .iter()
            .any(|e| matches!(e, SessionEvent::Gap { .. })),
        "{:?}",
        p.c_events
    );
    assert!(
        !p.c_events
            .iter()
            .any(|e| matches!(e, SessionEvent::Error(_))),
        "{:?}",
        p.c_events
    );
    assert_eq!(reliable_ids(&p.c_events).last(), Some(&20));
}

#[test]
fn a_handshaking_client_refuses_reliable_sends_past_its_resume_buffer() {
    // While the hello waits for its welcome nothing may be evicted (the
    // hello promised every buffered id), so the buffer's bound is kept by
    // refusing further reliable sends instead of growing without limit.
    let small = Config {
        resume_buffer_bytes: 200,
        ..cfg()
    };
    let mut p = Pair::new(small, cfg());
    p.disconnect();
    p.advance(1_000);
    // Reconnect the client only: its hello goes nowhere for now.
    p.c.handle_connected(p.now);
    while p.c.poll_output().is_some() {}
    let mut accepted = 0;
    let refused = loop {
        match p
            .c
            .send_reliable(p.now, "feed/item", Bytes::from_static(b"12345"))
        {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted < 100, "never refused");
    };
    assert_eq!(refused, SendError::BufferFull);
    assert_eq!(refused.code(), "buffer_full");
    assert!(accepted >= 2, "{accepted}");
    assert!(p.c.unacked_bytes() <= 200, "{}", p.c.unacked_bytes());
    // Fire-and-forget and requests keep their own rules meanwhile.
    assert_eq!(
        p.c.send(p.now, "x", Bytes::new()),
        Err(SendError::NotConnected)
    );
    // Once the welcome arrives everything buffered is delivered, once, and
    // sending works again.
    p.c.handle_disconnected(p.now);
    p.s.handle_disconnected(p.now);
    p.advance(1_000);
    p.connect();
    p.c.send_reliable(p.now, "feed/item", Bytes::from_static(b"6"))
        .unwrap();
    p.pump();
    let got = reliable_ids(&p.s_events);
    assert_eq!(got, (1..=accepted + 1).collect::<Vec<u64>>());
}
