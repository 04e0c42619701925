//! Encode once, fan out N; slow consumers: bounded queues, drop-oldest,
//! latest-per-key, disconnect, and reliable messages that survive a cut
//! (replayed on resume, or reported as a gap, never silently lost).

mod hub_util;

use bytes::Bytes;
use evsock::hub::{Delivery, HubEvent, SlowPolicy, CLOSE_SLOW_CONSUMER};
use evsock::session::SessionEvent;
use hub_util::*;

fn room_of(w: &mut World, tabs: &[usize], room: &str) {
    let now = w.now;
    for &t in tabs {
        let c = w.client_of(t);
        w.hub().join_room(c, now, room).unwrap();
    }
}

#[test]
fn a_volatile_broadcast_is_framed_once_and_shared() {
    let mut w = World::new(hub_config());
    let tabs: Vec<usize> = (0..5).map(|i| w.open(&format!("u{i}"))).collect();
    room_of(&mut w, &tabs, "lobby");
    for &t in &tabs {
        w.tabs[t].raw.clear();
    }
    let now = w.now;
    let data = Bytes::from(format!(r#"{{"text":"{}"}}"#, "x".repeat(100)));
    let n = w
        .hub()
        .broadcast_room("lobby", now, "chat/msg", data.clone(), Delivery::Volatile)
        .unwrap();
    assert_eq!(n, 5);
    w.pump();
    let frames: Vec<Bytes> = tabs.iter().map(|&t| w.tabs[t].raw[0].clone()).collect();
    // Every recipient's transmit is the very same allocation.
    for f in &frames {
        assert_eq!(f.as_ptr(), frames[0].as_ptr());
        assert_eq!(f.len(), frames[0].len());
    }
    for &t in &tabs {
        assert_eq!(w.tabs[t].messages()[0].1.as_bytes(), &data[..]);
    }
    // A reliable broadcast shares the data element instead (each session
    // numbers its own envelope), so the frames differ per recipient.
    for &t in &tabs {
        w.tabs[t].raw.clear();
    }
    w.hub()
        .broadcast_room("lobby", now, "chat/msg", data, Delivery::Reliable)
        .unwrap();
    w.pump();
    let a = w.tabs[tabs[0]].raw[0].as_ptr();
    let b = w.tabs[tabs[1]].raw[0].as_ptr();
    assert_ne!(a, b);
}

fn slow_config(policy: SlowPolicy) -> evsock::hub::Config {
    let mut c = hub_config();
    c.send_window_bytes = 1_000;
    c.max_queued_bytes = 4_000;
    c.slow_policy = policy;
    c
}

#[test]
fn drop_oldest_sheds_volatile_frames_and_reports_it() {
    let mut w = World::new(slow_config(SlowPolicy::DropOldest));
    let fast = w.open("fast");
    let slow = w.open("slow");
    room_of(&mut w, &[fast, slow], "r");
    w.take_events(0);
    w.tabs[slow].paused = true;
    let now = w.now;
    for i in 0..40 {
        let d = Bytes::from(format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(180)));
        w.hub()
            .broadcast_room("r", now, "x/tick", d, Delivery::Volatile)
            .unwrap();
        w.pump(); // the fast reader keeps up between broadcasts
    }
    w.pump();
    let ev = w.take_events(0);
    let dropped: usize = ev
        .iter()
        .filter_map(|e| match e {
            HubEvent::SlowConsumer {
                dropped,
                disconnected: false,
                ..
            } => Some(*dropped),
            HubEvent::SlowConsumer {
                disconnected: true, ..
            } => panic!("volatile overflow must not cut"),
            _ => None,
        })
        .sum();
    assert!(dropped > 0);
    assert_eq!(
        w.tabs[fast].messages().len(),
        40,
        "the fast reader lost nothing"
    );
    w.resume_reading(slow);
    let got = w.tabs[slow].messages();
    assert_eq!(got.len() + dropped, 40, "every frame delivered or reported");
    // The oldest went first: the newest survived.
    assert!(got.last().unwrap().1.starts_with(r#"{"i":39"#));
    assert!(w.tabs[slow].closed.is_none());
}

#[test]
fn latest_replaces_the_queued_frame_with_the_same_key() {
    let mut w = World::new(slow_config(SlowPolicy::DropOldest));
    let t = w.open("a");
    let c = w.client_of(t);
    w.tabs[t].paused = true;
    let now = w.now;
    let pad = "p".repeat(400);
    for i in 0..10 {
        let d = Bytes::from(format!(r#"{{"pos":{i},"pad":"{pad}"}}"#));
        w.hub()
            .send_to_client(c, now, "x/pos", d, Delivery::Latest(7))
            .unwrap();
        let d = Bytes::from(format!(r#"{{"other":{i}}}"#));
        w.hub()
            .send_to_client(c, now, "x/other", d, Delivery::Latest(8))
            .unwrap();
    }
    w.resume_reading(t);
    let got: Vec<String> = w.tabs[t].messages().into_iter().map(|m| m.1).collect();
    // Whatever was handed out before the window filled, then only the
    // newest of each key.
    let pos: Vec<&String> = got.iter().filter(|m| m.contains("pos")).collect();
    let other: Vec<&String> = got.iter().filter(|m| m.contains("other")).collect();
    assert!(pos.len() < 10 && other.len() < 10, "{got:?}");
    assert!(pos.last().unwrap().starts_with(r#"{"pos":9"#));
    assert_eq!(other.last().unwrap().as_str(), r#"{"other":9}"#);
}

#[test]
fn disconnect_policy_cuts_at_once() {
    let mut w = World::new(slow_config(SlowPolicy::Disconnect));
    let t = w.open("a");
    let c = w.client_of(t);
    w.tabs[t].paused = true;
    let now = w.now;
    let d = Bytes::from(format!(r#""{}""#, "v".repeat(900)));
    for _ in 0..10 {
        let _ = w
            .hub()
            .send_to_client(c, now, "x/v", d.clone(), Delivery::Volatile);
    }
    w.pump();
    let ev = w.take_events(0);
    assert!(ev.iter().any(|e| matches!(
        e,
        HubEvent::SlowConsumer {
            disconnected: true,
            ..
        }
    )));
    assert!(w.tabs[t].hub_closed);
    w.resume_reading(t);
    assert_eq!(w.tabs[t].close_code(), Some(CLOSE_SLOW_CONSUMER));
}

#[test]
fn reliable_overflow_cuts_then_resume_replays_everything() {
    let mut w = World::new(slow_config(SlowPolicy::DropOldest));
    let t = w.open("a");
    let c = w.client_of(t);
    w.tabs[t].paused = true;
    let now = w.now;
    for i in 0..30 {
        let d = Bytes::from(format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(200)));
        w.hub()
            .send_to_client(c, now, "x/rel", d, Delivery::Reliable)
            .unwrap();
    }
    w.pump();
    let ev = w.take_events(0);
    assert!(ev.iter().any(|e| matches!(
        e,
        HubEvent::SlowConsumer {
            disconnected: true,
            ..
        }
    )));
    w.resume_reading(t);
    assert_eq!(w.tabs[t].close_code(), Some(CLOSE_SLOW_CONSUMER));
    // The client comes back and gets every message exactly once, in order.
    w.reconnect(t);
    let ids: Vec<u64> = w.tabs[t]
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { id: Some(id), .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids, (1..=30).collect::<Vec<u64>>());
}

#[test]
fn reliable_messages_evicted_while_away_become_a_reported_gap() {
    let mut cfg = slow_config(SlowPolicy::DropOldest);
    cfg.session.resume_buffer_bytes = 2_000;
    let mut w = World::new(cfg);
    let t = w.open("a");
    let c = w.client_of(t);
    w.drop_tab(t);
    let now = w.now;
    for i in 0..30 {
        let d = Bytes::from(format!(r#"{{"i":{i},"pad":"{}"}}"#, "p".repeat(200)));
        w.hub()
            .send_to_client(c, now, "x/rel", d, Delivery::Reliable)
            .unwrap();
    }
    w.reconnect(t);
    let ev = &w.tabs[t].events;
    let gap = ev
        .iter()
        .find_map(|e| match e {
            SessionEvent::Gap { from, to } => Some((*from, *to)),
            _ => None,
        })
        .expect("the client learns the exact range it lost");
    let ids: Vec<u64> = ev
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Message { id: Some(id), .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(gap.0, 1);
    assert_eq!(ids.first(), Some(&(gap.1 + 1)), "the rest follows the gap");
    assert_eq!(*ids.last().unwrap(), 30);
    assert_eq!(
        ids.len() as u64 + (gap.1 - gap.0 + 1),
        30,
        "lost + got = sent"
    );
}
