'use strict'

// Event vectors over Node sockets: a sans-IO Session driven over the
// WebSocket hosts of ./host.js.
//
// The host does for the session what ./host.js does for a connection and
// nothing more: hand it whole messages and connection changes, send what it
// outputs, act on its events, and keep one timer at its next deadline (acks,
// evs/ping keep-alive, idle and request timeouts, the client's reconnect
// backoff, the server's resume window). Every decision is the engine's.
//
// Application data are JS values: JSON sessions encode them with
// JSON.stringify / JSON.parse; MessagePack sessions take and give encoded
// MessagePack as Buffers (this package bundles no MessagePack codec).

const { EventEmitter } = require('node:events')

const { Session, peekHello, newSessionId } = require('./session')
const { attachServer, connect } = require('./host')
const { now } = require('./connection')
const { checkKeys } = require('./options')

function codedError(code, message, Ctor = Error) {
  const err = new Ctor(message)
  err.code = code
  return err
}

function describe(v) {
  if (v === null) return 'null'
  if (typeof v === 'object') return v.constructor?.name ?? 'object'
  return typeof v
}

// Close codes for the transport when the session asks to drop it; the
// reason is the session's own code (idle_timeout, protocol_error, ...).
const CLOSE_CODES = {
  session_closed: 1000,
  go_away: 1001,
  idle_timeout: 4000,
  handshake_timeout: 4001,
  protocol_error: 4002,
}

/**
 * One end of a session over WebSockets: `send`, `sendReliable`, `request`
 * (a Promise), `close`, and the events 'established' ({sessionId,
 * resumed}), 'message' (name, data, {id}), 'request' (a SessionRequest),
 * 'reset' ({unconfirmed}), 'gap' ({from, to}), 'disconnected' ({code,
 * reason}), 'reconnecting', 'closed' ({byPeer, expired}) and 'error'
 * (bad input the session ignored; emitted only with a listener).
 */
class SessionPeer extends EventEmitter {
  constructor(session, { refTimer }) {
    super()
    this._session = session
    this._ws = null
    this._timer = null
    this._deadline = null
    this._refTimer = refTimer
    this._pending = new Map()
    this._pumping = false
    this._again = false
    this._ended = false
    this._onTimer = () => {
      this._timer = null
      this._deadline = null
      this._session.handleTimeout(now())
      this._pump()
    }
  }

  /** The session id (null on a client before the first welcome). */
  get id() {
    return this._session.sessionId
  }

  /** True while a connection is open and its handshake is done. */
  get connected() {
    return this._session.isEstablished
  }

  /** True once the session has ended for good. */
  get closed() {
    return this._session.isClosed
  }

  /** 'json' or 'msgpack'. */
  get format() {
    return this._session.format
  }

  /**
   * The current WebSocket, or null between connections. Closing or
   * terminating it is how a test cuts the connection; the session resumes.
   */
  get transport() {
    return this._ws
  }

  /** The sans-IO session underneath (inspect it; do not drive it). */
  get session() {
    return this._session
  }

  _encode(value, where) {
    if (value === undefined) return undefined
    if (this._session.format === 'msgpack') {
      if (value instanceof Uint8Array) return value
      throw codedError(
        'invalid_argument',
        `${where}: a MessagePack session takes encoded MessagePack (a Buffer), not ${describe(value)}`,
        TypeError,
      )
    }
    let text
    try {
      text = JSON.stringify(value)
    } catch (e) {
      throw codedError('invalid_data', `${where}: data cannot be encoded as JSON: ${e.message}`, TypeError)
    }
    if (text === undefined) {
      throw codedError('invalid_data', `${where}: data cannot be encoded as JSON (${describe(value)})`, TypeError)
    }
    return text
  }

  _decode(data) {
    if (typeof data !== 'string') return data // MessagePack: a Buffer
    if (data === '') return undefined
    return JSON.parse(data) // the engine checked it is one JSON value
  }

  /**
   * Sends a fire-and-forget event. Throws (code `not_connected`) unless
   * the session is connected.
   */
  send(name, data) {
    this._session.send(name, this._encode(data, 'send'), now())
    this._pump()
  }

  /**
   * Sends a reliable event: delivered once and in order while the session
   * lives, across reconnects. Accepted while disconnected; while the session
   * handshakes it throws (code `buffer_full`) once the resume buffer is full.
   * Returns its id.
   */
  sendReliable(name, data) {
    const id = this._session.sendReliable(name, this._encode(data, 'sendReliable'), now())
    this._pump()
    return id
  }

  /**
   * Sends a request; resolves with the reply's data, or rejects with an
   * Error whose `code` is `timeout`, `session_closed`, `resume_failed` or
   * `remote` (with the peer's error data as `data`). `options.timeoutMs`
   * defaults to 10000; `options.idempotencyKey` lets a server answer a
   * retry from its cache.
   */
  request(name, data, options = {}) {
    if (options === null || typeof options !== 'object') {
      throw codedError('invalid_argument', `request options must be an object, not ${describe(options)}`, TypeError)
    }
    const timeoutMs = options.timeoutMs ?? 10000
    const req = this._session.request(
      name,
      this._encode(data, 'request'),
      timeoutMs,
      options.idempotencyKey ?? null,
      now(),
    )
    const p = new Promise((resolve, reject) => this._pending.set(req, { resolve, reject, name }))
    this._pump()
    return p
  }

  /** Ends the session for good: the peer is told, pending requests fail. */
  close() {
    if (this._session.isClosed) return
    this._session.close(now())
    this._pump()
  }

  _attach(ws) {
    this._ws = ws
    ws.on('message', (data, isBinary) => {
      if (this._ws !== ws) return
      this._session.handleMessage(isBinary ? data : String(data), now())
      this._pump()
    })
    ws.on('close', (code, reason) => {
      if (this._ws !== ws) return
      this._ws = null
      if (!this._session.isClosed) {
        this._session.handleDisconnected(now())
        this.emit('disconnected', { code, reason })
      }
      this._pump()
      this._transportGone()
    })
  }

  _transportGone() {}

  _dropTransport(reason) {
    const ws = this._ws
    if (ws === null) return
    this._ws = null
    const code = CLOSE_CODES[reason] ?? 4000
    ws.close(code, reason)
    if (reason !== 'session_closed') this.emit('disconnected', { code, reason })
  }

  _pump() {
    if (this._pumping) {
      this._again = true
      return
    }
    this._pumping = true
    try {
      do {
        this._again = false
        const outs = this._session.takeOutputs()
        for (let i = 0; i < outs.length; i++) this._output(outs[i])
      } while (this._again)
    } finally {
      this._pumping = false
    }
    this._arm(this._session.pollTimeout())
  }

  _arm(deadline) {
    if (deadline === this._deadline) return
    if (this._timer !== null) clearTimeout(this._timer)
    this._timer = null
    this._deadline = deadline
    if (deadline === null) return
    this._timer = setTimeout(this._onTimer, Math.max(0, Math.ceil(deadline - now())))
    if (!this._refTimer) this._timer.unref?.()
  }

  _output(o) {
    switch (o.type) {
      case 'send':
        if (this._ws !== null && this._ws.readyState === 1) this._ws.send(o.message)
        break
      case 'established':
        this.emit('established', { sessionId: o.sessionId, resumed: o.resumed })
        break
      case 'message':
        this.emit('message', o.name, this._decode(o.data), { id: o.id })
        break
      case 'request':
        this.emit('request', new SessionRequest(this, o))
        break
      case 'reply': {
        const p = this._pending.get(o.req)
        if (p !== undefined) {
          this._pending.delete(o.req)
          p.resolve(this._decode(o.data))
        }
        break
      }
      case 'requestFailed': {
        const p = this._pending.get(o.req)
        if (p !== undefined) {
          this._pending.delete(o.req)
          const err = codedError(o.error, `request ${p.name} failed: ${o.error}`)
          if (o.error === 'remote') err.data = this._decode(o.data)
          p.reject(err)
        }
        break
      }
      case 'reset':
        this.emit('reset', { unconfirmed: o.unconfirmed })
        break
      case 'gap':
        this.emit('gap', { from: o.from, to: o.to })
        break
      case 'reconnect':
        this._reconnect()
        break
      case 'closeTransport':
        this._dropTransport(o.reason)
        break
      case 'expired':
        this._end({ byPeer: false, expired: true })
        break
      case 'closed':
        this._dropTransport('session_closed')
        this._end({ byPeer: o.byPeer, expired: false })
        break
      case 'error':
        if (this.listenerCount('error') > 0) this.emit('error', codedError(o.code, o.message))
        break
    }
  }

  _reconnect() {}

  _end(details) {
    if (this._ended) return
    this._ended = true
    this.emit('closed', details)
  }
}

/** An incoming request; answer it once with `reply` or `fail`. */
class SessionRequest {
  constructor(peer, o) {
    this._peer = peer
    /** The request id. */
    this.id = o.req
    /** The event id. */
    this.name = o.name
    /** The request data. */
    this.data = peer._decode(o.data)
    /** How long the requester waits, in ms. */
    this.timeoutMs = o.timeoutMs
    /** The requester's idempotency key, or null. */
    this.idempotencyKey = o.idempotencyKey
  }

  /** Answers with `data`. Throws (code `unknown_request`) if too late. */
  reply(data) {
    const p = this._peer
    p._session.reply(this.id, p._encode(data, 'reply'), now())
    p._pump()
  }

  /** Answers with an error; the requester's Promise rejects with `data`. */
  fail(data) {
    const p = this._peer
    p._session.replyError(this.id, p._encode(data, 'fail'), now())
    p._pump()
  }
}

/**
 * A client session: dials `url` with net.connect (tls.connect for wss://),
 * sends the hello, and when the connection drops reconnects after the
 * engine's backoff, resuming the session so that reliable events and
 * requests survive. Additionally emits 'reconnecting' before each new dial.
 */
class SessionClient extends SessionPeer {
  constructor(url, opts) {
    super(Session.client(opts.session), { refTimer: true })
    this._url = url
    this._opts = opts
    this._dial()
  }

  /** The URL dialed. */
  get url() {
    return this._url
  }

  _dial() {
    const ws = connect(this._url, { options: this._opts.connection, tls: this._opts.tls })
    ws.on('error', () => {}) // 'close' follows with the details
    ws.on('open', () => {
      if (this._ws !== ws) return
      this._session.handleConnected(now())
      this._pump()
    })
    this._attach(ws)
  }

  _reconnect() {
    if (this._session.isClosed) return
    this.emit('reconnecting')
    this._dial()
  }

  _end(details) {
    super._end(details)
    if (this._timer !== null) clearTimeout(this._timer)
    this._timer = null
  }
}

/**
 * Opens a client session to `url`. `opts.session`: SessionOptions;
 * `opts.connection`: ConnectionOptions of each WebSocket (its keep-alive
 * pings too); `opts.tls`: extra tls.connect options.
 */
function connectSession(url, opts = {}) {
  if (typeof url !== 'string') {
    throw codedError('invalid_argument', `url must be a string, not ${describe(url)}`, TypeError)
  }
  if (opts === null || typeof opts !== 'object') {
    throw codedError('invalid_argument', `connectSession options must be an object, not ${describe(opts)}`, TypeError)
  }
  checkKeys(opts, 'ConnectSessionOptions', 'connectSession')
  return new SessionClient(url, opts)
}

/** A server's end of one session; it outlives its connections. */
class ServerSession extends SessionPeer {
  constructor(id, options, sessions) {
    super(Session.server(id, options), { refTimer: false })
    this._sessions = sessions
  }

  /**
   * Asks the client to disconnect and come back after `retryAfterMs`
   * (the session stays resumable).
   */
  goAway(retryAfterMs = 0) {
    this._session.goAway(retryAfterMs, now())
    this._pump()
  }

  _end(details) {
    super._end(details)
    this._sessions.delete(this.id)
    if (this._timer !== null) clearTimeout(this._timer)
    this._timer = null
  }
}

/**
 * Serves sessions on an http.Server's 'upgrade' event. Options: `path`,
 * `verify` and `connection` (ConnectionOptions) as for attachServer;
 * `session`: SessionOptions; `onSession(session, req)`: called for each
 * new session (a resumed one keeps its object and emits 'established'
 * again). Returns `{ sessions, close() }`: `sessions` maps ids to live
 * sessions; `close` detaches and ends every session.
 */
function attachSessionServer(server, opts = {}) {
  if (opts === null || typeof opts !== 'object') {
    throw codedError('invalid_argument', `attachSessionServer options must be an object, not ${describe(opts)}`, TypeError)
  }
  checkKeys(opts, 'AttachSessionServerOptions', 'attachSessionServer')
  const { session: sessionOptions, onSession } = opts
  if (typeof onSession !== 'function') {
    throw codedError('invalid_argument', `onSession must be a function, not ${describe(onSession)}`, TypeError)
  }
  // Fail now, not on the first connection, if the options are bad.
  Session.server('check', sessionOptions)
  const helloWait = sessionOptions?.handshakeTimeoutMs ?? 10000
  const sessions = new Map()

  function onConnection(ws, req) {
    // Until the hello names a session, the connection belongs to none.
    const timer = setTimeout(() => ws.close(4001, 'handshake_timeout'), helloWait)
    timer.unref?.()
    ws.on('close', () => clearTimeout(timer))
    ws.once('message', (data, isBinary) => {
      clearTimeout(timer)
      const first = isBinary ? data : String(data)
      let hello
      try {
        hello = peekHello(first)
      } catch (e) {
        ws.close(4002, 'expected evs/hello')
        return
      }
      let peer = hello.sessionId === null ? undefined : sessions.get(hello.sessionId)
      let fresh = false
      if (peer === undefined || peer.closed) {
        const id = newSessionId()
        peer = new ServerSession(id, sessionOptions, sessions)
        sessions.set(id, peer)
        fresh = true
      } else if (peer._ws !== null) {
        // The client came back before its old connection was seen to drop.
        const old = peer._ws
        peer._ws = null
        peer._session.handleDisconnected(now())
        old.close(4003, 'superseded')
      }
      peer._attach(ws)
      peer._session.handleConnected(now())
      if (fresh) onSession(peer, req)
      peer._session.handleMessage(first, now())
      peer._pump()
    })
  }

  const attached = attachServer(server, {
    path: opts.path,
    options: opts.connection,
    verify: opts.verify,
    onConnection,
  })
  return {
    sessions,
    close() {
      for (const peer of [...sessions.values()]) peer.close()
      attached.close()
    },
  }
}

module.exports = {
  SessionPeer,
  SessionClient,
  ServerSession,
  SessionRequest,
  connectSession,
  attachSessionServer,
}
