'use strict'

// The package entry point: the native addon (loaded by the generated
// ../native.js) with a default clock for every `now` argument, plus the
// socket hosts in ./host.js.

const native = require('../native.js')
const { now } = require('./clock')

const { Connection } = native

// Input calls and factories take the time as their last argument. The Rust
// side never reads a clock, so the default comes from here. The wrappers are
// ordinary JS functions: V8 inlines them into callers, so a call costs the
// same N-API crossing as before.
function withDefaultTime(target, name, arity) {
  const raw = target[name]
  if (typeof raw !== 'function' || raw.length === undefined) {
    throw new Error(`evsock: native binding lacks ${name}`)
  }
  const wrapped = {
    [name](...args) {
      if (args.length <= arity || args[arity] === undefined || args[arity] === null) {
        args.length = arity
        args[arity] = now()
      }
      return raw.apply(this, args)
    },
  }[name]
  Object.defineProperty(target, name, {
    value: wrapped,
    writable: true,
    enumerable: false,
    configurable: true,
  })
}

// Fast paths for the per-chunk calls (no rest arguments).
{
  const proto = Connection.prototype
  const receiveData = proto.receiveData
  const receiveEof = proto.receiveEof
  const handleTimeout = proto.handleTimeout
  Object.defineProperties(proto, {
    receiveData: {
      value: function receiveData_(data, t) {
        return receiveData.call(this, data, t == null ? now() : t)
      },
      writable: true,
      configurable: true,
    },
    receiveEof: {
      value: function receiveEof_(t) {
        return receiveEof.call(this, t == null ? now() : t)
      },
      writable: true,
      configurable: true,
    },
    handleTimeout: {
      value: function handleTimeout_(t) {
        return handleTimeout.call(this, t == null ? now() : t)
      },
      writable: true,
      configurable: true,
    },
  })
}
withDefaultTime(Connection, 'server', 1)
withDefaultTime(Connection, 'client', 2)

const host = require('./host')

module.exports = {
  ...native,
  now,
  ...host,
}
