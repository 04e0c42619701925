//! The echo server the Autobahn|Testsuite fuzzing client tests.
//!
//! `cargo run --release -p evsock --example autobahn-server -- 127.0.0.1:9001`
//!
//! Keep-alive pings are off so that no unsolicited frame disturbs a case.

mod support;

use std::net::TcpListener;
use std::sync::Arc;

use evsock::ws::{Config, Connection};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr)?;
    let config = Arc::new(Config {
        ping_interval_ms: None,
        pong_timeout_ms: None,
        ..Config::default()
    });
    println!(
        "autobahn-server listening on ws://{}",
        listener.local_addr()?
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let config = config.clone();
        std::thread::spawn(move || {
            let mut conn = Connection::server(config, support::now_ms());
            let _ = support::drive(&mut conn, &mut stream, support::echo);
        });
    }
    Ok(())
}
