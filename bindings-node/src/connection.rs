//! The `Connection` class: the engine's sans-IO WebSocket connection as a
//! JS object.
//!
//! Calls cross N-API, so the output side is batched: one call returns every
//! pending byte, one returns every pending event.

use bytes::Bytes;
use evsock::ws::{self, CloseCode, Message};
use evsock::{Rng, SeededRng};
use napi::bindgen_prelude::{ObjectFinalize, Uint32Array, Uint8ArraySlice};
use napi::Env;
use napi_derive::napi;

use crate::error::{self, arg, napi_failure, Code, JsError};
use crate::options::{self, AcceptOptions, ConnectionOptions, Side};
use crate::rng;
use crate::shared::{JsBytes, Pins, SHARE_FROM};
use crate::values::{self, kind, Batch, Raw};

/// Why a connection failed, in a `closed` event.
#[napi(object, object_from_js = false)]
pub struct ConnectionError {
    /// A stable snake_case kind, for example `protocol`, `pong_timeout` or
    /// `unexpected_eof`.
    pub code: String,
    /// A human-readable description.
    pub message: String,
}

/// Server: an upgrade request arrived. Answer it with `accept()` or
/// `reject()`.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct RequestEvent {
    /// Always `'request'`.
    #[napi(js_name = "type", ts_type = "'request'")]
    pub kind: String,
    /// The request target, for example `/chat?room=1`.
    pub path: String,
    /// Every header field in order, as `[name, value]` pairs (values
    /// decoded as Latin-1, as Node does).
    #[napi(ts_type = "Array<[string, string]>")]
    pub headers: Vec<Vec<String>>,
    /// The Origin header, if any.
    pub origin: Option<String>,
    /// Subprotocols the client offered, in its order.
    pub subprotocols: Vec<String>,
    /// The subprotocol `accept()` selects unless told otherwise: the first
    /// of the configured `subprotocols` the client offered.
    pub selected_subprotocol: Option<String>,
    /// Extensions the client offered (raw header values); none are
    /// negotiated.
    pub extensions: Vec<String>,
}

/// The handshake finished; messages may flow.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct OpenEvent {
    /// Always `'open'`.
    #[napi(js_name = "type", ts_type = "'open'")]
    pub kind: String,
    /// The negotiated subprotocol.
    pub subprotocol: Option<String>,
}

/// The connection is over. Always the last event.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct ClosedEvent {
    /// Always `'closed'`.
    #[napi(js_name = "type", ts_type = "'closed'")]
    pub kind: String,
    /// The peer's code if it closed first, ours if we did, 1006 if no close
    /// frame arrived, 1005 if the peer's close frame had no code.
    pub code: u32,
    /// The reason that went with `code`.
    pub reason: String,
    /// True if the peer sent the first close frame.
    pub by_peer: bool,
    /// True if close frames were exchanged both ways.
    pub clean: bool,
    /// What went wrong, if anything did.
    pub error: Option<ConnectionError>,
}

fn latin1(v: &[u8]) -> String {
    v.iter().map(|&b| b as char).collect()
}

/// A sans-IO WebSocket connection (RFC 6455), server or client role.
///
/// It owns no socket and reads no clock: feed it the bytes that arrive
/// (`receiveData`), end of stream (`receiveEof`) and expired deadlines
/// (`handleTimeout`); then write out `takeTransmit()`, act on
/// `takeEvents()`, and call `handleTimeout` again at `pollTimeout()`.
/// Every input call takes the current time in milliseconds as `now`
/// (through `require('evsock')` it defaults to a monotonic clock).
#[napi(custom_finalize)]
pub struct Connection {
    inner: ws::Connection,
    /// Scratch list reused by `takeTransmit`.
    chunks: Vec<Bytes>,
    /// Subprotocols offered by the pending upgrade request, once seen.
    offered: Option<Vec<String>>,
    /// JS buffers whose memory the engine's queue holds views of.
    pins: Pins,
    /// True once output was last taken by `takeTransmitChunks()`: then a
    /// large payload `sendBinary()` copies goes into a JS Buffer (handed
    /// out as is), otherwise into engine memory (freed, and so reused hot,
    /// as soon as `takeTransmit()` has concatenated it).
    chunked: bool,
}

impl ObjectFinalize for Connection {
    fn finalize(self, env: Env) -> napi::Result<()> {
        let Connection {
            inner, mut pins, ..
        } = self;
        // Every view into JS memory goes with the engine; only then may the
        // buffers they point at be let go.
        drop(inner);
        // SAFETY: `env` is the finalizer's live environment.
        unsafe { pins.clear(env.raw()) };
        Ok(())
    }
}

fn detached() -> JsError {
    napi::Error::new(
        Code("buffer_detached"),
        "a buffer passed to sendBinaryShared() was detached or shrunk before it was written; \
         the connection's output is lost"
            .to_string(),
    )
}

fn now_ms(now: Option<f64>) -> Result<u64, JsError> {
    match now {
        Some(t) => Ok(options::time(t)?),
        None => Err(arg(
            "now (milliseconds) is required when the native binding is used directly; \
             require('evsock') supplies a monotonic clock",
        )
        .into()),
    }
}

/// Byte offsets where each packed message ends (in `text` or in the binary
/// buffer, by kind), checked against the actual lengths; `None` if a text
/// boundary falls inside a character.
fn packed_cuts(
    kinds: &[u8],
    lens: &[u32],
    text: &str,
    bin_len: usize,
) -> Result<Option<Vec<usize>>, JsError> {
    let bad = || -> JsError { arg("_sendPacked: lengths do not match the packed data").into() };
    let ascii = text.is_ascii();
    let mut chars = text.char_indices().peekable();
    let (mut units, mut t, mut b) = (0usize, 0usize, 0usize);
    let mut cuts = Vec::with_capacity(kinds.len());
    for (&k, &len) in kinds.iter().zip(lens) {
        let len = len as usize;
        match k {
            0 if ascii => {
                t = t
                    .checked_add(len)
                    .filter(|&e| e <= text.len())
                    .ok_or_else(bad)?;
                cuts.push(t);
            }
            0 => {
                let target = units.checked_add(len).ok_or_else(bad)?;
                while units < target {
                    let (_, c) = chars.next().ok_or_else(bad)?;
                    units += c.len_utf16();
                }
                if units != target {
                    return Ok(None);
                }
                t = chars.peek().map_or(text.len(), |&(i, _)| i);
                cuts.push(t);
            }
            1 => {
                b = b
                    .checked_add(len)
                    .filter(|&e| e <= bin_len)
                    .ok_or_else(bad)?;
                cuts.push(b);
            }
            _ => return Err(arg("_sendPacked: kinds must be 0 or 1").into()),
        }
    }
    Ok(Some(cuts))
}

fn close_code(code: Option<f64>) -> Result<CloseCode, JsError> {
    let Some(code) = code else {
        return Ok(CloseCode::NORMAL);
    };
    let n = options::integer("code", code, 0.0, 65535.0)?;
    let code = CloseCode(n as u16);
    if !code.is_sendable() {
        return Err(arg(format!(
            "close code {n} may not be sent (use 1000-1003, 1007-1014 or 3000-4999)"
        ))
        .into());
    }
    Ok(code)
}

#[napi]
impl Connection {
    /// A server connection waiting for the client's upgrade request.
    #[napi(factory, writable, configurable, strict)]
    pub fn server(
        options: Option<ConnectionOptions>,
        now: Option<f64>,
    ) -> Result<Connection, JsError> {
        let o = options.unwrap_or_default();
        let cfg = options::config(&o, Side::Server)?;
        let now = now_ms(now)?;
        Ok(Connection {
            inner: ws::Connection::server(cfg, now),
            chunks: Vec::new(),
            offered: None,
            pins: Pins::default(),
            chunked: false,
        })
    }

    /// A client connection for a `ws://` or `wss://` URL (TLS is the
    /// host's business). The upgrade request is ready in `takeTransmit()`
    /// at once.
    #[napi(factory, writable, configurable, strict)]
    pub fn client(
        url: String,
        options: Option<ConnectionOptions>,
        now: Option<f64>,
    ) -> Result<Connection, JsError> {
        let o = options.unwrap_or_default();
        let cfg = options::config(&o, Side::Client)?;
        let req = options::client_request(&url, &o)?;
        let rng: Box<dyn Rng + Send> = match options::seed(&o)? {
            Some(seed) => Box::new(SeededRng::new(seed)),
            None => rng::os(),
        };
        let now = now_ms(now)?;
        Ok(Connection {
            inner: ws::Connection::try_client(cfg, req, rng, now).map_err(error::engine)?,
            chunks: Vec::new(),
            offered: None,
            pins: Pins::default(),
            chunked: false,
        })
    }

    /// Feeds bytes received from the transport.
    #[napi(strict)]
    pub fn receive_data(&mut self, data: Uint8ArraySlice, now: Option<f64>) -> Result<(), JsError> {
        let now = now_ms(now)?;
        self.inner.handle_input(now, &data);
        Ok(())
    }

    /// Tells the connection the transport reached end of stream.
    #[napi(strict)]
    pub fn receive_eof(&mut self, now: Option<f64>) -> Result<(), JsError> {
        let now = now_ms(now)?;
        self.inner.handle_eof(now);
        Ok(())
    }

    /// Runs the timers that are due (keep-alive pings, pong, idle,
    /// handshake and close timeouts). Calling it early is harmless.
    #[napi(strict)]
    pub fn handle_timeout(&mut self, now: Option<f64>) -> Result<(), JsError> {
        let now = now_ms(now)?;
        self.inner.handle_timeout(now);
        Ok(())
    }

    /// Every byte waiting to be written to the transport, concatenated in
    /// order, or `null` when there is nothing to write.
    #[napi(ts_return_type = "Buffer | null")]
    pub fn take_transmit(&mut self, env: Env) -> Result<Raw, JsError> {
        self.transmit(env, false)
    }

    /// Every byte waiting to be written, as a list of Buffers to write in
    /// order (for example between `socket.cork()` and `socket.uncork()`),
    /// or `null` when there is nothing to write. Unlike `takeTransmit()`
    /// nothing is concatenated: a large binary payload a server sends
    /// comes out as a Buffer of its own, the very one passed to
    /// `sendBinaryShared()` (no copy at all), or the one `sendBinary()`
    /// copied the payload into (one copy).
    #[napi(ts_return_type = "Buffer[] | null")]
    pub fn take_transmit_chunks(&mut self, env: Env) -> Result<Raw, JsError> {
        self.transmit(env, true)
    }

    fn transmit(&mut self, env: Env, list: bool) -> Result<Raw, JsError> {
        self.chunked = list;
        let mut chunks = std::mem::take(&mut self.chunks);
        while let Some(b) = self.inner.poll_transmit() {
            chunks.push(b);
        }
        // SAFETY (all blocks below): `env` is this call's live environment;
        // the chunks, and so every view among them, live until after the
        // value is built.
        // Objects whose views are all gone (copied, dropped with a closed
        // connection's queue) are let go first: only the rest must be live.
        if !self.pins.is_empty() {
            unsafe { self.pins.release(env.raw()) };
        }
        let out = match unsafe { self.pins.live(env.raw()) } {
            Err(d) => Err(values::TransmitError::from(d)),
            Ok(live) => unsafe {
                if list {
                    values::transmit_parts(env.raw(), &chunks, &live)
                } else {
                    values::transmit_concat(env.raw(), &chunks, &live)
                }
            },
        };
        chunks.clear();
        self.chunks = chunks;
        if !self.pins.is_empty() {
            unsafe { self.pins.release(env.raw()) };
        }
        match out {
            Ok(v) => Ok(Raw(v)),
            Err(values::TransmitError::Detached) => Err(detached()),
            Err(values::TransmitError::Napi(e)) => Err(napi_failure(e)),
        }
    }

    /// Sends `data` as a binary message, lending the engine a view of it.
    fn send_view(&mut self, env: Env, data: &JsBytes) -> Result<(), JsError> {
        let (bytes, lent) = Pins::view(data);
        let sent = self.inner.send_binary(bytes);
        // SAFETY: `env` is this call's live environment and `data` an
        // argument (or a Buffer made) in this call.
        unsafe { self.pins.settle(env.raw(), lent) }.map_err(napi_failure)?;
        sent.map_err(error::engine)
    }

    /// Every pending event, oldest first (an empty array when there are
    /// none), decoding all buffered input. Take events before bytes:
    /// decoding can queue bytes (a close reply, an error close). Replies
    /// made while handling these events go out after the engine's own
    /// reactions to later frames of the batch; use `pollEvent()` where
    /// that order matters.
    ///
    /// Small binary payloads are views into one shared buffer per batch.
    #[napi(strict, ts_return_type = "Array<Event>")]
    pub fn take_events(&mut self) -> Batch {
        let mut batch = Batch::default();
        while let Some(e) = self.inner.poll_event() {
            self.push(&mut batch, e);
        }
        batch
    }

    /// The next event, or `null` when there is none. Input is decoded
    /// lazily, one event at a time: a reply sent while handling this
    /// event is queued before whatever the engine does about later input
    /// (such as answering a close frame found in the same read).
    #[napi(strict, ts_return_type = "Event | null")]
    pub fn poll_event(&mut self) -> Batch {
        let mut batch = Batch::default();
        if let Some(e) = self.inner.poll_event() {
            self.push(&mut batch, e);
        }
        batch
    }

    fn push(&mut self, batch: &mut Batch, e: ws::Event) {
        match e {
            ws::Event::Message(Message::Text(t)) => batch.text(t),
            ws::Event::Message(Message::Binary(b)) => batch.bytes(kind::BINARY, b),
            ws::Event::Ping(b) => batch.bytes(kind::PING, b),
            ws::Event::Pong(b) => batch.bytes(kind::PONG, b),
            ws::Event::Request(r) => {
                self.offered = Some(r.subprotocols.clone());
                batch.object(RequestEvent {
                    kind: "request".into(),
                    path: r.path,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(n, v)| vec![n, latin1(&v)])
                        .collect(),
                    origin: r.origin,
                    subprotocols: r.subprotocols,
                    selected_subprotocol: r.selected_subprotocol,
                    extensions: r.extensions,
                })
            }
            ws::Event::Open { subprotocol } => batch.object(OpenEvent {
                kind: "open".into(),
                subprotocol,
            }),
            ws::Event::Closed(c) => batch.object(ClosedEvent {
                kind: "closed".into(),
                code: u32::from(c.code.0),
                reason: c.reason,
                by_peer: c.by_peer,
                clean: c.clean,
                error: c.error.map(|e| ConnectionError {
                    code: e.kind().to_string(),
                    message: e.to_string(),
                }),
            }),
        }
    }

    /// The time at which `handleTimeout` must next be called, or `null`
    /// when no timer is armed.
    #[napi(strict)]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.inner.poll_timeout().map(|t| t as f64)
    }

    /// Server: accepts the pending upgrade request (after a `request`
    /// event).
    #[napi(strict)]
    pub fn accept(&mut self, options: Option<AcceptOptions>) -> Result<(), JsError> {
        let accept = options::accept(options.as_ref())?;
        if let (Some(p), Some(offered)) = (&accept.subprotocol, &self.offered) {
            if !p.is_empty() && !offered.iter().any(|o| o == p) {
                return Err(arg(format!(
                    "subprotocol {p:?} was not offered by the client (offered: {offered:?})"
                ))
                .into());
            }
        }
        self.inner.accept(accept).map_err(error::engine)
    }

    /// Server: refuses the pending upgrade request with an HTTP status
    /// (300-599), a text body and optional extra headers; the connection
    /// then closes.
    #[napi(
        strict,
        ts_args_type = "status: number, body?: string | Uint8Array, headers?: Record<string, string>"
    )]
    pub fn reject(
        &mut self,
        status: f64,
        body: Option<napi::Either<String, Uint8ArraySlice>>,
        headers: Option<indexmap::IndexMap<String, String>>,
    ) -> Result<(), JsError> {
        let body = match body {
            None => Vec::new(),
            Some(napi::Either::A(s)) => s.into_bytes(),
            Some(napi::Either::B(b)) => b.to_vec(),
        };
        let reject = options::reject(status, body, headers.as_ref())?;
        self.inner.reject(reject).map_err(error::engine)
    }

    /// Sends a text message.
    #[napi(strict)]
    pub fn send_text(&mut self, text: String) -> Result<(), JsError> {
        self.inner.send_text(&text).map_err(error::engine)
    }

    /// Sends a binary message. The payload is copied: `data` may be
    /// changed as soon as this returns. (Into a Buffer that
    /// `takeTransmitChunks()` hands out as is, when that is how output is
    /// taken.)
    #[napi(ts_args_type = "data: Uint8Array")]
    pub fn send_binary(&mut self, env: Env, data: JsBytes) -> Result<(), JsError> {
        if data.len() < SHARE_FROM {
            return self
                .inner
                .send_binary_slice(data.as_slice())
                .map_err(error::engine);
        }
        if self.inner.role() == ws::Role::Server {
            // The engine may queue the payload by reference (always, unless
            // it compresses it), so it must not be the caller's memory.
            if !self.chunked {
                return self
                    .inner
                    .send_binary_slice(data.as_slice())
                    .map_err(error::engine);
            }
            // One copy, into a Buffer that `takeTransmitChunks()` hands out
            // as is, instead of one into Rust and one more out of it.
            // SAFETY: `env` is this call's live environment.
            let copy =
                unsafe { JsBytes::copy_of(env.raw(), data.as_slice()) }.map_err(napi_failure)?;
            return self.send_view(env, &copy);
        }
        // A client masks the payload into the engine's own buffer during the
        // call (compressed or not): a view saves copying it first.
        self.send_view(env, &data)
    }

    /// Sends a binary message without copying a large payload: the
    /// connection keeps `data` itself until it is written, and
    /// `takeTransmitChunks()` hands that same Buffer out again (a server,
    /// unless it compresses the message; a client masks it into the
    /// connection's own buffer during the call). Do not modify `data` until it has been written to
    /// the socket, as with `socket.write()`. Detaching its `ArrayBuffer`
    /// before then makes the next `takeTransmit*()` call throw
    /// (`buffer_detached`).
    #[napi(ts_args_type = "data: Uint8Array")]
    pub fn send_binary_shared(&mut self, env: Env, data: JsBytes) -> Result<(), JsError> {
        if data.len() < SHARE_FROM {
            return self
                .inner
                .send_binary_slice(data.as_slice())
                .map_err(error::engine);
        }
        self.send_view(env, &data)
    }

    /// Sends many messages in one call: strings go as text, buffers as
    /// binary. Stops at the first refusal and throws it; the messages
    /// before it are sent. Returns how many were queued.
    #[napi(strict, ts_args_type = "messages: Array<string | Uint8Array>")]
    pub fn send_many(
        &mut self,
        messages: Vec<napi::Either<String, Uint8ArraySlice>>,
    ) -> Result<u32, JsError> {
        let mut n = 0u32;
        for m in messages {
            match m {
                napi::Either::A(s) => self.inner.send_text(&s),
                napi::Either::B(b) => self.inner.send_binary_slice(&b),
            }
            .map_err(error::engine)?;
            n += 1;
        }
        Ok(n)
    }

    /// `sendMany` packed by `lib/connection.js` so that one crossing
    /// carries every message without a per-message conversion: `lens[i]`
    /// is the length of message `i`, in UTF-16 units of `text` when
    /// `kinds[i]` is 0 (text), in bytes of `bin` when it is 1 (binary).
    /// Returns `null`, having sent nothing, when a text boundary falls
    /// inside a character (one string ending in a high surrogate, the next
    /// starting with a low one); the caller then uses `sendMany`.
    #[napi(js_name = "_sendPacked", skip_typescript)]
    pub fn send_packed(
        &mut self,
        kinds: Uint8ArraySlice,
        lens: Uint32Array,
        text: String,
        bin: Uint8ArraySlice,
    ) -> Result<Option<u32>, JsError> {
        if kinds.len() != lens.len() {
            return Err(arg("_sendPacked: kinds and lens differ in length").into());
        }
        let Some(cuts) = packed_cuts(&kinds, &lens, &text, bin.len())? else {
            return Ok(None);
        };
        let (mut t, mut b) = (0usize, 0usize);
        let mut n = 0u32;
        for (&k, &end) in kinds.iter().zip(cuts.iter()) {
            if k == 0 {
                self.inner.send_text(&text[t..end]).map_err(error::engine)?;
                t = end;
            } else {
                self.inner
                    .send_binary_slice(&bin[b..end])
                    .map_err(error::engine)?;
                b = end;
            }
            n += 1;
        }
        Ok(Some(n))
    }

    /// Sends a ping with up to 125 bytes of payload.
    #[napi(strict)]
    pub fn ping(&mut self, data: Option<Uint8ArraySlice>) -> Result<(), JsError> {
        let payload: &[u8] = data.as_deref().unwrap_or(&[]);
        self.inner.ping(payload).map_err(error::engine)
    }

    /// Sends an unsolicited pong (a one-way heartbeat), up to 125 bytes.
    #[napi(strict)]
    pub fn pong(&mut self, data: Option<Uint8ArraySlice>) -> Result<(), JsError> {
        let payload: &[u8] = data.as_deref().unwrap_or(&[]);
        self.inner.pong(payload).map_err(error::engine)
    }

    /// Starts the closing handshake (default code 1000) with a reason of
    /// at most 123 UTF-8 bytes. Messages keep arriving until the peer
    /// answers. Before the handshake completes it aborts instead (a server
    /// answers a pending request with 503).
    #[napi(strict)]
    pub fn close(&mut self, code: Option<f64>, reason: Option<String>) -> Result<(), JsError> {
        let code = close_code(code)?;
        self.inner
            .close(code, reason.as_deref().unwrap_or(""))
            .map_err(error::engine)
    }

    /// The coarse state: `'handshake'` until the upgrade completes,
    /// `'open'` while messages flow, `'closing'` once a close frame was
    /// sent or received, `'closed'` when finished (write any remaining
    /// output, then close the socket).
    #[napi(getter, ts_return_type = "'handshake' | 'open' | 'closing' | 'closed'")]
    pub fn state(&self) -> &'static str {
        match self.inner.state() {
            ws::State::Handshake => "handshake",
            ws::State::Open => "open",
            ws::State::Closing => "closing",
            ws::State::Closed => "closed",
        }
    }

    /// True once the connection has ended (output may still need writing).
    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Bytes queued and not yet taken by `takeTransmit()`.
    #[napi(getter)]
    pub fn buffered_amount(&self) -> f64 {
        self.inner.buffered_amount() as f64
    }

    /// The negotiated subprotocol, once open.
    #[napi(getter)]
    pub fn subprotocol(&self) -> Option<String> {
        self.inner.subprotocol().map(str::to_string)
    }

    /// `"server"` or `"client"`.
    #[napi(getter, ts_return_type = "'server' | 'client'")]
    pub fn role(&self) -> &'static str {
        match self.inner.role() {
            ws::Role::Server => "server",
            ws::Role::Client => "client",
        }
    }
}
