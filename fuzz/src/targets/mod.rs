//! One module per fuzz target; each exposes `run(&[u8])`.

pub mod connection;
pub mod deflate;
pub mod envelope;
pub mod frame_header;
pub mod handshake_request;
pub mod handshake_response;
pub mod hub;
pub mod pair;
pub mod reader;
pub mod session;
pub mod utf8;
