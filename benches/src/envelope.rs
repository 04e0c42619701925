//! Session envelope coding: evsock's JSON codec against serde_json doing
//! the same `[event-id, data]` job.
//!
//! evsock writes the envelope skeleton around data the application has
//! already encoded, and decodes by checking the whole frame and handing
//! the data element out still encoded, as a slice of the frame. serde_json
//! is measured two ways:
//!
//! - `serde_json` (generic): what an application without a special codec
//!   does: encode a `(&str, &Value)` tuple, decode into `(String, Value)`;
//! - `serde_json-raw`: the closest serde_json gets to evsock's job: encode
//!   `(&str, &RawValue)`, decode into a borrowed `(&str, &RawValue)`
//!   (which also checks the data element is well-formed and hands it out
//!   still encoded).
//!
//! Every contender must produce the same bytes on encode (the byte count
//! is checked) and find the same event ids on decode.

use bytes::Bytes;
use evsock::session::{Codec, Envelope, JsonCodec, Meta};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::contenders::{Contender, Outcome};
use crate::measure::Case;

/// The event id every envelope carries.
pub const EVENT: &str = "chat/send";

/// A compact JSON data element of exactly `len` bytes (at least 20): a
/// chat-message-like object with a nested user, a list, numbers and text
/// with a few non-ASCII characters. Keys are in sorted order and there are
/// no floats or `\u` escapes, so serde_json re-encodes it to the same bytes.
pub fn data_json(len: usize) -> String {
    if len <= 20 {
        // {"n":42,"text":"hi"} is 20 bytes.
        let s = "{\"n\":42,\"text\":\"hi\"}".to_string();
        assert_eq!(s.len(), 20);
        return s;
    }
    let head = "{\"room\":\"lobby\",\"tags\":[\"a\",\"b\"],\"text\":\"";
    let tail = "\",\"ts\":1700000000000,\"user\":{\"id\":12345,\"name\":\"alice\",\"roles\":[\"member\",\"mod\"]}}";
    let words = ["hello", "world", "café", "naïve", "event", "vector", "ok"];
    let budget = len
        .checked_sub(head.len() + tail.len())
        .expect("data element too short for the chat shape");
    let mut text = String::new();
    let mut i = 0;
    while text.len() < budget {
        let w = words[i % words.len()];
        i += 1;
        if text.len() + w.len() + 1 > budget {
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(w);
    }
    while text.len() < budget {
        text.push('.');
    }
    let s = format!("{head}{text}{tail}");
    assert_eq!(s.len(), len);
    s
}

/// How many envelopes one run codes.
fn count_for(quick: bool, data_len: usize) -> usize {
    let bytes = if quick { 256 << 10 } else { 1 << 20 };
    (bytes / (data_len + 16)).max(16)
}

/// The encoded frame every decoder reads: `["chat/send",<data>]`.
pub fn frame(data: &str) -> String {
    format!("[\"{EVENT}\",{data}]")
}

struct Job {
    data: String,
    frame: Bytes,
    count: usize,
    out: Vec<u8>,
}

impl Job {
    fn new(data_len: usize, count: usize) -> Job {
        let data = data_json(data_len);
        let frame = Bytes::from(frame(&data));
        Job {
            out: Vec::with_capacity(frame.len() + 64),
            data,
            frame,
            count,
        }
    }

    fn encode_outcome(&self, bytes: u64) -> Outcome {
        Outcome {
            messages: self.count as u64,
            payload_bytes: bytes,
            pongs: 0,
        }
    }
}

/// evsock's JSON codec writing envelopes.
pub struct EvsockEnvelopeEncode(Job);

impl Contender for EvsockEnvelopeEncode {
    fn name(&self) -> &'static str {
        "evsock"
    }

    fn run(&mut self) -> Outcome {
        let j = &mut self.0;
        let meta = Meta::default();
        let mut total = 0u64;
        for _ in 0..j.count {
            j.out.clear();
            JsonCodec.write_envelope(&mut j.out, EVENT.as_bytes(), j.data.as_bytes(), &meta);
            total += std::hint::black_box(&j.out).len() as u64;
        }
        j.encode_outcome(total)
    }
}

/// serde_json encoding a `(&str, &Value)` tuple.
pub struct SerdeValueEncode(Job, Value);

impl Contender for SerdeValueEncode {
    fn name(&self) -> &'static str {
        "serde_json"
    }

    fn run(&mut self) -> Outcome {
        let (j, v) = (&mut self.0, &self.1);
        let mut total = 0u64;
        for _ in 0..j.count {
            j.out.clear();
            serde_json::to_writer(&mut j.out, &(EVENT, v)).expect("encode");
            total += std::hint::black_box(&j.out).len() as u64;
        }
        j.encode_outcome(total)
    }
}

/// serde_json encoding a `(&str, &RawValue)` tuple.
pub struct SerdeRawEncode(Job, Box<RawValue>);

impl Contender for SerdeRawEncode {
    fn name(&self) -> &'static str {
        "serde_json-raw"
    }

    fn run(&mut self) -> Outcome {
        let (j, v) = (&mut self.0, &self.1);
        let mut total = 0u64;
        for _ in 0..j.count {
            j.out.clear();
            serde_json::to_writer(&mut j.out, &(EVENT, &**v)).expect("encode");
            total += std::hint::black_box(&j.out).len() as u64;
        }
        j.encode_outcome(total)
    }
}

fn decode_outcome(count: usize, ids: u64) -> Outcome {
    Outcome {
        messages: count as u64,
        payload_bytes: ids,
        pongs: 0,
    }
}

/// evsock's JSON codec decoding frames into envelopes.
pub struct EvsockEnvelopeDecode(Job, Vec<Envelope>);

impl Contender for EvsockEnvelopeDecode {
    fn name(&self) -> &'static str {
        "evsock"
    }

    fn run(&mut self) -> Outcome {
        let (j, out) = (&self.0, &mut self.1);
        let mut ids = 0u64;
        for _ in 0..j.count {
            out.clear();
            JsonCodec.decode_frame(&j.frame, 1, out).expect("decode");
            let e = std::hint::black_box(&out[0]);
            ids += e.event.as_bytes().len() as u64;
        }
        decode_outcome(j.count, ids)
    }
}

/// serde_json decoding into `(String, Value)`.
pub struct SerdeValueDecode(Job);

impl Contender for SerdeValueDecode {
    fn name(&self) -> &'static str {
        "serde_json"
    }

    fn run(&mut self) -> Outcome {
        let j = &self.0;
        let mut ids = 0u64;
        for _ in 0..j.count {
            let (id, data): (String, Value) = serde_json::from_slice(&j.frame).expect("decode");
            std::hint::black_box(&data);
            ids += id.len() as u64;
        }
        decode_outcome(j.count, ids)
    }
}

/// serde_json decoding into a borrowed `(&str, &RawValue)`.
pub struct SerdeRawDecode(Job);

impl Contender for SerdeRawDecode {
    fn name(&self) -> &'static str {
        "serde_json-raw"
    }

    fn run(&mut self) -> Outcome {
        let j = &self.0;
        let mut ids = 0u64;
        for _ in 0..j.count {
            let (id, data): (&str, &RawValue) = serde_json::from_slice(&j.frame).expect("decode");
            std::hint::black_box(data);
            ids += id.len() as u64;
        }
        decode_outcome(j.count, ids)
    }
}

/// The envelope cases: encode and decode, 20 B and 1 KiB of data.
pub fn cases(quick: bool) -> Vec<Case> {
    let mut v = Vec::new();
    for (label, len) in [("20 B", 20), ("1 KiB", 1024)] {
        let count = count_for(quick, len);
        let frame_len = frame(&data_json(len)).len() as u64;
        let value: Value = serde_json::from_str(&data_json(len)).expect("valid JSON");
        let raw = RawValue::from_string(data_json(len)).expect("valid JSON");
        v.push(Case {
            name: format!("session JSON encode [id, data] {label}"),
            expect: Outcome {
                messages: count as u64,
                payload_bytes: frame_len * count as u64,
                pongs: 0,
            },
            bytes_per_run: frame_len * count as u64,
            contenders: vec![
                Box::new(EvsockEnvelopeEncode(Job::new(len, count))),
                Box::new(SerdeValueEncode(Job::new(len, count), value)),
                Box::new(SerdeRawEncode(Job::new(len, count), raw)),
            ],
        });
        v.push(Case {
            name: format!("session JSON decode [id, data] {label}"),
            expect: Outcome {
                messages: count as u64,
                payload_bytes: (EVENT.len() * count) as u64,
                pongs: 0,
            },
            bytes_per_run: frame_len * count as u64,
            contenders: vec![
                Box::new(EvsockEnvelopeDecode(Job::new(len, count), Vec::new())),
                Box::new(SerdeValueDecode(Job::new(len, count))),
                Box::new(SerdeRawDecode(Job::new(len, count))),
            ],
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_has_the_asked_length_and_round_trips_through_serde() {
        for len in [20, 200, 1024, 4096] {
            let d = data_json(len);
            assert_eq!(d.len(), len);
            let v: Value = serde_json::from_str(&d).unwrap();
            assert_eq!(serde_json::to_string(&v).unwrap(), d);
        }
    }

    #[test]
    fn evsock_and_serde_agree_on_the_frame() {
        let d = data_json(1024);
        let mut out = Vec::new();
        JsonCodec.write_envelope(&mut out, EVENT.as_bytes(), d.as_bytes(), &Meta::default());
        assert_eq!(out, frame(&d).as_bytes());
        let mut envs = Vec::new();
        JsonCodec
            .decode_frame(&Bytes::from(out), 1, &mut envs)
            .unwrap();
        assert_eq!(envs.len(), 1);
        assert_eq!(envs[0].event.as_str(), EVENT);
        assert_eq!(&envs[0].data[..], d.as_bytes());
    }
}
