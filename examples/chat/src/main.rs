//! evsock-chat: the realtime chat demo (docs/chat-demo.md).
//!
//! ```text
//! evsock-chat [--addr 127.0.0.1:8080] [--test-hooks]
//!             [--redis redis://127.0.0.1:6379 [--node-id NAME] [--channel-prefix P]]
//! ```

mod chat;
mod http;
mod redis;
mod resp;
mod server;

use server::{Options, Server};
use std::io::Write;
use std::net::SocketAddr;

const USAGE: &str = "usage: evsock-chat [--addr HOST:PORT] [--test-hooks] \
[--redis redis://HOST:PORT] [--node-id ID] [--channel-prefix PREFIX]

  --addr            where to listen (default 127.0.0.1:8080)
  --test-hooks      serve GET /test/drop?user=NAME (cuts that user's connections)
  --redis           share rooms, users and presence with other nodes through Redis pub/sub
  --node-id         this node's id in the cluster (default: node-<pid>-<port>)
  --channel-prefix  prefix of pub/sub channels and Redis keys (default evsock)";

/// Parses the command line (without the program name).
fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse().expect("literal address");
    let mut test_hooks = false;
    let mut redis = None;
    let mut node_id = None;
    let mut prefix = "evsock".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--addr" => {
                let v = value("--addr")?;
                addr = v
                    .parse()
                    .map_err(|_| format!("--addr: not HOST:PORT: {v}"))?;
            }
            "--test-hooks" => test_hooks = true,
            "--redis" => {
                redis = Some(
                    redis::parse_url(&value("--redis")?).map_err(|e| format!("--redis: {e}"))?,
                )
            }
            "--node-id" => {
                let v = value("--node-id")?;
                if v.is_empty()
                    || v.len() > evsock::hub::MAX_NODE_ID_LEN
                    || !v.bytes().all(|b| b.is_ascii_graphic())
                {
                    return Err(format!(
                        "--node-id: 1 to {} printable ASCII characters",
                        evsock::hub::MAX_NODE_ID_LEN
                    ));
                }
                node_id = Some(v);
            }
            "--channel-prefix" => {
                let v = value("--channel-prefix")?;
                if v.is_empty() || v.len() > 64 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err("--channel-prefix: 1 to 64 printable ASCII characters".into());
                }
                prefix = v;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if node_id.is_some() && redis.is_none() {
        return Err("--node-id only makes sense with --redis".into());
    }
    if redis.is_some() && node_id.is_none() {
        node_id = Some(format!("node-{}-{}", std::process::id(), addr.port()));
    }
    Ok(Options {
        addr,
        test_hooks,
        redis,
        node_id,
        channel_prefix: prefix,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse_args(&args) {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("evsock-chat: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let mut server = match Server::bind(&opts) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("evsock-chat: {e}");
            std::process::exit(1);
        }
    };
    let addr = server.local_addr().unwrap_or(opts.addr);
    if let (Some(r), Some(n)) = (opts.redis, &opts.node_id) {
        eprintln!("chat: node {n}, sharing rooms through Redis at {r}");
    }
    println!("chat listening on http://{addr}/");
    let _ = std::io::stdout().flush();
    if let Err(e) = server.run() {
        eprintln!("evsock-chat: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn command_lines() {
        let o = parse_args(&args("")).unwrap();
        assert_eq!(o.addr, "127.0.0.1:8080".parse().unwrap());
        assert!(!o.test_hooks && o.redis.is_none() && o.node_id.is_none());
        let o = parse_args(&args(
            "--addr 127.0.0.1:0 --test-hooks --redis redis://127.0.0.1:7001 --node-id a",
        ))
        .unwrap();
        assert_eq!(o.addr.port(), 0);
        assert!(o.test_hooks);
        assert_eq!(o.redis, Some("127.0.0.1:7001".parse().unwrap()));
        assert_eq!(o.node_id.as_deref(), Some("a"));
        let o = parse_args(&args("--redis redis://127.0.0.1:7001 --addr 127.0.0.1:9")).unwrap();
        assert_eq!(o.node_id, Some(format!("node-{}-9", std::process::id())));
        for bad in [
            "--addr",
            "--addr nope",
            "--redis 127.0.0.1:1",
            "--node-id a",
            "--redis redis://127.0.0.1:1 --node-id",
            "--bogus",
        ] {
            let e = parse_args(&args(bad)).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert_eq!(parse_args(&args("--help")).unwrap_err(), "");
    }
}
