//! The sans-IO WebSocket connection: one state machine for both roles.
//!
//! A host loop is the same in every language:
//!
//! ```text
//! on bytes from the socket:  conn.handle_input(now, &bytes)
//! on socket EOF:             conn.handle_eof(now)
//! on the deadline:           conn.handle_timeout(now)
//! then drain:                loop { match conn.poll_output() {
//!                                Output::Transmit(b) => write b to the socket,
//!                                Output::Event(e)    => act on e,
//!                                Output::Wait(d)     => { arm a timer for d; break } } }
//!                            and once conn.is_closed(), close the socket.
//! ```
//!
//! Frames are decoded lazily, one event at a time, as the host polls. Each
//! event is therefore handled in the state it arrived in: a reply sent while
//! handling a message leaves before the close frame that answers a protocol
//! error (or a peer's close) found later in the same read. Hosts that drain
//! separately should take events first, then transmits (as with wsproto);
//! `poll_output` does the interleaving itself.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use super::close::CloseCode;
use super::config::Config;
use super::deflate::{self, DeflateParams, Deflater};
use super::error::{Error, HandshakeError};
use super::frame::OpCode;
use super::handshake::{self, Accept, ClientRequest, Parsed, Reject, Request};
use super::message::Message;
use super::reader::{deflate_halves, Incoming, Reader};
use super::writer::Writer;
use crate::rng::Rng;

/// Which end of the connection we are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// We accepted the connection; peer frames arrive masked.
    Server,
    /// We opened the connection; our frames are masked.
    Client,
}

/// The coarse state of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// The upgrade handshake is in progress.
    Handshake,
    /// Messages flow both ways.
    Open,
    /// A close frame was sent or received; waiting for the handshake to end.
    Closing,
    /// Finished: the host should close the transport once output is drained.
    Closed,
}

/// How a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Closed {
    /// The close code: the peer's if it closed first, ours if we did, 1006
    /// (abnormal) if no close frame was received, 1005 if the peer's close
    /// frame had no code.
    pub code: CloseCode,
    /// The close reason that went with `code`.
    pub reason: String,
    /// True if the peer sent the first close frame.
    pub by_peer: bool,
    /// True if close frames were exchanged both ways.
    pub clean: bool,
    /// What went wrong, when something did.
    pub error: Option<Error>,
}

/// Something the host should act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Server: an upgrade request awaits [`Connection::accept`] or
    /// [`Connection::reject`].
    Request(Box<Request>),
    /// The handshake finished; messages may flow.
    Open {
        /// The negotiated subprotocol.
        subprotocol: Option<String>,
    },
    /// A complete message.
    Message(Message),
    /// The peer pinged (already answered when `auto_pong` is on).
    Ping(Bytes),
    /// The peer sent a pong.
    Pong(Bytes),
    /// The connection is over. This is always the last event.
    Closed(Closed),
}

/// One step of output, for hosts that drain everything through one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Bytes to write to the transport, in order.
    Transmit(Bytes),
    /// An event to handle.
    Event(Event),
    /// Nothing more to do until new input or the given deadline.
    Wait(Option<u64>),
}

/// What [`Connection::decode_step`] gave.
enum Decoded {
    /// A data message, for the application.
    Message(Message),
    /// Another unit, already handled.
    Handled,
    /// Nothing decodable yet, or the input failed the connection.
    Nothing,
}

#[derive(Debug)]
enum Phase {
    ServerReading,
    ServerDeciding(Box<Request>),
    /// The key we sent, and the request (to check the response against).
    ClientWaiting(Box<(String, ClientRequest)>),
    Open,
    /// We sent a close frame and wait for the peer's.
    CloseSent,
    /// Client: close frames were exchanged; the server should end TCP.
    AwaitEof,
    Closed,
}

/// Most pongs owed at once; a flood of pings beyond it gets answered only
/// for the most recent ones.
const MAX_PENDING_PONGS: usize = 16;

/// "No deadline" in the `u64` timer fields.
const NEVER: u64 = u64::MAX;

/// Inputs (reads, or output starting after the writer was empty) closer
/// together than this count towards a busy streak.
pub const BUSY_GAP_MS: u64 = 1_000;

/// A connection with this many such inputs in a row is busy: it keeps up
/// to [`Config::buffer_retain`] bytes of read and write buffer (and its
/// event queue) between messages, so that steady traffic allocates
/// nothing per message. Otherwise buffers are freed as soon as they are
/// drained.
const BUSY_STREAK: u8 = 2;

/// State most connections never need, or need only for a moment: behind
/// one box, allocated on first use, so an idle server connection does not
/// carry it.
#[derive(Default)]
struct Extra {
    /// Client role: the handshake key and every masking key.
    rng: Option<Box<dyn Rng + Send>>,
    /// The negotiated subprotocol.
    subprotocol: Option<String>,
    /// The close we sent first (code, reason, error that caused it).
    local_close: Option<(CloseCode, String, Option<Error>)>,
    /// The peer's close, when it sent one first.
    remote_close: Option<(CloseCode, String)>,
    /// permessage-deflate's compressor, built on the first message that is
    /// actually compressed.
    deflater: Option<Box<Deflater>>,
    /// Pongs owed (auto-pong), sent with the next output.
    pongs: VecDeque<Bytes>,
}

/// What a connection needs only while bytes or events are in flight.
struct Io {
    reader: Reader,
    writer: Writer,
    events: VecDeque<Event>,
}

/// A sans-IO WebSocket connection (RFC 6455), server or client role.
///
/// # Memory
///
/// An idle server connection is 88 bytes (x86-64): the struct itself and
/// no heap, fresh or after traffic (measured in `tests/idle_memory.rs`; the
/// configuration is shared through an `Arc`). Rarely used state (client
/// role, subprotocol, close handshake, compressor) lives behind one box
/// allocated on first use; permessage-deflate state is built only when a
/// message is actually compressed. The reader, writer and event queue live
/// in another box, built on the first input or output and dropped (with
/// the read and write buffers) as soon as everything is drained, unless
/// the connection is busy (`BUSY_STREAK` inputs in a row, each within
/// [`BUSY_GAP_MS`] of the previous one): busy connections keep it and up
/// to [`Config::buffer_retain`] bytes of buffer (or, receiving in place,
/// the read buffer sized for their reads, at most 64 KiB) so that steady
/// traffic does not allocate per message, until a timer (or
/// [`Connection::shrink_idle`]) finds them quiet for [`BUSY_GAP_MS`].
///
/// # Receiving
///
/// Two ways, which may be mixed between reads: [`Connection::handle_input`]
/// takes bytes the host already holds (and copies them, unmasking as it
/// goes); [`Connection::input_buffer`] and [`Connection::commit_input`] (or
/// [`Connection::read_from`] with a [`std::io::Read`]) let the host read
/// straight into the connection's buffer, so the bytes cross memory once
/// on their way to the application: the faster way for a host reading a
/// socket, worth most for large messages.
pub struct Connection {
    cfg: Arc<Config>,
    /// Reader, writer and event queue: boxed, and dropped whenever they
    /// hold nothing and the connection is not busy.
    io: Option<Box<Io>>,
    phase: Phase,
    extra: Option<Box<Extra>>,
    now: u64,
    /// The phase's timer: handshake deadline while handshaking, next ping
    /// or pong deadline (`awaiting_pong`) while open, close deadline while
    /// closing. [`NEVER`] for none.
    timer: u64,
    /// Idle-timeout deadline while open, or [`NEVER`].
    idle_at: u64,
    /// When the last input (or output after an empty writer) happened.
    last_active: u64,
    ping_seq: u32,
    role: Role,
    /// `timer` is a pong deadline (a keep-alive ping is unanswered).
    awaiting_pong: bool,
    /// An outbound fragmented message is in progress.
    sending_fragments: bool,
    /// ... and it is a text message (its continuations are checked too).
    sending_text: bool,
    /// Inputs in a row within [`BUSY_GAP_MS`] of each other (saturating).
    streak: u8,
    /// permessage-deflate, once negotiated.
    deflate_params: Option<DeflateParams>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("role", &self.role)
            .field("phase", &self.phase)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

fn at(now: u64, after: Option<u64>) -> u64 {
    after.map_or(NEVER, |t| now.saturating_add(t).min(NEVER - 1))
}

/// When the next keep-alive ping is due. An interval of 0 counts as 1 ms:
/// re-arming for the same instant would make a host that runs due timers
/// in a loop send pings forever without its clock moving.
fn ping_at(now: u64, interval: Option<u64>) -> u64 {
    at(now, interval.map(|i| i.max(1)))
}

impl Connection {
    fn new(
        role: Role,
        cfg: Arc<Config>,
        phase: Phase,
        rng: Option<Box<dyn Rng + Send>>,
        now: u64,
    ) -> Self {
        Connection {
            role,
            timer: at(now, cfg.handshake_timeout_ms),
            phase,
            io: None,
            extra: rng.map(|rng| {
                Box::new(Extra {
                    rng: Some(rng),
                    ..Extra::default()
                })
            }),
            now,
            idle_at: NEVER,
            last_active: NEVER,
            ping_seq: 0,
            awaiting_pong: false,
            sending_fragments: false,
            sending_text: false,
            streak: 0,
            deflate_params: None,
            cfg,
        }
    }

    /// The reader, writer and event queue, built on first use.
    #[inline]
    fn io(&mut self) -> &mut Io {
        let (role, params, phase) = (self.role, self.deflate_params, &self.phase);
        self.io.get_or_insert_with(|| new_io(role, params, phase))
    }

    /// The next frame or message decoded from buffered input.
    #[inline]
    fn next_incoming(&mut self) -> Result<Option<Incoming>, Error> {
        match self.io.as_deref_mut() {
            Some(io) => io.reader.next(&self.cfg),
            None => Ok(None),
        }
    }

    /// One decoding step for a caller that found no event queued: a data
    /// message on an open (or closing) connection comes straight back
    /// instead of passing through the event queue (a push and a pop, and
    /// the event moved twice: about a sixth of a 20-byte message's cost).
    /// Anything else is handled as [`Connection::process`] handles it, and
    /// `None` returned.
    #[inline]
    fn next_message(&mut self) -> Option<Message> {
        if !matches!(self.phase, Phase::Open | Phase::CloseSent | Phase::AwaitEof) {
            return None;
        }
        match self.decode_step() {
            Decoded::Message(m) => Some(m),
            Decoded::Handled | Decoded::Nothing => None,
        }
    }

    /// One decoding step once the handshake is done: a data message is
    /// handed back for the caller to deliver or queue; any other unit is
    /// handled here (queued as an event, answered, or dropped after the
    /// close handshake), and bad input fails the connection.
    #[inline(always)]
    fn decode_step(&mut self) -> Decoded {
        match self.next_incoming() {
            Ok(Some(Incoming::Message(m))) if !matches!(self.phase, Phase::AwaitEof) => {
                Decoded::Message(m)
            }
            Ok(Some(unit)) => {
                self.on_incoming(unit);
                Decoded::Handled
            }
            Ok(None) => Decoded::Nothing,
            Err(e) => {
                self.fail(e);
                Decoded::Nothing
            }
        }
    }

    /// No event is queued.
    #[inline]
    fn events_empty(&self) -> bool {
        self.io.as_ref().map_or(true, |io| io.events.is_empty())
    }

    /// Bytes in the writer.
    #[inline]
    fn queued(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.writer.queued())
    }

    /// Drops the reader, writer and event queue if they hold nothing and
    /// the connection is not busy (a busy one keeps them, and the buffers
    /// [`Config::buffer_retain`] allows, for the next message).
    #[inline]
    fn release_io(&mut self) {
        if self.retain() == 0 {
            if let Some(io) = self.io.as_deref() {
                if io.events.is_empty() && io.writer.queued() == 0 && io.reader.is_idle() {
                    self.io = None;
                }
            }
        }
    }

    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    fn local_close(&self) -> Option<&(CloseCode, String, Option<Error>)> {
        self.extra.as_ref().and_then(|x| x.local_close.as_ref())
    }

    /// Counts an input (or the start of output) at `self.now` towards the
    /// busy streak.
    #[inline]
    fn touch(&mut self) {
        touch(self.now, &mut self.last_active, &mut self.streak);
    }

    /// Bytes of buffer to keep between messages: `buffer_retain` while
    /// busy, none otherwise.
    #[inline]
    fn retain(&self) -> usize {
        retain_for(self.streak, &self.cfg)
    }

    /// A server connection waiting for the client's upgrade request.
    pub fn server(cfg: impl Into<Arc<Config>>, now: u64) -> Connection {
        Connection::new(Role::Server, cfg.into(), Phase::ServerReading, None, now)
    }

    /// A client connection for a request built from input the program does
    /// not control (a URL, headers from a user): `InvalidArgument` when
    /// [`ClientRequest::validate`] refuses it, else [`Connection::client`].
    pub fn try_client(
        cfg: impl Into<Arc<Config>>,
        request: ClientRequest,
        rng: Box<dyn Rng + Send>,
        now: u64,
    ) -> Result<Connection, Error> {
        request.validate().map_err(Error::InvalidArgument)?;
        Ok(Connection::client(cfg, request, rng, now))
    }

    /// A client connection; the upgrade request is queued for transmission
    /// at once. `rng` supplies the handshake key and every masking key.
    /// The request is not checked (CR and LF never reach the wire, but a
    /// host with spaces would make a request the server refuses): use
    /// [`Connection::try_client`] unless its fields are known to be valid.
    pub fn client(
        cfg: impl Into<Arc<Config>>,
        request: ClientRequest,
        mut rng: Box<dyn Rng + Send>,
        now: u64,
    ) -> Connection {
        let cfg = cfg.into();
        let mut request = request;
        if let Some(d) = &cfg.deflate {
            request
                .headers
                .push(("Sec-WebSocket-Extensions".into(), deflate::offer(d)));
        }
        let (bytes, key) = request.encode(&mut *rng);
        let phase = Phase::ClientWaiting(Box::new((key, request)));
        let mut c = Connection::new(Role::Client, cfg, phase, Some(rng), now);
        c.io().writer.raw(&bytes, 0);
        c
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The coarse state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::ServerReading | Phase::ServerDeciding(_) | Phase::ClientWaiting(_) => {
                State::Handshake
            }
            Phase::Open => State::Open,
            Phase::CloseSent | Phase::AwaitEof => State::Closing,
            Phase::Closed => State::Closed,
        }
    }

    /// True once the connection has ended (output may still need draining).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The negotiated subprotocol, once open.
    pub fn subprotocol(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|x| x.subprotocol.as_deref())
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Bytes queued for the host to write (like the browser's
    /// `bufferedAmount`); use it for backpressure.
    pub fn buffered_amount(&self) -> usize {
        let pongs = self
            .extra
            .as_ref()
            .map_or(0, |x| x.pongs.iter().map(|p| p.len() + 2).sum::<usize>());
        self.queued() + pongs
    }

    // ----- input -------------------------------------------------------

    /// Feeds bytes received from the transport at time `now`.
    pub fn handle_input(&mut self, now: u64, data: &[u8]) {
        self.now = now;
        if matches!(self.phase, Phase::Closed) || data.is_empty() {
            return;
        }
        self.touch();
        let retain = self.retain();
        let max_frame = self.cfg.max_frame_size;
        self.io().reader.extend(data, retain, max_frame);
        self.after_input(now);
    }

    /// Room to receive into, straight into the connection's read buffer:
    /// read from the transport into it, then call
    /// [`Connection::commit_input`] with the number of bytes read, before
    /// anything else (any other call on the connection may take the room
    /// back). Bytes received this way are unmasked where they land and
    /// handed to the application without another copy, where
    /// [`Connection::handle_input`] copies them from the host's buffer;
    /// [`Connection::read_from`] does both steps with a [`std::io::Read`].
    ///
    /// The room is sized for what is arriving: the rest of a large frame
    /// whose header came (so reads stop at its end and it lands in one
    /// buffer), otherwise a size that grows while reads fill it (from
    /// 4 KiB up to 64 KiB) and remembers the last large frame. Read as much
    /// of it as the transport has; the slice is never empty while the
    /// connection is open, and empty once it is closed (stop reading).
    pub fn input_buffer(&mut self) -> &mut [u8] {
        if matches!(self.phase, Phase::Closed) {
            return &mut [];
        }
        let retain = self.retain();
        self.io().reader.room(retain)
    }

    /// Takes the first `n` bytes of the room [`Connection::input_buffer`]
    /// handed out as received at time `now` (the count a transport read
    /// returned; more than the room's length cannot have been written and
    /// is cut to it). An `n` of 0 is no input (call it so when the read
    /// failed, to let the room go); end of stream is
    /// [`Connection::handle_eof`].
    pub fn commit_input(&mut self, now: u64, n: usize) {
        self.now = now;
        let n = match self.io.as_deref_mut() {
            Some(io) => io.reader.commit(n),
            None => 0,
        };
        if n == 0 {
            // Nothing came (a failed or spurious read): the room goes again,
            // with the I/O box if nothing else is in it, so that an idle
            // connection woken for nothing keeps no heap.
            let retain = self.retain();
            if let Some(io) = self.io.as_deref_mut() {
                if io.reader.buffered().is_empty() {
                    io.reader.release(retain);
                }
            }
            self.release_io();
            return;
        }
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.touch();
        self.after_input(now);
    }

    /// Reads once from `src` straight into the connection's read buffer
    /// ([`Connection::input_buffer`], then [`Connection::commit_input`]).
    /// `clock` is asked for the time once the read has returned (a
    /// blocking read may have waited), and that time goes with the bytes.
    ///
    /// Returns the bytes read. `Ok(0)` is end of stream, and the
    /// connection has been told (as by [`Connection::handle_eof`]); it is
    /// also what a closed connection returns, without reading. Errors from
    /// `src` (`WouldBlock` and `TimedOut` included) come back as they are,
    /// and nothing is taken.
    pub fn read_from<R: std::io::Read + ?Sized>(
        &mut self,
        src: &mut R,
        clock: impl FnOnce() -> u64,
    ) -> std::io::Result<usize> {
        if matches!(self.phase, Phase::Closed) {
            return Ok(0);
        }
        let got = src.read(self.input_buffer());
        let now = clock();
        match got {
            Ok(0) => {
                self.commit_input(now, 0);
                self.handle_eof(now);
                Ok(0)
            }
            Ok(n) => {
                self.commit_input(now, n);
                Ok(n)
            }
            Err(e) => {
                // Lets the room go.
                self.commit_input(now, 0);
                Err(e)
            }
        }
    }

    /// What follows new input, however it arrived.
    #[inline]
    fn after_input(&mut self, now: u64) {
        if matches!(self.phase, Phase::Open) {
            self.idle_at = at(now, self.cfg.idle_timeout_ms);
        }
        // The handshake is decoded at once (the host's decision depends on
        // it and it holds no application data); frames wait to be polled.
        if self.state() == State::Handshake {
            self.process();
        }
    }

    /// Tells the connection the transport reached end of stream.
    pub fn handle_eof(&mut self, now: u64) {
        self.now = now;
        match self.phase {
            Phase::Closed => {}
            Phase::AwaitEof => self.finish(None),
            _ => self.finish(Some(Error::UnexpectedEof)),
        }
    }

    /// Runs the timers that are due at `now`.
    pub fn handle_timeout(&mut self, now: u64) {
        self.now = now;
        // Quiet since the last input: no longer busy, so drained buffers
        // are freed now and after this timer's own output.
        if self.last_active == NEVER || now.saturating_sub(self.last_active) >= BUSY_GAP_MS {
            self.streak = 0;
            self.shrink_idle();
        }
        let due = |d: u64| d <= now;
        match self.phase {
            Phase::Closed => {}
            Phase::ServerReading | Phase::ServerDeciding(_) | Phase::ClientWaiting(_) => {
                if due(self.timer) {
                    self.finish(Some(Error::HandshakeTimeout));
                }
            }
            Phase::CloseSent => {
                if due(self.timer) {
                    self.finish(Some(Error::CloseTimeout));
                }
            }
            Phase::AwaitEof => {
                if due(self.timer) {
                    self.finish(None);
                }
            }
            Phase::Open => {
                if self.awaiting_pong && due(self.timer) {
                    self.fail(Error::PongTimeout);
                } else if due(self.idle_at) {
                    self.idle_at = NEVER;
                    self.start_close(
                        CloseCode::GOING_AWAY,
                        "idle timeout",
                        Some(Error::IdleTimeout),
                    );
                } else if !self.awaiting_pong && due(self.timer) {
                    self.send_keepalive_ping(now);
                }
            }
        }
    }

    fn send_keepalive_ping(&mut self, now: u64) {
        self.ping_seq = self.ping_seq.wrapping_add(1);
        let payload = u64::from(self.ping_seq).to_be_bytes();
        self.write_frame(true, OpCode::Ping, &payload);
        match self.cfg.pong_timeout_ms {
            Some(t) => {
                self.timer = at(now, Some(t));
                self.awaiting_pong = true;
            }
            None => self.timer = ping_at(now, self.cfg.ping_interval_ms),
        }
    }

    /// Decodes input until one event is queued or the input runs out.
    fn process(&mut self) {
        let Some(io) = self.io.as_deref() else {
            return; // nothing buffered, nothing to decode
        };
        let before = io.events.len();
        while self.io.as_ref().map_or(0, |io| io.events.len()) == before && self.process_step() {}
        let retain = self.retain();
        if let Some(io) = self.io.as_deref_mut() {
            if io.reader.buffered().is_empty() {
                io.reader.release(retain);
            }
        }
    }

    /// One decoding step; false when nothing more can be decoded now.
    fn process_step(&mut self) -> bool {
        match &self.phase {
            Phase::Closed => false,
            Phase::ServerReading => {
                let cfg = self.cfg.clone();
                match handshake::parse_request(self.io().reader.buffered(), &cfg) {
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Complete(req, n)) => {
                        self.io().reader.consume(n);
                        let req = Box::new(req);
                        self.phase = Phase::ServerDeciding(req.clone());
                        self.io().events.push_back(Event::Request(req));
                    }
                    Err(e) => self.refuse(e, &[], None),
                }
                false
            }
            Phase::ServerDeciding(_) => {
                if self.io().reader.buffered().len() > self.cfg.max_handshake_bytes {
                    self.refuse(HandshakeError::EarlyDataTooLarge, &[], None);
                }
                false
            }
            Phase::ClientWaiting(kr) => {
                let (key, request) = &**kr;
                let input = self.io.as_ref().map_or(&[][..], |io| io.reader.buffered());
                match handshake::parse_response(input, key, request, &self.cfg) {
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Complete(resp, n)) => {
                        self.io().reader.consume(n);
                        let agreed = match (&resp.extensions, &self.cfg.deflate) {
                            (Some(ext), Some(d)) => deflate::accept(ext, d).map(Some),
                            _ => Ok(None),
                        };
                        match agreed {
                            Ok(params) => {
                                if let Some(p) = params {
                                    self.enable_deflate(p);
                                }
                                self.open(resp.subprotocol);
                            }
                            Err(e) => self.finish(Some(Error::Handshake(e))),
                        }
                    }
                    Err(e) => self.finish(Some(Error::Handshake(e))),
                }
                false
            }
            Phase::Open | Phase::CloseSent | Phase::AwaitEof => match self.decode_step() {
                Decoded::Message(m) => {
                    self.io().events.push_back(Event::Message(m));
                    true
                }
                Decoded::Handled => true,
                Decoded::Nothing => false,
            },
        }
    }

    fn on_incoming(&mut self, unit: Incoming) {
        if matches!(self.phase, Phase::AwaitEof) {
            // Close frames were already exchanged; anything more is noise.
            return;
        }
        match unit {
            // `decode_step` hands messages back itself; one arrives here
            // only after the close handshake, and was dropped above.
            Incoming::Message(_) => {}
            Incoming::Ping(p) => {
                if self.cfg.auto_pong && matches!(self.phase, Phase::Open) {
                    let pongs = &mut self.extra().pongs;
                    if pongs.len() == MAX_PENDING_PONGS {
                        pongs.pop_front();
                    }
                    pongs.push_back(p.clone());
                }
                self.io().events.push_back(Event::Ping(p));
            }
            Incoming::Pong(p) => {
                if self.awaiting_pong && p[..] == u64::from(self.ping_seq).to_be_bytes() {
                    self.awaiting_pong = false;
                    self.timer = ping_at(self.now, self.cfg.ping_interval_ms);
                }
                self.io().events.push_back(Event::Pong(p));
            }
            Incoming::Close(c) => {
                let (code, reason) = c.clone().unwrap_or((CloseCode::NO_STATUS, String::new()));
                if matches!(self.phase, Phase::Open) {
                    self.extra().remote_close = Some((code, reason));
                    // Echo the peer's code, as RFC 6455 5.5.1 suggests.
                    self.flush_pongs();
                    let payload = match c {
                        Some((code, _)) => code.0.to_be_bytes().to_vec(),
                        None => Vec::new(),
                    };
                    self.write_frame(true, OpCode::Close, &payload);
                } else if self.local_close().is_some() {
                    self.extra().remote_close = Some((code, reason));
                }
                match self.role {
                    Role::Server => self.finish(None),
                    Role::Client => {
                        self.phase = Phase::AwaitEof;
                        self.timer = at(self.now, self.cfg.close_timeout_ms);
                        self.idle_at = NEVER;
                        self.awaiting_pong = false;
                    }
                }
            }
        }
    }

    fn open(&mut self, subprotocol: Option<String>) {
        self.phase = Phase::Open;
        if subprotocol.is_some() {
            self.extra().subprotocol = subprotocol.clone();
        }
        self.timer = ping_at(self.now, self.cfg.ping_interval_ms);
        self.idle_at = at(self.now, self.cfg.idle_timeout_ms);
        // The handshake's reads and writes do not make a connection busy.
        self.streak = 0;
        self.last_active = NEVER;
        self.io().events.push_back(Event::Open { subprotocol });
    }

    /// Server: answers a failed handshake with an HTTP error and closes.
    fn refuse(&mut self, e: HandshakeError, headers: &[(String, String)], body: Option<&[u8]>) {
        let body = body
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| format!("{e}\n").into_bytes());
        let resp = handshake::error_response(e.status(), headers, &body);
        self.io().writer.raw(&resp, 0);
        self.finish(Some(Error::Handshake(e)));
    }

    /// Fails the connection: sends a close frame with the error's code (when
    /// the connection is open) and ends at once (RFC 6455 7.1.7).
    fn fail(&mut self, e: Error) {
        if matches!(self.phase, Phase::Open) {
            if let Some(code) = e.close_code() {
                let reason = truncate_reason(&e.to_string());
                self.write_close(code, &reason);
                self.extra().local_close = Some((code, reason, None));
            }
        }
        self.finish(Some(e));
    }

    /// Ends the connection and emits the `Closed` event.
    fn finish(&mut self, error: Option<Error>) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let (local, remote) = match self.extra.as_deref_mut() {
            Some(x) => (x.local_close.take(), x.remote_close.take()),
            None => (None, None),
        };
        let clean = local.is_some() && remote.is_some() || (remote.is_some() && error.is_none());
        let by_peer = local.is_none() && remote.is_some();
        let (code, reason, cause) = match (local, remote) {
            (None, Some((c, r))) => (c, r, None),
            (Some((c, r, cause)), _) => (c, r, cause),
            (None, None) => (CloseCode::ABNORMAL, String::new(), None),
        };
        let error = error.or(cause);
        self.phase = Phase::Closed;
        if let Some(io) = self.io.as_deref_mut() {
            io.reader.clear();
        }
        if let Some(x) = self.extra.as_deref_mut() {
            x.deflater = None;
            x.pongs = VecDeque::new();
        }
        self.timer = NEVER;
        self.idle_at = NEVER;
        self.awaiting_pong = false;
        self.io().events.push_back(Event::Closed(Closed {
            code,
            reason,
            by_peer,
            clean,
            error,
        }));
    }

    // ----- host decisions and application calls ------------------------------

    /// Server: accepts the pending upgrade request. Added header names
    /// must be tokens and values free of control bytes (`InvalidArgument`
    /// otherwise, and nothing is sent).
    pub fn accept(&mut self, accept: Accept) -> Result<(), Error> {
        let Phase::ServerDeciding(req) = &self.phase else {
            return Err(Error::InvalidState(
                "no upgrade request is waiting for a decision",
            ));
        };
        handshake::check_fields(&accept.headers).map_err(Error::InvalidArgument)?;
        handshake::check_not_handshake_fields(&accept.headers, handshake::RESPONSE_FIELDS)
            .map_err(Error::InvalidArgument)?;
        // RFC 6455 4.2.2: the server selects one of the client's values.
        if let Some(p) = accept.subprotocol.as_deref().filter(|p| !p.is_empty()) {
            if !req.subprotocols.iter().any(|o| o == p) {
                return Err(Error::InvalidArgument(
                    "the subprotocol must be one the client offered",
                ));
            }
        }
        let agreed = self
            .cfg
            .deflate
            .as_ref()
            .and_then(|d| deflate::negotiate(&req.extensions, d));
        let ext = agreed.as_ref().map(|(_, value)| value.as_str());
        let (resp, proto) = handshake::accept_response_with(req, &accept, ext);
        self.io().writer.raw(&resp, 0);
        if let Some((params, _)) = agreed {
            self.enable_deflate(params);
        }
        // Frames that arrived right behind the request wait to be polled.
        self.open(proto);
        Ok(())
    }

    /// Server: refuses the pending upgrade request with an HTTP response.
    /// The status must be a final one, 200..=599, and the header names
    /// tokens without control bytes in values (`InvalidArgument` otherwise,
    /// and nothing is sent).
    pub fn reject(&mut self, reject: Reject) -> Result<(), Error> {
        if !matches!(self.phase, Phase::ServerDeciding(_)) {
            return Err(Error::InvalidState(
                "no upgrade request is waiting for a decision",
            ));
        }
        // Anything else is not a refusal HTTP can express ("HTTP/1.1
        // 29586" or a 101 that switches nothing).
        if !(200..=599).contains(&reject.status) {
            return Err(Error::InvalidArgument(
                "a refusal status must be a final HTTP status, 200..=599",
            ));
        }
        handshake::check_fields(&reject.headers).map_err(Error::InvalidArgument)?;
        let e = HandshakeError::Rejected {
            status: reject.status,
        };
        self.refuse(e, &reject.headers, Some(&reject.body));
        Ok(())
    }

    /// Refuses a send unless the connection is open and `extra` more bytes
    /// fit under [`Config::max_outbound_bytes`]. The test is inlined into
    /// every send; building the error is not.
    #[inline]
    fn check_can_send(&self, extra: usize) -> Result<(), Error> {
        if matches!(self.phase, Phase::Open) && self.queued() + extra <= self.cfg.max_outbound_bytes
        {
            return Ok(());
        }
        Err(self.send_refused(extra))
    }

    /// A whole message may start: [`Connection::check_can_send`], and no
    /// fragmented message is in progress.
    #[inline]
    fn check_can_send_message(&self, extra: usize) -> Result<(), Error> {
        self.check_can_send(extra)?;
        if self.sending_fragments {
            return Err(fragments_in_progress());
        }
        Ok(())
    }

    /// Why [`Connection::check_can_send`] refused.
    #[cold]
    #[inline(never)]
    fn send_refused(&self, extra: usize) -> Error {
        match self.send_refusal(extra) {
            Err(e) => e,
            Ok(()) => unreachable!("check_can_send refused a send that may go"),
        }
    }

    fn send_refusal(&self, extra: usize) -> Result<(), Error> {
        match self.phase {
            Phase::Open => {}
            Phase::Closed => return Err(Error::InvalidState("connection is closed")),
            Phase::CloseSent | Phase::AwaitEof => {
                return Err(Error::InvalidState("connection is closing"))
            }
            _ => return Err(Error::InvalidState("handshake has not completed")),
        }
        if self.queued() + extra > self.cfg.max_outbound_bytes {
            return Err(Error::OutboundFull {
                limit: self.cfg.max_outbound_bytes,
            });
        }
        Ok(())
    }

    /// Sends a text message, copied from `text` into the output.
    pub fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.send_copied(OpCode::Text, text.as_bytes())
    }

    /// Sends a binary message. Large payloads are not copied (server role).
    #[inline]
    pub fn send_binary(&mut self, data: impl Into<Bytes>) -> Result<(), Error> {
        self.send_bytes(OpCode::Binary, data.into())
    }

    /// Sends a binary message copied from a borrowed slice, as
    /// [`Connection::send_text`] does for text: one pass straight into the
    /// output (masked on the way for a client), nothing allocated in
    /// steady state. For a payload the caller does not already hold as
    /// `Bytes` this beats `send_binary(Bytes::copy_from_slice(..))`, which
    /// allocates and copies first; [`Connection::send_binary`] is the one
    /// for large shared payloads a server sends without copying.
    pub fn send_binary_slice(&mut self, data: &[u8]) -> Result<(), Error> {
        self.send_copied(OpCode::Binary, data)
    }

    /// A whole message copied from `payload` (compressed if that applies).
    #[inline(always)]
    fn send_copied(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), Error> {
        self.check_can_send_message(payload.len())?;
        if !self.try_compress(opcode, payload) {
            self.write_frame_inline(true, opcode, payload);
        }
        Ok(())
    }

    /// Sends a message.
    pub fn send(&mut self, message: Message) -> Result<(), Error> {
        match message {
            Message::Text(t) => self.send_bytes(OpCode::Text, t.into_bytes()),
            Message::Binary(b) => self.send_bytes(OpCode::Binary, b),
        }
    }

    /// Sends a whole message of shared bytes (the payload of `send_binary`
    /// and `send`).
    fn send_bytes(&mut self, opcode: OpCode, data: Bytes) -> Result<(), Error> {
        self.check_can_send_message(data.len())?;
        self.write_shared(opcode, data);
        Ok(())
    }

    /// Sends one fragment of a message the application streams: the first
    /// call names `OpCode::Text` or `OpCode::Binary`, later ones
    /// `OpCode::Continuation`; `fin` ends the message. Text fragments must
    /// each be valid UTF-8 on their own here, which keeps the check cheap.
    pub fn send_fragment(
        &mut self,
        opcode: OpCode,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), Error> {
        self.check_can_send(payload.len())?;
        match (opcode, self.sending_fragments) {
            (OpCode::Text | OpCode::Binary, false) | (OpCode::Continuation, true) => {}
            _ => return Err(Error::InvalidState("fragment opcode out of sequence")),
        }
        let text = match opcode {
            OpCode::Continuation => self.sending_text,
            op => op == OpCode::Text,
        };
        if text && std::str::from_utf8(payload).is_err() {
            return Err(Error::InvalidArgument("text fragment is not valid UTF-8"));
        }
        self.sending_fragments = !fin;
        self.sending_text = text && !fin;
        self.write_frame(fin, opcode, payload);
        Ok(())
    }

    /// Sends a ping (at most 125 bytes of payload).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > 125 {
            return Err(Error::InvalidArgument("ping payload over 125 bytes"));
        }
        self.check_can_send(payload.len())?;
        self.write_frame(true, OpCode::Ping, payload);
        Ok(())
    }

    /// Sends an unsolicited pong (a one-way heartbeat).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), Error> {
        if payload.len() > 125 {
            return Err(Error::InvalidArgument("pong payload over 125 bytes"));
        }
        self.check_can_send(payload.len())?;
        self.write_frame(true, OpCode::Pong, payload);
        Ok(())
    }

    /// Starts the closing handshake with `code` and a reason of at most 123
    /// bytes. Messages that arrive until the peer answers are still
    /// delivered.
    pub fn close(&mut self, code: CloseCode, reason: &str) -> Result<(), Error> {
        if !code.is_sendable() {
            return Err(Error::InvalidArgument(
                "close code may not be sent on the wire",
            ));
        }
        if reason.len() > 123 {
            return Err(Error::InvalidArgument("close reason over 123 bytes"));
        }
        match self.phase {
            Phase::Open => {
                self.start_close(code, reason, None);
                Ok(())
            }
            Phase::ServerDeciding(_) => self.reject(Reject::new(503, "closing\n")),
            Phase::Closed | Phase::CloseSent | Phase::AwaitEof => {
                Err(Error::InvalidState("already closing or closed"))
            }
            _ => {
                self.finish(None);
                Ok(())
            }
        }
    }

    fn start_close(&mut self, code: CloseCode, reason: &str, cause: Option<Error>) {
        self.flush_pongs();
        self.write_close(code, reason);
        self.extra().local_close = Some((code, reason.to_string(), cause));
        self.phase = Phase::CloseSent;
        self.awaiting_pong = false;
        self.idle_at = NEVER;
        self.timer = at(self.now, self.cfg.close_timeout_ms);
    }

    fn write_close(&mut self, code: CloseCode, reason: &str) {
        let mut p = Vec::with_capacity(2 + reason.len());
        p.extend_from_slice(&code.0.to_be_bytes());
        p.extend_from_slice(reason.as_bytes());
        self.write_frame(true, OpCode::Close, &p);
    }

    #[inline]
    fn mask_key(&mut self) -> Option<[u8; 4]> {
        if self.role != Role::Client {
            return None;
        }
        let rng = self.extra.as_deref_mut()?.rng.as_deref_mut()?;
        // The same four bytes `fill` would give (`next_u32` is their
        // little-endian reading), in one call generators can make cheap.
        Some(rng.next_u32().to_le_bytes())
    }

    /// Output is about to be written: starting to fill an empty writer
    /// counts towards the busy streak like an input does.
    #[inline]
    fn before_write(&mut self) {
        if self.queued() == 0 {
            self.touch();
        }
    }

    /// Queues one frame (control frames, fragments, closes).
    fn write_frame(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        self.write_frame_inline(fin, opcode, payload)
    }

    /// [`Connection::write_frame`], inlined into the message send path: a
    /// 20-byte message spends about as long in call overhead as in
    /// encoding.
    #[inline(always)]
    fn write_frame_inline(&mut self, fin: bool, opcode: OpCode, payload: &[u8]) {
        if self.owes_pongs() {
            self.flush_pongs();
        }
        // The mask key first (the busy streak does not depend on it), then
        // the Io fetched once for the streak test and the frame.
        let mask = self.mask_key();
        let (role, params, phase) = (self.role, self.deflate_params, &self.phase);
        let io = self.io.get_or_insert_with(|| new_io(role, params, phase));
        if io.writer.queued() == 0 {
            touch(self.now, &mut self.last_active, &mut self.streak);
        }
        let retain = retain_for(self.streak, &self.cfg);
        io.writer.frame(fin, opcode, payload, mask, retain);
    }

    /// Sends a whole message compressed, if permessage-deflate is on and
    /// the message is long enough to be worth it. True if it was sent.
    #[inline]
    fn try_compress(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        self.deflate_params.is_some() && self.compress_message(opcode, payload)
    }

    /// [`Connection::try_compress`] once permessage-deflate is known to be
    /// negotiated (kept out of the uncompressed send path).
    #[inline(never)]
    fn compress_message(&mut self, opcode: OpCode, payload: &[u8]) -> bool {
        let threshold = match (&self.deflate_params, &self.cfg.deflate) {
            (Some(_), Some(d)) => d.threshold,
            _ => return false,
        };
        if payload.len() < threshold {
            return false;
        }
        if self.owes_pongs() {
            self.flush_pongs();
        }
        self.before_write();
        let mask = self.mask_key();
        let retain = self.retain();
        let (params, server) = match self.deflate_params {
            Some(p) => (p, self.role == Role::Server),
            None => return false,
        };
        self.io();
        let Some(io) = self.io.as_deref_mut() else {
            return false;
        };
        let cfg = &self.cfg;
        let slot = &mut self.extra.get_or_insert_with(Box::default).deflater;
        let d = slot.get_or_insert_with(|| Box::new(deflate_halves(&params, server, cfg).1));
        let wire = d.compress(payload);
        io.writer.frame_rsv(true, 0b100, opcode, wire, mask, retain);
        d.release(retain);
        if d.retained_bytes() == 0 {
            // Nothing carried over (no zlib state, no history): built again
            // for the next compressed message.
            *slot = None;
        }
        true
    }

    /// Records the negotiated parameters; the compressor and decompressor
    /// are built on first use (most connections that negotiate
    /// permessage-deflate exchange only short messages, which are never
    /// compressed).
    fn enable_deflate(&mut self, p: DeflateParams) {
        if let Some(io) = self.io.as_deref_mut() {
            io.reader.enable_deflate_lazy(p);
        }
        self.deflate_params = Some(p);
    }

    /// The permessage-deflate parameters, if it was negotiated.
    pub fn deflate(&self) -> Option<DeflateParams> {
        self.deflate_params
    }

    #[inline]
    fn write_shared(&mut self, opcode: OpCode, payload: Bytes) {
        if self.try_compress(opcode, &payload) {
            return;
        }
        if self.role == Role::Client {
            return self.write_frame_inline(true, opcode, &payload);
        }
        if self.owes_pongs() {
            self.flush_pongs();
        }
        self.before_write();
        let retain = self.retain();
        self.io().writer.frame_shared(true, opcode, payload, retain);
    }

    #[inline]
    fn owes_pongs(&self) -> bool {
        self.extra.as_ref().is_some_and(|x| !x.pongs.is_empty())
    }

    #[cold]
    fn flush_pongs(&mut self) {
        if !self.owes_pongs() {
            return;
        }
        self.before_write();
        let retain = self.retain();
        let mut pongs = std::mem::take(&mut self.extra().pongs);
        while let Some(p) = pongs.pop_front() {
            let mask = self.mask_key();
            self.io().writer.frame(true, OpCode::Pong, &p, mask, retain);
        }
        if retain > 0 {
            // Busy: keep the queue's buffer for the next pings.
            self.extra().pongs = pongs;
        }
    }

    // ----- output --------------------------------------------------------

    /// The next chunk of bytes to write to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        if self.owes_pongs() && !matches!(self.phase, Phase::Closed) {
            self.flush_pongs();
        }
        let retain = self.retain();
        let t = self.io.as_deref_mut()?.writer.pop(retain);
        if t.is_none() {
            self.release_io();
        }
        t
    }

    /// The next event for the application.
    ///
    /// Decodes buffered input as needed, so replies sent while handling an
    /// event are queued before anything that later input causes.
    pub fn poll_event(&mut self) -> Option<Event> {
        if self.events_empty() {
            if let Some(m) = self.next_message() {
                return Some(Event::Message(m));
            }
            if self.events_empty() {
                self.process();
            }
        }
        let retain = self.retain();
        let io = self.io.as_deref_mut()?;
        let e = io.events.pop_front();
        if io.events.is_empty() && (io.events.capacity() > 8 || retain == 0) {
            io.events = VecDeque::new();
        }
        if e.is_none() {
            self.release_io();
        }
        e
    }

    /// Frees whatever is kept for reuse while it is empty: the event and
    /// pong queues, drained read and write buffers, and the spare box of
    /// rarely used state. Connections do this on their own once quiet (see
    /// [`Connection`]'s memory notes); hosts holding very many connections
    /// (a hub) may call it whenever one goes idle. The next message
    /// allocates again.
    pub fn shrink_idle(&mut self) {
        if let Some(io) = self.io.as_deref_mut() {
            if io.events.is_empty() {
                io.events = VecDeque::new();
            }
            if io.reader.buffered().is_empty() {
                io.reader.release(0);
            }
            io.writer.release_idle();
            if io.events.is_empty() && io.writer.queued() == 0 && io.reader.is_idle() {
                self.io = None;
            }
        }
        if let Some(x) = self.extra.as_deref() {
            let unused = x.rng.is_none()
                && x.subprotocol.is_none()
                && x.local_close.is_none()
                && x.remote_close.is_none()
                && x.deflater.is_none()
                && x.pongs.is_empty();
            if unused {
                self.extra = None;
            } else if let Some(x) = self.extra.as_deref_mut() {
                if x.pongs.is_empty() {
                    x.pongs = VecDeque::new();
                }
            }
        }
    }

    /// The next time [`Connection::handle_timeout`] must be called, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let t = match self.phase {
            Phase::Closed => NEVER,
            Phase::Open => self.timer.min(self.idle_at),
            _ => self.timer,
        };
        (t != NEVER).then_some(t)
    }

    /// Transmit first, then events, then the deadline to wait for.
    pub fn poll_output(&mut self) -> Output {
        let retain = self.retain();
        if let Some(t) = self.io.as_deref_mut().and_then(|io| io.writer.pop(retain)) {
            return Output::Transmit(t);
        }
        if self.events_empty() {
            if let Some(m) = self.next_message() {
                return Output::Event(Event::Message(m));
            }
            if self.events_empty() {
                self.process();
            }
            // Bytes that decoding produced (a close reply) go first.
            let retain = self.retain();
            if let Some(t) = self.io.as_deref_mut().and_then(|io| io.writer.pop(retain)) {
                return Output::Transmit(t);
            }
        }
        if let Some(e) = self.poll_event() {
            return Output::Event(e);
        }
        // Nothing left to decode: pongs owed for this batch of input go now,
        // so a burst of pings is answered once per batch, not per ping.
        if let Some(t) = self.poll_transmit() {
            return Output::Transmit(t);
        }
        Output::Wait(self.poll_timeout())
    }
}

/// The reader, writer and event queue for a connection in `phase` (kept
/// out of line: [`Connection::io`] builds them once per burst at most).
#[cold]
#[inline(never)]
fn new_io(role: Role, params: Option<DeflateParams>, phase: &Phase) -> Box<Io> {
    let mut reader = Reader::new(role == Role::Server);
    if let Some(p) = params {
        reader.enable_deflate_lazy(p);
    }
    if matches!(
        phase,
        Phase::Open | Phase::CloseSent | Phase::AwaitEof | Phase::Closed
    ) {
        reader.set_framing();
    }
    Box::new(Io {
        reader,
        writer: Writer::default(),
        events: VecDeque::new(),
    })
}

/// [`Connection::touch`] on the fields it changes (usable while the Io is
/// borrowed).
#[inline]
fn touch(now: u64, last_active: &mut u64, streak: &mut u8) {
    if *last_active != NEVER && now.saturating_sub(*last_active) < BUSY_GAP_MS {
        *streak = streak.saturating_add(1);
    } else {
        *streak = 0;
    }
    *last_active = now;
}

/// [`Connection::retain`] for a streak.
#[inline]
fn retain_for(streak: u8, cfg: &Config) -> usize {
    if streak >= BUSY_STREAK {
        cfg.buffer_retain
    } else {
        0
    }
}

/// The error for a whole message sent while a fragmented one is open.
#[cold]
fn fragments_in_progress() -> Error {
    Error::InvalidState("a fragmented message is in progress")
}

/// Cuts a close reason to 123 bytes on a character boundary.
fn truncate_reason(s: &str) -> String {
    if s.len() <= 123 {
        return s.to_string();
    }
    let mut end = 123;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
