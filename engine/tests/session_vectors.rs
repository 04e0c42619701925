//! Runs the language-neutral session test vectors in `tests/vectors/session/`
//! (format: `tests/vectors/session/README.md`).

use bytes::Bytes;
use evsock::session::*;
use evsock::Rng;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Returns the vector's scripted numbers from `next_u64`, in a cycle.
struct ScriptedRng {
    values: Vec<u64>,
    at: usize,
}

impl Rng for ScriptedRng {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn next_u64(&mut self) -> u64 {
        if self.values.is_empty() {
            return 0;
        }
        let v = self.values[self.at % self.values.len()];
        self.at += 1;
        v
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn config(v: Option<&Value>) -> Config {
    let mut c = Config::default();
    let Some(Value::Object(m)) = v else { return c };
    for (k, v) in m {
        let n = || v.as_u64().unwrap_or_else(|| panic!("config {k}: {v}"));
        match k.as_str() {
            "format" => {
                c.format = match v.as_str() {
                    Some("msgpack") => Format::MsgPack,
                    _ => Format::Json,
                }
            }
            "max_message_bytes" => c.max_message_bytes = n() as usize,
            "max_batch_envelopes" => c.max_batch_envelopes = n() as usize,
            "resume_window_ms" => c.resume_window_ms = n(),
            "resume_buffer_bytes" => c.resume_buffer_bytes = n() as usize,
            "resume_buffer_age_ms" => c.resume_buffer_age_ms = n(),
            "max_pending_requests" => c.max_pending_requests = n() as usize,
            "max_incoming_requests" => c.max_incoming_requests = n() as usize,
            "max_request_timeout_ms" => c.max_request_timeout_ms = n(),
            "ack_delay_ms" => c.ack_delay_ms = n(),
            "ack_every" => c.ack_every = n(),
            "ping_interval_ms" => c.ping_interval_ms = v.as_u64(),
            "idle_timeout_ms" => c.idle_timeout_ms = v.as_u64(),
            "handshake_timeout_ms" => c.handshake_timeout_ms = n(),
            "batch_window_ms" => c.batch_window_ms = n(),
            "batch_max_bytes" => c.batch_max_bytes = n() as usize,
            "backoff_base_ms" => c.backoff_base_ms = n(),
            "backoff_max_ms" => c.backoff_max_ms = n(),
            other => panic!("unknown config key {other}"),
        }
    }
    c
}

/// Data element of a step: `data` (JSON text) or `data_hex` (MessagePack).
fn step_data(step: &Value) -> Bytes {
    if let Some(s) = step.get("data").and_then(Value::as_str) {
        Bytes::copy_from_slice(s.as_bytes())
    } else if let Some(h) = step.get("data_hex").and_then(Value::as_str) {
        Bytes::from(unhex(h))
    } else {
        Bytes::new()
    }
}

fn data_fields(m: &mut Map<String, Value>, f: Format, data: &Bytes) {
    match f {
        Format::Json => m.insert("data".into(), json!(std::str::from_utf8(data).unwrap())),
        Format::MsgPack => m.insert("data_hex".into(), json!(hex(data))),
    };
}

fn canonical(o: Output, f: Format) -> Value {
    let mut m = Map::new();
    match o {
        Output::Send { kind, payload } => match kind {
            MessageKind::Text => {
                m.insert("send".into(), json!(std::str::from_utf8(&payload).unwrap()));
            }
            MessageKind::Binary => {
                m.insert("send_hex".into(), json!(hex(&payload)));
            }
        },
        Output::Event(e) => {
            let mut ev = |name: &str| {
                m.insert("event".into(), json!(name));
            };
            match e {
                SessionEvent::Established {
                    session_id,
                    resumed,
                } => {
                    ev("established");
                    m.insert("session_id".into(), json!(session_id));
                    m.insert("resumed".into(), json!(resumed));
                }
                SessionEvent::Reset { unconfirmed } => {
                    ev("reset");
                    m.insert(
                        "unconfirmed".into(),
                        json!(unconfirmed.map(|(a, b)| [a, b])),
                    );
                }
                SessionEvent::Gap { from, to } => {
                    ev("gap");
                    m.insert("from".into(), json!(from));
                    m.insert("to".into(), json!(to));
                }
                SessionEvent::Message { event, data, id } => {
                    ev("message");
                    m.insert("name".into(), json!(event.as_str()));
                    data_fields(&mut m, f, &data);
                    m.insert("id".into(), json!(id));
                }
                SessionEvent::Request {
                    req,
                    event,
                    data,
                    timeout_ms,
                    idempotency_key,
                } => {
                    ev("request");
                    m.insert("req".into(), json!(req));
                    m.insert("name".into(), json!(event.as_str()));
                    data_fields(&mut m, f, &data);
                    m.insert("timeout_ms".into(), json!(timeout_ms));
                    m.insert("idempotency_key".into(), json!(idempotency_key.as_deref()));
                }
                SessionEvent::Reply { req, data } => {
                    ev("reply");
                    m.insert("req".into(), json!(req));
                    data_fields(&mut m, f, &data);
                }
                SessionEvent::RequestFailed { req, error } => {
                    ev("request_failed");
                    m.insert("req".into(), json!(req));
                    m.insert("error".into(), json!(error.code()));
                    if let RequestError::Remote(d) = &error {
                        data_fields(&mut m, f, d);
                    }
                }
                SessionEvent::Reconnect => ev("reconnect"),
                SessionEvent::CloseTransport { reason } => {
                    ev("close_transport");
                    m.insert("reason".into(), json!(reason.code()));
                }
                SessionEvent::Expired => ev("expired"),
                SessionEvent::Closed { by_peer } => {
                    ev("closed");
                    m.insert("by_peer".into(), json!(by_peer));
                }
                SessionEvent::Error(err) => {
                    ev("error");
                    m.insert("code".into(), json!(err.code()));
                }
            }
        }
    }
    Value::Object(m)
}

fn run_vector(path: &PathBuf) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let rng = ScriptedRng {
        values: v["rng"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_u64().unwrap()).collect())
            .unwrap_or_default(),
        at: 0,
    };
    let cfg = config(v.get("config"));
    let mut s = match v["role"].as_str() {
        Some("client") => Session::client(cfg, Box::new(rng)),
        Some("server") => {
            Session::server(cfg, v["session_id"].as_str().unwrap(), Box::new(rng)).unwrap()
        }
        r => panic!("{name}: role {r:?}"),
    };
    let mut now = 0u64;
    for (i, step) in v["steps"].as_array().unwrap().iter().enumerate() {
        let ctx = format!("{name} step {i} ({step})");
        if let Some(at) = step.get("at").and_then(Value::as_u64) {
            now = at;
        }
        let str_of = |k: &str| step[k].as_str().unwrap_or_else(|| panic!("{ctx}: {k}"));
        let u64_of = |k: &str| step[k].as_u64().unwrap_or_else(|| panic!("{ctx}: {k}"));
        let result: Value = match str_of("call") {
            "connected" => {
                s.handle_connected(now);
                Value::Null
            }
            "disconnected" => {
                s.handle_disconnected(now);
                Value::Null
            }
            "timeout" => {
                s.handle_timeout(now);
                Value::Null
            }
            "message" => {
                if let Some(t) = step.get("text").and_then(Value::as_str) {
                    s.handle_message(now, MessageKind::Text, t.as_bytes());
                } else {
                    s.handle_message(now, MessageKind::Binary, &unhex(str_of("hex")));
                }
                Value::Null
            }
            "send" => match s.send(now, str_of("name"), step_data(step)) {
                Ok(()) => Value::Null,
                Err(e) => json!({"error": e.code()}),
            },
            "send_reliable" => match s.send_reliable(now, str_of("name"), step_data(step)) {
                Ok(id) => json!(id),
                Err(e) => json!({"error": e.code()}),
            },
            "request" => {
                let r = match step.get("idempotency_key").and_then(Value::as_str) {
                    Some(k) => s.request_idempotent(
                        now,
                        str_of("name"),
                        step_data(step),
                        u64_of("timeout_ms"),
                        k,
                    ),
                    None => s.request(now, str_of("name"), step_data(step), u64_of("timeout_ms")),
                };
                match r {
                    Ok(id) => json!(id),
                    Err(e) => json!({"error": e.code()}),
                }
            }
            "reply" | "reply_error" => {
                let r = if str_of("call") == "reply" {
                    s.reply(now, u64_of("req"), step_data(step))
                } else {
                    s.reply_error(now, u64_of("req"), step_data(step))
                };
                match r {
                    Ok(()) => Value::Null,
                    Err(e) => json!({"error": e.code()}),
                }
            }
            "close" => {
                s.close(now);
                Value::Null
            }
            "go_away" => {
                s.go_away(now, u64_of("retry_after_ms"));
                Value::Null
            }
            other => panic!("{ctx}: unknown call {other}"),
        };
        let expected_result = step.get("result").cloned().unwrap_or(Value::Null);
        assert_eq!(result, expected_result, "{ctx}: result");
        let f = s.format();
        let mut outs = Vec::new();
        while let Some(o) = s.poll_output() {
            outs.push(canonical(o, f));
        }
        let expect = step.get("expect").cloned().unwrap_or(json!([]));
        assert_eq!(
            Value::Array(outs.clone()),
            expect,
            "{ctx}: outputs\n got:      {}\n expected: {}",
            serde_json::to_string(&outs).unwrap(),
            expect
        );
        if let Some(t) = step.get("next_timeout") {
            assert_eq!(json!(s.poll_timeout()), *t, "{ctx}: next_timeout");
        }
    }
}

#[test]
fn session_vectors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/session");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 6,
        "expected the session vectors in {}",
        dir.display()
    );
    for f in &files {
        run_vector(f);
    }
    eprintln!("session_vectors: {} vectors passed", files.len());
}
