//! The hub's basic path: upgrade, auth hook, hello, events in, sends out to
//! a client, a user, a room and everyone; request/reply; rejects and bad
//! hellos.

mod hub_util;

use bytes::Bytes;
use evsock::hub::{Delivery, HubError, HubEvent, HubOutput, HubProtocolError};
use evsock::session::{Format, SessionEvent};
use evsock::ws::{self, CloseCode};
use hub_util::*;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn upgrade_accept_hello_then_messages_both_ways() {
    let mut w = World::new(hub_config());
    let t = w.open("alice");
    let ev = w.take_events(0);
    // The auth hook saw the request first.
    match &ev[0] {
        HubEvent::Upgrade { request, .. } => assert_eq!(request.path, "/?user=alice"),
        e => panic!("expected Upgrade, got {e:?}"),
    }
    let c = w.client_of(t);
    assert!(ev.iter().any(|e| matches!(e,
        HubEvent::ClientConnected { client, user, resumed: false, .. }
            if *client == c && &**user == "alice")));
    assert!(ev
        .iter()
        .any(|e| matches!(e, HubEvent::UserOnline { user } if &**user == "alice")));
    assert!(w.tabs[t]
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Established { resumed: false, .. })));

    // Client -> hub.
    w.send_reliable(t, "chat/say", r#"{"text":"hi"}"#);
    let ev = w.take_events(0);
    let got: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            HubEvent::Message {
                client,
                user,
                event,
                data,
                format,
            } => Some((
                *client,
                user.to_string(),
                event.as_str().to_owned(),
                data.clone(),
                *format,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        got,
        vec![(
            c,
            "alice".into(),
            "chat/say".into(),
            b(r#"{"text":"hi"}"#),
            Format::Json
        )]
    );

    // Hub -> client, reliable and volatile.
    let now = w.now;
    w.hub()
        .send_to_client(c, now, "chat/msg", b(r#"{"n":1}"#), Delivery::Reliable)
        .unwrap();
    w.hub()
        .send_to_client(c, now, "chat/typing", b("true"), Delivery::Volatile)
        .unwrap();
    w.pump();
    assert_eq!(
        w.tabs[t].messages(),
        vec![
            ("chat/msg".into(), r#"{"n":1}"#.into()),
            ("chat/typing".into(), "true".into())
        ]
    );
    // The reliable one carried an id the client acknowledges.
    assert!(w.tabs[t]
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Message { id: Some(1), .. })));
}

#[test]
fn user_room_and_everyone() {
    let mut w = World::new(hub_config());
    let a1 = w.open("alice");
    let a2 = w.open("alice");
    let bob = w.open("bob");
    let carol = w.open("carol");
    let now = w.now;
    let (ca1, cbob) = (w.client_of(a1), w.client_of(bob));
    assert_ne!(w.client_of(a1), w.client_of(a2));
    assert!(w.hub().join_room(ca1, now, "lobby").unwrap());
    assert!(!w.hub().join_room(ca1, now, "lobby").unwrap(), "already in");
    assert!(w.hub().join_room(cbob, now, "lobby").unwrap());

    let n = w
        .hub()
        .send_to_user("alice", now, "x/user", b("1"), Delivery::Reliable)
        .unwrap();
    assert_eq!(n, 2, "both tabs");
    let n = w
        .hub()
        .broadcast_room("lobby", now, "x/room", b("2"), Delivery::Reliable)
        .unwrap();
    assert_eq!(n, 2);
    let n = w
        .hub()
        .broadcast_all(now, "x/all", b("3"), Delivery::Volatile)
        .unwrap();
    assert_eq!(n, 4);
    w.pump();
    let names = |t: usize, w: &World| -> Vec<String> {
        w.tabs[t].messages().into_iter().map(|(e, _)| e).collect()
    };
    assert_eq!(names(a1, &w), ["x/user", "x/room", "x/all"]);
    assert_eq!(names(a2, &w), ["x/user", "x/all"]);
    assert_eq!(names(bob, &w), ["x/room", "x/all"]);
    assert_eq!(names(carol, &w), ["x/all"]);

    // Leaving stops room delivery.
    assert!(w.hub().leave_room(cbob, now, "lobby").unwrap());
    assert!(!w.hub().leave_room(cbob, now, "lobby").unwrap());
    let n = w
        .hub()
        .broadcast_room("lobby", now, "x/room2", b("4"), Delivery::Volatile)
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn request_and_reply() {
    let mut w = World::new(hub_config());
    let t = w.open("alice");
    let now = w.now;
    let rq = w.tabs[t]
        .s
        .request(now, "math/add", b("[1,2]"), 5_000)
        .unwrap();
    w.pump();
    let ev = w.take_events(0);
    let (client, req) = ev
        .iter()
        .find_map(|e| match e {
            HubEvent::Request {
                client,
                req,
                event,
                data,
                timeout_ms,
                ..
            } => {
                assert_eq!(event.as_str(), "math/add");
                assert_eq!(&data[..], b"[1,2]");
                assert_eq!(*timeout_ms, 5_000);
                Some((*client, *req))
            }
            _ => None,
        })
        .expect("a request event");
    w.hub().reply(client, now, req, b("3")).unwrap();
    w.pump();
    assert!(w.tabs[t].events.iter().any(|e| matches!(e,
        SessionEvent::Reply { req, data } if *req == rq && &data[..] == b"3")));
    // A second reply to the same request is refused, not sent.
    assert!(matches!(
        w.hub().reply(client, now, req, b("4")),
        Err(HubError::Send(_))
    ));
    // Error replies reach the requester as remote failures.
    let rq2 = w.tabs[t]
        .s
        .request(now, "math/div", b("[1,0]"), 5_000)
        .unwrap();
    w.pump();
    let req2 = w
        .take_events(0)
        .iter()
        .find_map(|e| match e {
            HubEvent::Request { req, .. } => Some(*req),
            _ => None,
        })
        .unwrap();
    w.hub()
        .reply_error(client, now, req2, b(r#""division by zero""#))
        .unwrap();
    w.pump();
    assert!(w.tabs[t].events.iter().any(|e| matches!(e,
        SessionEvent::RequestFailed { req, .. } if *req == rq2)));
}

#[test]
fn msgpack_clients_get_transcoded_data() {
    let mut w = World::new(hub_config());
    let j = w.open("alice");
    let m = w.open_on(0, "bob", Format::MsgPack);
    let now = w.now;
    for t in [j, m] {
        let c = w.client_of(t);
        w.hub().join_room(c, now, "r").unwrap();
    }
    w.hub()
        .broadcast_room("r", now, "x/y", b(r#"{"k":[1,"v"]}"#), Delivery::Volatile)
        .unwrap();
    w.hub()
        .broadcast_room("r", now, "x/z", b(r#"{"k":2}"#), Delivery::Reliable)
        .unwrap();
    w.pump();
    let data: Vec<Bytes> = w.tabs[m]
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { data, .. } => Some(data.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(data.len(), 2);
    let v: serde_json::Value = rmp_serde::from_slice(&data[0]).unwrap();
    assert_eq!(v, serde_json::json!({"k":[1,"v"]}));
    let v: serde_json::Value = rmp_serde::from_slice(&data[1]).unwrap();
    assert_eq!(v, serde_json::json!({"k":2}));
    assert_eq!(w.tabs[j].messages().len(), 2);
}

#[test]
fn reject_and_bad_hello_and_bad_calls() {
    let mut w = World::new(hub_config());
    w.auto_accept = false;
    let t = w.open("mallory");
    let ev = w.take_events(0);
    let conn = match &ev[0] {
        HubEvent::Upgrade { conn, .. } => *conn,
        e => panic!("{e:?}"),
    };
    let now = w.now;
    assert_eq!(
        w.hub().accept(conn, now, ""),
        Err(HubError::BadUserId),
        "empty user id"
    );
    w.hub()
        .reject(conn, now, ws::Reject::new(401, "log in first"))
        .unwrap();
    w.pump();
    assert!(w.tabs[t].hub_closed);
    assert!(matches!(
        w.tabs[t].closed.as_ref().and_then(|c| c.error.clone()),
        Some(ws::Error::Handshake(_))
    ));
    assert_eq!(
        w.hub().accept(conn, now, "x"),
        Err(HubError::UnknownConnection)
    );
    assert_eq!(w.hub().stats().connections, 0);
    assert_eq!(w.hub().stats().users, 0);

    // A raw client whose first message is not a hello.
    w.auto_accept = true;
    let hub = w.hub();
    let c = hub.new_connection(now).unwrap();
    hub.handle_input(
        c,
        now,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    hub.accept(c, now, "eve").unwrap();
    // Masked text frame "[\"chat/x\",1]".
    let payload = br#"["chat/x",1]"#;
    let mut frame = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    hub.handle_input(c, now, &frame);
    let mut saw_error = false;
    let mut closed = false;
    let mut bytes = Vec::new();
    while let Some(o) = hub.poll_output() {
        match o {
            HubOutput::Event(HubEvent::ProtocolError {
                error: HubProtocolError::BadHello(_),
                ..
            }) => saw_error = true,
            HubOutput::Transmit { bytes: b, .. } => bytes.extend_from_slice(&b),
            HubOutput::Close { conn } if conn == c => closed = true,
            _ => {}
        }
    }
    assert!(saw_error && closed);
    // The close frame (1002) follows the 101 response.
    let close_at = bytes.iter().rposition(|&x| x == 0x88).unwrap();
    assert_eq!(
        &bytes[close_at + 4..],
        b"expected evs/hello",
        "the reason follows the code"
    );
    assert_eq!(&bytes[close_at + 2..close_at + 4], &1002u16.to_be_bytes());
    let _ = CloseCode::PROTOCOL_ERROR;

    // Bad arguments are typed errors.
    let now = w.now;
    let t = w.open("zed");
    let cz = w.client_of(t);
    let hub = w.hub();
    assert_eq!(
        hub.send_to_client(cz, now, "evs/ping", b("1"), Delivery::Volatile),
        Err(HubError::Send(evsock::session::SendError::ReservedEvent))
    );
    assert_eq!(
        hub.send_to_client(cz, now, "x/y", b("{bad"), Delivery::Reliable),
        Err(HubError::InvalidData)
    );
    assert_eq!(
        hub.broadcast_room("has space", now, "x/y", b("1"), Delivery::Reliable),
        Err(HubError::BadRoom)
    );
    assert_eq!(hub.join_room(cz, now, ""), Err(HubError::BadRoom));
    hub.close_client(cz, now).unwrap();
    w.pump();
    assert!(w.tabs[t].hub_closed);
    assert_eq!(
        w.hub()
            .send_to_client(cz, now, "x/y", b("1"), Delivery::Reliable),
        Err(HubError::UnknownClient)
    );
    assert!(w.take_events(0).iter().any(
        |e| matches!(e, HubEvent::ClientGone { client, expired: false, .. } if *client == cz)
    ));
}
