//! Users online/offline with a grace period, several tabs per user, resume
//! through the hub, rooms with an authorization hook, presence.

mod hub_util;

use bytes::Bytes;
use evsock::hub::{Delivery, HubError, HubEvent, CLOSE_REPLACED};
use evsock::session::SessionEvent;
use hub_util::*;

fn online_events(ev: &[HubEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            HubEvent::UserOnline { user } => Some(format!("+{user}")),
            HubEvent::UserOffline { user } => Some(format!("-{user}")),
            _ => None,
        })
        .collect()
}

fn presence(ev: &[HubEvent]) -> Vec<String> {
    ev.iter()
        .filter_map(|e| match e {
            HubEvent::Presence { room, user, online } => {
                Some(format!("{}{user}@{room}", if *online { "+" } else { "-" }))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn offline_only_after_the_grace_period_and_resume_in_between() {
    let mut w = World::new(hub_config()); // grace 5 s
    let t = w.open("alice");
    let c = w.client_of(t);
    assert_eq!(online_events(&w.take_events(0)), ["+alice"]);

    w.drop_tab(t);
    let ev = w.take_events(0);
    assert!(ev
        .iter()
        .any(|e| matches!(e, HubEvent::ClientDisconnected { client, .. } if *client == c)));
    assert!(online_events(&ev).is_empty(), "no offline yet");
    assert!(w.hub().is_online("alice"));

    // A reliable message sent while away waits in the resume buffer.
    let now = w.now;
    w.hub()
        .send_to_user(
            "alice",
            now,
            "x/missed",
            Bytes::from_static(b"1"),
            Delivery::Reliable,
        )
        .unwrap();
    // A volatile one is not delivered to a disconnected client.
    assert_eq!(
        w.hub()
            .send_to_user(
                "alice",
                now,
                "x/vol",
                Bytes::from_static(b"2"),
                Delivery::Volatile
            )
            .unwrap(),
        0
    );
    w.advance(4_000);
    w.reconnect(t);
    let ev = w.take_events(0);
    assert!(ev.iter().any(|e| matches!(e,
        HubEvent::ClientConnected { client, resumed: true, .. } if *client == c)));
    assert!(online_events(&ev).is_empty(), "a blip is not a flap");
    assert_eq!(w.client_of(t), c, "same client after resume");
    let got: Vec<String> = w.tabs[t].messages().into_iter().map(|m| m.0).collect();
    assert_eq!(got, ["x/missed"], "replayed once, volatile not");

    // Past the grace without a reconnect: offline.
    w.drop_tab(t);
    w.advance(4_999);
    assert!(online_events(&w.take_events(0)).is_empty());
    w.advance(2);
    assert_eq!(online_events(&w.take_events(0)), ["-alice"]);
    assert!(!w.hub().is_online("alice"));

    // Past the resume window (60 s): the client is gone for good.
    w.advance(60_000);
    let ev = w.take_events(0);
    assert!(ev.iter().any(|e| matches!(e,
        HubEvent::ClientGone { client, expired: true, .. } if *client == c)));
    assert_eq!(w.hub().stats().clients, 0);
    assert_eq!(w.hub().stats().users, 0, "nothing left of alice");
}

#[test]
fn a_user_with_two_tabs_stays_online_while_one_is_open() {
    let mut w = World::new(hub_config());
    let t1 = w.open("alice");
    let t2 = w.open("alice");
    assert_eq!(online_events(&w.take_events(0)), ["+alice"], "once");
    assert_eq!(w.hub().user_clients("alice").len(), 2);
    w.drop_tab(t1);
    w.advance(30_000);
    assert!(online_events(&w.take_events(0)).is_empty());
    assert!(w.hub().is_online("alice"));
    w.drop_tab(t2);
    w.advance(5_000);
    assert_eq!(online_events(&w.take_events(0)), ["-alice"]);
}

#[test]
fn room_policy_and_presence() {
    let mut w = World::new(hub_config());
    w.hub()
        .set_room_policy(|user, room| !room.starts_with("staff/") || user == "root");
    let a = w.open("alice");
    let b = w.open("bob");
    let r = w.open("root");
    let (ca, cb, cr) = (w.client_of(a), w.client_of(b), w.client_of(r));
    let now = w.now;
    w.take_events(0);
    assert_eq!(
        w.hub().join_room(ca, now, "staff/ops"),
        Err(HubError::Forbidden)
    );
    assert_eq!(w.hub().join_room(cr, now, "staff/ops"), Ok(true));
    w.hub().join_room(ca, now, "lobby").unwrap();
    w.hub().join_room(cb, now, "lobby").unwrap();
    assert_eq!(
        presence(&w.take_events(0)),
        ["+root@staff/ops", "+alice@lobby", "+bob@lobby"]
    );
    let users: Vec<String> = w
        .hub()
        .room_users("lobby")
        .iter()
        .map(|u| u.to_string())
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    assert!(w
        .hub()
        .room_users("staff/ops")
        .iter()
        .all(|u| &**u == "root"));

    // A second tab of bob joining does not repeat his presence.
    let b2 = w.open("bob");
    let cb2 = w.client_of(b2);
    w.hub().join_room(cb2, now, "lobby").unwrap();
    assert!(presence(&w.take_events(0)).is_empty());
    // Leaving with one tab keeps him present; with both, not.
    w.hub().leave_room(cb, now, "lobby").unwrap();
    assert!(presence(&w.take_events(0)).is_empty());
    w.hub().leave_room(cb2, now, "lobby").unwrap();
    assert_eq!(presence(&w.take_events(0)), ["-bob@lobby"]);

    // Going offline (after the grace) ends presence; coming back restores it.
    w.drop_tab(a);
    w.advance(5_001);
    let ev = w.take_events(0);
    assert_eq!(presence(&ev), ["-alice@lobby"]);
    assert!(w.hub().room_users("lobby").is_empty());
    w.reconnect(a);
    let ev = w.take_events(0);
    assert_eq!(online_events(&ev), ["+alice"]);
    assert_eq!(
        presence(&ev),
        ["+alice@lobby"],
        "membership survived the resume"
    );

    // Too many rooms.
    let mut cfg = hub_config();
    cfg.max_rooms_per_client = 2;
    let mut w = World::new(cfg);
    let t = w.open("x");
    let c = w.client_of(t);
    let now = w.now;
    w.hub().join_room(c, now, "r1").unwrap();
    w.hub().join_room(c, now, "r2").unwrap();
    assert_eq!(w.hub().join_room(c, now, "r3"), Err(HubError::TooManyRooms));
}

#[test]
fn a_newer_connection_replaces_the_old_one() {
    let mut w = World::new(hub_config());
    let t = w.open("alice");
    let c = w.client_of(t);
    let old = w.tabs[t].conn.unwrap();
    w.take_events(0);
    // The session comes back on a new connection while the hub still
    // holds the old one open.
    w.reconnect_keep_old(t);
    let newc = w.tabs[t].conn.unwrap();
    assert_ne!(old, newc);
    let ev = w.take_events(0);
    assert!(ev.iter().any(|e| matches!(e,
        HubEvent::ClientConnected { client, resumed: true, conn, .. }
            if *client == c && *conn == newc)));
    assert!(online_events(&ev).is_empty());
    // The old connection got a close frame with 4009, then Close.
    let old_bytes: Vec<Bytes> = w
        .orphans
        .iter()
        .filter(|(_, k, _)| *k == old)
        .map(|(_, _, b)| b.clone())
        .collect();
    assert_eq!(World::close_code_in(&old_bytes), Some(CLOSE_REPLACED.0));
    assert!(w.orphan_closes.contains(&(0, old)));
    assert!(w.hub().is_connected(c));
    assert_eq!(w.hub().stats().connections, 1);
}

#[test]
fn another_user_cannot_take_over_a_session() {
    let mut w = World::new(hub_config());
    let t = w.open("alice");
    let c = w.client_of(t);
    // Bob's tab presents alice's session id in its hello.
    let b = w.open("bob");
    let cb = w.client_of(b);
    let sid_a = w.tabs[t].session_id.clone().unwrap();
    assert_ne!(c, cb);
    // Forge: a raw hello from bob naming alice's sid.
    let now = w.now;
    let hub = w.hub();
    let conn = hub.new_connection(now).unwrap();
    hub.handle_input(
        conn,
        now,
        b"GET /?user=bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    w.pump(); // auto-accepts as bob
    let hello = format!(r#"["evs/hello",{{"v":1,"sid":"{sid_a}","rx":0,"lo":1}}]"#);
    let mut frame = vec![0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(hello.as_bytes());
    let hub = w.hub();
    hub.handle_input(conn, now, &frame);
    w.pump();
    let ev = w.take_events(0);
    let (client, user, resumed) = ev
        .iter()
        .find_map(|e| match e {
            HubEvent::ClientConnected {
                client,
                user,
                resumed,
                conn: cn,
            } if *cn == conn => Some((*client, user.to_string(), *resumed)),
            _ => None,
        })
        .unwrap();
    assert_eq!(user, "bob");
    assert!(!resumed, "a fresh session, not alice's");
    assert_ne!(client, c);
    assert!(w.hub().is_connected(c), "alice's tab is untouched");
    // Alice still gets her messages.
    let now = w.now;
    w.hub()
        .send_to_client(c, now, "x/y", Bytes::from_static(b"1"), Delivery::Reliable)
        .unwrap();
    w.pump();
    assert!(w.tabs[t]
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Message { .. })));
}
