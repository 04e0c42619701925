//! Runs the language-neutral connection vectors in tests/vectors/ws (see the
//! README there). Every binding runs the same files through its own API.

use std::path::PathBuf;

use evsock::ws::{
    Accept, ClientRequest, CloseCode, Config, Connection, DeflateConfig, Event, Message,
    OriginPolicy, Output, Reject, State,
};
use evsock::SeededRng;
use serde_json::{json, Map, Value};

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/ws")
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn config_from(v: &Map<String, Value>) -> Config {
    let mut c = Config::without_timers();
    for (k, v) in v {
        let n = || v.as_u64().unwrap_or_else(|| panic!("{k} must be a number"));
        let ms = || v.as_u64();
        match k.as_str() {
            "max_frame_size" => c.max_frame_size = n() as usize,
            "max_message_size" => c.max_message_size = n() as usize,
            "max_fragments" => c.max_fragments = n() as usize,
            "max_handshake_bytes" => c.max_handshake_bytes = n() as usize,
            "max_headers" => c.max_headers = n() as usize,
            "max_outbound_bytes" => c.max_outbound_bytes = n() as usize,
            "ping_interval_ms" => c.ping_interval_ms = ms(),
            "pong_timeout_ms" => c.pong_timeout_ms = ms(),
            "idle_timeout_ms" => c.idle_timeout_ms = ms(),
            "handshake_timeout_ms" => c.handshake_timeout_ms = ms(),
            "close_timeout_ms" => c.close_timeout_ms = ms(),
            "auto_pong" => c.auto_pong = v.as_bool().expect("bool"),
            "subprotocols" => c.subprotocols = strings(v),
            "origins" => {
                c.origin_policy = OriginPolicy::AllowList {
                    origins: strings(v),
                    allow_missing: false,
                }
            }
            "deflate" => {
                c.deflate = match v {
                    Value::Bool(false) => None,
                    Value::Bool(true) => Some(DeflateConfig::default()),
                    Value::Object(o) => {
                        let mut d = DeflateConfig::default();
                        for (k, v) in o {
                            let n = v.as_u64();
                            match k.as_str() {
                                "threshold" => d.threshold = n.expect("number") as usize,
                                "level" => d.level = n.expect("number") as u32,
                                "server_max_window_bits" => {
                                    d.server_max_window_bits = n.expect("number") as u8
                                }
                                "client_max_window_bits" => {
                                    d.client_max_window_bits = n.expect("number") as u8
                                }
                                "server_no_context_takeover" => {
                                    d.server_no_context_takeover = v.as_bool().expect("bool")
                                }
                                "client_no_context_takeover" => {
                                    d.client_no_context_takeover = v.as_bool().expect("bool")
                                }
                                other => panic!("unknown deflate key {other}"),
                            }
                        }
                        Some(d)
                    }
                    other => panic!("bad deflate value {other}"),
                }
            }
            other => panic!("unknown config key {other}"),
        }
    }
    c
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("list")
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn event_json(e: &Event) -> Value {
    match e {
        Event::Request(r) => {
            json!({"type": "request", "path": r.path, "subprotocols": r.subprotocols})
        }
        Event::Open { subprotocol } => json!({"type": "open", "subprotocol": subprotocol}),
        Event::Message(Message::Text(t)) => json!({"type": "text", "text": t.as_str()}),
        Event::Message(Message::Binary(b)) => json!({"type": "binary", "hex": hex(b)}),
        Event::Ping(p) => json!({"type": "ping", "hex": hex(p)}),
        Event::Pong(p) => json!({"type": "pong", "hex": hex(p)}),
        Event::Closed(c) => json!({
            "type": "closed", "code": c.code.0, "reason": c.reason, "clean": c.clean,
            "by_peer": c.by_peer, "error": c.error.as_ref().map(|e| e.kind()),
        }),
    }
}

fn state_name(s: State) -> &'static str {
    match s {
        State::Handshake => "handshake",
        State::Open => "open",
        State::Closing => "closing",
        State::Closed => "closed",
    }
}

/// Hands `bytes` to `conn`: copied in, or (`in_place`) read straight into
/// its buffer until all are taken or it stops reading (closed).
fn feed(conn: &mut Connection, at: u64, bytes: &[u8], in_place: bool) {
    if !in_place {
        return conn.handle_input(at, bytes);
    }
    let mut rest = bytes;
    while !rest.is_empty() {
        if conn.read_from(&mut rest, || at).expect("reading a slice") == 0 {
            return;
        }
    }
}

fn run_vector(v: &Value, in_place: bool) {
    let name = v["name"].as_str().expect("name");
    let cfg = config_from(v["config"].as_object().expect("config"));
    let mut conn = match v["role"].as_str() {
        Some("server") => Connection::server(cfg, 0),
        Some("client") => {
            let c = &v["client"];
            let mut req =
                ClientRequest::new(c["host"].as_str().unwrap(), c["path"].as_str().unwrap());
            req.subprotocols = strings(&c["subprotocols"]);
            let rng = SeededRng::new(c["seed"].as_u64().unwrap());
            Connection::client(cfg, req, Box::new(rng), 0)
        }
        other => panic!("{name}: bad role {other:?}"),
    };
    for (i, step) in v["steps"].as_array().expect("steps").iter().enumerate() {
        let at = step.get("at").and_then(Value::as_u64).unwrap_or(0);
        let ctx = format!("{name} step {i} (in place: {in_place})");
        let mut result: Result<(), evsock::ws::Error> = Ok(());
        if let Some(h) = step.get("input") {
            feed(&mut conn, at, &unhex(h.as_str().unwrap()), in_place);
        } else if let Some(t) = step.get("input_text") {
            feed(&mut conn, at, t.as_str().unwrap().as_bytes(), in_place);
        } else if step.get("eof").is_some() {
            conn.handle_eof(at);
        } else if step.get("timeout").is_some() {
            conn.handle_timeout(at);
        } else if let Some(call) = step.get("call").and_then(Value::as_str) {
            result = match call {
                "accept" => conn.accept(Accept {
                    subprotocol: step["subprotocol"].as_str().map(String::from),
                    headers: vec![],
                }),
                "reject" => conn.reject(Reject::new(
                    step["status"].as_u64().unwrap() as u16,
                    step["body"].as_str().unwrap(),
                )),
                "send_text" => conn.send_text(step["text"].as_str().unwrap()),
                "send_binary" => conn.send_binary(unhex(step["hex"].as_str().unwrap())),
                "ping" => conn.ping(&unhex(step["hex"].as_str().unwrap())),
                "close" => conn.close(
                    CloseCode(step["code"].as_u64().unwrap() as u16),
                    step["reason"].as_str().unwrap(),
                ),
                other => panic!("{ctx}: unknown call {other}"),
            };
        } else {
            panic!("{ctx}: no action");
        }
        for key in step.as_object().unwrap().keys() {
            let known = [
                "input",
                "input_text",
                "eof",
                "timeout",
                "call",
                "at",
                "subprotocol",
                "status",
                "body",
                "text",
                "hex",
                "code",
                "reason",
                "transmit",
                "transmit_text",
                "transmit_prefix_text",
                "events",
                "error",
                "state",
                "deadline",
            ];
            assert!(known.contains(&key.as_str()), "{ctx}: unknown key {key}");
        }
        match (step.get("error").and_then(Value::as_str), &result) {
            (Some(kind), Err(e)) => assert_eq!(e.kind(), kind, "{ctx}"),
            (Some(kind), Ok(())) => panic!("{ctx}: expected error {kind}"),
            (None, Err(e)) => panic!("{ctx}: unexpected error {e}"),
            (None, Ok(())) => {}
        }
        // Drain the way a host does: one poll_output loop until Wait.
        let mut out = Vec::new();
        let mut events = Vec::new();
        loop {
            match conn.poll_output() {
                Output::Transmit(b) => out.extend_from_slice(&b),
                Output::Event(e) => events.push(event_json(&e)),
                Output::Wait(_) => break,
            }
        }
        if let Some(h) = step.get("transmit") {
            assert_eq!(hex(&out), h.as_str().unwrap(), "{ctx}: transmit");
        }
        if let Some(t) = step.get("transmit_text") {
            assert_eq!(
                String::from_utf8_lossy(&out),
                t.as_str().unwrap(),
                "{ctx}: transmit_text"
            );
        }
        if let Some(t) = step.get("transmit_prefix_text") {
            let got = String::from_utf8_lossy(&out);
            assert!(got.starts_with(t.as_str().unwrap()), "{ctx}: got {got:?}");
        }
        if let Some(want) = step.get("events") {
            assert_eq!(&Value::Array(events), want, "{ctx}: events");
        } else {
            assert!(events.is_empty(), "{ctx}: unexpected events {events:?}");
        }
        if let Some(d) = step.get("deadline") {
            assert_eq!(conn.poll_timeout(), d.as_u64(), "{ctx}: deadline");
        }
        if let Some(s) = step.get("state") {
            assert_eq!(
                state_name(conn.state()),
                s.as_str().unwrap(),
                "{ctx}: state"
            );
        }
    }
}

#[test]
fn all_connection_vectors_pass() {
    let mut paths: Vec<_> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors/ws")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 20, "vectors missing: {}", paths.len());
    for p in &paths {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        // Every vector holds whichever way the host receives.
        run_vector(&v, false);
        run_vector(&v, true);
    }
    eprintln!("{} connection vectors passed", paths.len());
}
