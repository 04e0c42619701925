//! The chat rules of docs/chat-demo.md on top of a sans-IO [`Hub`]: the auth
//! hook (user names at the upgrade), `chat/join`, `chat/leave` and
//! `chat/send` requests, and the `chat/msg` / `chat/presence` pushes.
//!
//! No I/O here: the host feeds hub events in and, in multi-node mode, the
//! results of the shared message counter (a Redis INCR per room, so every
//! node hands out ids from one sequence); [`Chat::take_incr_requests`] says
//! which counters to increment.

use crate::http::{query_param, valid_user};
use bytes::Bytes;
use evsock::hub::{ClientId, ConnId, Delivery, Hub, HubEvent};
use evsock::session::Format;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// Longest message text, in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Whether `s` is a chat room name: 1 to 32 of `[a-z0-9-]`.
pub fn valid_room(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// A `chat/send` waiting for its id from the shared counter.
#[derive(Debug)]
struct PendingSend {
    client: ClientId,
    req: u64,
    room: String,
    from: Arc<str>,
    text: String,
}

/// The chat application state of one node.
pub struct Chat {
    /// `true` in multi-node mode: ids come from [`Chat::take_incr_requests`].
    shared_ids: bool,
    /// Redis key prefix of the shared counters.
    key_prefix: String,
    /// Per-room counters (single node).
    next_id: HashMap<String, u64>,
    /// Accepted connections and their users (for the test drop hook).
    conn_users: HashMap<ConnId, Arc<str>>,
    pending: HashMap<u64, PendingSend>,
    next_tag: u64,
    incr_requests: Vec<(u64, String)>,
    /// Wall clock in ms since the epoch, for message timestamps.
    wall_clock: fn() -> u64,
}

fn system_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A request refused with `evs/rerr {"code", "message"}`.
struct Refusal(&'static str, String);

impl Chat {
    /// A chat with local ids (`shared_ids` false) or ids from a shared
    /// counter under `key_prefix`.
    pub fn new(shared_ids: bool, key_prefix: &str) -> Chat {
        Chat {
            shared_ids,
            key_prefix: key_prefix.to_owned(),
            next_id: HashMap::new(),
            conn_users: HashMap::new(),
            pending: HashMap::new(),
            next_tag: 1,
            incr_requests: Vec::new(),
            wall_clock: system_ms,
        }
    }

    /// The connections currently accepted for `user`.
    pub fn conns_of(&self, user: &str) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self
            .conn_users
            .iter()
            .filter(|(_, u)| &***u == user)
            .map(|(c, _)| *c)
            .collect();
        v.sort();
        v
    }

    /// The host closed or lost this connection.
    pub fn conn_closed(&mut self, conn: ConnId) {
        self.conn_users.remove(&conn);
    }

    /// Counters to increment: `(tag, key)`; answer each with
    /// [`Chat::on_incr`].
    pub fn take_incr_requests(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.incr_requests)
    }

    /// An application event from the hub.
    pub fn on_event(&mut self, hub: &mut Hub, now: u64, ev: HubEvent) {
        match ev {
            HubEvent::Upgrade { conn, request } => {
                let user = request
                    .path
                    .split_once('?')
                    .and_then(|(p, q)| (p == "/ws").then_some(q))
                    .and_then(|q| query_param(q, "user"))
                    .filter(|u| valid_user(u));
                match user {
                    Some(u) => match hub.accept(conn, now, &u) {
                        Ok(()) => {
                            self.conn_users.insert(conn, Arc::from(u.as_str()));
                        }
                        Err(e) => eprintln!("chat: accept {conn} as {u}: {e}"),
                    },
                    None => {
                        let why = "bad user name: 1 to 32 of A-Z a-z 0-9 _ -\n";
                        let _ = hub.reject(conn, now, evsock::ws::Reject::new(400, why));
                    }
                }
            }
            HubEvent::Request {
                client,
                user,
                req,
                event,
                data,
                format,
                ..
            } => {
                let data = decode(&data, format);
                if let Err(Refusal(code, message)) =
                    self.on_request(hub, now, client, &user, req, event.as_str(), data)
                {
                    let body = json!({"code": code, "message": message}).to_string();
                    if let Err(e) = hub.reply_error(client, now, req, Bytes::from(body)) {
                        eprintln!("chat: error reply to {client}: {e}");
                    }
                }
            }
            HubEvent::Presence { room, user, online } => {
                // With several nodes, a user with tabs on two nodes is reported
                // offline by one while still present through the other: only
                // announce it when the hub's cluster-wide view agrees.
                if !online && hub.room_users(&room).iter().any(|u| **u == *user) {
                    return;
                }
                let body = json!({"room": &*room, "user": &*user, "online": online}).to_string();
                if let Err(e) = hub.broadcast_room(
                    &room,
                    now,
                    "chat/presence",
                    Bytes::from(body),
                    Delivery::Reliable,
                ) {
                    eprintln!("chat: presence in {room}: {e}");
                }
            }
            HubEvent::ProtocolError { .. }
            | HubEvent::Message { .. }
            | HubEvent::ClientConnected { .. }
            | HubEvent::ClientGone { .. }
            | HubEvent::ClientDisconnected { .. }
            | HubEvent::UserOnline { .. }
            | HubEvent::UserOffline { .. }
            | HubEvent::Gap { .. }
            | HubEvent::SlowConsumer { .. }
            | HubEvent::RateLimited { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_request(
        &mut self,
        hub: &mut Hub,
        now: u64,
        client: ClientId,
        user: &Arc<str>,
        req: u64,
        event: &str,
        data: Option<Value>,
    ) -> Result<(), Refusal> {
        let room = data
            .as_ref()
            .and_then(|d| d.get("room"))
            .and_then(Value::as_str)
            .filter(|r| valid_room(r))
            .ok_or_else(|| {
                Refusal(
                    "bad_room",
                    "room names are 1 to 32 of a-z, 0-9 and -".into(),
                )
            })?
            .to_owned();
        match event {
            "chat/join" => {
                match hub.join_room(client, now, &room) {
                    Ok(_) => {}
                    Err(e) => return Err(Refusal("refused", e.to_string())),
                }
                let mut members: Vec<String> = hub
                    .room_users(&room)
                    .iter()
                    .map(|u| u.to_string())
                    .collect();
                if !members.iter().any(|m| **m == **user) {
                    members.push(user.to_string());
                }
                members.sort();
                members.dedup();
                self.reply(
                    hub,
                    now,
                    client,
                    req,
                    json!({"room": room, "members": members}),
                );
                Ok(())
            }
            "chat/leave" => {
                if let Err(e) = hub.leave_room(client, now, &room) {
                    eprintln!("chat: {client} leaving {room}: {e}");
                }
                self.reply(hub, now, client, req, json!({"room": room}));
                Ok(())
            }
            "chat/send" => {
                let text = data
                    .as_ref()
                    .and_then(|d| d.get("text"))
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty() && t.chars().count() <= MAX_TEXT_CHARS)
                    .ok_or_else(|| {
                        Refusal(
                            "bad_text",
                            format!("text is 1 to {MAX_TEXT_CHARS} characters"),
                        )
                    })?
                    .to_owned();
                if !hub.client_rooms(client).iter().any(|r| **r == *room) {
                    return Err(Refusal("not_member", format!("join {room} first")));
                }
                let send = PendingSend {
                    client,
                    req,
                    room,
                    from: user.clone(),
                    text,
                };
                if self.shared_ids {
                    let tag = self.next_tag;
                    self.next_tag += 1;
                    self.incr_requests
                        .push((tag, format!("{}:room-seq:{}", self.key_prefix, send.room)));
                    self.pending.insert(tag, send);
                } else {
                    let n = self.next_id.entry(send.room.clone()).or_insert(0);
                    *n += 1;
                    let id = *n;
                    self.deliver(hub, now, send, id);
                }
                Ok(())
            }
            _ => Err(Refusal("unknown", format!("no such request {event}"))),
        }
    }

    /// The shared counter answered (or failed) for a pending `chat/send`.
    pub fn on_incr(&mut self, hub: &mut Hub, now: u64, tag: u64, result: Result<i64, String>) {
        let Some(send) = self.pending.remove(&tag) else {
            return;
        };
        match result {
            Ok(id) if id > 0 => self.deliver(hub, now, send, id as u64),
            Ok(id) => self.refuse_send(hub, now, &send, format!("message counter returned {id}")),
            Err(e) => self.refuse_send(hub, now, &send, e),
        }
    }

    fn refuse_send(&mut self, hub: &mut Hub, now: u64, send: &PendingSend, why: String) {
        let body = json!({"code": "unavailable", "message": format!("message not sent: {why}")})
            .to_string();
        let _ = hub.reply_error(send.client, now, send.req, Bytes::from(body));
    }

    fn deliver(&mut self, hub: &mut Hub, now: u64, send: PendingSend, id: u64) {
        let ts = (self.wall_clock)();
        self.reply(
            hub,
            now,
            send.client,
            send.req,
            json!({"room": send.room, "id": id, "ts": ts}),
        );
        let msg =
            json!({"room": send.room, "id": id, "from": &*send.from, "text": send.text, "ts": ts})
                .to_string();
        if let Err(e) = hub.broadcast_room(
            &send.room,
            now,
            "chat/msg",
            Bytes::from(msg),
            Delivery::Reliable,
        ) {
            eprintln!("chat: broadcast to {}: {e}", send.room);
        }
    }

    fn reply(&mut self, hub: &mut Hub, now: u64, client: ClientId, req: u64, data: Value) {
        if let Err(e) = hub.reply(client, now, req, Bytes::from(data.to_string())) {
            eprintln!("chat: reply to {client}: {e}");
        }
    }
}

/// The data element of a request as JSON, whatever the client's format.
fn decode(data: &[u8], format: Format) -> Option<Value> {
    match format {
        Format::Json => serde_json::from_slice(data).ok(),
        Format::MsgPack => rmp_serde::from_slice(data).ok(),
    }
}

#[cfg(test)]
mod tests {
    //! The chat rules against a real hub, with clients speaking raw
    //! WebSocket frames and JSON envelopes (docs/protocol.md).
    use super::*;
    use evsock::hub::{Config, HubOutput};
    use evsock::SeededRng;
    use std::collections::BTreeMap;

    /// One fake browser tab: its connection and the envelopes it received.
    struct Tab {
        conn: ConnId,
        rx: Vec<u8>,
        got: Vec<Value>,
        next_id: u64,
        closed: bool,
        /// The HTTP response was read: `rx` holds frames now.
        upgraded: bool,
    }

    struct World {
        hub: Hub,
        chat: Chat,
        tabs: BTreeMap<&'static str, Tab>,
        incrs: Vec<(u64, String)>,
        now: u64,
    }

    fn masked_text(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x81];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        let key = [0x12, 0x34, 0x56, 0x78];
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        f
    }

    impl World {
        fn new(shared_ids: bool) -> World {
            let hub = Hub::new(Config::default(), Box::new(SeededRng::new(7))).unwrap();
            let mut chat = Chat::new(shared_ids, "t");
            chat.wall_clock = || 1_700_000_000_000;
            World {
                hub,
                chat,
                tabs: BTreeMap::new(),
                incrs: Vec::new(),
                now: 1_000,
            }
        }

        /// Runs the hub's outputs through the chat until quiet.
        fn pump(&mut self) {
            while let Some(o) = self.hub.poll_output() {
                match o {
                    HubOutput::Transmit { conn, bytes } => {
                        self.hub.handle_written(conn, bytes.len());
                        if let Some(t) = self.tabs.values_mut().find(|t| t.conn == conn) {
                            t.rx.extend_from_slice(&bytes);
                        }
                    }
                    HubOutput::Close { conn } => {
                        self.chat.conn_closed(conn);
                        if let Some(t) = self.tabs.values_mut().find(|t| t.conn == conn) {
                            t.closed = true;
                        }
                    }
                    HubOutput::Event(e) => self.chat.on_event(&mut self.hub, self.now, e),
                    _ => {}
                }
            }
            self.incrs.extend(self.chat.take_incr_requests());
            for t in self.tabs.values_mut().filter(|t| t.upgraded) {
                decode_frames(t);
            }
        }

        /// Opens a tab for `user` with this request path; returns the HTTP
        /// status line the hub answered.
        fn open(&mut self, name: &'static str, path: &str) -> String {
            let conn = self.hub.new_connection(self.now).unwrap();
            self.tabs.insert(
                name,
                Tab {
                    conn,
                    rx: Vec::new(),
                    got: Vec::new(),
                    next_id: 1,
                    closed: false,
                    upgraded: false,
                },
            );
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            );
            self.hub.handle_input(conn, self.now, req.as_bytes());
            self.pump();
            let t = self.tabs.get_mut(name).unwrap();
            let end =
                t.rx.windows(4)
                    .position(|w| w == b"\r\n\r\n")
                    .expect("an HTTP response")
                    + 4;
            let head = String::from_utf8(t.rx.drain(..end).collect()).unwrap();
            t.upgraded = true;
            decode_frames(t);
            if head.starts_with("HTTP/1.1 101") {
                self.send_raw(name, r#"["evs/hello",{"v":1,"rx":0,"lo":1}]"#);
                let w = self.take(name, "evs/welcome");
                assert_eq!(w.len(), 1, "one welcome");
            }
            head.lines().next().unwrap().to_owned()
        }

        fn send_raw(&mut self, name: &str, text: &str) {
            let conn = self.tabs[name].conn;
            self.hub
                .handle_input(conn, self.now, &masked_text(text.as_bytes()));
            self.pump();
        }

        /// Sends a request; returns (event, data) of its reply.
        fn request(&mut self, name: &str, event: &str, data: Value) -> (String, Value) {
            let t = self.tabs.get_mut(name).unwrap();
            let id = t.next_id;
            t.next_id += 1;
            let env = json!([event, data, {"id": id, "rq": 5000}]).to_string();
            self.send_raw(name, &env);
            self.reply_to(name, id).expect("a reply")
        }

        fn reply_to(&mut self, name: &str, id: u64) -> Option<(String, Value)> {
            let t = self.tabs.get_mut(name).unwrap();
            let at = t.got.iter().position(|e| {
                (e[0] == "evs/reply" || e[0] == "evs/rerr") && e[2]["re"] == json!(id)
            })?;
            let e = t.got.remove(at);
            Some((e[0].as_str().unwrap().to_owned(), e[1].clone()))
        }

        /// Removes and returns the data of every `event` the tab received.
        fn take(&mut self, name: &str, event: &str) -> Vec<Value> {
            let t = self.tabs.get_mut(name).unwrap();
            let (mine, rest): (Vec<Value>, Vec<Value>) =
                t.got.drain(..).partition(|e| e[0] == event);
            t.got = rest;
            mine.into_iter().map(|e| e[1].clone()).collect()
        }
    }

    /// Decodes the unmasked server frames in `t.rx` into envelopes.
    fn decode_frames(t: &mut Tab) {
        loop {
            if t.rx.len() < 2 {
                return;
            }
            let (op, len7) = (t.rx[0] & 0x0f, (t.rx[1] & 0x7f) as usize);
            let (len, hdr) = match len7 {
                126 if t.rx.len() >= 4 => (u16::from_be_bytes([t.rx[2], t.rx[3]]) as usize, 4),
                127 if t.rx.len() >= 10 => (
                    u64::from_be_bytes(t.rx[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => return,
                n => (n, 2),
            };
            if t.rx.len() < hdr + len {
                return;
            }
            let payload: Vec<u8> = t.rx.drain(..hdr + len).skip(hdr).collect();
            if op != 1 {
                continue; // close / pong: not envelopes
            }
            let v: Value = serde_json::from_slice(&payload).unwrap();
            if v[0].is_array() {
                t.got.extend(v.as_array().unwrap().iter().cloned());
            } else {
                t.got.push(v);
            }
        }
    }

    #[test]
    fn the_upgrade_checks_the_user_name() {
        let mut w = World::new(false);
        assert_eq!(
            w.open("ok", "/ws?user=alice_1"),
            "HTTP/1.1 101 Switching Protocols"
        );
        assert_eq!(w.chat.conns_of("alice_1"), vec![w.tabs["ok"].conn]);
        for (tab, path) in [
            ("a", "/ws"),
            ("b", "/ws?user="),
            ("c", "/ws?user=a%20b"),
            ("d", "/ws?user=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
            ("e", "/other?user=bob"),
        ] {
            assert!(w.open(tab, path).starts_with("HTTP/1.1 400"), "{path}");
            assert!(w.tabs[tab].closed, "{path}: closed after the 400");
        }
        w.chat.conn_closed(w.tabs["ok"].conn);
        assert!(w.chat.conns_of("alice_1").is_empty());
    }

    #[test]
    fn join_send_and_presence() {
        let mut w = World::new(false);
        w.open("alice", "/ws?user=alice");
        w.open("bob", "/ws?user=bob");
        w.open("bob2", "/ws?user=bob");
        let (ev, r) = w.request("alice", "chat/join", json!({"room": "lobby"}));
        assert_eq!(
            (ev.as_str(), r),
            ("evs/reply", json!({"room": "lobby", "members": ["alice"]}))
        );
        let (_, r) = w.request("bob", "chat/join", json!({"room": "lobby"}));
        assert_eq!(r, json!({"room": "lobby", "members": ["alice", "bob"]}));
        let (_, r) = w.request("bob2", "chat/join", json!({"room": "lobby"}));
        assert_eq!(
            r["members"],
            json!(["alice", "bob"]),
            "one entry per user, not per tab"
        );
        assert!(w
            .take("alice", "chat/presence")
            .contains(&json!({"room": "lobby", "user": "bob", "online": true})));

        // Every tab of every member gets each message once, the sender too.
        let (_, r1) = w.request("alice", "chat/send", json!({"room": "lobby", "text": "hi"}));
        let (_, r2) = w.request(
            "bob",
            "chat/send",
            json!({"room": "lobby", "text": "é".repeat(2000)}),
        );
        assert_eq!(
            r1,
            json!({"room": "lobby", "id": 1, "ts": 1_700_000_000_000u64})
        );
        assert_eq!(r2["id"], 2);
        for tab in ["alice", "bob", "bob2"] {
            let msgs = w.take(tab, "chat/msg");
            assert_eq!(msgs.len(), 2, "{tab}: {msgs:?}");
            assert_eq!(
                msgs[0],
                json!({"room": "lobby", "id": 1, "from": "alice", "text": "hi", "ts": 1_700_000_000_000u64})
            );
            assert_eq!(msgs[1]["from"], "bob");
        }
        // Ids count per room.
        w.request("alice", "chat/join", json!({"room": "side"}));
        let (_, r) = w.request("alice", "chat/send", json!({"room": "side", "text": "x"}));
        assert_eq!(r["id"], 1);
        assert!(
            w.take("bob", "chat/msg").is_empty(),
            "side is not bob's room"
        );

        // Leaving: bob's other tab keeps him present; then he is gone.
        let (_, r) = w.request("bob", "chat/leave", json!({"room": "lobby"}));
        assert_eq!(r, json!({"room": "lobby"}));
        assert!(!w
            .take("alice", "chat/presence")
            .iter()
            .any(|p| p["online"] == false));
        w.request("bob2", "chat/leave", json!({"room": "lobby"}));
        assert!(w
            .take("alice", "chat/presence")
            .contains(&json!({"room": "lobby", "user": "bob", "online": false})));
        let (ev, r) = w.request("bob", "chat/send", json!({"room": "lobby", "text": "x"}));
        assert_eq!(
            (ev.as_str(), r["code"].as_str()),
            ("evs/rerr", Some("not_member"))
        );
    }

    #[test]
    fn bad_requests_get_typed_error_replies() {
        let mut w = World::new(false);
        w.open("a", "/ws?user=a");
        w.request("a", "chat/join", json!({"room": "lobby"}));
        let cases = [
            ("chat/join", json!({"room": "Lobby"}), "bad_room"),
            ("chat/join", json!({"room": ""}), "bad_room"),
            ("chat/join", json!({"room": "x".repeat(33)}), "bad_room"),
            ("chat/join", json!(null), "bad_room"),
            ("chat/join", json!([1, 2]), "bad_room"),
            ("chat/leave", json!({"room": 5}), "bad_room"),
            ("chat/send", json!({"room": "lobby"}), "bad_text"),
            (
                "chat/send",
                json!({"room": "lobby", "text": ""}),
                "bad_text",
            ),
            (
                "chat/send",
                json!({"room": "lobby", "text": "x".repeat(2001)}),
                "bad_text",
            ),
            ("chat/send", json!({"room": "lobby", "text": 7}), "bad_text"),
            (
                "chat/send",
                json!({"room": "other", "text": "hi"}),
                "not_member",
            ),
            ("chat/nope", json!({"room": "lobby"}), "unknown"),
        ];
        for (event, data, code) in cases {
            let (ev, r) = w.request("a", event, data.clone());
            assert_eq!(ev, "evs/rerr", "{event} {data}");
            assert_eq!(r["code"], code, "{event} {data}: {r}");
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        assert!(w.take("a", "chat/msg").is_empty(), "nothing was sent");
    }

    #[test]
    fn shared_ids_wait_for_the_counter() {
        let mut w = World::new(true);
        w.open("a", "/ws?user=a");
        w.request("a", "chat/join", json!({"room": "lobby"}));
        w.send_raw(
            "a",
            r#"["chat/send",{"room":"lobby","text":"one"},{"id":2,"rq":5000}]"#,
        );
        w.send_raw(
            "a",
            r#"["chat/send",{"room":"lobby","text":"two"},{"id":3,"rq":5000}]"#,
        );
        assert!(
            w.reply_to("a", 2).is_none(),
            "no reply before the id is known"
        );
        let incrs = std::mem::take(&mut w.incrs);
        assert_eq!(incrs.len(), 2);
        assert!(incrs.iter().all(|(_, k)| k == "t:room-seq:lobby"));
        w.chat.on_incr(&mut w.hub, w.now, incrs[0].0, Ok(41));
        w.chat.on_incr(
            &mut w.hub,
            w.now,
            incrs[1].0,
            Err("redis: connection lost".into()),
        );
        // An answer for an unknown tag is ignored.
        w.chat.on_incr(&mut w.hub, w.now, 999, Ok(1));
        w.pump();
        assert_eq!(w.reply_to("a", 2).unwrap().1["id"], 41);
        let (ev, r) = w.reply_to("a", 3).unwrap();
        assert_eq!(
            (ev.as_str(), r["code"].as_str()),
            ("evs/rerr", Some("unavailable"))
        );
        let msgs = w.take("a", "chat/msg");
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            (msgs[0]["id"].as_u64(), msgs[0]["text"].as_str()),
            (Some(41), Some("one"))
        );
    }
}
