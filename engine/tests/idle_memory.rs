//! What idle connections, sessions and hub clients keep on the heap, and
//! that busy ones do not pay for it per message. A global allocator counts
//! the live heap and the allocation calls of the current thread (tests
//! running in parallel do not disturb each other).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use bytes::Bytes;
use evsock::hub::{self, Hub, HubEvent, HubOutput};
use evsock::session::{self, MessageKind, Output, Session, SessionEvent};
use evsock::ws::{Accept, Config, Connection, Event};
use evsock::SeededRng;

struct Counting;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

fn add(n: isize, call: bool) {
    // `try_with`: the allocator also runs while thread locals are torn down.
    let _ = LIVE.try_with(|l| l.set(l.get() + n));
    if call {
        let _ = CALLS.try_with(|c| c.set(c.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize, true);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize, true);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize), false);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize, true);
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn live() -> isize {
    LIVE.with(|l| l.get())
}

fn calls() -> usize {
    CALLS.with(|c| c.get())
}

const UPGRADE: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked text frame (mask key 0, so the payload reads as is).
fn frame(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut f = vec![0x81, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    f.extend_from_slice(payload);
    f
}

/// A server connection after the upgrade, everything drained.
fn open_server(cfg: &Arc<Config>) -> Connection {
    let mut c = Connection::server(cfg.clone(), 0);
    c.handle_input(0, UPGRADE);
    assert!(matches!(c.poll_event(), Some(Event::Request(_))));
    c.accept(Accept::default()).expect("accept");
    while c.poll_transmit().is_some() {}
    while let Some(e) = c.poll_event() {
        assert!(matches!(e, Event::Open { .. }), "{e:?}");
    }
    c
}

/// Delivers every message in `input` at `now` and echoes it; returns how
/// many there were.
fn echo(c: &mut Connection, now: u64, input: &[u8]) -> usize {
    c.handle_input(now, input);
    let mut n = 0;
    while let Some(e) = c.poll_event() {
        if let Event::Message(m) = e {
            c.send(m).expect("echo");
            n += 1;
        }
    }
    while c.poll_transmit().is_some() {}
    n
}

#[test]
fn idle_server_connection_keeps_no_heap() {
    let cfg = Arc::new(Config::default());
    assert!(
        std::mem::size_of::<Connection>() <= 112,
        "Connection is {} bytes",
        std::mem::size_of::<Connection>()
    );
    let msg = frame(&[b'x'; 100]);
    let before = live();
    let mut conns: Vec<Connection> = Vec::with_capacity(100);
    let vec_bytes = live() - before;
    for _ in 0..100 {
        conns.push(open_server(&cfg));
    }
    assert_eq!(live() - before - vec_bytes, 0, "fresh idle connections");
    // One message each way, then quiet: everything goes again, without
    // any call to shrink_idle.
    for c in &mut conns {
        assert_eq!(echo(c, 5, &msg), 1);
    }
    assert_eq!(live() - before - vec_bytes, 0, "idle after an echo");
}

#[test]
fn busy_connection_allocates_nothing_per_message() {
    let cfg = Arc::new(Config::default());
    let mut c = open_server(&cfg);
    let msg = frame(br#"["chat/msg",{"text":"hello"}]"#);
    // Warm up: inputs 1 ms apart make the connection busy.
    for t in 1..=20 {
        assert_eq!(echo(&mut c, t, &msg), 1);
    }
    let calls0 = calls();
    let live0 = live();
    for t in 21..=220 {
        assert_eq!(echo(&mut c, t, &msg), 1);
    }
    assert_eq!(calls() - calls0, 0, "allocations in 200 busy echoes");
    assert_eq!(live() - live0, 0);
    // Quiet for a while: the next timer frees what busy traffic kept.
    c.handle_timeout(5_000);
    c.shrink_idle();
    assert!(live() < live0, "quiet connection still holds its buffers");
}

/// The fan-out shape: a server connection that only sends (its client
/// reads and says nothing), drained after every few messages. Sends count
/// towards the busy streak like inputs do, so it keeps its buffers too.
#[test]
fn busy_sending_connection_allocates_nothing_per_message() {
    let cfg = Arc::new(Config::default());
    let mut c = open_server(&cfg);
    let small = Bytes::from_static(br#"["chat/msg",{"text":"hello"}]"#);
    let big = Bytes::from(vec![b'x'; 1024]);
    let round = |c: &mut Connection| {
        for _ in 0..4 {
            c.send_binary(small.clone()).expect("send");
            c.send_binary(big.clone()).expect("send");
        }
        while c.poll_transmit().is_some() {}
    };
    for _ in 0..20 {
        round(&mut c);
    }
    let (calls0, live0) = (calls(), live());
    for _ in 0..200 {
        round(&mut c);
    }
    assert_eq!(calls() - calls0, 0, "allocations in 200 busy send rounds");
    assert_eq!(live() - live0, 0);
}

/// Bursts just over the writer's 16 KiB chunk (16 x 1 KiB between two
/// drains) overflow into a second buffer every time: the two buffers take
/// turns, so steady bursts allocate nothing either.
#[test]
fn bursts_over_one_chunk_allocate_nothing_per_burst() {
    let cfg = Arc::new(Config::default());
    let mut c = open_server(&cfg);
    let big = Bytes::from(vec![b'x'; 1024]);
    let burst = |c: &mut Connection| {
        for _ in 0..16 {
            c.send_binary(big.clone()).expect("send");
        }
        let mut chunks = 0;
        let mut bytes = 0;
        while let Some(b) = c.poll_transmit() {
            chunks += 1;
            bytes += b.len();
        }
        assert_eq!(bytes, 16 * (1024 + 4));
        chunks
    };
    for _ in 0..20 {
        burst(&mut c);
    }
    let (calls0, live0) = (calls(), live());
    for _ in 0..200 {
        assert!(burst(&mut c) >= 2, "the burst should overflow one chunk");
    }
    assert_eq!(calls() - calls0, 0, "allocations in 200 bursts");
    assert_eq!(live() - live0, 0);
}

/// A masked binary frame of `len` bytes (mask key 0), any length.
fn binary_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0x82];
    match len {
        0..=125 => f.push(0x80 | len as u8),
        126..=0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0; 4]);
    f.extend((0..len).map(|i| (i % 251) as u8));
    f
}

/// Receives `wire` at `now` through `read_from` in reads of at most 64 KiB
/// (the messages are checked and dropped); returns how many arrived.
fn receive_in_place(c: &mut Connection, now: u64, wire: &[u8], len: usize) -> usize {
    let mut rest = wire;
    let mut n = 0;
    while !rest.is_empty() {
        let mut piece = &rest[..rest.len().min(64 << 10)];
        let k = c.read_from(&mut piece, || now).expect("reading a slice");
        assert!(k > 0);
        rest = &rest[k..];
        while let Some(e) = c.poll_event() {
            match e {
                Event::Message(m) => {
                    assert_eq!(m.len(), len);
                    n += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    }
    n
}

/// Large messages received straight into the connection's buffer: once
/// busy, the connection takes back the same buffer for every message (the
/// application dropped the last one), so nothing is allocated or zeroed
/// per message; quiet, it lets the buffer go.
#[test]
fn busy_in_place_receiver_allocates_nothing_per_large_message() {
    let cfg = Arc::new(Config::default());
    let mut c = open_server(&cfg);
    let len = 64 << 10;
    let wire = binary_frame(len);
    for t in 1..=20 {
        assert_eq!(receive_in_place(&mut c, t, &wire, len), 1);
    }
    let (calls0, live0) = (calls(), live());
    for t in 21..=120 {
        assert_eq!(receive_in_place(&mut c, t, &wire, len), 1);
    }
    assert_eq!(
        calls() - calls0,
        0,
        "allocations in 100 busy large messages"
    );
    assert_eq!(live() - live0, 0);
    c.handle_timeout(5_000);
    assert!(
        live() < live0 - (60 << 10),
        "quiet connection still holds its buffer"
    );
}

/// Small messages received in place by a connection that is not busy:
/// idle afterwards, it holds no heap at all.
#[test]
fn idle_after_receiving_in_place_keeps_no_heap() {
    let cfg = Arc::new(Config::default());
    let wire = frame(&[b'y'; 100]);
    let before = live();
    let mut c = open_server(&cfg);
    let mut piece = &wire[..];
    assert_eq!(c.read_from(&mut piece, || 5).unwrap(), wire.len());
    assert!(matches!(c.poll_event(), Some(Event::Message(_))));
    assert!(c.poll_event().is_none());
    assert_eq!(live() - before, 0, "idle after an in-place message");
    // Woken for nothing: the read fails (WouldBlock) and takes nothing. The
    // room it was offered goes again.
    struct WouldBlock;
    impl std::io::Read for WouldBlock {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::WouldBlock.into())
        }
    }
    for t in 6..10 {
        assert!(c.read_from(&mut WouldBlock, || t).is_err());
        assert_eq!(live() - before, 0, "idle after a read that failed");
    }
    // The same by hand: a room, then nothing committed.
    let _ = c.input_buffer();
    assert!(live() - before > 0);
    c.commit_input(11, 0);
    assert_eq!(live() - before, 0, "idle after an empty commit");
}

/// Hands every `Send` of `from` to `to`; returns the events of `from`.
fn pump(now: u64, from: &mut Session, to: &mut Session) -> Vec<SessionEvent> {
    let mut ev = Vec::new();
    while let Some(o) = from.poll_output() {
        match o {
            Output::Send { kind, payload } => to.handle_message_bytes(now, kind, payload),
            Output::Event(e) => ev.push(e),
        }
    }
    ev
}

#[test]
fn idle_session_is_its_struct_and_id() {
    let cfg = Arc::new(session::Config::default());
    assert!(
        std::mem::size_of::<Session>() <= 160,
        "Session is {} bytes",
        std::mem::size_of::<Session>()
    );
    let mut c = Session::client(cfg.clone(), Box::new(SeededRng::new(1)));
    let before = live();
    let mut s = Session::server(cfg.clone(), "S1", Box::new(SeededRng::new(2))).unwrap();
    assert_eq!(live() - before, 2, "a new server session holds its id only");
    c.handle_connected(0);
    s.handle_connected(0);
    pump(0, &mut c, &mut s);
    pump(0, &mut s, &mut c);
    pump(0, &mut c, &mut s);
    s.shrink_idle();
    c.handle_timeout(5_000);
    c.shrink_idle();
    // Both ids ("S1" here and the copy the client learnt), nothing else.
    assert_eq!(live() - before, 4, "established and idle");

    // A reliable message not yet acknowledged stays across shrink_idle.
    s.send_reliable(10_000, "chat/msg", Bytes::from_static(b"1"))
        .unwrap();
    let out: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    s.shrink_idle();
    assert_eq!(s.unacked_messages(), 1);
    for o in out {
        if let Output::Send { kind, payload } = o {
            c.handle_message_bytes(10_000, kind, payload);
        }
    }
    let got = pump(10_000, &mut c, &mut s);
    assert!(
        matches!(&got[..], [SessionEvent::Message { id: Some(1), .. }]),
        "{got:?}"
    );
    drop(got);
    // The client acks after its delay; then nothing is in flight.
    c.handle_timeout(10_000 + cfg.ack_delay_ms);
    pump(12_000, &mut c, &mut s);
    let ev: Vec<Output> = std::iter::from_fn(|| s.poll_output()).collect();
    assert!(ev.is_empty(), "{ev:?}");
    assert_eq!(s.unacked_messages(), 0);
    s.shrink_idle();
    c.handle_timeout(20_000);
    let late = pump(20_000, &mut c, &mut s);
    assert!(late.is_empty(), "{late:?}");
    c.shrink_idle();
    s.shrink_idle();
    assert_eq!(live() - before, 4, "idle again once acknowledged");
    drop(s);
    assert_eq!(live() - before, 2, "the client's copy of the id");
    drop(c);
}

#[test]
fn client_sessions_received_in_order_after_shrinking() {
    // The server side shrinks after every call (as the hub does); the
    // stream must still arrive whole and in order.
    let cfg = Arc::new(session::Config::default());
    let mut c = Session::client(cfg.clone(), Box::new(SeededRng::new(1)));
    let mut s = Session::server(cfg, "S1", Box::new(SeededRng::new(2))).unwrap();
    c.handle_connected(0);
    s.handle_connected(0);
    pump(0, &mut c, &mut s);
    pump(0, &mut s, &mut c);
    let mut got = Vec::new();
    for i in 0..50u64 {
        let now = i * 700; // sometimes busy, sometimes not
        s.send_reliable(now, "n/x", Bytes::from(i.to_string()))
            .unwrap();
        s.shrink_idle();
        pump(now, &mut s, &mut c);
        s.shrink_idle();
        for e in pump(now, &mut c, &mut s) {
            if let SessionEvent::Message { data, .. } = e {
                got.push(String::from_utf8(data.to_vec()).unwrap());
            }
        }
        c.handle_timeout(now + 100);
        pump(now + 100, &mut c, &mut s);
        s.shrink_idle();
    }
    let want: Vec<String> = (0..50).map(|i: u64| i.to_string()).collect();
    assert_eq!(got, want);
    assert_eq!(s.unacked_messages(), 0);
    let _ = MessageKind::Text;
}

fn drain(hub: &mut Hub, now: u64, user_no: &mut u64) -> Vec<Bytes> {
    let mut sent = Vec::new();
    while let Some(o) = hub.poll_output() {
        match o {
            HubOutput::Transmit { conn, bytes } => {
                hub.handle_written(conn, bytes.len());
                sent.push(bytes);
            }
            HubOutput::Event(HubEvent::Upgrade { conn, .. }) => {
                *user_no += 1;
                hub.accept(conn, now, &format!("user-{user_no}"))
                    .expect("accept");
            }
            HubOutput::Close { .. } => panic!("closed"),
            _ => {}
        }
    }
    sent
}

/// The `sid` of the welcome among unmasked server frames.
fn welcome_sid(frames: &[Bytes]) -> String {
    for f in frames {
        let text = String::from_utf8_lossy(&f[2..]);
        if let Some(i) = text.find("\"sid\":\"") {
            let rest = &text[i + 7..];
            return rest[..rest.find('"').unwrap()].to_owned();
        }
    }
    panic!("no welcome in {frames:?}");
}

#[test]
fn idle_hub_client_is_well_under_a_kibibyte() {
    let n = 2048;
    let cfg = hub::Config {
        admission_rate: 0,
        ..hub::Config::default()
    };
    let mut ids = Vec::with_capacity(n);
    let before = live();
    let mut hub = Hub::new(cfg, Box::new(SeededRng::new(7))).unwrap();
    let hello = frame(br#"["evs/hello",{"v":1}]"#);
    let mut user_no = 0;
    for _ in 0..n {
        let c = hub.new_connection(1_000).unwrap();
        hub.handle_input(c, 1_000, UPGRADE);
        drain(&mut hub, 1_000, &mut user_no);
        hub.handle_input(c, 1_000, &hello);
        drain(&mut hub, 1_000, &mut user_no);
        ids.push(c);
    }
    let ids_bytes = (n * std::mem::size_of::<hub::ConnId>()) as isize;
    let per_client = (live() - before - ids_bytes) as f64 / n as f64;
    assert_eq!(hub.stats().clients, n);
    assert!(per_client < 900.0, "{per_client:.0} bytes per idle client");
}

#[test]
fn hub_session_ids_resume_only_with_the_whole_id() {
    let cfg = hub::Config {
        admission_rate: 0,
        ..hub::Config::default()
    };
    let mut hub = Hub::new(cfg, Box::new(SeededRng::new(7))).unwrap();
    let mut user_no = 0;
    let hello = frame(br#"["evs/hello",{"v":1}]"#);
    let a = hub.new_connection(0).unwrap();
    hub.handle_input(a, 0, UPGRADE);
    drain(&mut hub, 0, &mut user_no);
    hub.handle_input(a, 0, &hello);
    let sid = welcome_sid(&drain(&mut hub, 0, &mut user_no));
    let (random, slot) = sid.rsplit_once('.').expect("RANDOM.SLOT");
    assert_eq!(random.len(), 22);
    hub.handle_eof(a, 1);
    while hub.poll_output().is_some() {}

    // The same user with the right slot and a forged random part: not a
    // resume (the client is told its session was reset).
    let try_resume = |hub: &mut Hub, sid: &str, now: u64| -> String {
        let c = hub.new_connection(now).unwrap();
        hub.handle_input(c, now, UPGRADE);
        while let Some(o) = hub.poll_output() {
            if let HubOutput::Event(HubEvent::Upgrade { conn, .. }) = o {
                hub.accept(conn, now, "user-1").unwrap();
            }
        }
        let h = format!(r#"["evs/hello",{{"v":1,"sid":"{sid}","rx":0,"lo":1}}]"#);
        hub.handle_input(c, now, &frame(h.as_bytes()));
        let mut frames = Vec::new();
        let mut resumed = None;
        while let Some(o) = hub.poll_output() {
            match o {
                HubOutput::Transmit { conn, bytes } => {
                    hub.handle_written(conn, bytes.len());
                    frames.push(bytes);
                }
                HubOutput::Event(HubEvent::ClientConnected { resumed: r, .. }) => resumed = Some(r),
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&frames.last().unwrap()[2..]).into_owned();
        assert!(resumed.is_some(), "{text}");
        text
    };
    let forged = format!("{}.{slot}", "A".repeat(22));
    let w = try_resume(&mut hub, &forged, 2);
    assert!(
        w.contains(r#""st":"reset""#) || w.contains(r#""st":"new""#),
        "{w}"
    );
    assert!(!w.contains(&sid), "{w}");
    // The whole id resumes the session.
    let w = try_resume(&mut hub, &sid, 3);
    assert!(w.contains(r#""st":"resumed""#), "{w}");
    assert!(w.contains(&sid), "{w}");
}
