'use strict'

// Bad options and bad input: every one is a thrown Error with a stable
// `code` and a message naming what was wrong, or (for bytes from the
// network) a `closed` event / `error` output carrying one. Nothing crashes
// the process, hangs, or is silently ignored.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')
const http = require('node:http')

const evsock = require('..')
const native = require('../native.js')
const { KNOWN } = require('../lib/options')
const { Connection, Session } = evsock

const HANDSHAKE = Buffer.from(
  'GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
)

function openServer(options = {}) {
  const c = Connection.server({ timers: false, ...options }, 0)
  c.receiveData(HANDSHAKE, 0)
  assert.equal(c.takeEvents()[0].type, 'request')
  c.accept()
  assert.equal(c.takeEvents()[0].type, 'open')
  c.takeTransmit()
  return c
}

/** A deterministic pseudo-random generator (mulberry32). */
function prng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const invalid = (message) => ({ code: 'invalid_argument', message })

test('bad connection options are refused by name', () => {
  assert.throws(() => Connection.server({ maxFrameSize: -1 }), invalid(/maxFrameSize/))
  assert.throws(() => Connection.server({ pingIntervalMs: 1.5e300 }), invalid(/pingIntervalMs/))
  assert.throws(() => Connection.server({ pingIntervalMS: 5 }), invalid(/unknown ConnectionOptions property "pingIntervalMS"/))
  assert.throws(() => Connection.server({ deflate: { levle: 3 } }), invalid(/deflate: unknown DeflateOptions property "levle"/))
  assert.throws(() => Connection.server({ deflate: { level: 12 } }), invalid(/level/))
  assert.throws(() => Connection.server({ origin: 'https://x' }), invalid(/only applies to clients/))
  assert.throws(() => Connection.server({ maxHeaders: 'many' }), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => Connection.server('fast'), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => Connection.client('http://x/'), invalid(/ws:\/\/ or wss:\/\//))
  assert.throws(() => Connection.client('ws://x/', { headers: { 'Bad Name': 'v' } }), invalid(/Bad Name/))
  assert.throws(() => Connection.client('ws://x/', { headers: { X: 'a\r\nInjected: 1' } }), invalid(/X/))
  assert.throws(() => Connection.client('ws://x/', { origins: ['o'] }), invalid(/origins/))
  assert.throws(() => Connection.client(42), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => new Connection(), invalid(/Connection.server\(\) or Connection.client\(\)/))
})

test('bad session options are refused by name', () => {
  assert.throws(() => Session.client({ format: 'xml' }), invalid(/format/))
  assert.throws(() => Session.client({ ackEvery: 0 }), invalid(/ackEvery/))
  assert.throws(() => Session.client({ resumeWindowMs: -1 }), invalid(/resumeWindowMs/))
  assert.throws(() => Session.client({ backoffBaseMs: 100, backoffMaxMs: 10 }), invalid(/backoffMaxMs/))
  assert.throws(() => Session.client({ resumeWindowMS: 1 }), invalid(/unknown SessionOptions property/))
  assert.throws(() => Session.client({ seed: 1, testRandom: [1] }), invalid(/seed or testRandom/))
  assert.throws(() => Session.client({ testRandom: [] }), invalid(/testRandom/))
  assert.throws(() => Session.server('has space'), invalid(/session id/))
  assert.throws(() => Session.server(''), invalid(/session id/))
  assert.throws(() => Session.server('x'.repeat(65)), invalid(/session id/))
  assert.throws(() => new Session(), invalid(/Session.client\(\) or Session.server\(\)/))
  assert.throws(() => evsock.encodeGoAway('xml', 1), invalid(/format/))
  assert.throws(() => evsock.peekHello('["chat/x",1]'), { code: 'envelope' })
  assert.throws(() => evsock.peekHello(''), { code: 'envelope' })
})

test('the option name lists match the generated typings', () => {
  const dts = fs.readFileSync(path.join(__dirname, '..', 'index.d.ts'), 'utf8')
  for (const [kind, names] of Object.entries(KNOWN)) {
    const at = dts.indexOf(`export interface ${kind} {`)
    assert.ok(at >= 0, `index.d.ts declares ${kind}`)
    const body = dts.slice(at, dts.indexOf('\n}\n', at))
    const fields = [...body.matchAll(/^ {2}([a-zA-Z]+)\??:/gm)].map((m) => m[1])
    assert.deepEqual(fields.sort(), [...names].sort(), kind)
  }
})

test('bad arguments to connection calls throw typed errors and change nothing', () => {
  const c = openServer()
  assert.throws(() => c.receiveData('text', 0), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => c.receiveData(new Uint8Array(1), -1), invalid(/now/))
  assert.throws(() => c.receiveData(new Uint8Array(1), NaN), invalid(/now/))
  assert.throws(() => c.close(999), invalid(/999/))
  assert.throws(() => c.close(1000, 'r'.repeat(124)), invalid(/123 bytes/))
  assert.throws(() => c.ping(Buffer.alloc(126)), invalid(/125 bytes/))
  assert.throws(() => c.sendText(42), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => c.sendMany('abc'), { code: 'invalid_argument', name: 'TypeError' })
  assert.throws(() => c.accept(), { code: 'invalid_state' })
  assert.throws(() => c.reject(200), invalid(/status/))
  assert.equal(c.takeTransmit(), null, 'refused calls sent nothing')
  c.sendText('still fine')
  assert.ok(c.takeTransmit().length > 0)

  const fresh = Connection.server({ timers: false }, 0)
  assert.throws(() => fresh.sendText('too early'), { code: 'invalid_state' })
  fresh.receiveData(HANDSHAKE, 0)
  fresh.takeEvents()
  assert.throws(() => fresh.accept({ subprotocol: 'never-offered' }), invalid(/subprotocol/))
  assert.throws(() => fresh.accept({ subprotocl: 'x' }), invalid(/unknown AcceptOptions property/))
})

test('the native binding used directly insists on the time', () => {
  // (Its prototypes are shared with the package's classes, which default
  // the time, so only the factories can show it.)
  assert.throws(() => native.Connection.server({}), invalid(/now \(milliseconds\) is required/))
  assert.throws(() => native.Connection.client('ws://x/', {}), invalid(/now \(milliseconds\) is required/))
})

test('garbage from the network ends the connection with a coded error, never a throw', () => {
  const g = Connection.server({ timers: false }, 0)
  g.receiveData(Buffer.from('GARBAGE\r\n\r\n'), 0)
  const [ev] = g.takeEvents()
  assert.equal(ev.type, 'closed')
  assert.equal(ev.error.code, 'handshake')
  assert.match(g.takeTransmit().toString('latin1'), /^HTTP\/1.1 400 /)

  const rand = prng(7)
  const codes = new Map()
  for (let round = 0; round < 300; round++) {
    const c = openServer({ maxMessageSize: 1 << 16 })
    let closed = null
    for (let i = 0; i < 20 && closed === null; i++) {
      const chunk = Buffer.alloc(1 + Math.floor(rand() * 64))
      for (let j = 0; j < chunk.length; j++) chunk[j] = Math.floor(rand() * 256)
      // Half of the rounds start with a valid masked header, so that the
      // garbage lands in payloads, lengths and UTF-8 too.
      if (i === 0 && round % 2) chunk[0] = 0x81
      c.receiveData(chunk, i)
      for (const e of c.takeEvents()) if (e.type === 'closed') closed = e
      c.takeTransmit()
    }
    if (closed === null) {
      c.receiveEof(100)
      closed = c.takeEvents().find((e) => e.type === 'closed')
    }
    assert.ok(closed, 'every connection ends in a closed event')
    assert.ok(closed.code >= 1000 && closed.code < 5000)
    if (closed.error) codes.set(closed.error.code, (codes.get(closed.error.code) ?? 0) + 1)
    // A closed connection keeps refusing politely.
    c.receiveData(Buffer.from([0x81, 0x80]), 200)
    assert.deepEqual(c.takeEvents(), [])
    assert.throws(() => c.sendText('x'), { code: 'invalid_state' })
  }
  assert.ok(codes.size >= 2, `several kinds of failure were hit: ${[...codes.keys()]}`)
})

test('garbage to an established session becomes error outputs, never a throw', () => {
  const s = Session.server('S1', { pingIntervalMs: 0, idleTimeoutMs: 0 })
  s.handleConnected(0)
  s.handleMessage('["evs/hello",{"v":1,"rx":0,"lo":1}]', 0)
  assert.deepEqual(s.takeOutputs().map((o) => o.type), ['send', 'established'])
  const rand = prng(11)
  const pieces = ['[', ']', '"', 'evs/', 'a/b', ',', '{', '}', ':', '1', 'null', '"id"', '-', '9e99', '\\u0000', '😀']
  let errors = 0
  for (let i = 0; i < 500; i++) {
    let m = ''
    const n = 1 + Math.floor(rand() * 12)
    for (let j = 0; j < n; j++) m += pieces[Math.floor(rand() * pieces.length)]
    s.handleMessage(i % 5 === 0 ? Buffer.from(m) : m, i)
    for (const o of s.takeOutputs()) {
      if (o.type === 'error') {
        errors++
        assert.equal(typeof o.code, 'string')
        assert.ok(o.message.length > 0)
      }
    }
    if (!s.isEstablished && !s.isClosed) {
      // A protocol error dropped the connection: come back the same way.
      s.handleConnected(i)
      s.handleMessage('["evs/hello",{"v":1,"sid":"S1","rx":0,"lo":1}]', i)
      s.takeOutputs()
    }
  }
  assert.ok(errors > 100, `bad messages were reported (${errors})`)
})

test('host arguments are checked', async () => {
  assert.throws(() => evsock.attachServer(null, {}), invalid(/http.Server/))
  const server = http.createServer()
  assert.throws(() => evsock.attachServer(server, {}), invalid(/onConnection/))
  assert.throws(() => evsock.attachServer(server, { onConnection() {}, path: 'no-slash' }), invalid(/path/))
  assert.throws(() => evsock.attachServer(server, { onConnection() {}, options: { maxHeaders: -1 } }), invalid(/maxHeaders/))
  assert.throws(() => evsock.attachServer(server, { onConection() {} }), invalid(/unknown AttachServerOptions/))
  assert.throws(() => evsock.connect('ftp://x/'), invalid(/ws:\/\//))
  assert.throws(() => evsock.connect('not a url'), invalid(/not a valid URL/))
  assert.throws(() => evsock.connect('ws://x/', { option: {} }), invalid(/unknown ConnectOptions/))
  assert.equal(server.listenerCount('upgrade'), 0, 'failed attaches left no listener behind')

  // A live WebSocket refuses what it cannot send.
  server.listen(0, '127.0.0.1')
  await new Promise((r) => server.once('listening', r))
  let serverWs
  evsock.attachServer(server, { onConnection: (ws) => (serverWs = ws) })
  const ws = evsock.connect(`ws://127.0.0.1:${server.address().port}/`)
  await new Promise((r) => ws.once('open', r))
  assert.throws(() => ws.send(42), invalid(/send\(\) takes/))
  assert.throws(() => ws.send({}), invalid(/Object/))
  assert.throws(() => ws.ping(7), invalid(/ping\(\) takes/))
  assert.throws(() => ws.close(1004), invalid(/1004/))
  ws.close()
  await new Promise((r) => ws.once('close', r))
  assert.equal(serverWs.readyState, evsock.CLOSED)
  server.close()
})
