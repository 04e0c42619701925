//! The load client for the end-to-end echo benchmark, the same against
//! every server: `connections` WebSocket clients over 127.0.0.1, each
//! sending one text message and waiting for its echo before the next
//! (closed loop), for a fixed time. It speaks the protocol with a few lines
//! of hand-written framing so that it costs the same whichever server it
//! drives, and prints messages/s and latency percentiles.
//!
//! `cargo run --release -p evsock-benches --example load-client -- ADDR [--connections N] [--size BYTES] [--seconds S] [--label NAME]`
//!
//! It only ever connects to the address it is given; use a loopback one.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Args {
    addr: String,
    connections: usize,
    size: usize,
    seconds: f64,
    label: String,
}

fn args() -> Args {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let get = |flag: &str| {
        v.iter()
            .position(|a| a == flag)
            .and_then(|i| v.get(i + 1).cloned())
    };
    Args {
        addr: v
            .first()
            .cloned()
            .unwrap_or_else(|| "127.0.0.1:9001".into()),
        connections: get("--connections").map_or(16, |s| s.parse().expect("--connections")),
        size: get("--size").map_or(128, |s| s.parse().expect("--size")),
        seconds: get("--seconds").map_or(5.0, |s| s.parse().expect("--seconds")),
        label: get("--label").unwrap_or_else(|| "server".into()),
    }
}

fn masked_text_frame(payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    evsock_benches::wire::push_frame(
        &mut v,
        true,
        evsock_benches::wire::OP_TEXT,
        payload,
        Some(key),
    );
    v
}

async fn handshake(s: &mut TcpStream, addr: &str) -> std::io::Result<()> {
    let req = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 || head.len() > 8192 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other("upgrade refused"));
    }
    Ok(())
}

/// Reads one unmasked frame and returns its payload length.
async fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await?;
    let len = match h[1] & 0x7F {
        126 => {
            let mut e = [0u8; 2];
            s.read_exact(&mut e).await?;
            u16::from_be_bytes(e) as usize
        }
        127 => {
            let mut e = [0u8; 8];
            s.read_exact(&mut e).await?;
            u64::from_be_bytes(e) as usize
        }
        n => n as usize,
    };
    buf.resize(len, 0);
    s.read_exact(buf).await?;
    Ok(len)
}

async fn one_connection(
    addr: String,
    size: usize,
    until: Instant,
    id: u32,
) -> std::io::Result<Vec<u32>> {
    let mut s = TcpStream::connect(&addr).await?;
    s.set_nodelay(true)?;
    handshake(&mut s, &addr).await?;
    let payload = evsock_benches::wire::text_payload(size, id as u64);
    let frame = masked_text_frame(&payload, (id.wrapping_mul(0x9E37_79B9) | 1).to_le_bytes());
    let mut buf = Vec::with_capacity(size);
    let mut lat_us = Vec::with_capacity(1 << 16);
    while Instant::now() < until {
        let t = Instant::now();
        s.write_all(&frame).await?;
        let n = read_frame(&mut s, &mut buf).await?;
        if n != size || buf[..] != payload[..] {
            return Err(std::io::Error::other("echo differs"));
        }
        lat_us.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
    }
    // Close: 1000, masked; then wait briefly for the server's answer.
    let close = {
        let mut v = Vec::new();
        evsock_benches::wire::push_frame(
            &mut v,
            true,
            0x8,
            &1000u16.to_be_bytes(),
            Some([1, 2, 3, 4]),
        );
        v
    };
    let _ = s.write_all(&close).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), read_frame(&mut s, &mut buf)).await;
    Ok(lat_us)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let results = rt.block_on(async {
        let mut tasks = Vec::new();
        for id in 0..a.connections {
            tasks.push(tokio::spawn(one_connection(
                a.addr.clone(),
                a.size,
                until,
                id as u32,
            )));
        }
        let mut all = Vec::new();
        for t in tasks {
            match t.await.expect("task") {
                Ok(l) => all.extend(l),
                Err(e) => {
                    eprintln!("load-client: connection failed: {e}");
                    std::process::exit(1);
                }
            }
        }
        all
    });
    let mut lat = results;
    lat.sort_unstable();
    println!(
        "| {} | {} | {} B | {:.0} | {} | {} | {} |",
        a.label,
        a.connections,
        a.size,
        lat.len() as f64 / a.seconds,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
    );
}
