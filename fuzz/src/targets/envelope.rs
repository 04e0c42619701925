//! Envelope decoding for both session codecs (JSON in text messages,
//! MessagePack in binary ones).
//!
//! Raw: arbitrary bytes as a frame. Whatever decodes holds at most the
//! allowed number of envelopes, valid event ids, ids within
//! `MAX_SAFE_INT`, and data that is exactly one well-formed value; written
//! back with the same codec, it decodes to the very same envelopes. For
//! JSON, `serde_json` (independent of the engine's own JSON scanner) must
//! agree: the frame is JSON, its event ids and metadata numbers are the
//! ones the engine reports, and each data element parses to the same value.
//!
//! Built: envelopes made from parts (event ids, values encoded by
//! serde_json / rmp-serde, metadata), written by the codec and decoded
//! again, come back equal; ones with an invalid id or an out-of-range
//! number are refused with a typed error.

use arbitrary::{Arbitrary, Unstructured};
use bytes::Bytes;
use evsock::session::{
    is_valid_event_id, Envelope, EnvelopeError, Format, Meta, MAX_IDEMPOTENCY_KEY_LEN, MAX_SAFE_INT,
};
use serde_json::Value;

use crate::{ensure, Stop};

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        msgpack: bool,
        max: u8,
        frame: Vec<u8>,
    },
    Built {
        msgpack: bool,
        envs: Vec<Built>,
    },
}

#[derive(Arbitrary, Debug)]
struct Built {
    /// Index into a few ids, or any string.
    event: Result<u8, String>,
    data: Option<Val>,
    id: Option<u64>,
    rq: Option<u64>,
    re: Option<u64>,
    ack: Option<u64>,
    ik: Option<String>,
    /// Keep numbers in range most of the time.
    wide: bool,
}

/// A small value tree for data elements.
#[derive(Arbitrary, Debug)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Val>),
    Map(Vec<(String, Val)>),
}

impl Val {
    fn json(&self, depth: usize) -> Value {
        if depth > 20 {
            return Value::Null;
        }
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::String(s.clone()),
            Val::List(v) => Value::Array(v.iter().take(8).map(|x| x.json(depth + 1)).collect()),
            Val::Map(v) => Value::Object(
                v.iter()
                    .take(8)
                    .map(|(k, x)| (k.clone(), x.json(depth + 1)))
                    .collect(),
            ),
        }
    }
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    let Ok(input) = Input::arbitrary_take_rest(Unstructured::new(data)) else {
        return Ok(());
    };
    match input {
        Input::Raw {
            msgpack,
            max,
            frame,
        } => raw(fmt(msgpack), max as usize % 20, Bytes::from(frame)),
        Input::Built { msgpack, envs } => built(fmt(msgpack), &envs),
    }
}

fn fmt(msgpack: bool) -> Format {
    if msgpack {
        Format::MsgPack
    } else {
        Format::Json
    }
}

/// Writes envelopes as one frame, the way the session does.
fn write(f: Format, envs: &[Envelope]) -> Vec<u8> {
    let c = f.codec();
    let mut out = Vec::new();
    if envs.len() > 1 {
        c.write_batch_start(&mut out, envs.len());
    }
    for (i, e) in envs.iter().enumerate() {
        if i > 0 {
            c.write_batch_separator(&mut out);
        }
        c.write_envelope(&mut out, e.event.as_bytes(), &e.data, &e.meta);
    }
    if envs.len() > 1 {
        c.write_batch_end(&mut out);
    }
    out
}

fn decode(f: Format, frame: &Bytes, max: usize) -> Result<Vec<Envelope>, EnvelopeError> {
    let mut out = Vec::new();
    f.codec().decode_frame(frame, max, &mut out).map(|()| out)
}

fn raw(f: Format, max: usize, frame: Bytes) -> Result<(), Stop> {
    let Ok(envs) = decode(f, &frame, max) else {
        return Ok(());
    };
    ensure!(
        !envs.is_empty() && envs.len() <= max.max(1),
        "envelope-count",
        "{} envelopes decoded, max {max}",
        envs.len()
    );
    for e in &envs {
        ensure!(
            is_valid_event_id(e.event.as_bytes()),
            "envelope-event",
            "invalid event id {:?}",
            e.event.as_bytes()
        );
        let m = &e.meta;
        ensure!(
            [m.id, m.rq, m.re, m.ack]
                .iter()
                .flatten()
                .all(|&v| v <= MAX_SAFE_INT),
            "envelope-range",
            "number out of range in {m:?}"
        );
        ensure!(
            e.data.is_empty() || f.codec().validate_value(&e.data).is_ok(),
            "envelope-data",
            "data {:?} is not one value",
            e.data
        );
    }
    // Written back, they read the same.
    let again = Bytes::from(write(f, &envs));
    let back = decode(f, &again, envs.len());
    let same = back.as_ref().is_ok_and(|b| {
        b.len() == envs.len()
            && b.iter()
                .zip(&envs)
                .all(|(x, y)| x.event == y.event && x.meta == y.meta && same_data(&x.data, &y.data))
    });
    ensure!(
        same,
        "envelope-roundtrip",
        "{envs:?} written as {again:?} decodes as {back:?}"
    );
    if f == Format::Json {
        json_agrees(&frame, &envs)?;
    }
    Ok(())
}

/// serde_json's view of an accepted JSON frame.
fn json_agrees(frame: &[u8], envs: &[Envelope]) -> Result<(), Stop> {
    let v: Value = match serde_json::from_slice(frame) {
        Ok(v) => v,
        Err(e) => {
            // serde_json stops at 128 levels; the engine at MAX_DEPTH (64).
            return Err(crate::findings::violation(
                "envelope-json",
                format!("engine accepted what serde_json rejects ({e}): {frame:?}"),
            ));
        }
    };
    let Value::Array(items) = &v else {
        return Err(crate::findings::violation(
            "envelope-json",
            format!("engine accepted a non-array frame {v}"),
        ));
    };
    // A batch is an array of arrays; a single envelope starts with a string.
    let list: Vec<&Value> = if matches!(items.first(), Some(Value::Array(_))) {
        items.iter().collect()
    } else {
        vec![&v]
    };
    ensure!(
        list.len() == envs.len(),
        "envelope-json",
        "{} envelopes, serde_json sees {}: {v}",
        envs.len(),
        list.len()
    );
    for (e, j) in envs.iter().zip(list) {
        let parts = j.as_array().map(Vec::as_slice).unwrap_or_default();
        ensure!(
            parts.first().and_then(Value::as_str) == Some(e.event.as_str()),
            "envelope-json",
            "event {:?}, serde_json sees {j}",
            e.event.as_str()
        );
        let data: Option<Value> = if e.data.is_empty() {
            None
        } else {
            match serde_json::from_slice(&e.data) {
                Ok(d) => Some(d),
                Err(err) => {
                    return Err(crate::findings::violation(
                        "envelope-json",
                        format!("data {:?} is not JSON: {err}", e.data),
                    ))
                }
            }
        };
        let want = parts.get(1).filter(|d| !(d.is_null() && data.is_none()));
        ensure!(
            data.as_ref() == want,
            "envelope-json",
            "data {data:?}, serde_json sees {want:?} in {j}"
        );
        let meta = parts.get(2).and_then(Value::as_object);
        let num = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_u64);
        let m = &e.meta;
        ensure!(
            (m.id, m.rq, m.re, m.ack) == (num("id"), num("rq"), num("re"), num("ack")),
            "envelope-json",
            "meta {m:?}, serde_json sees {meta:?}"
        );
        let ik = meta.and_then(|m| m.get("ik")).and_then(Value::as_str);
        ensure!(
            m.ik.as_deref() == ik,
            "envelope-json",
            "ik {:?}, serde_json sees {ik:?}",
            m.ik
        );
    }
    Ok(())
}

fn built(f: Format, specs: &[Built]) -> Result<(), Stop> {
    const IDS: [&str; 6] = [
        "chat/send",
        "a",
        "evs/ack",
        "x.y-z_1",
        "~!#$%&",
        "room:1/msg",
    ];
    let mut envs = Vec::new();
    let mut valid = true;
    for b in specs.iter().take(8) {
        let event = match &b.event {
            Ok(i) => IDS[*i as usize % IDS.len()].to_string(),
            Err(s) => s.clone(),
        };
        let data = match &b.data {
            None => Bytes::new(),
            Some(v) => match f.encode(&v.json(0)) {
                Ok(d) => d,
                Err(_) => return Ok(()),
            },
        };
        let n = |v: Option<u64>| v.map(|x| if b.wide { x } else { x & MAX_SAFE_INT });
        let meta = Meta {
            id: n(b.id),
            rq: n(b.rq),
            re: n(b.re),
            ack: n(b.ack),
            ik: b.ik.as_deref().map(Box::from),
        };
        valid &= is_valid_event_id(event.as_bytes())
            && [meta.id, meta.rq, meta.re, meta.ack]
                .iter()
                .flatten()
                .all(|&v| v <= MAX_SAFE_INT)
            && meta
                .ik
                .as_ref()
                .is_none_or(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY_LEN);
        // EventId can only hold valid ids; write invalid ones by hand.
        envs.push((event, data, meta));
    }
    if envs.is_empty() {
        return Ok(());
    }
    let c = f.codec();
    let mut frame = Vec::new();
    if envs.len() > 1 {
        c.write_batch_start(&mut frame, envs.len());
    }
    for (i, (event, data, meta)) in envs.iter().enumerate() {
        if i > 0 {
            c.write_batch_separator(&mut frame);
        }
        c.write_envelope(&mut frame, event.as_bytes(), data, meta);
    }
    if envs.len() > 1 {
        c.write_batch_end(&mut frame);
    }
    let frame = Bytes::from(frame);
    let got = decode(f, &frame, envs.len());
    if !valid {
        // An empty or over-long key is the session's business, not the
        // codec's; the rest must be refused. The writer copies event ids
        // as they are, so an invalid one may itself be syntax (`v","v`)
        // and make a different, valid frame: what decodes from it must
        // then pass the raw checks, and must not be the invalid envelope.
        let as_written = got.as_ref().is_ok_and(|g| {
            g.len() == envs.len()
                && g.iter()
                    .zip(&envs)
                    .all(|(d, (e, _, m))| d.event.as_bytes() == e.as_bytes() && d.meta == *m)
        });
        ensure!(
            !as_written
                || envs.iter().all(|(e, _, m)| is_valid_event_id(e.as_bytes())
                    && [m.id, m.rq, m.re, m.ack]
                        .iter()
                        .flatten()
                        .all(|&v| v <= MAX_SAFE_INT)),
            "envelope-accepted-bad",
            "{envs:?} written as {frame:?} decodes as {got:?}"
        );
        if got.is_ok() {
            raw(f, envs.len(), frame)?;
        }
        return Ok(());
    }
    let Ok(got) = got else {
        return Err(crate::findings::violation(
            "envelope-roundtrip",
            format!("{envs:?} written as {frame:?} fails: {got:?}"),
        ));
    };
    ensure!(
        got.len() == envs.len(),
        "envelope-roundtrip",
        "{} envelopes written, {} read",
        envs.len(),
        got.len()
    );
    for ((event, data, meta), e) in envs.iter().zip(&got) {
        ensure!(
            e.event.as_str() == event && same_data(&e.data, data) && &e.meta == meta,
            "envelope-roundtrip",
            "({event:?}, {data:?}, {meta:?}) came back as {e:?}"
        );
    }
    Ok(())
}

/// Data elements are equal, "no data" and an explicit null being the same.
fn same_data(a: &[u8], b: &[u8]) -> bool {
    let nullish = |d: &[u8]| d.is_empty() || d == b"null" || d == [0xc0];
    a == b || (nullish(a) && nullish(b))
}
