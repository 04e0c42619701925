//! Memory held by idle connections, counted by a wrapping global allocator.
//!
//! N connections are opened (handshake done), optionally exchange one
//! 1 KiB message each way, and then sit idle; the live heap growth divided
//! by N is what one idle connection costs, plus the connection struct
//! itself (wherever the host keeps it).
//!
//! `cargo bench -p evsock-benches --bench idle_memory -- [--quick] [--out FILE]`

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use evsock::ws::{Config, Event};
use evsock_benches::alloc::Counting;
use evsock_benches::contenders::evsock_server;
use evsock_benches::wire;

#[global_allocator]
static ALLOC: Counting = Counting;

/// A socket with a little pending input and nowhere to write: reads past
/// the input would block, writes vanish.
struct Idle {
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

fn one_message() -> Vec<u8> {
    let mut v = Vec::new();
    let text = wire::text_payload(1024, 1);
    wire::push_frame(&mut v, true, wire::OP_TEXT, &text, Some([1, 2, 3, 4]));
    v
}

/// Heap bytes per connection after building `n` with `make`.
fn per_conn<T>(n: usize, mut make: impl FnMut() -> T) -> (f64, Vec<T>) {
    let mut keep = Vec::with_capacity(n);
    let before = Counting::live();
    for _ in 0..n {
        keep.push(make());
    }
    let after = Counting::live();
    ((after - before) as f64 / n as f64, keep)
}

struct Row {
    name: String,
    heap: f64,
    inline: usize,
}

fn evsock_rows(n: usize, rows: &mut Vec<Row>) {
    let inline = std::mem::size_of::<evsock::ws::Connection>();
    for (label, retain) in [("default config", None), ("buffer_retain 0", Some(0))] {
        let cfg = Arc::new(Config {
            buffer_retain: retain.unwrap_or(Config::default().buffer_retain),
            ..Config::default()
        });
        for traffic in [false, true] {
            let msg = one_message();
            let (heap, keep) = per_conn(n, || {
                let mut c = evsock_server(cfg.clone());
                if traffic {
                    c.handle_input(1, &msg);
                    while let Some(e) = c.poll_event() {
                        if let Event::Message(m) = e {
                            c.send(m).expect("echo");
                        }
                    }
                    while c.poll_transmit().is_some() {}
                }
                c
            });
            drop(keep);
            rows.push(Row {
                name: format!(
                    "evsock, {label}, {}",
                    if traffic {
                        "after one 1 KiB echo"
                    } else {
                        "fresh"
                    }
                ),
                heap,
                inline,
            });
        }
    }
}

fn tungstenite_rows(n: usize, rows: &mut Vec<Row>) {
    use tungstenite::protocol::{Role, WebSocket};
    let inline = std::mem::size_of::<WebSocket<Idle>>();
    for traffic in [false, true] {
        let msg = one_message();
        let (heap, keep) = per_conn(n, || {
            let input = if traffic { msg.clone() } else { Vec::new() };
            let mut ws = WebSocket::from_raw_socket(Idle { input, pos: 0 }, Role::Server, None);
            if traffic {
                let m = ws.read().expect("read");
                ws.send(m).expect("echo");
                ws.get_mut().input = Vec::new();
            }
            ws
        });
        drop(keep);
        rows.push(Row {
            name: format!(
                "tungstenite, default config, {}",
                if traffic {
                    "after one 1 KiB echo"
                } else {
                    "fresh"
                }
            ),
            heap,
            inline,
        });
    }
}

fn fastws_rows(n: usize, rows: &mut Vec<Row>) {
    use fastwebsockets::{Role, WebSocket};
    let inline = std::mem::size_of::<WebSocket<Idle>>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for traffic in [false, true] {
        let msg = one_message();
        let (heap, keep) = per_conn(n, || {
            let input = if traffic { msg.clone() } else { Vec::new() };
            let mut ws = WebSocket::after_handshake(Idle { input, pos: 0 }, Role::Server);
            if traffic {
                rt.block_on(async {
                    let f = ws.read_frame().await.expect("read");
                    let echo = fastwebsockets::Frame::text(fastwebsockets::Payload::Owned(
                        f.payload.to_vec(),
                    ));
                    ws.write_frame(echo).await.expect("echo");
                });
            }
            ws
        });
        drop(keep);
        rows.push(Row {
            name: format!(
                "fastwebsockets, default config, {}",
                if traffic {
                    "after one 1 KiB echo"
                } else {
                    "fresh"
                }
            ),
            heap,
            inline,
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned());
    let n = if quick { 200 } else { 2000 };
    let mut rows = Vec::new();
    evsock_rows(n, &mut rows);
    tungstenite_rows(n, &mut rows);
    fastws_rows(n, &mut rows);
    let mut s = format!(
        "Memory per idle connection ({n} connections; heap counted by a global allocator, \
         inline = size of the connection struct; the socket itself is not counted)\n\n\
         | connection | heap B | inline B | total B |\n|---|--:|--:|--:|\n"
    );
    for r in &rows {
        s.push_str(&format!(
            "| {} | {:.0} | {} | {:.0} |\n",
            r.name,
            r.heap,
            r.inline,
            r.heap + r.inline as f64
        ));
    }
    print!("{s}");
    if let Some(path) = out {
        std::fs::write(path, &s).expect("write --out file");
    }
}
