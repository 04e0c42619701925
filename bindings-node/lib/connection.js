'use strict'

// The Connection class as the package exports it: the native addon (loaded
// by the generated ../native.js), finished in JavaScript where JavaScript is
// faster or where Rust must not go.
//
// - Time: every input call and factory takes `now` last. The Rust side reads
//   no clock, so the default (a monotonic clock) is supplied here.
// - Events: the native takeEvents/pollEvent return a packed batch (see
//   src/values.rs); the event objects are built here, where object literals,
//   String#slice and Buffer#subarray cost nanoseconds instead of N-API calls.
// - Errors: N-API's own argument conversion errors carry N-API status codes
//   (InvalidArg, StringExpected, ...); they are rethrown as TypeErrors with
//   code 'invalid_argument', like the addon's own checks, naming the method.
//
// ../native.js is internal: use the package (require('evsock')).

const native = require('../native.js')
const { now } = require('./clock')
const { checkKeys } = require('./options')

const Native = native.Connection
const proto = Native.prototype

const NAPI_CODES = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'GenericFailure',
  'BigintExpected',
  'DateExpected',
  'ArrayBufferExpected',
  'DetachableArraybufferExpected',
])

function translate(err, where) {
  if (err instanceof Error && NAPI_CODES.has(err.code)) {
    const e = new TypeError(`${where}: ${err.message}`)
    e.code = 'invalid_argument'
    e.cause = err
    return e
  }
  return err
}

// Kinds of the packed batch; mirrored from src/values.rs (mod kind).
const TEXT = 1
const BINARY = 2
const PING = 3
const PONG = 4
const BIG_BINARY = 5
const BIG_TEXT = 6

function unpack(raw) {
  if (raw === null) return []
  const meta = raw[0]
  const text = raw[1]
  const bin = raw[2]
  const objs = raw[3]
  const n = meta.length / 3
  const out = new Array(n)
  let o = 0
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    switch (meta[j]) {
      case TEXT:
        out[i] = { type: 'text', text: text.slice(meta[j + 1], meta[j + 2]) }
        break
      case BINARY:
        out[i] = { type: 'binary', data: bin.subarray(meta[j + 1], meta[j + 2]) }
        break
      case PING:
        out[i] = { type: 'ping', data: bin.subarray(meta[j + 1], meta[j + 2]) }
        break
      case PONG:
        out[i] = { type: 'pong', data: bin.subarray(meta[j + 1], meta[j + 2]) }
        break
      case BIG_BINARY:
        out[i] = { type: 'binary', data: objs[o++] }
        break
      case BIG_TEXT:
        out[i] = { type: 'text', text: objs[o++] }
        break
      default:
        out[i] = objs[o++]
    }
  }
  return out
}

const raw = {
  receiveData: proto.receiveData,
  receiveEof: proto.receiveEof,
  handleTimeout: proto.handleTimeout,
  takeEvents: proto.takeEvents,
  pollEvent: proto.pollEvent,
}

function define(name, value) {
  Object.defineProperty(proto, name, { value, writable: true, enumerable: false, configurable: true })
}

define('receiveData', function receiveData(data, t) {
  try {
    return raw.receiveData.call(this, data, t == null ? now() : t)
  } catch (e) {
    throw translate(e, 'Connection.receiveData')
  }
})
define('receiveEof', function receiveEof(t) {
  try {
    return raw.receiveEof.call(this, t == null ? now() : t)
  } catch (e) {
    throw translate(e, 'Connection.receiveEof')
  }
})
define('handleTimeout', function handleTimeout(t) {
  try {
    return raw.handleTimeout.call(this, t == null ? now() : t)
  } catch (e) {
    throw translate(e, 'Connection.handleTimeout')
  }
})
define('takeEvents', function takeEvents() {
  return unpack(raw.takeEvents.call(this))
})
define('pollEvent', function pollEvent() {
  const r = raw.pollEvent.call(this)
  return r === null ? null : unpack(r)[0]
})

// sendMany: one crossing with the messages packed (one string, one
// Buffer, their lengths) instead of a conversion per array element, which
// measured slower than separate calls. Anything unusual (a non-array, a
// value that is neither string nor bytes, a surrogate pair split across two
// strings) takes the element-wise native path, which reports or handles it.
{
  const sendMany = proto.sendMany
  const sendPacked = proto._sendPacked
  define('sendMany', function sendMany_(messages) {
    if (!Array.isArray(messages) || messages.length < 2) return sendMany.call(this, messages)
    const n = messages.length
    const kinds = new Uint8Array(n)
    const lens = new Uint32Array(n)
    const texts = []
    const bins = []
    for (let i = 0; i < n; i++) {
      const m = messages[i]
      if (typeof m === 'string') {
        texts.push(m)
        lens[i] = m.length
      } else if (m instanceof Uint8Array) {
        // Packing would copy a large payload once more than it saves.
        if (m.byteLength >= PACK_LIMIT) return sendEach(this, messages)
        kinds[i] = 1
        bins.push(m)
        lens[i] = m.byteLength
      } else {
        return sendMany.call(this, messages)
      }
    }
    const text = texts.length === 0 ? '' : texts.length === 1 ? texts[0] : texts.join('')
    const bin = bins.length === 0 ? EMPTY : bins.length === 1 ? bins[0] : Buffer.concat(bins)
    const sent = sendPacked.call(this, kinds, lens, text, bin)
    return sent === null ? sendMany.call(this, messages) : sent
  })
}
const EMPTY = new Uint8Array(0)
const PACK_LIMIT = 4096

function sendEach(conn, messages) {
  let n = 0
  for (const m of messages) {
    if (typeof m === 'string') conn.sendText(m)
    else conn.sendBinary(m)
    n++
  }
  return n
}

// The remaining methods only need their argument errors translated.
{
  const accept = proto.accept
  define('accept', function accept_(options) {
    checkKeys(options, 'AcceptOptions', 'Connection.accept')
    return accept.call(this, options)
  })
}

// takeTransmitChunks: the native call returns the bytes of every frame
// header and small frame in one Buffer, then the parts in order (a number
// of bytes of that Buffer, or a shared payload's own Buffer); see
// transmit_parts in src/values.rs.
{
  const takeTransmitChunks = proto.takeTransmitChunks
  define('takeTransmitChunks', function takeTransmitChunks_() {
    const raw = takeTransmitChunks.call(this)
    if (raw === null) return null
    const bytes = raw[0]
    const n = raw.length - 1
    if (n === 1 && typeof raw[1] === 'number') return [bytes]
    const out = new Array(n)
    let at = 0
    for (let i = 0; i < n; i++) {
      const p = raw[i + 1]
      if (typeof p === 'number') {
        out[i] = bytes.subarray(at, at + p)
        at += p
      } else {
        out[i] = p
      }
    }
    return out
  })
}

// sendBinaryShared hands its payload back out of takeTransmitChunks(), which
// promises Buffers: a plain Uint8Array is wrapped (no copy) on the way in.
{
  const sendBinaryShared = proto.sendBinaryShared
  define('sendBinaryShared', function sendBinaryShared_(data) {
    if (data instanceof Uint8Array && !Buffer.isBuffer(data)) {
      data = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    }
    return sendBinaryShared.call(this, data)
  })
}

for (const name of [
  'accept',
  'reject',
  'sendText',
  'sendBinary',
  'sendBinaryShared',
  'sendMany',
  'ping',
  'pong',
  'close',
]) {
  const f = proto[name]
  const where = `Connection.${name}`
  define(
    name,
    {
      [name](a, b, c) {
        try {
          return f.call(this, a, b, c)
        } catch (e) {
          throw translate(e, where)
        }
      },
    }[name],
  )
}

// The native factories are read-only properties of the native class, so
// the exported class is a stand-in sharing its prototype: instances made by
// the factories are `instanceof` both, and the factories default `now`.
function Connection() {
  const e = new TypeError('use Connection.server() or Connection.client() to create a connection')
  e.code = 'invalid_argument'
  throw e
}
Connection.prototype = proto
Object.defineProperty(proto, 'constructor', { value: Connection, writable: true, configurable: true })
Connection.server = function server(options, t) {
  checkKeys(options, 'ConnectionOptions', 'Connection.server')
  try {
    return Native.server(options, t == null ? now() : t)
  } catch (e) {
    throw translate(e, 'Connection.server')
  }
}
Connection.client = function client(url, options, t) {
  checkKeys(options, 'ConnectionOptions', 'Connection.client')
  try {
    return Native.client(url, options, t == null ? now() : t)
  } catch (e) {
    throw translate(e, 'Connection.client')
  }
}

module.exports = { native, Connection, now, translate }
