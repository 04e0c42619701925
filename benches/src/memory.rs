//! Memory held by idle connections, counted by [`crate::alloc::Counting`]
//! (which the measuring binary must install as its global allocator).
//!
//! N connections are opened (handshake done), optionally exchange one
//! 1 KiB text message each way, and then sit idle; the live heap growth
//! divided by N, plus the size of the connection struct itself (wherever
//! the host keeps it), is what one idle connection costs. The socket and
//! the host's own state are not counted.
//!
//! permessage-deflate rows (evsock only: neither peer implements it) show
//! what negotiating it costs while idle, and what a connection keeps after
//! one compressed message each way, for the window settings that matter.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use evsock::ws::{Accept, Config, Connection, DeflateConfig, Event};

use crate::alloc::Counting;
use crate::contenders::evsock_client;
use crate::wire::{self, UPGRADE_REQUEST};

/// One measured connection flavour.
#[derive(Clone, Debug)]
pub struct MemRow {
    /// Row label.
    pub name: String,
    /// Heap bytes per connection.
    pub heap: f64,
    /// Size of the connection struct.
    pub inline: usize,
}

impl MemRow {
    /// Heap plus inline bytes.
    pub fn total(&self) -> f64 {
        self.heap + self.inline as f64
    }
}

/// A socket with a little pending input and nowhere to write: reads past
/// the input would block, writes vanish.
pub struct Idle {
    input: Vec<u8>,
    pos: usize,
}

impl Read for Idle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.input.len() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len() - self.pos);
        buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Idle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncRead for Idle {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos == this.input.len() {
            return Poll::Pending;
        }
        let n = buf.remaining().min(this.input.len() - this.pos);
        buf.put_slice(&this.input[this.pos..this.pos + n]);
        this.pos += n;
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncWrite for Idle {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// One masked 1 KiB text frame, uncompressed.
fn one_message() -> Vec<u8> {
    let mut v = Vec::new();
    let text = wire::text_payload(1024, 1);
    wire::push_frame(&mut v, true, wire::OP_TEXT, &text, Some([1, 2, 3, 4]));
    v
}

/// The upgrade request a browser sends: permessage-deflate offered, with
/// `client_max_window_bits` so the server may limit the client's window.
fn deflate_upgrade_request() -> Vec<u8> {
    let head = std::str::from_utf8(UPGRADE_REQUEST).expect("ASCII");
    let head = head.strip_suffix("\r\n").expect("ends with a blank line");
    format!("{head}Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n")
        .into_bytes()
}

/// One compressed, masked 1 KiB text frame as a client negotiating `cfg`
/// would send it (the first message of the connection, so it does not
/// depend on earlier context), whatever `cfg`'s own threshold.
fn compressed_message(cfg: &Config) -> Vec<u8> {
    let mut cfg = cfg.clone();
    if let Some(d) = cfg.deflate.as_mut() {
        d.threshold = 0;
    }
    let mut c = evsock_client(Arc::new(cfg), 11);
    let text = wire::text_payload(1024, 1);
    c.send_text(std::str::from_utf8(&text).expect("UTF-8"))
        .expect("send");
    let mut v = Vec::new();
    while let Some(b) = c.poll_transmit() {
        v.extend_from_slice(&b);
    }
    assert!(v[0] & 0x40 != 0, "the 1 KiB message was not compressed");
    v
}

/// An evsock server that completed the handshake for `request`.
fn server_after(cfg: &Arc<Config>, request: &[u8]) -> Connection {
    let mut c = Connection::server(cfg.clone(), 0);
    c.handle_input(0, request);
    match c.poll_event() {
        Some(Event::Request(_)) => {}
        other => panic!("expected an upgrade request, got {other:?}"),
    }
    c.accept(Accept::default()).expect("accept");
    while c.poll_transmit().is_some() {}
    while let Some(e) = c.poll_event() {
        assert!(matches!(e, Event::Open { .. }), "{e:?}");
    }
    c
}

/// Heap bytes per connection after building `n` with `make` (the
/// connections are dropped afterwards).
fn per_conn<T>(n: usize, mut make: impl FnMut() -> T) -> f64 {
    let mut keep = Vec::with_capacity(n);
    Counting::enable(true);
    let before = Counting::live();
    for _ in 0..n {
        keep.push(make());
    }
    let after = Counting::live();
    Counting::enable(false);
    drop(keep);
    (after - before) as f64 / n as f64
}

/// What a flavour of evsock connection does before it idles.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Traffic {
    None,
    /// One 1 KiB text message in, echoed out.
    Echo,
}

fn evsock_row(n: usize, label: &str, cfg: Config, deflate: bool, traffic: Traffic) -> MemRow {
    let cfg = Arc::new(cfg);
    let request = if deflate {
        deflate_upgrade_request()
    } else {
        UPGRADE_REQUEST.to_vec()
    };
    let msg = if deflate {
        compressed_message(&cfg)
    } else {
        one_message()
    };
    let heap = per_conn(n, || {
        let mut c = server_after(&cfg, &request);
        assert_eq!(c.deflate().is_some(), deflate, "deflate negotiation");
        if traffic == Traffic::Echo {
            c.handle_input(1, &msg);
            let mut got = 0;
            while let Some(e) = c.poll_event() {
                if let Event::Message(m) = e {
                    assert_eq!(m.len(), 1024);
                    c.send(m).expect("echo");
                    got += 1;
                }
            }
            assert_eq!(got, 1, "the message was not delivered");
            let mut out = 0;
            while let Some(b) = c.poll_transmit() {
                out += b.len();
            }
            let compress_out = cfg.deflate.as_ref().is_some_and(|d| d.threshold <= 1024);
            if compress_out {
                assert!(out < 1024, "the echo was not compressed ({out} bytes)");
            } else {
                assert!(out > 1024, "the echo was compressed ({out} bytes)");
            }
        }
        c
    });
    MemRow {
        name: label.to_string(),
        heap,
        inline: std::mem::size_of::<Connection>(),
    }
}

fn tungstenite_row(n: usize, traffic: Traffic) -> MemRow {
    use tungstenite::protocol::{Role, WebSocket};
    let msg = one_message();
    let heap = per_conn(n, || {
        let input = if traffic == Traffic::Echo {
            msg.clone()
        } else {
            Vec::new()
        };
        let mut ws = WebSocket::from_raw_socket(Idle { input, pos: 0 }, Role::Server, None);
        if traffic == Traffic::Echo {
            let m = ws.read().expect("read");
            assert_eq!(m.len(), 1024);
            ws.send(m).expect("echo");
            ws.get_mut().input = Vec::new();
        }
        ws
    });
    MemRow {
        name: "tungstenite".into(),
        heap,
        inline: std::mem::size_of::<WebSocket<Idle>>(),
    }
}

fn fastws_row(n: usize, traffic: Traffic) -> MemRow {
    use fastwebsockets::{Role, WebSocket};
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let msg = one_message();
    let heap = per_conn(n, || {
        let input = if traffic == Traffic::Echo {
            msg.clone()
        } else {
            Vec::new()
        };
        let mut ws = WebSocket::after_handshake(Idle { input, pos: 0 }, Role::Server);
        if traffic == Traffic::Echo {
            rt.block_on(async {
                let f = ws.read_frame().await.expect("read");
                assert_eq!(f.payload.len(), 1024);
                let echo =
                    fastwebsockets::Frame::text(fastwebsockets::Payload::Owned(f.payload.to_vec()));
                ws.write_frame(echo).await.expect("echo");
            });
        }
        ws
    });
    MemRow {
        name: "fastwebsockets".into(),
        heap,
        inline: std::mem::size_of::<WebSocket<Idle>>(),
    }
}

/// One memory comparison: evsock in some configuration against the peers
/// in their default one (`None` where a peer has nothing comparable).
#[derive(Clone, Debug)]
pub struct MemCase {
    /// Row label.
    pub name: String,
    /// evsock's cost.
    pub evsock: MemRow,
    /// tungstenite's cost in the same situation.
    pub tungstenite: Option<MemRow>,
    /// fastwebsockets' cost in the same situation.
    pub fastws: Option<MemRow>,
}

/// Measures every memory case with `n` connections each.
pub fn measure(n: usize) -> Vec<MemCase> {
    assert!(
        Counting::installed(),
        "the counting allocator is not the global allocator of this binary"
    );
    let plain = || Config {
        deflate: None,
        ..Config::default()
    };
    let lean = || Config {
        deflate: None,
        buffer_retain: 0,
        ..Config::default()
    };
    let with_deflate = |d: DeflateConfig| Config {
        deflate: Some(d),
        ..Config::default()
    };
    let t_idle = tungstenite_row(n, Traffic::None);
    let t_echo = tungstenite_row(n, Traffic::Echo);
    let f_idle = fastws_row(n, Traffic::None);
    let f_echo = fastws_row(n, Traffic::Echo);
    let case = |name: &str, evsock: MemRow, t: &MemRow, f: &MemRow| MemCase {
        name: name.to_string(),
        evsock,
        tungstenite: Some(t.clone()),
        fastws: Some(f.clone()),
    };
    let mut v = vec![
        case(
            "memory/idle conn, fresh",
            evsock_row(n, "default", plain(), false, Traffic::None),
            &t_idle,
            &f_idle,
        ),
        case(
            "memory/idle conn, after a 1 KiB echo",
            evsock_row(n, "default", plain(), false, Traffic::Echo),
            &t_echo,
            &f_echo,
        ),
        case(
            "memory/idle conn, fresh, buffer_retain 0",
            evsock_row(n, "buffer_retain 0", lean(), false, Traffic::None),
            &t_idle,
            &f_idle,
        ),
        case(
            "memory/idle conn, after a 1 KiB echo, buffer_retain 0",
            evsock_row(n, "buffer_retain 0", lean(), false, Traffic::Echo),
            &t_echo,
            &f_echo,
        ),
    ];
    // permessage-deflate: the peers do not implement it, so they are shown
    // in the plain situation for scale.
    let d = DeflateConfig::default();
    // A threshold no message reaches: the echo goes out uncompressed, so
    // only the receiving side (the inflater) is paid for.
    let inflate_only = |client_bits: u8| DeflateConfig {
        client_max_window_bits: client_bits,
        threshold: usize::MAX,
        ..d.clone()
    };
    let deflate_rows = [
        (
            "memory/deflate negotiated, fresh",
            with_deflate(d.clone()),
            Traffic::None,
        ),
        (
            "memory/deflate, after a compressed 1 KiB message in (inflate only, client window 2^15)",
            with_deflate(inflate_only(15)),
            Traffic::Echo,
        ),
        (
            "memory/deflate, after a compressed 1 KiB message in (inflate only, client window 2^10)",
            with_deflate(inflate_only(10)),
            Traffic::Echo,
        ),
        (
            "memory/deflate, after a compressed 1 KiB echo (defaults: windows 2^15, server no context takeover)",
            with_deflate(d.clone()),
            Traffic::Echo,
        ),
        (
            "memory/deflate, after a compressed 1 KiB echo (windows 2^9, no context takeover both ways)",
            with_deflate(DeflateConfig {
                client_no_context_takeover: true,
                server_no_context_takeover: true,
                client_max_window_bits: 9,
                server_max_window_bits: 9,
                ..d.clone()
            }),
            Traffic::Echo,
        ),
    ];
    for (name, cfg, traffic) in deflate_rows {
        let (t, f) = match traffic {
            Traffic::None => (&t_idle, &f_idle),
            Traffic::Echo => (&t_echo, &f_echo),
        };
        v.push(case(name, evsock_row(n, name, cfg, true, traffic), t, f));
    }
    v
}
