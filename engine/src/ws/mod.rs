//! The WebSocket layer (RFC 6455): frame codec, handshakes and the
//! connection state machine.
//!
//! Layers stack from the bottom up:
//! - [`frame`]: the wire format of one frame header, nothing else;
//! - [`mask`] and [`utf8`]: the two hot loops over payload bytes;
//! - [`handshake`]: the HTTP/1.1 upgrade for both roles;
//! - [`reader`] / [`writer`]: turning bytes into messages and back;
//! - [`connection`]: the sans-IO state machine a host drives.

pub mod close;
pub mod config;
pub mod connection;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
pub mod message;
pub mod reader;
pub mod utf8;
pub mod writer;

pub use close::CloseCode;
pub use config::{Config, OriginPolicy};
pub use connection::{Closed, Connection, Event, Output, Role, State};
pub use deflate::{DeflateConfig, DeflateParams};
pub use error::{Error, HandshakeError, ProtocolError};
pub use frame::{FrameHeader, OpCode};
pub use handshake::{Accept, ClientRequest, Reject, Request};
pub use message::{Message, Text};
