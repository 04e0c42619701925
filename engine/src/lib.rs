//! # evsock
//!
//! A sans-IO engine for realtime, browser-facing messaging: RFC 6455
//! WebSocket framing and handshakes, plus an event-vector session layer with
//! request/reply, acknowledged delivery, de-duplication and resume.
//!
//! The engine owns no sockets, threads or clocks. A host hands it bytes and
//! the current time in milliseconds; it hands back bytes to write, events to
//! handle and the next deadline.
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod hub;
pub mod rng;
pub mod session;

pub use rng::{BufferedRng, Rng, SeededRng};
pub mod ws;

pub use ws::{Config, Connection, Event, Message, Output};
