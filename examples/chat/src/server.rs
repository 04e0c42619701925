//! The host: one thread, one `mio` poll loop, every socket non-blocking.
//!
//! * The listener accepts TCP connections; each starts as plain HTTP. Heads
//!   are parsed as bytes arrive; static GETs are answered (keep-alive),
//!   `/ws` hands the connection and every byte read so far to the hub.
//! * Bytes the hub wants written are queued per connection and written as
//!   the socket takes them; each write is reported with `handle_written`
//!   (that is the hub's back-pressure), the rest waits for the next
//!   write-readiness edge.
//! * The loop sleeps until the earliest of the hub's deadline, an idle HTTP
//!   connection's deadline and a Redis reconnect.
//! * With `--redis`, the hub's Publish/Subscribe/Unsubscribe outputs go to the
//!   Redis adapter and messages from other nodes to `handle_remote`.

use crate::chat::Chat;
use crate::http::{self, Route};
use crate::redis::{Redis, RedisEvent};
use bytes::Bytes;
use evsock::hub::{Config, ConnId, Hub, HubOutput};
use evsock::{Rng, SeededRng};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

const LISTENER: Token = Token(0);
const REDIS_SUB: Token = Token(1);
const REDIS_CMD: Token = Token(2);
const FIRST_CONN: usize = 16;

/// How long a plain HTTP connection may stay idle (or dribble a head).
const HTTP_IDLE_MS: u64 = 15_000;
/// Answers queued on a plain HTTP connection beyond which the host stops
/// reading its requests until the client reads (the hub bounds WebSocket
/// connections itself, through its send window).
const HTTP_OUT_LIMIT: usize = 256 << 10;
/// How long a closed connection waits for the peer's FIN.
const LINGER_MS: u64 = 2_000;
/// Most TCP connections the host holds (the hub has its own, lower limits
/// for WebSockets); beyond it new ones are closed at once.
const MAX_SOCKETS: usize = 50_000;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Serve `/test/drop`.
    pub test_hooks: bool,
    /// Redis for multi-node, as `redis://host:port`.
    pub redis: Option<SocketAddr>,
    /// This node's id in a cluster.
    pub node_id: Option<String>,
    /// Prefix of pub/sub channels and counter keys.
    pub channel_prefix: String,
}

/// Randomness from the OS for session ids; if the OS source ever fails, a
/// generator seeded from it at start-up keeps the server running.
struct OsRng {
    fallback: SeededRng,
}

impl Rng for OsRng {
    fn fill(&mut self, dest: &mut [u8]) {
        if getrandom::getrandom(dest).is_err() {
            self.fallback.fill(dest);
        }
    }
}

fn os_rng() -> OsRng {
    let mut seed = [0u8; 8];
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let s = if getrandom::getrandom(&mut seed).is_ok() {
        u64::from_le_bytes(seed)
    } else {
        t ^ u64::from(std::process::id()).rotate_left(32)
    };
    OsRng {
        fallback: SeededRng::new(s ^ t),
    }
}

enum Kind {
    /// Plain HTTP: bytes of the head(s) read so far, and when to give up.
    Http { buf: Vec<u8>, deadline: u64 },
    /// Handed to the hub.
    Ws(ConnId),
    /// The hub closed it (or we answered and close): only writing is left.
    Closing,
    /// Everything was written and our side shut down; reading (and
    /// discarding) until the peer's FIN or the deadline, so unread input
    /// does not turn the close into a reset that could destroy the last
    /// bytes we sent.
    Lingering { deadline: u64 },
}

struct Conn {
    stream: TcpStream,
    kind: Kind,
    out: VecDeque<Bytes>,
    /// Bytes of `out.front()` already written.
    front_off: usize,
    /// Bytes in `out` not yet written.
    queued: usize,
    /// Plain HTTP only: reading stopped because `queued` passed
    /// [`HTTP_OUT_LIMIT`] (a client pipelining requests without reading the
    /// answers); resumed by `flush`.
    read_paused: bool,
    /// Close once `out` is written.
    close_when_flushed: bool,
}

/// The running server.
pub struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: HashMap<Token, Conn>,
    next_token: usize,
    by_hub: HashMap<ConnId, Token>,
    /// Idle HTTP connections and lingering closes, by deadline.
    http_deadlines: BTreeSet<(u64, Token)>,
    hub: Hub,
    chat: Chat,
    redis: Option<Redis>,
    redis_events: Vec<RedisEvent>,
    test_hooks: bool,
    start: Instant,
    read_buf: Vec<u8>,
}

impl Server {
    /// Binds the listener and (with `--redis`) starts connecting to Redis.
    pub fn bind(opts: &Options) -> Result<Server, String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let mut listener = TcpListener::bind(opts.addr)
            .map_err(|e| format!("cannot listen on {}: {e}", opts.addr))?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("register: {e}"))?;
        let config = Config {
            node_id: opts.node_id.clone(),
            channel_prefix: opts.channel_prefix.clone(),
            ..Config::default()
        };
        let hub = Hub::new(config, Box::new(os_rng())).map_err(|e| format!("hub: {e}"))?;
        let redis = match opts.redis {
            None => None,
            Some(addr) => {
                // Fail fast at start-up when Redis is not there at all; later
                // losses are reconnected with backoff.
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3))
                    .map_err(|e| format!("cannot reach Redis at {addr}: {e}"))?;
                Some(
                    Redis::new(poll.registry(), addr, REDIS_SUB, REDIS_CMD)
                        .map_err(|e| format!("redis at {addr}: {e}"))?,
                )
            }
        };
        Ok(Server {
            poll,
            listener,
            conns: HashMap::new(),
            next_token: FIRST_CONN,
            by_hub: HashMap::new(),
            http_deadlines: BTreeSet::new(),
            hub,
            chat: Chat::new(opts.redis.is_some(), &opts.channel_prefix),
            redis,
            redis_events: Vec::new(),
            test_hooks: opts.test_hooks,
            start: Instant::now(),
            read_buf: vec![0; 64 << 10],
        })
    }

    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Runs until a fatal poll error.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let now = self.now();
            let deadline = [
                self.hub.poll_timeout(),
                self.http_deadlines.first().map(|d| d.0),
                self.redis.as_ref().and_then(Redis::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
            let timeout = deadline.map(|d| Duration::from_millis(d.saturating_sub(now)));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = self.now();
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept_all(now),
                    t if self.redis.as_ref().is_some_and(|r| r.owns(t)) => {
                        if let Some(r) = self.redis.as_mut() {
                            r.handle_ready(self.poll.registry(), t, now, &mut self.redis_events);
                        }
                    }
                    t => self.conn_ready(t, now, ev.is_readable(), ev.is_writable()),
                }
                self.drain(now);
            }
            if self.hub.poll_timeout().is_some_and(|d| d <= now) {
                self.hub.handle_timeout(now);
            }
            if let Some(r) = self.redis.as_mut() {
                r.handle_timeout(self.poll.registry(), now, &mut self.redis_events);
            }
            self.expire_http(now);
            self.drain(now);
        }
    }

    fn accept_all(&mut self, now: u64) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _peer)) => {
                    if self.conns.len() >= MAX_SOCKETS {
                        drop(stream);
                        continue;
                    }
                    let token = Token(self.next_token);
                    self.next_token += 1;
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let deadline = now + HTTP_IDLE_MS;
                    self.http_deadlines.insert((deadline, token));
                    self.conns.insert(
                        token,
                        Conn {
                            stream,
                            kind: Kind::Http {
                                buf: Vec::new(),
                                deadline,
                            },
                            out: VecDeque::new(),
                            front_off: 0,
                            queued: 0,
                            read_paused: false,
                            close_when_flushed: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // EMFILE and friends: leave the rest queued in the
                    // kernel and try again on the next event.
                    eprintln!("chat: accept: {e}");
                    return;
                }
            }
        }
    }

    fn conn_ready(&mut self, token: Token, now: u64, readable: bool, writable: bool) {
        if writable {
            self.flush(token);
        }
        if readable {
            self.read(token, now);
        }
    }

    /// Reads everything available and feeds it on.
    fn read(&mut self, token: Token, now: u64) {
        loop {
            let Some(c) = self.conns.get_mut(&token) else {
                return;
            };
            if matches!(c.kind, Kind::Http { .. }) && c.queued > HTTP_OUT_LIMIT {
                c.read_paused = true;
                return;
            }
            if matches!(c.kind, Kind::Closing | Kind::Lingering { .. }) {
                // Discard: only writing is left.
                match c.stream.read(&mut self.read_buf) {
                    Ok(0) => return self.remove(token, now),
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(_) => return self.remove(token, now),
                }
            }
            let n = match c.stream.read(&mut self.read_buf) {
                Ok(0) => return self.remove(token, now),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => return self.remove(token, now),
            };
            match &mut c.kind {
                Kind::Ws(id) => {
                    let id = *id;
                    self.hub.handle_input(id, now, &self.read_buf[..n]);
                    // Keep outputs flowing between reads of a fast sender.
                    self.drain(now);
                }
                Kind::Http { buf, .. } => {
                    buf.extend_from_slice(&self.read_buf[..n]);
                    self.http_requests(token, now);
                }
                Kind::Closing | Kind::Lingering { .. } => {}
            }
        }
    }

    /// Answers every complete request head in the connection's buffer.
    fn http_requests(&mut self, token: Token, now: u64) {
        loop {
            let parsed = match self.conns.get_mut(&token) {
                Some(c) if c.queued > HTTP_OUT_LIMIT => {
                    c.read_paused = true;
                    return;
                }
                Some(Conn {
                    kind: Kind::Http { buf, .. },
                    ..
                }) => http::parse_head(buf),
                _ => return,
            };
            let head = match parsed {
                Ok(None) => return,
                Ok(Some(h)) => h,
                Err(e) => {
                    self.set_closing(token);
                    return self.respond(token, e.response(), true);
                }
            };
            match http::route(&head, self.test_hooks) {
                Route::Respond { bytes, close } => {
                    self.consume_head(token, head.len, now);
                    if close {
                        self.set_closing(token);
                    }
                    self.respond(token, bytes, close);
                }
                Route::Drop { user } => {
                    self.consume_head(token, head.len, now);
                    let n = self.drop_user(&user, now);
                    let body = format!("dropped {n}");
                    let bytes = http::response(
                        200,
                        "text/plain; charset=utf-8",
                        body.as_bytes(),
                        head.close,
                    );
                    if head.close {
                        self.set_closing(token);
                    }
                    self.respond(token, bytes, head.close);
                }
                Route::Upgrade => return self.upgrade(token, now),
            }
            if head.close {
                return;
            }
        }
    }

    /// Drops a handled head from the buffer and restarts the idle timer.
    fn consume_head(&mut self, token: Token, len: usize, now: u64) {
        if let Some(Conn {
            kind: Kind::Http { buf, deadline },
            ..
        }) = self.conns.get_mut(&token)
        {
            buf.drain(..len);
            self.http_deadlines.remove(&(*deadline, token));
            *deadline = now + HTTP_IDLE_MS;
            self.http_deadlines.insert((*deadline, token));
        }
    }

    /// From now on the connection only writes what is queued, then closes.
    fn set_closing(&mut self, token: Token) {
        if let Some(c) = self.conns.get_mut(&token) {
            if let Kind::Http { deadline, .. } = c.kind {
                self.http_deadlines.remove(&(deadline, token));
            }
            c.kind = Kind::Closing;
        }
    }

    /// Hands an HTTP connection, with every byte read so far, to the hub.
    fn upgrade(&mut self, token: Token, now: u64) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        let Kind::Http { buf, deadline } = &mut c.kind else {
            return;
        };
        let bytes = std::mem::take(buf);
        self.http_deadlines.remove(&(*deadline, token));
        match self.hub.new_connection(now) {
            Ok(id) => {
                c.kind = Kind::Ws(id);
                self.by_hub.insert(id, token);
                self.hub.handle_input(id, now, &bytes);
            }
            Err(refused) => {
                c.kind = Kind::Closing;
                self.out(token, refused.response, true);
            }
        }
    }

    fn respond(&mut self, token: Token, bytes: Vec<u8>, close: bool) {
        self.out(token, Bytes::from(bytes), close);
    }

    /// Queues bytes for a connection and writes what the socket takes.
    fn out(&mut self, token: Token, bytes: Bytes, close: bool) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        if !bytes.is_empty() {
            c.queued += bytes.len();
            c.out.push_back(bytes);
        }
        c.close_when_flushed |= close;
        self.flush(token);
    }

    /// Writes queued bytes until the socket would block; reports them to the
    /// hub; closes the connection if it was waiting for that.
    fn flush(&mut self, token: Token) {
        let Some(c) = self.conns.get_mut(&token) else {
            return;
        };
        let mut written = 0usize;
        let mut failed = false;
        while let Some(front) = c.out.front() {
            match c.stream.write(&front[c.front_off..]) {
                Ok(0) => {
                    failed = true;
                    break;
                }
                Ok(n) => {
                    written += n;
                    c.queued -= n;
                    c.front_off += n;
                    if c.front_off == front.len() {
                        c.out.pop_front();
                        c.front_off = 0;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if let Kind::Ws(id) = c.kind {
            if written > 0 {
                self.hub.handle_written(id, written);
            }
        }
        let done = c.out.is_empty() && c.close_when_flushed;
        if failed {
            let now = self.now();
            self.remove(token, now);
        } else if done {
            if !matches!(c.kind, Kind::Closing) {
                // A close asked for while still HTTP (answer then close).
                if let Kind::Http { deadline, .. } = c.kind {
                    self.http_deadlines.remove(&(deadline, token));
                }
            }
            let now = self.start.elapsed().as_millis() as u64;
            c.close_when_flushed = false;
            if c.stream.shutdown(Shutdown::Write).is_err() {
                return self.remove(token, now);
            }
            let deadline = now + LINGER_MS;
            c.kind = Kind::Lingering { deadline };
            self.http_deadlines.insert((deadline, token));
        } else if c.read_paused && c.queued <= HTTP_OUT_LIMIT {
            // The client caught up: answer what it already sent, then read on.
            c.read_paused = false;
            let now = self.start.elapsed().as_millis() as u64;
            self.http_requests(token, now);
            self.read(token, now);
        }
    }

    /// Forgets a connection: tells the hub (if it still owns it) and closes
    /// the socket.
    fn remove(&mut self, token: Token, now: u64) {
        let Some(mut c) = self.conns.remove(&token) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        match c.kind {
            Kind::Ws(id) => {
                self.by_hub.remove(&id);
                self.chat.conn_closed(id);
                self.hub.handle_eof(id, now);
            }
            Kind::Http { deadline, .. } => {
                self.http_deadlines.remove(&(deadline, token));
            }
            Kind::Lingering { deadline } => {
                self.http_deadlines.remove(&(deadline, token));
            }
            Kind::Closing => {}
        }
        let _ = c.stream.shutdown(Shutdown::Both);
    }

    /// `/test/drop`: cuts every TCP connection of `user` without a close
    /// frame, as a network failure would.
    fn drop_user(&mut self, user: &str, now: u64) -> usize {
        let ids = self.chat.conns_of(user);
        let mut n = 0;
        for id in ids {
            if let Some(&token) = self.by_hub.get(&id) {
                self.remove(token, now);
                n += 1;
            } else {
                self.chat.conn_closed(id);
            }
        }
        n
    }

    fn expire_http(&mut self, now: u64) {
        while let Some(&(d, token)) = self.http_deadlines.first() {
            if d > now {
                break;
            }
            self.http_deadlines.pop_first();
            self.remove(token, now);
        }
    }

    /// Acts on everything the hub, the chat and Redis have for us, until
    /// none of them has anything left.
    fn drain(&mut self, now: u64) {
        loop {
            let mut progressed = false;
            while let Some(o) = self.hub.poll_output() {
                progressed = true;
                match o {
                    HubOutput::Transmit { conn, bytes } => {
                        if let Some(&t) = self.by_hub.get(&conn) {
                            self.out(t, bytes, false);
                        }
                    }
                    HubOutput::Close { conn } => {
                        self.chat.conn_closed(conn);
                        if let Some(t) = self.by_hub.remove(&conn) {
                            if let Some(c) = self.conns.get_mut(&t) {
                                c.kind = Kind::Closing;
                            }
                            self.out(t, Bytes::new(), true);
                        }
                    }
                    HubOutput::Event(e) => self.chat.on_event(&mut self.hub, now, e),
                    HubOutput::Publish { channel, bytes } => {
                        if let Some(r) = self.redis.as_mut() {
                            if let Err(e) = r.publish(channel.as_bytes(), &bytes) {
                                eprintln!("chat: publish on {channel}: {e}");
                            }
                        }
                    }
                    HubOutput::Subscribe { channel } => {
                        if let Some(r) = self.redis.as_mut() {
                            if let Err(e) = r.subscribe(channel.as_bytes()) {
                                eprintln!("chat: subscribe {channel}: {e}");
                            }
                        }
                    }
                    HubOutput::Unsubscribe { channel } => {
                        if let Some(r) = self.redis.as_mut() {
                            if let Err(e) = r.unsubscribe(channel.as_bytes()) {
                                eprintln!("chat: unsubscribe {channel}: {e}");
                            }
                        }
                    }
                }
            }
            for (tag, key) in self.chat.take_incr_requests() {
                progressed = true;
                let res = match self.redis.as_mut() {
                    Some(r) => r.incr(key.as_bytes(), tag),
                    None => Err(crate::redis::RedisError::Disconnected),
                };
                if let Err(e) = res {
                    self.chat
                        .on_incr(&mut self.hub, now, tag, Err(e.to_string()));
                }
            }
            for ev in std::mem::take(&mut self.redis_events) {
                progressed = true;
                match ev {
                    RedisEvent::Message { channel, payload } => {
                        if let Err(e) = self.hub.handle_remote(now, &payload) {
                            eprintln!(
                                "chat: ignored a message on {}: {e}",
                                String::from_utf8_lossy(&channel)
                            );
                        }
                    }
                    RedisEvent::Incr { tag, result } => {
                        self.chat.on_incr(
                            &mut self.hub,
                            now,
                            tag,
                            result.map_err(|e| e.to_string()),
                        );
                    }
                    RedisEvent::Link { which, up, reason } => {
                        if up {
                            eprintln!("chat: redis {which} connection up");
                        } else {
                            eprintln!(
                                "chat: redis {which} connection lost ({reason}); reconnecting"
                            );
                        }
                    }
                }
            }
            if !progressed {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The real loop on a loopback socket (the server thread is left
    //! running when the test ends; the process exits with it).
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::net::TcpStream as StdStream;

    fn start(test_hooks: bool) -> SocketAddr {
        let opts = Options {
            addr: "127.0.0.1:0".parse().unwrap(),
            test_hooks,
            redis: None,
            node_id: None,
            channel_prefix: "evsock".into(),
        };
        let mut s = Server::bind(&opts).unwrap();
        let addr = s.local_addr().unwrap();
        std::thread::spawn(move || s.run());
        addr
    }

    fn connect(addr: SocketAddr) -> StdStream {
        let s = StdStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    /// Reads one response: (status line, headers lowercased, body).
    fn response(r: &mut BufReader<&StdStream>) -> (String, Vec<String>, Vec<u8>) {
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut headers = Vec::new();
        let mut len = 0;
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            let l = l.trim_end().to_ascii_lowercase();
            if l.is_empty() {
                break;
            }
            if let Some(v) = l.strip_prefix("content-length: ") {
                len = v.parse().unwrap();
            }
            headers.push(l);
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (status.trim_end().to_owned(), headers, body)
    }

    #[test]
    fn serves_pipelined_keep_alive_requests_then_closes() {
        let addr = start(false);
        let mut s = connect(addr);
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /evsock.js HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(&s);
        let (st, h, body) = response(&mut r);
        assert_eq!(st, "HTTP/1.1 200 OK");
        assert!(h.contains(&"content-type: text/html; charset=utf-8".to_owned()));
        assert_eq!(body, include_bytes!("../static/index.html"));
        assert_eq!(response(&mut r).0, "HTTP/1.1 404 Not Found");
        let (st, h, body) = response(&mut r);
        assert_eq!(st, "HTTP/1.1 200 OK");
        assert!(h.contains(&"connection: close".to_owned()));
        assert_eq!(
            body.len(),
            include_bytes!("../../../browser/evsock.js").len()
        );
        // Then the server closes its side.
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
    }

    /// A client that pipelines many large answers before reading any: the
    /// host stops reading at its limit and resumes as the client reads,
    /// and every answer arrives, in order.
    #[test]
    fn pipelined_requests_are_paced_not_lost() {
        let addr = start(false);
        let s = connect(addr);
        let n = 400; // 200 x 66 KB + 200 x 404, far past the host's limit and socket buffers
        let writer = {
            let mut s = s.try_clone().unwrap();
            std::thread::spawn(move || {
                for i in 0..n {
                    let path = if i % 2 == 0 { "/evsock.js" } else { "/nope" };
                    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
                        .unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let mut r = BufReader::new(&s);
        for i in 0..n {
            let (st, _, body) = response(&mut r);
            if i % 2 == 0 {
                assert_eq!(st, "HTTP/1.1 200 OK", "answer {i}");
                assert_eq!(
                    body.len(),
                    include_bytes!("../../../browser/evsock.js").len()
                );
            } else {
                assert_eq!(st, "HTTP/1.1 404 Not Found", "answer {i}");
            }
        }
        writer.join().unwrap();
    }

    #[test]
    fn oversized_heads_get_431_and_drop_needs_test_hooks() {
        let addr = start(false);
        let mut s = connect(addr);
        let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
        big.extend_from_slice(&vec![b'a'; 20_000]);
        // The server may close before reading everything; ignore that error.
        let _ = s.write_all(&big);
        let mut r = BufReader::new(&s);
        assert!(response(&mut r).0.starts_with("HTTP/1.1 431 "));
        let mut s = connect(addr);
        s.write_all(b"GET /test/drop?user=bob HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(
            response(&mut BufReader::new(&s)).0,
            "HTTP/1.1 404 Not Found"
        );
    }

    /// A WebSocket client over the real loop: upgrade (with the hello sent
    /// in the same packet as the head), welcome, then /test/drop cuts it
    /// without a close frame.
    #[test]
    fn upgrades_with_pipelined_bytes_and_drops_on_request() {
        let addr = start(true);
        let mut ws = connect(addr);
        let hello = br#"["evs/hello",{"v":1,"rx":0,"lo":1}]"#;
        let mut req = b"GET /ws?user=bob HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .to_vec();
        req.extend_from_slice(&[0x81, 0x80 | hello.len() as u8, 0, 0, 0, 0]);
        req.extend_from_slice(hello);
        ws.write_all(&req).unwrap();
        let mut r = BufReader::new(&ws);
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        assert!(status.starts_with("HTTP/1.1 101"), "{status}");
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            if l == "\r\n" {
                break;
            }
        }
        let mut hdr = [0u8; 2];
        r.read_exact(&mut hdr).unwrap();
        assert_eq!(hdr[0], 0x81, "a text frame");
        let mut payload = vec![0; (hdr[1] & 0x7f) as usize];
        r.read_exact(&mut payload).unwrap();
        let welcome: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(welcome[0], "evs/welcome");
        assert_eq!(welcome[1]["st"], "new");

        let mut http = connect(addr);
        http.write_all(b"GET /test/drop?user=bob HTTP/1.1\r\n\r\n")
            .unwrap();
        let (st, _, body) = response(&mut BufReader::new(&http));
        assert_eq!(
            (st.as_str(), body.as_slice()),
            ("HTTP/1.1 200 OK", &b"dropped 1"[..])
        );
        // bob's socket is closed without a close frame: EOF, nothing else.
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "no close frame: {rest:?}");
        http.write_all(b"GET /test/drop?user=bob HTTP/1.1\r\n\r\n")
            .unwrap();
        assert_eq!(response(&mut BufReader::new(&http)).2, b"dropped 0");
    }
}
