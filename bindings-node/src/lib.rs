//! Node.js addon for evsock (N-API, built with napi-rs).
//!
//! It exposes the engine's sans-IO WebSocket [`connection::Connection`] and
//! its session layer [`session::Session`] as JS classes. Everything about sockets, timers and clocks lives in the
//! package's JavaScript (`lib/`): this crate only converts values and
//! errors, batching output so that one N-API crossing carries many frames.
//!
//! napi's `dyn-symbols` feature resolves N-API functions when the addon is
//! loaded, so the rlib, its unit tests and clippy build without Node.
#![deny(missing_docs)]

pub mod connection;
pub mod error;
pub mod options;
pub mod rng;
pub mod session;
pub mod shared;
pub mod values;
