//! The peer for the end-to-end echo benchmark: a tokio-tungstenite server
//! that sends every text or binary message straight back.
//!
//! `cargo run --release -p evsock-benches --example tungstenite-echo-server -- 127.0.0.1:9002 [--one-thread]`
//!
//! By default it runs on tokio's multi-threaded runtime (a worker per
//! core, what `#[tokio::main]` gives); `--one-thread` runs it on the
//! current-thread runtime instead, to compare with a one-thread host.

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9002".into());
    let runtime = if args.iter().any(|a| a == "--one-thread") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    runtime.block_on(serve(addr))
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    println!(
        "tungstenite-echo-server listening on ws://{}",
        listener.local_addr()?
    );
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(msg)) = ws.next().await {
                if msg.is_close() {
                    return;
                }
                if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                    return;
                }
            }
        });
    }
}
