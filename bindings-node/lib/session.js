'use strict'

// The sans-IO Session class as the package exports it: the native class
// with `now` defaulted to the monotonic clock (always the last argument)
// and N-API's own argument errors rethrown as TypeErrors with code
// 'invalid_argument', naming the method. Data elements stay encoded here
// (JSON text strings or MessagePack Buffers); the socket host in
// ./session-host.js works with JS values.

const { native, translate, now } = require('./connection')
const { checkKeys } = require('./options')

const Native = native.Session
const proto = Native.prototype

// Method name -> index of its `now` argument.
const NOW_AT = {
  handleConnected: 0,
  handleDisconnected: 0,
  handleTimeout: 0,
  close: 0,
  handleMessage: 1,
  goAway: 1,
  send: 2,
  sendReliable: 2,
  reply: 2,
  replyError: 2,
  request: 4,
}

function define(target, name, value) {
  Object.defineProperty(target, name, { value, writable: true, enumerable: false, configurable: true })
}

for (const [name, at] of Object.entries(NOW_AT)) {
  const f = proto[name]
  if (typeof f !== 'function') throw new Error(`evsock: native Session lacks ${name}`)
  const where = `Session.${name}`
  define(
    proto,
    name,
    {
      [name](...args) {
        if (args[at] == null) {
          args.length = Math.max(args.length, at + 1)
          args[at] = now()
        }
        try {
          return f.apply(this, args)
        } catch (e) {
          throw translate(e, where)
        }
      },
    }[name],
  )
}

for (const name of ['takeOutputs', 'pollTimeout']) {
  const f = proto[name]
  const where = `Session.${name}`
  define(proto, name, {
    [name]() {
      try {
        return f.call(this)
      } catch (e) {
        throw translate(e, where)
      }
    },
  }[name])
}

// Factories: the native ones are read-only, so the exported class is a
// stand-in sharing the prototype (instances are `instanceof` both).
function Session() {
  const e = new TypeError('use Session.client() or Session.server() to create a session')
  e.code = 'invalid_argument'
  throw e
}
Session.prototype = proto
define(proto, 'constructor', Session)
Session.client = function client(options) {
  checkKeys(options, 'SessionOptions', 'Session.client')
  try {
    return Native.client(options)
  } catch (e) {
    throw translate(e, 'Session.client')
  }
}
Session.server = function server(sessionId, options) {
  checkKeys(options, 'SessionOptions', 'Session.server')
  try {
    return Native.server(sessionId, options)
  } catch (e) {
    throw translate(e, 'Session.server')
  }
}

function wrapFn(name) {
  const f = native[name]
  return {
    [name](...args) {
      try {
        return f(...args)
      } catch (e) {
        throw translate(e, name)
      }
    },
  }[name]
}

module.exports = {
  Session,
  peekHello: wrapFn('peekHello'),
  newSessionId: wrapFn('newSessionId'),
  encodeGoAway: wrapFn('encodeGoAway'),
}
