'use strict'

// sendMany packs its messages into one string and one Buffer for a single
// N-API crossing (lib/connection.js); whatever the mix, the frames must be
// exactly those of separate sendText / sendBinary calls, and ws's own
// Receiver must read them back.

const test = require('node:test')
const assert = require('node:assert/strict')
const { Receiver } = require('ws')

const { Connection } = require('..')

const HANDSHAKE = Buffer.from(
  'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
)

function openServer(options = {}) {
  const c = Connection.server({ timers: false, deflate: false, ...options }, 0)
  c.receiveData(HANDSHAKE, 0)
  c.takeEvents()
  c.accept()
  c.takeEvents()
  c.takeTransmit()
  return c
}

function separately(messages) {
  const c = openServer()
  for (const m of messages) typeof m === 'string' ? c.sendText(m) : c.sendBinary(m)
  return c.takeTransmit()
}

function readBack(bytes) {
  const got = []
  const r = new Receiver({ isServer: false, binaryType: 'nodebuffer', maxPayload: 0 })
  r.on('message', (data, isBinary) => got.push(isBinary ? [...data] : data.toString()))
  r.on('error', (e) => assert.fail(e))
  r.write(bytes)
  return got
}

const CASES = {
  'ascii text only': ['a', 'bb', '', 'ccc'],
  'binary only': [Buffer.from([1, 2]), new Uint8Array(0), Buffer.alloc(300, 7)],
  'mixed, non-ASCII, astral': ['héllo', Buffer.from([0]), '日本語', '😀x😀', new Uint8Array([9, 8]), ''],
  'a surrogate pair split across two strings': ['a\ud83d', '\ude00b', 'c'],
  'lone surrogates': ['\ud800', 'x\udfff'],
  'views into a larger buffer': [Buffer.from('xxhelloxx').subarray(2, 7), 'tail'],
  'large messages': ['t'.repeat(70000), Buffer.alloc(70000, 3), 'end'],
}

for (const [name, messages] of Object.entries(CASES)) {
  test(`sendMany: ${name}`, () => {
    const c = openServer()
    assert.equal(c.sendMany(messages), messages.length)
    const bytes = c.takeTransmit()
    assert.deepEqual(bytes, separately(messages))
    const expected = messages.map((m) =>
      typeof m === 'string' ? Buffer.from(m).toString() : [...m],
    )
    assert.deepEqual(readBack(bytes), expected)
  })
}

test('sendMany: a refusal throws; the messages before it are sent', () => {
  const c = openServer({ maxOutboundBytes: 100 })
  assert.throws(() => c.sendMany(['ok', 'x'.repeat(200), 'never']), { code: 'outbound_full' })
  assert.deepEqual(readBack(c.takeTransmit()), ['ok'])
  assert.throws(() => c.sendMany(['a', 42]), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => c.sendMany('ab'), { code: 'invalid_argument', name: 'TypeError' })
  assert.equal(c.sendMany([]), 0)
})

test('the packed entry point checks its own arguments', () => {
  const c = openServer()
  const packed = (k, l, t, b) => c._sendPacked(new Uint8Array(k), new Uint32Array(l), t, b)
  assert.throws(() => packed([0], [5], 'abc', new Uint8Array(0)), { code: 'invalid_argument' })
  assert.throws(() => packed([1], [1], '', new Uint8Array(0)), { code: 'invalid_argument' })
  assert.throws(() => packed([2], [0], '', new Uint8Array(0)), { code: 'invalid_argument' })
  assert.throws(() => packed([0, 0], [1], 'ab', new Uint8Array(0)), { code: 'invalid_argument' })
  assert.throws(() => packed([0], [9], 'é', new Uint8Array(0)), { code: 'invalid_argument' })
  assert.equal(c.takeTransmit(), null)
})
