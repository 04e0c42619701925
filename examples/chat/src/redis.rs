//! The Redis adapter: wires a hub's pub/sub outputs to a real Redis over two
//! non-blocking connections driven by the host's `mio` loop.
//!
//! * the **subscriber** connection only sends SUBSCRIBE / UNSUBSCRIBE (a
//!   connection in subscribed mode may not send anything else) and receives
//!   `message` pushes, which the host hands to `Hub::handle_remote`;
//! * the **command** connection sends PUBLISH and INCR (the chat's per-room
//!   message counter shared by every node); its replies come back in order,
//!   matched against a queue of what each command expects.
//!
//! When a connection drops (Redis restarted, network cut) it is reopened with
//! exponential backoff; the subscriber then subscribes again to every channel
//! the hub still wants. Messages published by other nodes while the
//! subscriber was away are lost (Redis pub/sub keeps nothing); pending INCRs
//! fail with a typed error so the host can refuse those requests cleanly.

use crate::resp::{self, Decoder, RespError, Value};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

/// Most bytes queued on one connection before further commands are refused
/// (Redis is not keeping up, or is away).
const MAX_OUT: usize = 32 << 20;
/// First reconnect delay; doubles up to [`RETRY_MAX_MS`].
const RETRY_MIN_MS: u64 = 100;
const RETRY_MAX_MS: u64 = 5_000;

/// Why a Redis operation failed.
#[derive(Debug)]
pub enum RedisError {
    /// The URL is not `redis://host:port` (optionally with a trailing `/`).
    BadUrl(String),
    /// A socket error.
    Io(io::Error),
    /// Redis sent something that is not RESP2.
    Protocol(RespError),
    /// Redis answered a command with an error reply.
    Reply(String),
    /// Redis answered with a reply of an unexpected shape.
    Unexpected(String),
    /// The connection closed before the reply came.
    Disconnected,
    /// Too much is queued for Redis already.
    Backlog,
}

impl fmt::Display for RedisError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisError::BadUrl(u) => write!(f, "not a redis://host:port URL: {u}"),
            RedisError::Io(e) => write!(f, "redis: {e}"),
            RedisError::Protocol(e) => write!(f, "redis: {e}"),
            RedisError::Reply(e) => write!(f, "redis replied {e}"),
            RedisError::Unexpected(e) => write!(f, "redis: unexpected reply {e}"),
            RedisError::Disconnected => f.write_str("redis: connection lost before the reply"),
            RedisError::Backlog => f.write_str("redis: too much queued, command refused"),
        }
    }
}

impl std::error::Error for RedisError {}

/// Parses `redis://host:port` (port defaults to 6379) into a socket address.
pub fn parse_url(url: &str) -> Result<SocketAddr, RedisError> {
    use std::net::ToSocketAddrs;
    let bad = || RedisError::BadUrl(url.to_owned());
    let rest = url.strip_prefix("redis://").ok_or_else(bad)?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(bad());
    }
    let hostport = if rest
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
        && !rest.ends_with(']')
    {
        rest.to_owned()
    } else {
        format!("{rest}:6379")
    };
    hostport
        .to_socket_addrs()
        .map_err(|_| bad())?
        .next()
        .ok_or_else(bad)
}

/// What a reply on the command connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    /// PUBLISH: the number of receivers; nothing to do with it.
    Publish,
    /// INCR for the host, with the host's tag.
    Incr(u64),
}

/// Something the host must act on.
#[derive(Debug)]
pub enum RedisEvent {
    /// A message on a subscribed channel: for `Hub::handle_remote`.
    Message {
        /// The channel.
        channel: Vec<u8>,
        /// The payload.
        payload: Vec<u8>,
    },
    /// The result of [`Redis::incr`].
    Incr {
        /// The tag given to `incr`.
        tag: u64,
        /// The new value.
        result: Result<i64, RedisError>,
    },
    /// A connection went down (it will be reopened) or came back.
    Link {
        /// `"subscriber"` or `"command"`.
        which: &'static str,
        /// `true` when (re)connected.
        up: bool,
        /// Why it went down.
        reason: String,
    },
}

/// One TCP connection to Redis.
struct Link {
    which: &'static str,
    token: Token,
    stream: Option<TcpStream>,
    /// The TCP connect has completed.
    connected: bool,
    out: Vec<u8>,
    written: usize,
    dec: Decoder,
    retry_at: Option<u64>,
    backoff_ms: u64,
}

impl Link {
    fn new(which: &'static str, token: Token) -> Link {
        Link {
            which,
            token,
            stream: None,
            connected: false,
            out: Vec::new(),
            written: 0,
            dec: Decoder::new(),
            retry_at: None,
            backoff_ms: RETRY_MIN_MS,
        }
    }

    fn queued(&self) -> usize {
        self.out.len() - self.written
    }

    fn open(&mut self, registry: &Registry, addr: SocketAddr) -> io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        registry.register(&mut s, self.token, Interest::READABLE | Interest::WRITABLE)?;
        let _ = s.set_nodelay(true);
        self.stream = Some(s);
        self.connected = false;
        self.out.clear();
        self.written = 0;
        self.dec.clear();
        self.retry_at = None;
        Ok(())
    }

    fn close(&mut self, registry: &Registry, now: u64) {
        if let Some(mut s) = self.stream.take() {
            let _ = registry.deregister(&mut s);
        }
        self.connected = false;
        self.out.clear();
        self.written = 0;
        self.dec.clear();
        self.retry_at = Some(now + self.backoff_ms);
        self.backoff_ms = (self.backoff_ms * 2).min(RETRY_MAX_MS);
    }

    /// Writes what is queued; `Err` if the connection failed.
    fn flush(&mut self) -> io::Result<()> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        if !self.connected {
            return Ok(());
        }
        while self.written < self.out.len() {
            match s.write(&self.out[self.written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.written == self.out.len() {
            self.out.clear();
            self.written = 0;
        } else if self.written > (1 << 20) && self.written * 2 > self.out.len() {
            self.out.drain(..self.written);
            self.written = 0;
        }
        Ok(())
    }

    /// Reads everything available into the decoder; `Err` on EOF or error.
    fn read_all(&mut self) -> io::Result<()> {
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        let mut buf = [0u8; 16 << 10];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.dec.feed(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// On a writable event before the connect completed: did it succeed?
    fn check_connected(&mut self) -> io::Result<bool> {
        if self.connected {
            return Ok(false);
        }
        let Some(s) = self.stream.as_ref() else {
            return Ok(false);
        };
        if let Some(e) = s.take_error()? {
            return Err(e);
        }
        match s.peer_addr() {
            Ok(_) => {
                self.connected = true;
                self.backoff_ms = RETRY_MIN_MS;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The adapter: two connections, the wanted subscriptions and the replies
/// the command connection owes.
pub struct Redis {
    addr: SocketAddr,
    sub: Link,
    cmd: Link,
    channels: BTreeSet<Vec<u8>>,
    pending: VecDeque<Pending>,
    /// Publishes refused or lost (Redis away or backlogged), for the log.
    pub lost_publishes: u64,
}

impl Redis {
    /// Starts connecting both connections (non-blocking).
    pub fn new(
        registry: &Registry,
        addr: SocketAddr,
        sub_token: Token,
        cmd_token: Token,
    ) -> io::Result<Redis> {
        let mut r = Redis {
            addr,
            sub: Link::new("subscriber", sub_token),
            cmd: Link::new("command", cmd_token),
            channels: BTreeSet::new(),
            pending: VecDeque::new(),
            lost_publishes: 0,
        };
        r.sub.open(registry, addr)?;
        r.cmd.open(registry, addr)?;
        Ok(r)
    }

    /// Whether both connections are up.
    #[cfg(test)]
    pub fn is_up(&self) -> bool {
        self.sub.connected && self.cmd.connected
    }

    /// Subscribes to a channel (again after every reconnect).
    pub fn subscribe(&mut self, channel: &[u8]) -> io::Result<()> {
        // Before the connect completes, the SUBSCRIBE sent on connect covers it.
        if self.channels.insert(channel.to_vec()) && self.sub.connected {
            resp::encode_command(&mut self.sub.out, &[b"SUBSCRIBE", channel]);
            return self.sub.flush();
        }
        Ok(())
    }

    /// Drops a subscription.
    pub fn unsubscribe(&mut self, channel: &[u8]) -> io::Result<()> {
        if self.channels.remove(channel) && self.sub.connected {
            resp::encode_command(&mut self.sub.out, &[b"UNSUBSCRIBE", channel]);
            return self.sub.flush();
        }
        Ok(())
    }

    /// Publishes a message; `Err(Backlog)` (counted in `lost_publishes`) if
    /// Redis is away or too far behind.
    pub fn publish(&mut self, channel: &[u8], payload: &[u8]) -> Result<(), RedisError> {
        if self.cmd.stream.is_none() || self.cmd.queued() > MAX_OUT {
            self.lost_publishes += 1;
            return Err(RedisError::Backlog);
        }
        resp::encode_command(&mut self.cmd.out, &[b"PUBLISH", channel, payload]);
        self.pending.push_back(Pending::Publish);
        self.cmd.flush().map_err(RedisError::Io)
    }

    /// Increments a counter; the result comes as [`RedisEvent::Incr`] with
    /// `tag`, or at once as an error.
    pub fn incr(&mut self, key: &[u8], tag: u64) -> Result<(), RedisError> {
        if self.cmd.stream.is_none() || self.cmd.queued() > MAX_OUT {
            return Err(RedisError::Backlog);
        }
        resp::encode_command(&mut self.cmd.out, &[b"INCR", key]);
        self.pending.push_back(Pending::Incr(tag));
        self.cmd.flush().map_err(RedisError::Io)
    }

    /// The earliest reconnect deadline, if a connection is down.
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.sub.retry_at, self.cmd.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reopens connections whose retry time has come.
    pub fn handle_timeout(&mut self, registry: &Registry, now: u64, events: &mut Vec<RedisEvent>) {
        for is_sub in [true, false] {
            let link = if is_sub { &mut self.sub } else { &mut self.cmd };
            if link.retry_at.is_some_and(|t| t <= now) {
                if let Err(e) = link.open(registry, self.addr) {
                    let reason = e.to_string();
                    link.close(registry, now);
                    events.push(RedisEvent::Link {
                        which: link.which,
                        up: false,
                        reason,
                    });
                }
            }
        }
    }

    /// Whether `token` is one of the adapter's.
    pub fn owns(&self, token: Token) -> bool {
        token == self.sub.token || token == self.cmd.token
    }

    /// A readiness event on one of the adapter's tokens.
    pub fn handle_ready(
        &mut self,
        registry: &Registry,
        token: Token,
        now: u64,
        events: &mut Vec<RedisEvent>,
    ) {
        let is_sub = token == self.sub.token;
        if let Err(e) = self.drive(is_sub, events) {
            self.fail(registry, is_sub, now, e, events);
        }
    }

    fn drive(&mut self, is_sub: bool, events: &mut Vec<RedisEvent>) -> Result<(), RedisError> {
        let link = if is_sub { &mut self.sub } else { &mut self.cmd };
        if link.stream.is_none() {
            return Ok(());
        }
        if link.check_connected().map_err(RedisError::Io)? {
            if is_sub {
                // A fresh subscriber: everything the hub wants, in one command.
                let mut args: Vec<&[u8]> = vec![b"SUBSCRIBE"];
                args.extend(self.channels.iter().map(Vec::as_slice));
                self.sub.out.clear();
                self.sub.written = 0;
                if args.len() > 1 {
                    resp::encode_command(&mut self.sub.out, &args);
                }
            }
            let link = if is_sub { &mut self.sub } else { &mut self.cmd };
            events.push(RedisEvent::Link {
                which: link.which,
                up: true,
                reason: String::new(),
            });
        }
        let link = if is_sub { &mut self.sub } else { &mut self.cmd };
        if !link.connected {
            return Ok(());
        }
        link.flush().map_err(RedisError::Io)?;
        let read = link.read_all();
        // Decode what arrived even if the read then hit EOF.
        loop {
            let link = if is_sub { &mut self.sub } else { &mut self.cmd };
            let Some(v) = link.dec.next().map_err(RedisError::Protocol)? else {
                break;
            };
            if is_sub {
                self.on_sub_reply(v, events)?;
            } else {
                self.on_cmd_reply(v, events)?;
            }
        }
        read.map_err(RedisError::Io)
    }

    fn on_sub_reply(&mut self, v: Value, events: &mut Vec<RedisEvent>) -> Result<(), RedisError> {
        let Value::Array(Some(mut items)) = v else {
            return match v {
                Value::Error(e) => Err(RedisError::Reply(e)),
                other => Err(RedisError::Unexpected(format!("{other:?}"))),
            };
        };
        let kind = match items.first() {
            Some(Value::Bulk(Some(k))) => k.clone(),
            _ => return Err(RedisError::Unexpected("push without a kind".into())),
        };
        match kind.as_slice() {
            b"message" if items.len() == 3 => {
                let payload = items.pop();
                let channel = items.pop();
                match (channel, payload) {
                    (Some(Value::Bulk(Some(channel))), Some(Value::Bulk(Some(payload)))) => {
                        events.push(RedisEvent::Message { channel, payload });
                        Ok(())
                    }
                    _ => Err(RedisError::Unexpected("malformed message push".into())),
                }
            }
            b"subscribe" | b"unsubscribe" => Ok(()),
            _ => Err(RedisError::Unexpected(format!(
                "push {:?}",
                String::from_utf8_lossy(&kind)
            ))),
        }
    }

    fn on_cmd_reply(&mut self, v: Value, events: &mut Vec<RedisEvent>) -> Result<(), RedisError> {
        let Some(p) = self.pending.pop_front() else {
            return Err(RedisError::Unexpected(format!("{v:?} nobody asked for")));
        };
        match (p, v) {
            (Pending::Publish, Value::Integer(_)) => {}
            (Pending::Publish, Value::Error(e)) => {
                self.lost_publishes += 1;
                eprintln!("redis: PUBLISH failed: {e}");
            }
            (Pending::Incr(tag), Value::Integer(n)) => {
                events.push(RedisEvent::Incr { tag, result: Ok(n) })
            }
            (Pending::Incr(tag), Value::Error(e)) => events.push(RedisEvent::Incr {
                tag,
                result: Err(RedisError::Reply(e)),
            }),
            (_, other) => return Err(RedisError::Unexpected(format!("{other:?}"))),
        }
        Ok(())
    }

    fn fail(
        &mut self,
        registry: &Registry,
        is_sub: bool,
        now: u64,
        e: RedisError,
        events: &mut Vec<RedisEvent>,
    ) {
        let link = if is_sub { &mut self.sub } else { &mut self.cmd };
        link.close(registry, now);
        events.push(RedisEvent::Link {
            which: link.which,
            up: false,
            reason: e.to_string(),
        });
        if !is_sub {
            for p in self.pending.drain(..) {
                match p {
                    Pending::Publish => self.lost_publishes += 1,
                    Pending::Incr(tag) => events.push(RedisEvent::Incr {
                        tag,
                        result: Err(RedisError::Disconnected),
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("redis://127.0.0.1:6380").unwrap(),
            "127.0.0.1:6380".parse().unwrap()
        );
        assert_eq!(
            parse_url("redis://127.0.0.1/").unwrap(),
            "127.0.0.1:6379".parse().unwrap()
        );
        assert_eq!(
            parse_url("redis://[::1]:7000").unwrap(),
            "[::1]:7000".parse().unwrap()
        );
        for bad in [
            "127.0.0.1:6379",
            "redis://",
            "redis://h:1/2",
            "redis://u:p@h:1",
            "http://x:1",
        ] {
            assert!(
                matches!(parse_url(bad), Err(RedisError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    /// A fake Redis on a local socket: the adapter must subscribe, publish,
    /// INCR, route the replies, and after the server drops it, reconnect and
    /// subscribe again to every wanted channel.
    #[test]
    fn talks_to_a_fake_redis_and_reconnects() {
        use mio::{Events, Poll};
        use std::io::{Read as _, Write as _};
        use std::time::{Duration, Instant};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut poll = Poll::new().unwrap();
        let mut r = Redis::new(poll.registry(), addr, Token(1), Token(2)).unwrap();
        let start = Instant::now();
        let now = || start.elapsed().as_millis() as u64;
        let (mut a, _) = listener.accept().unwrap();
        let (mut b, _) = listener.accept().unwrap();
        a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        r.subscribe(b"room:lobby").unwrap();
        r.publish(b"room:lobby", b"hello").unwrap();
        r.incr(b"seq", 7).unwrap();
        let mut events = Vec::new();
        let mut pump = |r: &mut Redis, events: &mut Vec<RedisEvent>, ms: u64| {
            let mut ev = Events::with_capacity(8);
            let until = Instant::now() + Duration::from_millis(ms);
            while Instant::now() < until {
                poll.poll(&mut ev, Some(Duration::from_millis(10))).unwrap();
                for e in ev.iter() {
                    r.handle_ready(poll.registry(), e.token(), now(), events);
                }
                r.handle_timeout(poll.registry(), now(), events);
            }
        };
        pump(&mut r, &mut events, 100);
        // Which accepted socket is which? Read both and sort out.
        let mut got = [Vec::new(), Vec::new()];
        for (i, s) in [&mut a, &mut b].into_iter().enumerate() {
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1024];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                got[i].extend_from_slice(&buf[..n]);
            }
            s.set_nonblocking(false).unwrap();
        }
        let sub_first = String::from_utf8_lossy(&got[0]).contains("SUBSCRIBE");
        let (mut sub, mut cmd, sub_bytes, cmd_bytes) = if sub_first {
            (a, b, got[0].clone(), got[1].clone())
        } else {
            (b, a, got[1].clone(), got[0].clone())
        };
        assert_eq!(sub_bytes, b"*2\r\n$9\r\nSUBSCRIBE\r\n$10\r\nroom:lobby\r\n");
        assert_eq!(
            cmd_bytes,
            b"*3\r\n$7\r\nPUBLISH\r\n$10\r\nroom:lobby\r\n$5\r\nhello\r\n*2\r\n$4\r\nINCR\r\n$3\r\nseq\r\n".to_vec()
        );
        // Replies, split awkwardly.
        sub.write_all(b"*3\r\n$9\r\nsubscribe\r\n$10\r\nroom:lobby\r\n:1\r\n*3\r\n$7\r\nmess")
            .unwrap();
        cmd.write_all(b":1\r\n:4").unwrap();
        pump(&mut r, &mut events, 50);
        sub.write_all(b"age\r\n$10\r\nroom:lobby\r\n$3\r\nEV\x01\r\n")
            .unwrap();
        cmd.write_all(b"2\r\n").unwrap();
        pump(&mut r, &mut events, 50);
        let mut msgs = Vec::new();
        let mut incrs = Vec::new();
        for e in events.drain(..) {
            match e {
                RedisEvent::Message { channel, payload } => msgs.push((channel, payload)),
                RedisEvent::Incr { tag, result } => incrs.push((tag, result.unwrap())),
                RedisEvent::Link { .. } => {}
            }
        }
        assert_eq!(msgs, vec![(b"room:lobby".to_vec(), b"EV\x01".to_vec())]);
        assert_eq!(incrs, vec![(7, 42)]);

        // An INCR in flight when the command connection drops fails cleanly.
        r.incr(b"seq", 8).unwrap();
        r.subscribe(b"user:bob").unwrap();
        pump(&mut r, &mut events, 30);
        drop(cmd);
        drop(sub);
        pump(&mut r, &mut events, 250);
        let failed: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RedisEvent::Incr {
                    tag,
                    result: Err(RedisError::Disconnected),
                } => Some(*tag),
                _ => None,
            })
            .collect();
        assert_eq!(failed, vec![8]);
        assert!(events
            .iter()
            .any(|e| matches!(e, RedisEvent::Link { up: false, .. })));
        // Both come back; the subscriber asks for every channel at once.
        let (mut a, _) = listener.accept().unwrap();
        let (mut b, _) = listener.accept().unwrap();
        pump(&mut r, &mut events, 100);
        assert!(r.is_up());
        let mut seen = String::new();
        for s in [&mut a, &mut b] {
            s.set_nonblocking(true).unwrap();
            let mut buf = [0u8; 1024];
            if let Ok(n) = s.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
        assert_eq!(
            seen,
            "*3\r\n$9\r\nSUBSCRIBE\r\n$10\r\nroom:lobby\r\n$8\r\nuser:bob\r\n"
        );
        // A protocol error from Redis closes the connection (and is reported).
        events.clear();
        for s in [&mut a, &mut b] {
            s.write_all(b"?garbage\r\n").unwrap();
        }
        pump(&mut r, &mut events, 50);
        let downs: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                RedisEvent::Link {
                    up: false, reason, ..
                } => Some(reason.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(downs.len(), 2, "{downs:?}");
        assert!(
            downs.iter().all(|d| d.contains("unknown type byte")),
            "{downs:?}"
        );
    }
}
