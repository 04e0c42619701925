//! The session layer (`[event-id, data]` event vectors, acknowledged
//! reliable sends, request/reply, resume) as a sans-IO JS class.
//!
//! Data elements cross as they travel: a JSON session takes and gives the
//! JSON text of each data element as a string, a MessagePack session its
//! bytes as a `Buffer`. Encoding application values is the business of
//! `lib/session.js` (JSON.stringify / JSON.parse), so this file never
//! parses data twice.

use bytes::Bytes;
use evsock::session::{
    self, CloseReason, Config, Format, MessageKind, Output, RequestError, Role, SendError,
    SessionEvent,
};
use evsock::{Rng, SeededRng};
use napi::bindgen_prelude::{Buffer, Object, ToNapiValue, TypeName, Uint8ArraySlice};
use napi::{sys, Either, Env, JsValue, ValueType};
use napi_derive::napi;

use crate::error::{arg, ArgError, Code, JsError};
use crate::options::{integer, time, MAX_SAFE};
use crate::rng;

/// Settings of one session. Every field is optional; durations are
/// milliseconds of the clock passed in as `now`. The defaults are the
/// engine's (see docs/protocol.md).
#[napi(object)]
#[derive(Clone, Debug, Default)]
pub struct SessionOptions {
    /// Wire format a client speaks: `'json'` (text messages, the default)
    /// or `'msgpack'` (binary messages). A server answers in the format of
    /// the hello it receives.
    #[napi(ts_type = "'json' | 'msgpack'")]
    pub format: Option<String>,
    /// Largest transport message accepted or produced. Default 1 MiB.
    pub max_message_bytes: Option<f64>,
    /// Most envelopes in one batch frame. Default 64.
    pub max_batch_envelopes: Option<f64>,
    /// Server: how long a disconnected session stays resumable. Default
    /// 60000.
    pub resume_window_ms: Option<f64>,
    /// Most bytes of unacknowledged reliable messages kept for
    /// retransmission. Default 1 MiB.
    pub resume_buffer_bytes: Option<f64>,
    /// Unacknowledged reliable messages older than this are dropped from
    /// the resume buffer. Default 60000.
    pub resume_buffer_age_ms: Option<f64>,
    /// Most outstanding outgoing requests. Default 1024.
    pub max_pending_requests: Option<f64>,
    /// Most incoming requests awaiting a reply. Default 1024.
    pub max_incoming_requests: Option<f64>,
    /// Largest request timeout accepted. Default 600000.
    pub max_request_timeout_ms: Option<f64>,
    /// Delay before a standalone ack. Default 50.
    pub ack_delay_ms: Option<f64>,
    /// Acknowledge at once after this many messages. Default 32.
    pub ack_every: Option<f64>,
    /// Send an `evs/ping` after this long without hearing from the peer.
    /// Default 20000; `0` never pings.
    pub ping_interval_ms: Option<f64>,
    /// Give up on a connection after this long without hearing from the
    /// peer. Default 45000; `0` never.
    pub idle_timeout_ms: Option<f64>,
    /// Give up on a connection whose hello / welcome is late. Default 10000.
    pub handshake_timeout_ms: Option<f64>,
    /// Collect outgoing envelopes this long into one batch frame. Default 0
    /// (send each at once).
    pub batch_window_ms: Option<f64>,
    /// Flush a batch early at this many bytes. Default 16 KiB.
    pub batch_max_bytes: Option<f64>,
    /// Client: first reconnect delay cap (full jitter below it). Default 500.
    pub backoff_base_ms: Option<f64>,
    /// Client: largest reconnect delay cap. Default 30000.
    pub backoff_max_ms: Option<f64>,
    /// Seed of a deterministic generator for reconnect jitter. For tests;
    /// by default the operating system's random source is used.
    pub seed: Option<f64>,
    /// For tests: the values the random generator returns, in a cycle
    /// (as in the shared session vectors).
    pub test_random: Option<Vec<f64>>,
}

fn num(name: &str, v: Option<f64>, min: f64) -> Result<Option<u64>, ArgError> {
    v.map(|v| integer(name, v, min, MAX_SAFE)).transpose()
}

fn usz(name: &str, v: Option<f64>, min: f64) -> Result<Option<usize>, ArgError> {
    Ok(num(name, v, min)?.map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
}

/// Checks options and builds the engine's configuration.
pub fn config(o: &SessionOptions) -> Result<Config, ArgError> {
    let mut c = Config::default();
    match o.format.as_deref() {
        None | Some("json") => {}
        Some("msgpack") => c.format = Format::MsgPack,
        Some(other) => {
            return Err(arg(format!(
                "format must be 'json' or 'msgpack', not {other:?}"
            )))
        }
    }
    macro_rules! set {
        ($field:ident, $name:literal, $conv:ident, $min:expr) => {
            if let Some(v) = $conv($name, o.$field, $min)? {
                c.$field = v;
            }
        };
    }
    set!(max_message_bytes, "maxMessageBytes", usz, 64.0);
    set!(max_batch_envelopes, "maxBatchEnvelopes", usz, 1.0);
    set!(resume_window_ms, "resumeWindowMs", num, 0.0);
    set!(resume_buffer_bytes, "resumeBufferBytes", usz, 0.0);
    set!(resume_buffer_age_ms, "resumeBufferAgeMs", num, 0.0);
    set!(max_pending_requests, "maxPendingRequests", usz, 0.0);
    set!(max_incoming_requests, "maxIncomingRequests", usz, 0.0);
    set!(max_request_timeout_ms, "maxRequestTimeoutMs", num, 1.0);
    set!(ack_delay_ms, "ackDelayMs", num, 0.0);
    set!(ack_every, "ackEvery", num, 1.0);
    set!(handshake_timeout_ms, "handshakeTimeoutMs", num, 1.0);
    set!(batch_window_ms, "batchWindowMs", num, 0.0);
    set!(batch_max_bytes, "batchMaxBytes", usz, 0.0);
    set!(backoff_base_ms, "backoffBaseMs", num, 0.0);
    set!(backoff_max_ms, "backoffMaxMs", num, 0.0);
    if let Some(v) = num("pingIntervalMs", o.ping_interval_ms, 0.0)? {
        c.ping_interval_ms = (v > 0).then_some(v);
    }
    if let Some(v) = num("idleTimeoutMs", o.idle_timeout_ms, 0.0)? {
        c.idle_timeout_ms = (v > 0).then_some(v);
    }
    if c.backoff_max_ms < c.backoff_base_ms {
        return Err(arg(format!(
            "backoffMaxMs ({}) must not be below backoffBaseMs ({})",
            c.backoff_max_ms, c.backoff_base_ms
        )));
    }
    Ok(c)
}

/// Values given by a test, returned by `next_u64` in a cycle.
struct ScriptedRng {
    values: Vec<u64>,
    at: usize,
}

impl Rng for ScriptedRng {
    fn fill(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn next_u64(&mut self) -> u64 {
        let v = self.values[self.at % self.values.len()];
        self.at += 1;
        v
    }
}

fn rng(o: &SessionOptions) -> Result<Box<dyn Rng + Send>, ArgError> {
    if let Some(list) = &o.test_random {
        if list.is_empty() {
            return Err(arg("testRandom must hold at least one number"));
        }
        let values = list
            .iter()
            .map(|&v| integer("testRandom[]", v, 0.0, MAX_SAFE))
            .collect::<Result<Vec<_>, _>>()?;
        if o.seed.is_some() {
            return Err(arg("give seed or testRandom, not both"));
        }
        return Ok(Box::new(ScriptedRng { values, at: 0 }));
    }
    if let Some(s) = o.seed {
        return Ok(Box::new(SeededRng::new(integer("seed", s, 0.0, MAX_SAFE)?)));
    }
    Ok(rng::os())
}

fn now_ms(now: Option<f64>) -> Result<u64, JsError> {
    match now {
        Some(t) => Ok(time(t)?),
        None => Err(arg(
            "now (milliseconds) is required when the native binding is used directly; \
             require('evsock') supplies a monotonic clock",
        )
        .into()),
    }
}

fn refused(e: SendError) -> JsError {
    let msg = match &e {
        SendError::InvalidData(inner) => format!("{e}: {inner}"),
        _ => e.to_string(),
    };
    napi::Error::new(Code(e.code()), msg)
}

fn data_bytes(d: Option<Either<String, Uint8ArraySlice>>) -> Bytes {
    match d {
        None => Bytes::new(),
        Some(Either::A(s)) => Bytes::from(s.into_bytes()),
        Some(Either::B(b)) => Bytes::copy_from_slice(&b),
    }
}

fn kind_of<'a>(m: &'a Either<String, Uint8ArraySlice<'_>>) -> (MessageKind, &'a [u8]) {
    match m {
        Either::A(s) => (MessageKind::Text, s.as_bytes()),
        Either::B(b) => (MessageKind::Binary, b),
    }
}

fn id(n: f64, what: &str) -> Result<u64, ArgError> {
    integer(what, n, 0.0, MAX_SAFE)
}

/// What the first message of a connection says (see `peekHello`).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct Hello {
    /// `'json'` or `'msgpack'`, from the message kind.
    #[napi(ts_type = "'json' | 'msgpack'")]
    pub format: String,
    /// The session the client asks to resume, or `null` for a new one.
    pub session_id: Option<String>,
    /// Highest server id the client has received in order.
    pub rx: f64,
    /// Lowest client id the client can still retransmit.
    pub lo: f64,
    /// Protocol version the client speaks.
    pub version: f64,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Json => "json",
        Format::MsgPack => "msgpack",
    }
}

/// Reads the hello in the first message of a new connection (a string for
/// a text message, bytes for a binary one), so a server host can find the
/// session to resume before handing the message to it. Throws (code
/// `envelope`) if the message is not a valid hello.
#[napi(ts_args_type = "message: string | Uint8Array")]
pub fn peek_hello(message: Either<String, Uint8ArraySlice>) -> Result<Hello, JsError> {
    let (kind, payload) = kind_of(&message);
    let h = session::peek_hello(kind, payload)
        .map_err(|e| napi::Error::new(Code("envelope"), e.to_string()))?;
    Ok(Hello {
        format: format_name(h.format).into(),
        session_id: h.session_id,
        rx: h.rx as f64,
        lo: h.lo as f64,
        version: h.version as f64,
    })
}

/// A fresh random session id (22 characters, base64url).
#[napi]
pub fn new_session_id() -> String {
    session::new_session_id(&mut rng::OsRng)
}

/// The session-less `evs/bye` message a server sends to turn a connection
/// away before creating a session (overload, maintenance): the client waits
/// at least `retryAfterMs` before reconnecting. A string for `'json'`, a
/// `Buffer` for `'msgpack'`.
#[napi(ts_return_type = "string | Buffer")]
pub fn encode_go_away(
    format: String,
    retry_after_ms: f64,
) -> Result<Either<String, Buffer>, JsError> {
    let f = match format.as_str() {
        "json" => Format::Json,
        "msgpack" => Format::MsgPack,
        other => {
            return Err(arg(format!("format must be 'json' or 'msgpack', not {other:?}")).into())
        }
    };
    let ra = id(retry_after_ms, "retryAfterMs")?;
    Ok(message_value(f.kind(), session::encode_go_away(f, ra)))
}

fn message_value(kind: MessageKind, payload: Bytes) -> Either<String, Buffer> {
    match kind {
        MessageKind::Text => Either::A(String::from_utf8_lossy(&payload).into_owned()),
        MessageKind::Binary => Either::B(Buffer::from(payload.to_vec())),
    }
}

/// One output of `takeOutputs`, converted when it crosses.
pub struct Out {
    out: Output,
    format: Format,
}

/// A batch of outputs.
pub struct Outs(Vec<Out>);

impl TypeName for Outs {
    fn type_name() -> &'static str {
        "Array<SessionOutput>"
    }
    fn value_type() -> ValueType {
        ValueType::Object
    }
}

fn data_value(format: Format, data: &Bytes) -> Either<String, Buffer> {
    message_value(format.kind(), data.clone())
}

fn u(n: u64) -> f64 {
    n as f64
}

fn build(env: &Env, o: Out) -> napi::Result<Object<'_>> {
    let mut obj = Object::new(env)?;
    let f = o.format;
    match o.out {
        Output::Send { kind, payload } => {
            obj.set("type", "send")?;
            obj.set("message", message_value(kind, payload))?;
        }
        Output::Event(e) => match e {
            SessionEvent::Established {
                session_id,
                resumed,
            } => {
                obj.set("type", "established")?;
                obj.set("sessionId", session_id)?;
                obj.set("resumed", resumed)?;
            }
            SessionEvent::Reset { unconfirmed } => {
                obj.set("type", "reset")?;
                obj.set("unconfirmed", unconfirmed.map(|(a, b)| vec![u(a), u(b)]))?;
            }
            SessionEvent::Gap { from, to } => {
                obj.set("type", "gap")?;
                obj.set("from", u(from))?;
                obj.set("to", u(to))?;
            }
            SessionEvent::Message { event, data, id } => {
                obj.set("type", "message")?;
                obj.set("name", event.as_str())?;
                obj.set("data", data_value(f, &data))?;
                obj.set("id", id.map(u))?;
            }
            SessionEvent::Request {
                req,
                event,
                data,
                timeout_ms,
                idempotency_key,
            } => {
                obj.set("type", "request")?;
                obj.set("req", u(req))?;
                obj.set("name", event.as_str())?;
                obj.set("data", data_value(f, &data))?;
                obj.set("timeoutMs", u(timeout_ms))?;
                obj.set("idempotencyKey", idempotency_key.map(String::from))?;
            }
            SessionEvent::Reply { req, data } => {
                obj.set("type", "reply")?;
                obj.set("req", u(req))?;
                obj.set("data", data_value(f, &data))?;
            }
            SessionEvent::RequestFailed { req, error } => {
                obj.set("type", "requestFailed")?;
                obj.set("req", u(req))?;
                obj.set("error", error.code())?;
                let data = match &error {
                    RequestError::Remote(d) => Some(data_value(f, d)),
                    _ => None,
                };
                obj.set("data", data)?;
            }
            SessionEvent::Reconnect => obj.set("type", "reconnect")?,
            SessionEvent::CloseTransport { reason } => {
                obj.set("type", "closeTransport")?;
                obj.set("reason", close_reason(reason))?;
            }
            SessionEvent::Expired => obj.set("type", "expired")?,
            SessionEvent::Closed { by_peer } => {
                obj.set("type", "closed")?;
                obj.set("byPeer", by_peer)?;
            }
            SessionEvent::Error(err) => {
                obj.set("type", "error")?;
                obj.set("code", err.code())?;
                obj.set("message", err.to_string())?;
            }
            // SessionEvent is exhaustive today; a future variant reaches
            // JS as an error event rather than being lost silently.
            #[allow(unreachable_patterns)]
            other => {
                obj.set("type", "error")?;
                obj.set("code", "unknown_event")?;
                obj.set("message", format!("{other:?}"))?;
            }
        },
    }
    Ok(obj)
}

fn close_reason(r: CloseReason) -> &'static str {
    r.code()
}

impl ToNapiValue for Outs {
    unsafe fn to_napi_value(env: sys::napi_env, val: Self) -> napi::Result<sys::napi_value> {
        let env = Env::from_raw(env);
        let mut arr = env.create_array(u32::try_from(val.0.len()).unwrap_or(u32::MAX))?;
        for (i, o) in val.0.into_iter().enumerate() {
            let obj = build(&env, o)?;
            arr.set(i as u32, obj)?;
        }
        Ok(arr.raw())
    }
}

/// One end of an evsock session: event vectors, reliable numbered messages
/// with acks and retransmission, request/reply with timeouts, resume.
/// Sans-IO: feed it transport messages and the time, drain
/// `takeOutputs()` (messages to send and events), and call
/// `handleTimeout` at `pollTimeout()`.
///
/// A server session outlives its connections: keep it in a map by session
/// id, route a new connection's first message with `peekHello`, and drop
/// the session after an `expired` or `closed` event.
#[napi]
pub struct Session {
    inner: session::Session,
}

#[napi]
impl Session {
    /// A client session. Open a transport connection, then call
    /// `handleConnected`; the session sends the hello.
    #[napi(factory)]
    pub fn client(options: Option<SessionOptions>) -> Result<Session, JsError> {
        let o = options.unwrap_or_default();
        let cfg = config(&o)?;
        Ok(Session {
            inner: session::Session::client(cfg, rng(&o)?),
        })
    }

    /// A server session with the given id (normally from
    /// `newSessionId()`): call `handleConnected`, then hand it the hello.
    /// The id must be 1 to 64 printable ASCII characters without space,
    /// `"` or `\`.
    #[napi(factory)]
    pub fn server(session_id: String, options: Option<SessionOptions>) -> Result<Session, JsError> {
        let o = options.unwrap_or_default();
        let cfg = config(&o)?;
        let inner = session::Session::server(cfg, &session_id, rng(&o)?).map_err(|_| {
            JsError::from(arg(format!(
                "session id {session_id:?} must be 1 to 64 printable ASCII characters \
                 without space, '\"' or '\\'"
            )))
        })?;
        Ok(Session { inner })
    }

    /// `'client'` or `'server'`.
    #[napi(getter, ts_return_type = "'client' | 'server'")]
    pub fn role(&self) -> &'static str {
        match self.inner.role() {
            Role::Client => "client",
            Role::Server => "server",
        }
    }

    /// The session id, once known (`null` on a client before the first
    /// welcome).
    #[napi(getter)]
    pub fn session_id(&self) -> Option<String> {
        self.inner.session_id().map(str::to_owned)
    }

    /// `'json'` or `'msgpack'`.
    #[napi(getter, ts_return_type = "'json' | 'msgpack'")]
    pub fn format(&self) -> &'static str {
        format_name(self.inner.format())
    }

    /// True while a connection is open and its handshake completed.
    #[napi(getter)]
    pub fn is_established(&self) -> bool {
        self.inner.is_established()
    }

    /// True once the session ended for good.
    #[napi(getter)]
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Outgoing requests awaiting their reply.
    #[napi(getter)]
    pub fn pending_requests(&self) -> u32 {
        u32::try_from(self.inner.pending_requests()).unwrap_or(u32::MAX)
    }

    /// Reliable messages sent and not yet acknowledged.
    #[napi(getter)]
    pub fn unacked_messages(&self) -> u32 {
        u32::try_from(self.inner.unacked_messages()).unwrap_or(u32::MAX)
    }

    /// Bytes held in the resume buffer.
    #[napi(getter)]
    pub fn unacked_bytes(&self) -> f64 {
        self.inner.unacked_bytes() as f64
    }

    /// The highest reliable id received in order.
    #[napi(getter)]
    pub fn last_received_id(&self) -> f64 {
        u(self.inner.last_received_id())
    }

    /// A transport connection opened (a client sends its hello now).
    #[napi]
    pub fn handle_connected(&mut self, now: Option<f64>) -> Result<(), JsError> {
        self.inner.handle_connected(now_ms(now)?);
        Ok(())
    }

    /// The transport connection is gone (a client schedules a reconnect).
    #[napi]
    pub fn handle_disconnected(&mut self, now: Option<f64>) -> Result<(), JsError> {
        self.inner.handle_disconnected(now_ms(now)?);
        Ok(())
    }

    /// A whole transport message arrived: a string for a text message,
    /// bytes for a binary one. Bad input is reported as an `error` output,
    /// never thrown.
    #[napi(ts_args_type = "message: string | Uint8Array, now?: number")]
    pub fn handle_message(
        &mut self,
        message: Either<String, Uint8ArraySlice>,
        now: Option<f64>,
    ) -> Result<(), JsError> {
        let now = now_ms(now)?;
        let (kind, payload) = kind_of(&message);
        self.inner.handle_message(now, kind, payload);
        Ok(())
    }

    /// Runs what is due (acks, pings, request timeouts, reconnect, expiry).
    #[napi]
    pub fn handle_timeout(&mut self, now: Option<f64>) -> Result<(), JsError> {
        self.inner.handle_timeout(now_ms(now)?);
        Ok(())
    }

    /// When `handleTimeout` must next be called, or `null`.
    #[napi]
    pub fn poll_timeout(&self) -> Option<f64> {
        self.inner.poll_timeout().map(u)
    }

    /// Every pending output, in order: `send` (a message for the current
    /// connection) and events.
    #[napi(ts_return_type = "Array<SessionOutput>")]
    pub fn take_outputs(&mut self) -> Outs {
        let format = self.inner.format();
        let mut v = Vec::new();
        while let Some(out) = self.inner.poll_output() {
            v.push(Out { out, format });
        }
        Outs(v)
    }

    /// Sends a fire-and-forget event (needs an established connection).
    /// `data` is the encoded data element (JSON text or MessagePack bytes);
    /// omitted, the event has no data.
    #[napi(ts_args_type = "name: string, data?: string | Uint8Array | null, now?: number")]
    pub fn send(
        &mut self,
        name: String,
        data: Option<Either<String, Uint8ArraySlice>>,
        now: Option<f64>,
    ) -> Result<(), JsError> {
        let now = now_ms(now)?;
        self.inner
            .send(now, &name, data_bytes(data))
            .map_err(refused)
    }

    /// Sends a reliable event: numbered, acknowledged, retransmitted after a
    /// reconnect, delivered once and in order while the session can be
    /// resumed. Accepted while disconnected. Returns its id.
    #[napi(ts_args_type = "name: string, data?: string | Uint8Array | null, now?: number")]
    pub fn send_reliable(
        &mut self,
        name: String,
        data: Option<Either<String, Uint8ArraySlice>>,
        now: Option<f64>,
    ) -> Result<f64, JsError> {
        let now = now_ms(now)?;
        self.inner
            .send_reliable(now, &name, data_bytes(data))
            .map(u)
            .map_err(refused)
    }

    /// Sends a request; it ends in exactly one `reply` or `requestFailed`
    /// output with the returned id, at the latest `timeoutMs` from now.
    /// With an idempotency key a server can answer a retry from its reply
    /// cache instead of applying it twice.
    #[napi(
        ts_args_type = "name: string, data: string | Uint8Array | null | undefined, timeoutMs: number, idempotencyKey?: string | null, now?: number"
    )]
    pub fn request(
        &mut self,
        name: String,
        data: Option<Either<String, Uint8ArraySlice>>,
        timeout_ms: f64,
        idempotency_key: Option<String>,
        now: Option<f64>,
    ) -> Result<f64, JsError> {
        let now = now_ms(now)?;
        let timeout = id(timeout_ms, "timeoutMs")?;
        let data = data_bytes(data);
        let r = match idempotency_key {
            Some(k) => self.inner.request_idempotent(now, &name, data, timeout, &k),
            None => self.inner.request(now, &name, data, timeout),
        };
        r.map(u).map_err(refused)
    }

    /// Answers incoming request `req`.
    #[napi(ts_args_type = "req: number, data?: string | Uint8Array | null, now?: number")]
    pub fn reply(
        &mut self,
        req: f64,
        data: Option<Either<String, Uint8ArraySlice>>,
        now: Option<f64>,
    ) -> Result<(), JsError> {
        let now = now_ms(now)?;
        let req = id(req, "req")?;
        self.inner
            .reply(now, req, data_bytes(data))
            .map_err(refused)
    }

    /// Answers incoming request `req` with an error (the requester sees
    /// `requestFailed` with error `'remote'` and this data).
    #[napi(ts_args_type = "req: number, data?: string | Uint8Array | null, now?: number")]
    pub fn reply_error(
        &mut self,
        req: f64,
        data: Option<Either<String, Uint8ArraySlice>>,
        now: Option<f64>,
    ) -> Result<(), JsError> {
        let now = now_ms(now)?;
        let req = id(req, "req")?;
        self.inner
            .reply_error(now, req, data_bytes(data))
            .map_err(refused)
    }

    /// Ends the session for good: tells the peer, fails pending requests
    /// and asks the host to close the transport.
    #[napi]
    pub fn close(&mut self, now: Option<f64>) -> Result<(), JsError> {
        self.inner.close(now_ms(now)?);
        Ok(())
    }

    /// Server: asks the client to disconnect and come back after
    /// `retryAfterMs` (the session stays resumable).
    #[napi]
    pub fn go_away(&mut self, retry_after_ms: f64, now: Option<f64>) -> Result<(), JsError> {
        let now = now_ms(now)?;
        let ra = id(retry_after_ms, "retryAfterMs")?;
        self.inner.go_away(now, ra);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_by_name() {
        let bad = |o: SessionOptions| config(&o).unwrap_err().0;
        assert!(bad(SessionOptions {
            format: Some("xml".into()),
            ..Default::default()
        })
        .contains("format"));
        assert!(bad(SessionOptions {
            ack_delay_ms: Some(-1.0),
            ..Default::default()
        })
        .contains("ackDelayMs"));
        assert!(bad(SessionOptions {
            max_batch_envelopes: Some(0.0),
            ..Default::default()
        })
        .contains("maxBatchEnvelopes"));
        assert!(bad(SessionOptions {
            backoff_base_ms: Some(100.0),
            backoff_max_ms: Some(10.0),
            ..Default::default()
        })
        .contains("backoffMaxMs"));
    }

    #[test]
    fn zero_turns_keepalive_off_and_defaults_match_the_engine() {
        assert_eq!(
            config(&SessionOptions::default()).unwrap(),
            Config::default()
        );
        let c = config(&SessionOptions {
            ping_interval_ms: Some(0.0),
            idle_timeout_ms: Some(0.0),
            format: Some("msgpack".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.ping_interval_ms, None);
        assert_eq!(c.idle_timeout_ms, None);
        assert_eq!(c.format, Format::MsgPack);
    }

    #[test]
    fn scripted_random_cycles() {
        let mut r = rng(&SessionOptions {
            test_random: Some(vec![1.0, 2.0]),
            ..Default::default()
        })
        .ok()
        .unwrap();
        assert_eq!([r.next_u64(), r.next_u64(), r.next_u64()], [1, 2, 1]);
        assert!(rng(&SessionOptions {
            test_random: Some(vec![]),
            ..Default::default()
        })
        .is_err());
    }
}
