//! Two (and three) hubs joined by an in-memory pub/sub bus: rooms, users
//! and presence shared across nodes, own echoes dropped, every member gets a
//! room broadcast exactly once, silent nodes retired.

mod hub_util;

use bytes::Bytes;
use evsock::hub::{Config, Delivery, Hub, HubError, HubEvent};
use evsock::session::Format;
use evsock::SeededRng;
use hub_util::*;

fn node(name: &str) -> Config {
    let mut c = hub_config();
    c.node_id = Some(name.to_owned());
    c.heartbeat_ms = 1_000;
    c
}

fn names(w: &World, t: usize) -> Vec<String> {
    w.tabs[t].messages().into_iter().map(|m| m.0).collect()
}

#[test]
fn a_room_broadcast_reaches_every_member_once_across_nodes() {
    let mut w = World::cluster(vec![node("n1"), node("n2"), node("n3")]);
    let a = w.open_on(0, "alice", Format::Json);
    let b = w.open_on(1, "bob", Format::Json);
    let c = w.open_on(1, "carol", Format::MsgPack);
    let outsider = w.open_on(2, "dave", Format::Json);
    let now = w.now;
    for t in [a, b, c] {
        let id = w.client_of(t);
        let n = w.tabs[t].node;
        w.hubs[n].join_room(id, now, "lobby").unwrap();
    }
    w.pump();
    // n3 has no member: it does not even follow the room.
    assert!(!w
        .subs
        .iter()
        .any(|(ch, s)| ch == "evsock:room:lobby" && s.contains(&2)));

    let local = w.hubs[0]
        .broadcast_room(
            "lobby",
            now,
            "chat/msg",
            Bytes::from_static(b"{\"t\":1}"),
            Delivery::Reliable,
        )
        .unwrap();
    assert_eq!(local, 1);
    w.pump();
    let local = w.hubs[1]
        .broadcast_room(
            "lobby",
            now,
            "chat/vol",
            Bytes::from_static(b"2"),
            Delivery::Volatile,
        )
        .unwrap();
    assert_eq!(local, 2);
    w.pump();
    for t in [a, b, c] {
        assert_eq!(names(&w, t), ["chat/msg", "chat/vol"], "tab {t}");
    }
    assert!(names(&w, outsider).is_empty());

    // Everyone, on every node, once.
    w.hubs[2]
        .broadcast_all(now, "x/all", Bytes::from_static(b"3"), Delivery::Volatile)
        .unwrap();
    w.pump();
    for t in [a, b, c, outsider] {
        assert_eq!(names(&w, t).iter().filter(|n| *n == "x/all").count(), 1);
    }
}

#[test]
fn users_and_presence_span_nodes() {
    let mut w = World::cluster(vec![node("n1"), node("n2")]);
    let a1 = w.open_on(0, "alice", Format::Json);
    let a2 = w.open_on(1, "alice", Format::Json);
    let b = w.open_on(1, "bob", Format::Json);
    let now = w.now;
    // A user's tabs on two nodes both get a user message, once.
    w.hubs[1]
        .send_to_user(
            "alice",
            now,
            "x/dm",
            Bytes::from_static(b"1"),
            Delivery::Reliable,
        )
        .unwrap();
    w.pump();
    assert_eq!(names(&w, a1), ["x/dm"]);
    assert_eq!(names(&w, a2), ["x/dm"]);
    assert!(names(&w, b).is_empty());

    // Presence: n1 learns bob's presence from n2 (snapshot on joining).
    let cb = w.client_of(b);
    w.hubs[1].join_room(cb, now, "lobby").unwrap();
    w.pump();
    let ca = w.client_of(a1);
    w.hubs[0].join_room(ca, now, "lobby").unwrap();
    w.pump();
    let users = |w: &World, n: usize| -> Vec<String> {
        w.hubs[n]
            .room_users("lobby")
            .iter()
            .map(|u| u.to_string())
            .collect()
    };
    assert_eq!(users(&w, 0), ["alice", "bob"]);
    assert_eq!(users(&w, 1), ["alice", "bob"]);
    let ev0 = w.take_events(0);
    assert!(ev0.iter().any(|e| matches!(e,
        HubEvent::Presence { user, online: true, .. } if &**user == "bob")));

    // Bob goes offline on n2: n1 sees him leave after the grace.
    w.drop_tab(b);
    w.advance(5_001);
    assert_eq!(users(&w, 0), ["alice"]);
    let ev0 = w.take_events(0);
    assert!(ev0.iter().any(|e| matches!(e,
        HubEvent::Presence { user, online: false, .. } if &**user == "bob")));
}

#[test]
fn own_echoes_are_dropped_and_bad_bus_messages_refused() {
    let mut w = World::cluster(vec![node("n1"), node("n2")]);
    let a = w.open_on(0, "alice", Format::Json);
    let now = w.now;
    let ca = w.client_of(a);
    w.hubs[0].join_room(ca, now, "r").unwrap();
    w.pump();
    w.hubs[0]
        .broadcast_room(
            "r",
            now,
            "x/y",
            Bytes::from_static(b"1"),
            Delivery::Reliable,
        )
        .unwrap();
    w.pump();
    // n1 is subscribed to its own room channel and got its echo back.
    let echoes = w
        .published
        .iter()
        .filter(|(n, ch, _)| *n == 0 && ch == "evsock:room:r")
        .count();
    assert!(echoes >= 1);
    assert_eq!(names(&w, a), ["x/y"], "exactly once despite the echo");

    let h = &mut w.hubs[1];
    assert!(matches!(
        h.handle_remote(now, b"junk"),
        Err(HubError::Cluster(_))
    ));
    assert!(matches!(
        h.handle_remote(now, b""),
        Err(HubError::Cluster(_))
    ));
    // A well-formed message with bad content (invalid data) is refused too.
    let mut m = b"EV\x01\x03\x02n9".to_vec();
    m.extend_from_slice(b"\x03x/y\x01\x00\x00\x00\x02{x");
    assert_eq!(h.handle_remote(now, &m), Err(HubError::InvalidData));
    // A single node hub has no bus.
    let mut solo = Hub::new(hub_config(), Box::new(SeededRng::new(1))).unwrap();
    assert!(solo.handle_remote(now, b"EV").is_err());
    assert!(Hub::new(node(""), Box::new(SeededRng::new(1))).is_err());
}

#[test]
fn a_silent_node_has_its_presence_retired() {
    let mut w = World::cluster(vec![node("n1"), node("n2")]);
    let a = w.open_on(0, "alice", Format::Json);
    let b = w.open_on(1, "bob", Format::Json);
    let now = w.now;
    for t in [a, b] {
        let id = w.client_of(t);
        let n = w.tabs[t].node;
        w.hubs[n].join_room(id, now, "lobby").unwrap();
    }
    w.pump();
    w.advance(2_000);
    assert_eq!(w.hubs[0].peer_nodes(), ["n2"]);
    assert_eq!(w.hubs[0].room_users("lobby").len(), 2);
    // n2 vanishes from the bus (crash, partition).
    for (_, s) in w.subs.iter_mut() {
        s.retain(|&n| n != 1);
    }
    let mut hubs = std::mem::take(&mut w.hubs);
    let n2 = hubs.pop().unwrap();
    w.hubs = hubs;
    w.events.pop();
    w.tabs.retain(|t| t.node == 0);
    w.advance(3_500);
    let ev = w.take_events(0);
    assert!(ev.iter().any(|e| matches!(e,
        HubEvent::Presence { user, online: false, .. } if &**user == "bob")));
    let users: Vec<String> = w.hubs[0]
        .room_users("lobby")
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(users, ["alice"]);
    assert!(w.hubs[0].peer_nodes().is_empty());
    drop(n2);
}
