//! Frame headers: decoding arbitrary bytes agrees with a reference decoder,
//! decode/encode round-trips, prefixes of a header are "need more", and the
//! masking routine agrees with a byte-at-a-time XOR.

use arbitrary::{Arbitrary, Unstructured};
use evsock::ws::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use evsock::ws::mask::apply_mask;
use evsock::ws::ProtocolError;

use crate::{ensure, Stop};

#[derive(Debug, PartialEq)]
enum Ref {
    /// More bytes needed; carries a violation already visible, if any.
    Short(Option<&'static str>),
    Bad(&'static str),
    Ok {
        fin: bool,
        rsv: u8,
        op: u8,
        mask: Option<[u8; 4]>,
        len: u64,
        n: usize,
    },
}

fn reference(b: &[u8]) -> Ref {
    if b.is_empty() {
        return Ref::Short(None);
    }
    let op = b[0] & 0xF;
    let bad_op = (!matches!(op, 0 | 1 | 2 | 8 | 9 | 10)).then_some("opcode");
    if b.len() < 2 {
        return Ref::Short(bad_op);
    }
    let ext = match b[1] & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let masked = b[1] & 0x80 != 0;
    let need = 2 + ext + if masked { 4 } else { 0 };
    let mut len = (b[1] & 0x7F) as u64;
    let mut high = None;
    if ext > 0 && b.len() >= 2 + ext {
        len = b[2..2 + ext].iter().fold(0u64, |a, &x| a << 8 | x as u64);
        if len >> 63 == 1 {
            high = Some("length");
        }
    }
    if b.len() < need {
        return Ref::Short(bad_op.or(high));
    }
    if let Some(why) = bad_op.or(high) {
        return Ref::Bad(why);
    }
    Ref::Ok {
        fin: b[0] & 0x80 != 0,
        rsv: (b[0] >> 4) & 7,
        op,
        mask: masked.then(|| [b[need - 4], b[need - 3], b[need - 2], b[need - 1]]),
        len,
        n: need,
    }
}

#[derive(Arbitrary, Debug)]
struct Fields {
    fin: bool,
    rsv: u8,
    kind: u8,
    mask: Option<[u8; 4]>,
    len: u64,
    phase: u8,
    cut: u8,
}

/// The target.
pub fn run(data: &[u8]) {
    let _ = check(data);
}

fn check(data: &[u8]) -> Result<(), Stop> {
    // 1. Arbitrary bytes against the reference.
    let got = FrameHeader::decode(data);
    match (reference(data), &got) {
        (
            Ref::Ok {
                fin,
                rsv,
                op,
                mask,
                len,
                n,
            },
            Ok(Some((h, used))),
        ) => {
            ensure!(
                (h.fin, h.rsv, h.opcode as u8, h.mask, h.len, *used) == (fin, rsv, op, mask, len, n),
                "header-decode",
                "decode({data:02x?}) = {h:?}/{used}, reference says fin {fin} rsv {rsv} op {op} mask {mask:?} len {len} n {n}"
            );
        }
        (Ref::Bad(why), Err(e)) | (Ref::Short(Some(why)), Err(e)) => {
            let agree = matches!(
                (why, e),
                ("opcode", ProtocolError::ReservedOpcode(_))
                    | ("length", ProtocolError::LengthHighBitSet)
            );
            ensure!(
                agree,
                "header-decode",
                "decode({data:02x?}) = {e:?}, reference says {why}"
            );
        }
        (Ref::Short(_), Ok(None)) => {}
        (r, g) => {
            return Err(crate::findings::violation(
                "header-decode",
                format!("decode({data:02x?}) = {g:?}, reference says {r:?}"),
            ))
        }
    }

    // 2. A decoded header re-encodes in the shortest form and decodes back,
    //    and every strict prefix of it asks for more bytes.
    if let Ok(Some((h, n))) = got {
        let mut buf = [0u8; MAX_HEADER_LEN];
        let m = h.encode(&mut buf);
        ensure!(
            m == h.encoded_len() && m <= n,
            "header-encode",
            "{h:?}: encode took {m}, encoded_len {}, input form {n}",
            h.encoded_len()
        );
        ensure!(
            FrameHeader::decode(&buf[..m]) == Ok(Some((h, m))),
            "header-roundtrip",
            "{h:?} encoded as {:02x?} does not decode back",
            &buf[..m]
        );
        if m == n {
            ensure!(
                buf[..m] == data[..n],
                "header-encode",
                "shortest form {:02x?} differs from input {:02x?}",
                &buf[..m],
                &data[..n]
            );
        }
        for cut in 0..n {
            ensure!(
                FrameHeader::decode(&data[..cut]) == Ok(None),
                "header-prefix",
                "prefix {:02x?} of a valid header is not 'need more'",
                &data[..cut]
            );
        }
    }

    // 3. Headers built from fields round-trip exactly.
    let mut u = Unstructured::new(data);
    let Ok(f) = Fields::arbitrary(&mut u) else {
        return Ok(());
    };
    let opcode = [
        OpCode::Continuation,
        OpCode::Text,
        OpCode::Binary,
        OpCode::Close,
        OpCode::Ping,
        OpCode::Pong,
    ][f.kind as usize % 6];
    let h = FrameHeader {
        fin: f.fin,
        rsv: f.rsv & 7,
        opcode,
        mask: f.mask,
        len: f.len >> 1,
    };
    let mut buf = [0u8; MAX_HEADER_LEN];
    let m = h.encode(&mut buf);
    ensure!(
        FrameHeader::decode(&buf[..m]) == Ok(Some((h, m))),
        "header-roundtrip",
        "{h:?} -> {:02x?}",
        &buf[..m]
    );
    let r = reference(&buf[..m]);
    ensure!(
        r == Ref::Ok {
            fin: h.fin,
            rsv: h.rsv,
            op: opcode as u8,
            mask: h.mask,
            len: h.len,
            n: m
        },
        "header-encode",
        "{h:?} encoded as {:02x?}, which the reference reads as {r:?}",
        &buf[..m]
    );
    let shortest = if h.len < 126 {
        2
    } else if h.len < 65536 {
        4
    } else {
        10
    } + if h.mask.is_some() { 4 } else { 0 };
    ensure!(
        m == shortest,
        "header-encode",
        "{h:?} took {m} bytes, shortest is {shortest}"
    );

    // 4. Masking: the word-at-a-time routine equals the obvious XOR, from
    //    any starting phase and split anywhere.
    let key = f.mask.unwrap_or([0x37, 0xfa, 0x21, 0x3d]);
    let phase = f.phase as usize;
    let mut fast = data.to_vec();
    apply_mask(&mut fast, key, phase);
    let slow: Vec<u8> = data
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[(i + phase) % 4])
        .collect();
    ensure!(
        fast == slow,
        "mask",
        "apply_mask(key {key:02x?}, phase {phase}) differs from bytewise XOR"
    );
    let cut = (f.cut as usize).min(data.len());
    let mut split = data.to_vec();
    let (a, b) = split.split_at_mut(cut);
    apply_mask(a, key, phase);
    apply_mask(b, key, phase + cut);
    ensure!(
        split == slow,
        "mask",
        "masking split at {cut} differs from masking whole"
    );
    Ok(())
}
