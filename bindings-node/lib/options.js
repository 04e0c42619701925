'use strict'

// Option names each options object accepts. N-API ignores properties it
// does not know, so a misspelt option (pingIntervalMS) would silently keep
// its default; the factories check names here first. test/errors.test.js
// keeps these lists equal to the interfaces in index.d.ts.

const KNOWN = {
  ConnectionOptions: [
    'timers', 'maxFrameSize', 'maxMessageSize', 'maxFragments', 'maxHandshakeBytes', 'maxHeaders',
    'maxOutboundBytes', 'pingIntervalMs', 'pongTimeoutMs', 'idleTimeoutMs', 'handshakeTimeoutMs',
    'closeTimeoutMs', 'autoPong', 'bufferRetain', 'subprotocols', 'origins', 'allowMissingOrigin',
    'deflate', 'origin', 'headers', 'seed',
  ],
  DeflateOptions: [
    'threshold', 'level', 'serverMaxWindowBits', 'clientMaxWindowBits', 'serverNoContextTakeover',
    'clientNoContextTakeover',
  ],
  AcceptOptions: ['subprotocol', 'headers'],
  SendOptions: ['copy'],
  AttachServerOptions: ['path', 'options', 'verify', 'onConnection'],
  ConnectOptions: ['options', 'tls'],
  AttachSessionServerOptions: ['path', 'session', 'connection', 'verify', 'onSession'],
  ConnectSessionOptions: ['session', 'connection', 'tls'],
  SessionOptions: [
    'format', 'maxMessageBytes', 'maxBatchEnvelopes', 'resumeWindowMs', 'resumeBufferBytes',
    'resumeBufferAgeMs', 'maxPendingRequests', 'maxIncomingRequests', 'maxRequestTimeoutMs',
    'ackDelayMs', 'ackEvery', 'pingIntervalMs', 'idleTimeoutMs', 'handshakeTimeoutMs', 'batchWindowMs',
    'batchMaxBytes', 'backoffBaseMs', 'backoffMaxMs', 'seed', 'testRandom',
  ],
}

const SETS = Object.fromEntries(Object.entries(KNOWN).map(([k, v]) => [k, new Set(v)]))

/**
 * Throws a TypeError with code 'invalid_argument' naming the first unknown
 * property of `options` (checked only when it is a plain object: other
 * types are left to the native conversion, which reports them).
 */
function checkKeys(options, kind, where) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) return
  const known = SETS[kind]
  for (const key of Object.keys(options)) {
    if (!known.has(key)) {
      const e = new TypeError(`${where}: unknown ${kind} property ${JSON.stringify(key)}`)
      e.code = 'invalid_argument'
      throw e
    }
  }
  if (kind === 'ConnectionOptions' && options.deflate !== null && typeof options.deflate === 'object') {
    checkKeys(options.deflate, 'DeflateOptions', `${where}: deflate`)
  }
}

module.exports = { KNOWN, checkKeys }
