'use strict'

// Hosts that drive the sans-IO Connection over Node sockets: the server side
// plugs into an http.Server's 'upgrade' event, the client side dials with
// net.connect (or tls.connect for wss://).
//
// A host does three things for the engine and nothing else: feed it bytes and
// end of stream as they arrive, write out what it transmits, and keep one
// timer armed at its next deadline (keep-alive pings, pong, idle, handshake
// and close timeouts all come from there).

const { EventEmitter } = require('node:events')
const net = require('node:net')
const tls = require('node:tls')

const { Connection, now } = require('./connection')
const { checkKeys } = require('./options')

const CONNECTING = 0
const OPEN = 1
const CLOSING = 2
const CLOSED = 3

const STATES = { handshake: CONNECTING, open: OPEN, closing: CLOSING, closed: CLOSED }

/** Builds an Error with a `code`, like the ones the addon throws. */
function codedError(code, message, Ctor = Error) {
  const err = new Ctor(message)
  err.code = code
  return err
}

function toBytes(data) {
  if (Buffer.isBuffer(data) || data instanceof Uint8Array) return data
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return new Uint8Array(data)
  return null
}

/**
 * A WebSocket over a Node stream socket, driven by a sans-IO Connection.
 * Modelled on the browser WebSocket and the `ws` package: `send`, `close`,
 * `ping`, and the events 'open', 'message' (data, isBinary), 'ping',
 * 'pong', 'close' (code, reason, details) and 'error'.
 */
class WebSocket extends EventEmitter {
  constructor(conn, socket, url) {
    super()
    this._conn = conn
    this._socket = socket
    this._url = url
    this._timer = null
    this._deadline = null
    this._flushing = false
    this._again = false
    this._queued = false
    this._ended = false
    this._socketError = null
    this._closeEvent = null
    this._protocol = null
    this._onRequest = null
    this._onOpen = null
    this._flushNow = () => {
      this._queued = false
      this._flush()
    }
    this._onTimer = () => {
      this._timer = null
      this._deadline = null
      this._conn.handleTimeout(now())
      this._flush()
    }

    socket.setNoDelay?.(true)
    socket.on('data', (chunk) => {
      this._conn.receiveData(chunk, now())
      this._flush()
    })
    socket.on('end', () => {
      this._conn.receiveEof(now())
      this._flush()
    })
    socket.on('error', (err) => {
      // 'close' follows; the connection ends there.
      if (this._socketError === null) this._socketError = err
    })
    socket.on('close', () => {
      this._ended = true
      if (!this._conn.isClosed) this._conn.receiveEof(now())
      this._flush()
      this._clearTimer()
    })
  }

  /** The URL dialed (clients) or the request target (servers). */
  get url() {
    return this._url
  }

  /** 0 connecting, 1 open, 2 closing, 3 closed, as in browsers. */
  get readyState() {
    return STATES[this._conn.state]
  }

  /** The negotiated subprotocol, or '' if none. */
  get protocol() {
    return this._conn.subprotocol ?? ''
  }

  /** Bytes queued and not yet handed to the kernel. */
  get bufferedAmount() {
    return this._conn.bufferedAmount + (this._socket.writableLength ?? 0)
  }

  /** The underlying sans-IO connection (for inspection; do not drive it). */
  get connection() {
    return this._conn
  }

  /**
   * Sends a message: strings as text, Buffers, typed arrays and
   * ArrayBuffers as binary. Throws (code `invalid_state`) while connecting;
   * once closing or closed the message is dropped, as browsers do.
   *
   * Binary data is copied (once) unless `options.copy` is false: then a
   * large payload goes to the socket as is, as with the `ws` package and
   * `socket.write()`, and must not be modified until written.
   */
  send(data, options) {
    checkKeys(options, 'SendOptions', 'WebSocket.send')
    if (options != null && typeof options !== 'object') {
      throw codedError('invalid_argument', `send() options must be an object, not ${describe(options)}`, TypeError)
    }
    if (this._dropping()) return
    if (typeof data === 'string') {
      this._conn.sendText(data)
    } else {
      const bytes = toBytes(data)
      if (bytes === null) {
        throw codedError(
          'invalid_argument',
          `send() takes a string, Buffer, TypedArray or ArrayBuffer, not ${describe(data)}`,
          TypeError,
        )
      }
      if (options != null && options.copy === false) this._conn.sendBinaryShared(bytes)
      else this._conn.sendBinary(bytes)
    }
    this._schedule()
  }

  _dropping() {
    const state = this._conn.state
    return state === 'closing' || state === 'closed'
  }

  /** Sends a ping (at most 125 bytes of payload). */
  ping(data) {
    if (this._dropping()) return
    const bytes = data === undefined ? undefined : typeof data === 'string' ? Buffer.from(data) : toBytes(data)
    if (bytes === null) {
      throw codedError('invalid_argument', `ping() takes a string or bytes, not ${describe(data)}`, TypeError)
    }
    this._conn.ping(bytes)
    this._schedule()
  }

  /** Sends an unsolicited pong (at most 125 bytes of payload). */
  pong(data) {
    if (this._dropping()) return
    const bytes = data === undefined ? undefined : typeof data === 'string' ? Buffer.from(data) : toBytes(data)
    if (bytes === null) {
      throw codedError('invalid_argument', `pong() takes a string or bytes, not ${describe(data)}`, TypeError)
    }
    this._conn.pong(bytes)
    this._schedule()
  }

  /**
   * Starts the closing handshake (default 1000). Closing an already
   * closing or closed socket does nothing, as in browsers.
   */
  close(code, reason) {
    if (this._conn.state === 'closing' || this._conn.state === 'closed') return
    this._conn.close(code, reason)
    this._schedule()
  }

  /** Drops the connection at once, without a closing handshake. */
  terminate() {
    this._socket.destroy()
  }

  _schedule() {
    if (this._flushing) {
      this._again = true
    } else if (!this._queued) {
      // Sends made in the same turn of the event loop go out in one write.
      this._queued = true
      queueMicrotask(this._flushNow)
    }
  }

  _flush() {
    if (this._flushing) {
      this._again = true
      return
    }
    this._flushing = true
    try {
      let events
      do {
        this._again = false
        // Events first: decoding them can queue bytes (a close reply, an
        // error close), and replies made by the handlers go out in the
        // same write.
        events = this._conn.takeEvents()
        for (let i = 0; i < events.length; i++) this._dispatch(events[i])
        // Chunks, not one concatenated Buffer: a large payload goes to
        // the socket as the Buffer send() copied it into, not copied again.
        const out = this._conn.takeTransmitChunks()
        if (out !== null && !this._ended && !this._socket.destroyed) this._write(out)
        // A handler may have acted on the connection directly (accept()
        // queues 'open'), so go round until a pass finds no events.
      } while (this._again || events.length > 0)
    } finally {
      this._flushing = false
    }
    if (this._conn.isClosed) {
      this._clearTimer()
      this._finishSocket()
    } else {
      this._arm(this._conn.pollTimeout())
    }
  }

  _write(chunks) {
    const socket = this._socket
    if (chunks.length === 1) {
      socket.write(chunks[0])
      return
    }
    // One writev for the lot.
    socket.cork?.()
    for (let i = 0; i < chunks.length; i++) socket.write(chunks[i])
    socket.uncork?.()
  }

  _arm(deadline) {
    if (deadline === this._deadline) return
    this._clearTimer()
    if (deadline === null) return
    this._deadline = deadline
    this._timer = setTimeout(this._onTimer, Math.max(0, Math.ceil(deadline - now())))
    this._timer.unref?.()
  }

  _clearTimer() {
    if (this._timer !== null) clearTimeout(this._timer)
    this._timer = null
    this._deadline = null
  }

  _finishSocket() {
    if (this._ended) return
    this._ended = true
    const socket = this._socket
    // Half-close after the last write; a peer that never closes its side
    // is cut off shortly after.
    socket.end()
    const t = setTimeout(() => socket.destroy(), 2000)
    t.unref?.()
    socket.once('close', () => clearTimeout(t))
  }

  _dispatch(ev) {
    switch (ev.type) {
      case 'text':
        this.emit('message', ev.text, false)
        break
      case 'binary':
        this.emit('message', ev.data, true)
        break
      case 'ping':
        this.emit('ping', ev.data)
        break
      case 'pong':
        this.emit('pong', ev.data)
        break
      case 'request':
        if (this._onRequest !== null) this._onRequest(ev)
        break
      case 'open':
        this._protocol = ev.subprotocol
        if (this._onOpen !== null) this._onOpen(ev)
        this.emit('open')
        break
      case 'closed': {
        this._closeEvent = ev
        let error = null
        if (this._socketError !== null) {
          error = this._socketError
        } else if (ev.error !== null) {
          error = codedError(ev.error.code, ev.error.message)
        }
        if (error !== null && this.listenerCount('error') > 0) this.emit('error', error)
        this.emit('close', ev.code, ev.reason, { clean: ev.clean, byPeer: ev.byPeer, error })
        break
      }
    }
  }
}

WebSocket.CONNECTING = CONNECTING
WebSocket.OPEN = OPEN
WebSocket.CLOSING = CLOSING
WebSocket.CLOSED = CLOSED

function describe(v) {
  if (v === null) return 'null'
  if (typeof v === 'object') return v.constructor?.name ?? 'object'
  return typeof v
}

/** The HTTP request head as the client sent it, rebuilt from Node's parse. */
function requestHead(req) {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`
  const raw = req.rawHeaders
  for (let i = 0; i + 1 < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`
  head += '\r\n'
  return Buffer.from(head, 'latin1')
}

function pathOf(url) {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

function checkFunction(name, f, optional) {
  if (f === undefined && optional) return
  if (typeof f !== 'function') {
    throw codedError('invalid_argument', `${name} must be a function, not ${describe(f)}`, TypeError)
  }
}

/**
 * Serves WebSocket upgrades on an http.Server (or https.Server).
 *
 * - `path`: only requests for this path (query ignored); others are left
 *   to other 'upgrade' listeners, or answered 404 when there are none.
 * - `options`: ConnectionOptions for each connection.
 * - `verify(request, req)`: optional; return true (or nothing) to accept,
 *   false to refuse with 403, `{ status, body, headers }` to refuse with
 *   that response, or `{ subprotocol, headers }` to accept with those; may
 *   return a Promise.
 * - `onConnection(ws, req)`: called once each connection is open.
 *
 * Returns `{ clients, close(code?, reason?) }`; `close` detaches from the
 * server and closes every open connection (default 1001).
 */
function attachServer(server, opts = {}) {
  if (server === null || typeof server !== 'object' || typeof server.on !== 'function') {
    throw codedError('invalid_argument', `attachServer needs an http.Server, not ${describe(server)}`, TypeError)
  }
  if (opts === null || typeof opts !== 'object') {
    throw codedError('invalid_argument', `attachServer options must be an object, not ${describe(opts)}`, TypeError)
  }
  checkKeys(opts, 'AttachServerOptions', 'attachServer')
  const { path, options, verify, onConnection } = opts
  if (path !== undefined && (typeof path !== 'string' || !path.startsWith('/'))) {
    throw codedError('invalid_argument', `path must be a string starting with '/', not ${JSON.stringify(path)}`)
  }
  checkFunction('onConnection', onConnection, false)
  checkFunction('verify', verify, true)
  // Fail at attach time, not on the first upgrade, if the options are bad.
  Connection.server(options, now())

  const clients = new Set()

  function onUpgrade(req, socket, head) {
    if (path !== undefined && pathOf(req.url) !== path) {
      if (server.listenerCount('upgrade') > 1) return
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
      return
    }
    socket.setTimeout?.(0)
    const conn = Connection.server(options, now())
    const ws = new WebSocket(conn, socket, req.url)
    ws._onRequest = (request) => decide(ws, request, req)
    ws._onOpen = () => {
      clients.add(ws)
      ws.once('close', () => clients.delete(ws))
      onConnection(ws, req)
    }
    conn.receiveData(requestHead(req), now())
    if (head && head.length > 0) conn.receiveData(head, now())
    ws._flush()
  }

  function decide(ws, request, req) {
    if (verify === undefined) {
      ws._conn.accept()
      return
    }
    let verdict
    try {
      verdict = verify(request, req)
    } catch (err) {
      answer(ws, { status: 500, body: 'verify failed\n' })
      return
    }
    if (verdict && typeof verdict.then === 'function') {
      verdict.then(
        (v) => {
          answer(ws, v)
          ws._flush()
        },
        () => {
          answer(ws, { status: 500, body: 'verify failed\n' })
          ws._flush()
        },
      )
    } else {
      answer(ws, verdict)
    }
  }

  function answer(ws, v) {
    const conn = ws._conn
    if (conn.state !== 'handshake') return // timed out or dropped meanwhile
    if (v === undefined || v === true) conn.accept()
    else if (v === false) conn.reject(403, 'Forbidden\n')
    else if (v !== null && typeof v === 'object' && v.status !== undefined) {
      try {
        conn.reject(v.status, v.body ?? '', v.headers)
      } catch {
        conn.reject(500, 'invalid verify result\n')
      }
    } else if (v !== null && typeof v === 'object') {
      try {
        conn.accept(v)
      } catch {
        conn.reject(500, 'invalid verify result\n')
      }
    } else conn.reject(500, 'invalid verify result\n')
  }

  server.on('upgrade', onUpgrade)
  return {
    clients,
    close(code = 1001, reason = 'server closing') {
      server.removeListener('upgrade', onUpgrade)
      for (const ws of clients) ws.close(code, reason)
    },
  }
}

/**
 * Opens a client WebSocket to a `ws://` or `wss://` URL over net.connect
 * (tls.connect for wss). `opts.options` are ConnectionOptions; `opts.tls`
 * extra tls.connect options. Returns the WebSocket at once; it emits 'open'
 * when the handshake completes.
 */
function connect(url, opts = {}) {
  if (typeof url !== 'string') {
    throw codedError('invalid_argument', `url must be a string, not ${describe(url)}`, TypeError)
  }
  if (opts === null || typeof opts !== 'object') {
    throw codedError('invalid_argument', `connect options must be an object, not ${describe(opts)}`, TypeError)
  }
  checkKeys(opts, 'ConnectOptions', 'connect')
  let u
  try {
    u = new URL(url)
  } catch {
    throw codedError('invalid_argument', `url ${JSON.stringify(url)} is not a valid URL`)
  }
  const secure = u.protocol === 'wss:'
  if (!secure && u.protocol !== 'ws:') {
    throw codedError('invalid_argument', `url ${JSON.stringify(url)} must use ws:// or wss://`)
  }
  const conn = Connection.client(url, opts.options, now())
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname
  const port = Number(u.port || (secure ? 443 : 80))
  const socket = secure
    ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host, ...opts.tls })
    : net.connect({ host, port })
  const ws = new WebSocket(conn, socket, url)
  // Node buffers writes until the socket connects: the request goes now.
  ws._flush()
  return ws
}

module.exports = { WebSocket, attachServer, connect, CONNECTING, OPEN, CLOSING, CLOSED }
