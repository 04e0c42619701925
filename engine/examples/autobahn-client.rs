//! The client the Autobahn|Testsuite fuzzing server tests: it asks for the
//! number of cases, runs each one as an echo client, then asks the server
//! to write its report.
//!
//! `cargo run --release -p evsock --example autobahn-client -- ws://127.0.0.1:9001 evsock`

mod support;

use std::net::TcpStream;
use std::sync::Arc;

use evsock::ws::{ClientRequest, Config, Connection, Event, Message};

fn run(
    base: &str,
    path: &str,
    config: &Arc<Config>,
    mut on_text: impl FnMut(&str),
) -> Result<(), String> {
    let url = format!("{base}{path}");
    let request = ClientRequest::from_url(&url).map_err(|e| e.to_string())?;
    let mut stream = TcpStream::connect(&request.host).map_err(|e| format!("{url}: {e}"))?;
    let mut conn = Connection::client(
        config.clone(),
        request,
        Box::new(evsock::BufferedRng::new(support::OsRng)),
        support::now_ms(),
    );
    support::drive(&mut conn, &mut stream, |conn, event| match event {
        Event::Message(m) => {
            if let Message::Text(t) = &m {
                on_text(t);
            }
            let _ = conn.send(m);
        }
        Event::Closed(c) if c.error.is_some() => eprintln!("{path}: {c:?}"),
        _ => {}
    })
    .map_err(|e| format!("{url}: {e}"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let agent = args.next().unwrap_or_else(|| "evsock".into());
    let base = base.trim_end_matches('/').to_string();
    let config = Arc::new(Config {
        ping_interval_ms: None,
        pong_timeout_ms: None,
        ..Config::default()
    });
    let mut count = 0u32;
    run(&base, "/getCaseCount", &config, |t| {
        count = t.trim().parse().unwrap_or(0)
    })
    .expect("getCaseCount");
    // getCaseCount's connection echoes nothing useful; its text is the count.
    println!("autobahn-client: {count} cases");
    for case in 1..=count {
        if let Err(e) = run(
            &base,
            &format!("/runCase?case={case}&agent={agent}"),
            &config,
            |_| {},
        ) {
            eprintln!("case {case}: {e}");
        }
    }
    run(
        &base,
        &format!("/updateReports?agent={agent}"),
        &config,
        |_| {},
    )
    .expect("updateReports");
    println!("autobahn-client: reports updated");
}
