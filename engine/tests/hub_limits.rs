//! Admission, per-user connection caps, per-connection message rates,
//! session caps, hello timeouts, keep-alive, many timers, and garbage input.

mod hub_util;

use bytes::Bytes;
use evsock::hub::{Config, Hub, HubError, HubEvent, HubOutput, CLOSE_RATE_LIMITED};
use evsock::session::SessionEvent;
use evsock::ws::CloseCode;
use evsock::{Rng, SeededRng};
use hub_util::*;

#[test]
fn admission_caps_and_rate_answer_503_with_retry_after() {
    let mut cfg = hub_config();
    cfg.max_connections = 3;
    cfg.admission_rate = 1;
    cfg.admission_burst = 2;
    cfg.retry_after_secs = 7;
    let mut hub = Hub::new(cfg, Box::new(SeededRng::new(1))).unwrap();
    let a = hub.new_connection(0).unwrap();
    hub.new_connection(0).unwrap();
    let r = hub.new_connection(0).unwrap_err();
    assert_eq!(r.status, 503);
    let text = String::from_utf8_lossy(&r.response).into_owned();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("Retry-After: 7\r\n"), "{text}");
    assert!(hub.new_connection(999).is_err(), "still no token");
    hub.new_connection(1_000).unwrap();
    // At the connection cap even with tokens.
    assert!(hub.new_connection(60_000).is_err());
    hub.handle_eof(a, 60_000);
    while hub.poll_output().is_some() {}
    hub.new_connection(60_000).unwrap();
}

#[test]
fn too_many_connections_for_one_user_get_429() {
    let mut cfg = hub_config();
    cfg.max_connections_per_user = 2;
    let mut w = World::new(cfg);
    w.open("alice");
    w.open("alice");
    w.auto_accept = false;
    let t = w.open("alice");
    let conn = w.tabs[t].conn.unwrap();
    let now = w.now;
    assert_eq!(
        w.hub().accept(conn, now, "alice"),
        Err(HubError::TooManyConnections)
    );
    w.pump();
    assert!(w.tabs[t].hub_closed);
    let err = w.tabs[t].closed.as_ref().and_then(|c| c.error.clone());
    assert!(format!("{err:?}").contains("429"), "{err:?}");
    // Another user is not affected.
    assert!(w.hub().user_clients("alice").len() == 2);
}

#[test]
fn a_flooding_client_is_closed_with_4029_and_can_resume() {
    let mut cfg = hub_config();
    cfg.message_rate = 10;
    cfg.message_burst = 5;
    let mut w = World::new(cfg);
    let t = w.open("spammer"); // the hello took one token
    let c = w.client_of(t);
    let now = w.now;
    for i in 0..10 {
        w.tabs[t]
            .s
            .send(now, "x/spam", Bytes::from(i.to_string()))
            .unwrap();
    }
    w.pump();
    let ev = w.take_events(0);
    let got = ev
        .iter()
        .filter(|e| matches!(e, HubEvent::Message { .. }))
        .count();
    assert_eq!(got, 4, "burst of 5 minus the hello");
    assert!(ev.iter().any(|e| matches!(e,
        HubEvent::RateLimited { user: Some(u), .. } if &**u == "spammer")));
    assert_eq!(w.tabs[t].close_code(), Some(CLOSE_RATE_LIMITED));
    // The session survives: a reconnect resumes it.
    w.advance(1_000);
    w.reconnect(t);
    assert_eq!(w.client_of(t), c);
    assert!(w.tabs[t]
        .events
        .iter()
        .any(|e| matches!(e, SessionEvent::Established { resumed: true, .. })));
}

#[test]
fn beyond_max_sessions_a_hello_gets_go_away_and_1013() {
    let mut cfg = hub_config();
    cfg.max_sessions = 1;
    let mut w = World::new(cfg);
    w.open("a");
    let t = w.open("b");
    assert!(w.tabs[t].hub_closed);
    assert_eq!(w.tabs[t].close_code(), Some(CloseCode::TRY_AGAIN_LATER));
    assert_eq!(w.hub().stats().clients, 1);
}

#[test]
fn a_connection_without_hello_is_closed_after_the_handshake_timeout() {
    let mut w = World::new(hub_config());
    let hub = w.hub();
    let c = hub.new_connection(0).unwrap();
    hub.handle_input(
        c,
        0,
        b"GET /?user=x HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    hub.accept(c, 0, "x").unwrap();
    while hub.poll_output().is_some() {}
    let d = hub.poll_timeout().unwrap();
    assert_eq!(d, 10_000, "session handshake timeout");
    hub.handle_timeout(d - 1);
    assert!(hub.poll_output().is_none());
    hub.handle_timeout(d);
    let mut closed = false;
    while let Some(o) = hub.poll_output() {
        closed |= matches!(o, HubOutput::Close { conn } if conn == c);
    }
    assert!(closed);
    assert_eq!(hub.stats().connections, 0);
    assert_eq!(hub.stats().users, 0);
}

#[test]
fn session_keepalive_pings_and_drops_a_silent_client() {
    let mut cfg = hub_config();
    cfg.session.ping_interval_ms = Some(20_000);
    cfg.session.idle_timeout_ms = Some(45_000);
    let mut w = World::new(cfg);
    let alive = w.open("alive");
    let dead = w.open("dead");
    w.tabs[dead].paused = true; // reads nothing, answers nothing
    w.advance(100_000);
    assert!(
        w.tabs[alive].closed.is_none(),
        "pings answered keep it open"
    );
    assert!(w.tabs[dead].hub_closed, "idle timeout");
    let ev = w.take_events(0);
    assert!(ev
        .iter()
        .any(|e| matches!(e, HubEvent::ClientDisconnected { user, .. } if &**user == "dead")));
}

#[test]
fn many_timers_fire_in_order_and_only_when_due() {
    // 400 clients drop at staggered times; each expires exactly one resume
    // window later, and the heap holds about one entry per entity.
    let mut cfg = hub_config();
    cfg.session.resume_window_ms = 10_000;
    cfg.offline_grace_ms = 1_000;
    let mut w = World::new(cfg);
    let n = 400;
    let tabs: Vec<usize> = (0..n).map(|i| w.open(&format!("u{i}"))).collect();
    assert_eq!(w.hub().stats().clients, n);
    for &t in &tabs {
        w.drop_tab(t);
        w.now += 1;
    }
    let start = w.now - n as u64; // first drop
    assert!(
        w.hub().stats().timer_entries <= 3 * n,
        "{:?}",
        w.hub().stats()
    );
    w.take_events(0);
    // Client i dropped at start + i and expires at start + i + 10 s: at
    // start + 10 s + n/2, clients 0..=n/2 are gone.
    let half = start + 10_000 + n as u64 / 2;
    w.advance(half - w.now);
    let gone = w
        .take_events(0)
        .iter()
        .filter(|e| matches!(e, HubEvent::ClientGone { expired: true, .. }))
        .count();
    assert_eq!(gone, n / 2 + 1);
    w.advance(10_000);
    assert_eq!(w.hub().stats().clients, 0);
    assert_eq!(w.hub().stats().users, 0);
    assert_eq!(w.hub().poll_timeout(), None, "no timer left behind");
}

#[test]
fn garbage_from_many_connections_never_panics() {
    let mut rng = SeededRng::new(9);
    let mut hub = Hub::new(Config::default(), Box::new(SeededRng::new(2))).unwrap();
    let mut conns = Vec::new();
    let mut now = 0;
    for round in 0..400 {
        now += 7;
        if conns.len() < 20 {
            if let Ok(c) = hub.new_connection(now) {
                conns.push(c);
            }
        }
        let c = conns[(rng.next_u32() as usize) % conns.len()];
        let mut buf = vec![0u8; (rng.next_u32() % 300) as usize];
        rng.fill(&mut buf);
        if round % 3 == 0 {
            // A valid upgrade first, so frames get parsed too.
            hub.handle_input(
                c,
                now,
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            );
        }
        hub.handle_input(c, now, &buf);
        while let Some(o) = hub.poll_output() {
            match o {
                HubOutput::Event(HubEvent::Upgrade { conn, .. }) => {
                    let _ = hub.accept(conn, now, "fuzz");
                }
                HubOutput::Close { conn } => conns.retain(|&x| x != conn),
                _ => {}
            }
        }
        if conns.is_empty() {
            conns.push(hub.new_connection(now).unwrap());
        }
        hub.handle_timeout(now);
    }
    hub.handle_timeout(now + 1_000_000);
    while hub.poll_output().is_some() {}
    assert!(hub.stats().connections <= 20);
}
