//! The benchmark cases, shared by the ratio table and the criterion suite.

use std::sync::Arc;

use bytes::Bytes;

use crate::contenders::*;
use crate::measure::Case;
use crate::wire::{self, Inbound};

/// How big the runs are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// About 1 MiB of wire bytes a run: a smoke test.
    Quick,
    /// About 4 MiB a run.
    Full,
}

impl Size {
    fn bytes(self) -> usize {
        match self {
            Size::Quick => 1 << 20,
            Size::Full => 4 << 20,
        }
    }
}

/// Bytes one transport read hands over in the streaming cases.
pub const READ_SIZE: usize = 64 << 10;

fn parse_case(name: &str, input: Inbound) -> Case {
    let input = Arc::new(input);
    let e = input.expect;
    Case {
        name: name.to_string(),
        expect: Outcome {
            messages: e.messages,
            payload_bytes: e.payload_bytes,
            pongs: e.pings,
        },
        bytes_per_run: input.wire.len() as u64,
        contenders: vec![
            Box::new(EvsockParse::new(input.clone(), Receive::InPlace)),
            Box::new(EvsockParse::new(input.clone(), Receive::Slice)),
            Box::new(EvsockParse::new(input.clone(), Receive::Direct)),
            Box::new(TungsteniteParse::new(input.clone())),
            Box::new(FastwsParse::new(input.clone())),
            Box::new(MemcpyParse::new(input.clone(), false)),
            Box::new(MemcpyParse::new(input, true)),
        ],
    }
}

fn encode_case(name: &str, len: usize, size: Size) -> Case {
    let payload = Bytes::from(wire::binary_payload(len, 3));
    let count = (size.bytes() / (len + 14)).max(4);
    Case {
        name: name.to_string(),
        expect: Outcome {
            messages: count as u64,
            payload_bytes: (count * len) as u64,
            pongs: 0,
        },
        bytes_per_run: (count * len) as u64,
        contenders: vec![
            Box::new(EvsockEncode::new(payload.clone(), count, Handover::Slice)),
            Box::new(EvsockEncode::new(payload.clone(), count, Handover::Shared)),
            Box::new(TungsteniteEncode::new(payload.clone(), count)),
            Box::new(FastwsEncode::new(payload.clone(), count)),
            Box::new(MemcpyEncode::new(payload, count)),
        ],
    }
}

fn count_for(size: Size, len: usize) -> usize {
    (size.bytes() / (len + 14)).max(2)
}

/// Every case, in table order.
pub fn all(size: Size) -> Vec<Case> {
    let mut v = Vec::new();
    for (label, len) in [
        ("20 B", 20),
        ("1 KiB", 1 << 10),
        ("64 KiB", 64 << 10),
        ("1 MiB", 1 << 20),
    ] {
        v.push(parse_case(
            &format!("parse text {label}"),
            wire::messages(true, len, count_for(size, len), READ_SIZE),
        ));
    }
    v.push(parse_case(
        "parse binary 64 KiB",
        wire::messages(false, 64 << 10, count_for(size, 64 << 10), READ_SIZE),
    ));
    v.push(parse_case(
        "parse fragmented text 64 KiB (16 x 4 KiB)",
        wire::fragmented(64 << 10, 16, count_for(size, 64 << 10), READ_SIZE),
    ));
    v.push(parse_case(
        "parse fragmented text 1 KiB (8 x 128 B)",
        wire::fragmented(1 << 10, 8, count_for(size, 1 << 10), READ_SIZE),
    ));
    let pings = match size {
        Size::Quick => 10_000,
        Size::Full => 50_000,
    };
    v.push(parse_case(
        "ping -> pong (one ping per read)",
        wire::pings(pings),
    ));
    for (label, len) in [("20 B", 20), ("1 KiB", 1 << 10), ("64 KiB", 64 << 10)] {
        v.push(encode_case(&format!("encode+mask {label}"), len, size));
    }
    v.extend(crate::envelope::cases(size == Size::Quick));
    v
}
