//! A scripted client that checks an echo server: text, binary, empty,
//! large, multi-byte text, a fragmented message, a ping, a burst, and the
//! closing handshake. Exits non-zero on the first mismatch.
//!
//! `cargo run --release -p evsock --example echo-client -- ws://127.0.0.1:9001`

mod support;

use std::net::TcpStream;
use std::sync::Arc;

use bytes::Bytes;
use evsock::ws::{ClientRequest, CloseCode, Config, Connection, Event, Message, OpCode};

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://127.0.0.1:9001".into());
    let mut request = ClientRequest::from_url(&url).expect("URL");
    request.subprotocols = vec!["chat".into()];
    let mut stream = TcpStream::connect(&request.host).expect("connect");
    let config = Arc::new(Config::default());
    let mut conn = Connection::client(
        config,
        request,
        Box::new(evsock::BufferedRng::new(support::OsRng)),
        support::now_ms(),
    );

    let big: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let multibyte: String = "κόσμε🙂 ".repeat(200 * 1024 / 16);
    let mut expected: Vec<Message> = vec![
        Message::Text("hello".into()),
        Message::Binary(Bytes::from_static(&[0, 1, 2, 255])),
        Message::Text("".into()),
        Message::Binary(Bytes::from(big.clone())),
        Message::Text(multibyte.clone().into()),
        Message::Text("fragmented message".into()),
    ];
    for i in 0..1000 {
        expected.push(Message::Text(format!("burst {i}").into()));
    }
    expected.reverse();
    let mut failures = 0;
    let mut got_pong = false;
    let mut subprotocol = None;
    let mut closed = None;
    support::drive(&mut conn, &mut stream, |conn, event| match event {
        Event::Open { subprotocol: p } => {
            subprotocol = p;
            conn.send(Message::Text("hello".into())).unwrap();
            conn.send_binary(Bytes::from_static(&[0, 1, 2, 255]))
                .unwrap();
            conn.send_text("").unwrap();
            conn.send_binary(big.clone()).unwrap();
            conn.send_text(&multibyte).unwrap();
            conn.send_fragment(OpCode::Text, b"fragmented", false)
                .unwrap();
            conn.send_fragment(OpCode::Continuation, b" ", false)
                .unwrap();
            conn.send_fragment(OpCode::Continuation, b"message", true)
                .unwrap();
            conn.ping(b"are you there").unwrap();
            for i in 0..1000 {
                conn.send_text(&format!("burst {i}")).unwrap();
            }
        }
        Event::Message(m) => {
            match expected.pop() {
                Some(want) if want == m => {}
                want => {
                    failures += 1;
                    eprintln!(
                        "FAIL echo: got {} bytes, wanted {:?} bytes",
                        m.len(),
                        want.map(|w| w.len())
                    );
                }
            }
            if expected.is_empty() {
                conn.close(CloseCode::NORMAL, "bye").unwrap();
            }
        }
        Event::Pong(p) => got_pong = &p[..] == b"are you there",
        Event::Closed(c) => closed = Some(c),
        _ => {}
    })
    .expect("I/O");
    let check = |name: &str, ok: bool, failures: &mut i32| {
        println!("{} {name}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            *failures += 1;
        }
    };
    check(
        "subprotocol chat negotiated",
        subprotocol.as_deref() == Some("chat"),
        &mut failures,
    );
    check(
        "every echo matched, in order",
        expected.is_empty(),
        &mut failures,
    );
    check("pong for our ping", got_pong, &mut failures);
    let clean = closed
        .as_ref()
        .is_some_and(|c| c.clean && c.code == CloseCode::NORMAL && c.error.is_none());
    check("clean close with 1000", clean, &mut failures);
    if failures > 0 {
        eprintln!("echo-client: {failures} failure(s); closed = {closed:?}");
        std::process::exit(1);
    }
    println!("echo-client: all checks passed");
}
