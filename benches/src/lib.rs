//! Benchmarks of evsock against its peers.
//!
//! - [`wire`] builds the inputs (client frames encoded here, independently
//!   of every implementation under test);
//! - [`stream`] is the in-memory transport every contender reads and
//!   writes through;
//! - [`contenders`] wraps evsock, tungstenite, fastwebsockets and a plain
//!   memcpy to do the same job;
//! - [`cases`] lists the cases; [`measure`] times them interleaved and
//!   prints the ratio table;
//! - [`envelope`] adds the session envelope coding cases (evsock's JSON
//!   codec against serde_json);
//! - [`alloc`] counts heap bytes and [`memory`] measures what an idle
//!   connection holds;
//! - [`report`] prints the one summary table and checks the targets.
//!
//! The bench targets in `benches/` put these together; `scripts/bench.sh`
//! runs them all.

pub mod alloc;
pub mod cases;
pub mod contenders;
pub mod envelope;
pub mod measure;
pub mod memory;
pub mod report;
pub mod stream;
pub mod wire;
