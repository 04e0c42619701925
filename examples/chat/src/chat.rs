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
