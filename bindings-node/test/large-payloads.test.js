'use strict'

// Large payloads. Received: texts of 4 KiB and up get strings of their own
// (src/values.rs), in order with everything else. Sent without copies
// (src/shared.rs): sendBinary copies
// into a Buffer that takeTransmitChunks() hands out as is, sendBinaryShared
// lends the caller's own Buffer. Checked here: the bytes on the wire (read
// back by ws's Receiver), which Buffer comes out, that a shared Buffer stays
// alive exactly as long as the connection needs it (under the garbage
// collector), and that a Buffer detached before it was written is reported,
// never read.

const test = require('node:test')
const assert = require('node:assert/strict')
const v8 = require('node:v8')
const vm = require('node:vm')
const crypto = require('node:crypto')
const { Receiver, Sender } = require('ws')

const { Connection } = require('..')

v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc')

const HANDSHAKE = Buffer.from(
  'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
    'Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n',
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

function openClient() {
  const c = Connection.client('ws://x/', { timers: false, deflate: false, seed: 7 }, 0)
  const key = /Sec-WebSocket-Key: (.*)\r\n/.exec(c.takeTransmit().toString('latin1'))[1]
  const accept = crypto
    .createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64')
  c.receiveData(
    Buffer.from(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ),
    0,
  )
  assert.equal(c.takeEvents()[0].type, 'open')
  return c
}

/** Messages in `bytes`, as a peer of `role` reads them. */
function readBack(bytes, { fromClient = false } = {}) {
  const got = []
  const r = new Receiver({ isServer: fromClient, binaryType: 'nodebuffer', maxPayload: 0 })
  r.on('message', (data, isBinary) => got.push(isBinary ? Buffer.from(data) : data.toString()))
  r.on('error', (e) => assert.fail(e))
  r.write(bytes)
  return got
}

/** One compressed message in `bytes` from a server (ws inflates asynchronously). */
function readBackDeflated(bytes) {
  const wsDir = require('node:path').dirname(require.resolve('ws'))
  const PerMessageDeflate = require(`${wsDir}/lib/permessage-deflate.js`)
  const pmd = new PerMessageDeflate({}, false, 0)
  pmd.accept([{}])
  const extensions = { 'permessage-deflate': pmd }
  const r = new Receiver({ isServer: false, binaryType: 'nodebuffer', maxPayload: 0, extensions })
  return new Promise((resolve, reject) => {
    r.on('message', (data) => resolve(Buffer.from(data)))
    r.on('error', reject)
    r.write(bytes)
  })
}

function pattern(n, seed) {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff
  return b
}

const concat = (chunks) => (chunks === null ? Buffer.alloc(0) : Buffer.concat(chunks))

test('server: sendBinary copies, and its chunks are the same bytes as takeTransmit', () => {
  const big = [pattern(8192, 1), pattern(65536, 2), pattern(1 << 20, 3)]
  const messages = ['hi', big[0], Buffer.from([1, 2, 3]), big[1], 'x'.repeat(5000), big[2], 'bye']
  const a = openServer()
  const b = openServer()
  // Output is taken as it was last time: b in chunks (copies go into JS
  // Buffers handed out as they are), a whole (copies into engine memory).
  assert.equal(a.takeTransmit(), null)
  assert.equal(b.takeTransmitChunks(), null)
  for (const c of [a, b]) {
    for (const m of messages) typeof m === 'string' ? c.sendText(m) : c.sendBinary(m)
  }
  // Changing the payloads after sendBinary changes nothing sent.
  const expected = messages.map((m) => (typeof m === 'string' ? m : Buffer.from(m)))
  for (const m of big) m.fill(0)
  const whole = a.takeTransmit()
  const chunks = b.takeTransmitChunks()
  assert.ok(chunks.length > 1, 'large payloads come out as chunks of their own')
  for (const ch of chunks) assert.ok(Buffer.isBuffer(ch))
  assert.ok(
    chunks.some((ch) => ch.length === 1 << 20),
    'the 1 MiB payload is one chunk',
  )
  assert.deepEqual(concat(chunks), whole)
  assert.deepEqual(readBack(whole), expected)
  assert.equal(a.takeTransmit(), null)
  assert.equal(b.takeTransmitChunks(), null)
  assert.equal(b.bufferedAmount, 0)
})

test('server: sendBinaryShared hands the very Buffer back out, uncopied', () => {
  const c = openServer()
  const buf = pattern(65536, 5)
  const u8 = new Uint8Array(20000).fill(9)
  c.sendText('before')
  c.sendBinaryShared(buf)
  c.sendBinaryShared(u8)
  c.sendBinaryShared(Buffer.from([1, 2, 3])) // small: copied into the frame stream
  c.sendBinaryShared(buf) // the same Buffer twice
  assert.equal(c.bufferedAmount, 8 + (10 + 65536) + (4 + 20000) + 5 + (10 + 65536))
  const chunks = c.takeTransmitChunks()
  assert.equal(chunks.filter((ch) => ch === buf).length, 2, 'the caller’s Buffer itself, twice')
  const wrapped = chunks.find((ch) => ch.length === 20000)
  assert.ok(Buffer.isBuffer(wrapped), 'a Uint8Array comes back as a Buffer')
  assert.equal(wrapped.buffer, u8.buffer, 'over the same memory')
  assert.equal(wrapped.byteOffset, u8.byteOffset)
  assert.deepEqual(readBack(concat(chunks)), ['before', buf, Buffer.from(u8), Buffer.from([1, 2, 3]), buf])
})

test('server: a thousand shared sends in one take come out in order, each its own Buffer', () => {
  const c = openServer({ maxOutboundBytes: 64 << 20 })
  const bufs = []
  for (let i = 0; i < 1000; i++) {
    const b = pattern(8192 + (i % 7), i)
    bufs.push(b)
    c.sendBinaryShared(b)
    if (i % 10 === 0) c.sendText(`t${i}`)
  }
  c.sendBinaryShared(bufs[0]) // the first one again, at the end
  const chunks = c.takeTransmitChunks()
  const mine = chunks.filter((ch) => bufs.includes(ch))
  assert.equal(mine.length, 1001)
  assert.deepEqual(mine, [...bufs, bufs[0]])
  const got = readBack(concat(chunks))
  assert.equal(got.length, 1001 + 100)
  assert.deepEqual(got.at(-1), bufs[0])
})

test('server: a shared payload is read when written, as with socket.write', () => {
  const c = openServer()
  const buf = Buffer.alloc(10000, 1)
  c.sendBinaryShared(buf)
  buf.fill(2) // the contract says: don't; this shows why
  assert.deepEqual(readBack(concat(c.takeTransmitChunks())), [Buffer.alloc(10000, 2)])
  // takeTransmit() concatenates (copies) shared payloads too.
  const d = openServer()
  d.sendBinaryShared(buf)
  assert.deepEqual(readBack(d.takeTransmit()), [buf])
})

test('a compressing server that sends a payload uncompressed (under its threshold) still copies for sendBinary', () => {
  for (const take of ['takeTransmit', 'takeTransmitChunks']) {
    const s = openServer({ deflate: { threshold: 1 << 20 } })
    s[take]()
    const buf = pattern(20000, 3)
    const want = Buffer.from(buf)
    s.sendBinary(buf)
    buf.fill(0)
    const out = s[take]()
    const bytes = Array.isArray(out) ? concat(out) : out
    assert.equal(bytes.length, 4 + 20000, `${take}: sent uncompressed`)
    assert.deepEqual(readBack(bytes), [want], take)
  }
})

test('client (masked) and compressed sends copy during the call, shared or not', async () => {
  for (const send of ['sendBinary', 'sendBinaryShared']) {
    const c = openClient()
    const buf = pattern(70000, 11)
    const want = Buffer.from(buf)
    c[send](buf)
    buf.fill(0)
    const chunks = c.takeTransmitChunks()
    assert.ok(!chunks.includes(buf), `${send}: a masked payload is never the caller's Buffer`)
    assert.deepEqual(readBack(concat(chunks), { fromClient: true }), [want], send)

    const s = openServer({ deflate: true })
    const text = Buffer.from('compressible '.repeat(2000))
    const wantText = Buffer.from(text)
    s[send](text)
    text.fill(0)
    const out = s.takeTransmitChunks()
    assert.ok(concat(out).length < 2000, `${send}: compressed`)
    assert.deepEqual(await readBackDeflated(concat(out)), wantText, send)
  }
})

test('bad arguments and refusals leave nothing pinned or queued', () => {
  const c = openServer()
  for (const bad of [undefined, null, 'text', 42, [1, 2], new Uint16Array(8192), new DataView(new ArrayBuffer(9000))]) {
    for (const send of ['sendBinary', 'sendBinaryShared']) {
      assert.throws(() => c[send](bad), { name: 'TypeError', code: 'invalid_argument' }, `${send}(${typeof bad})`)
    }
  }
  const small = openServer({ maxOutboundBytes: 50000 })
  assert.throws(() => small.sendBinaryShared(Buffer.alloc(60000)), { code: 'outbound_full' })
  assert.equal(small.takeTransmitChunks(), null)
  const h = Connection.server({ timers: false }, 0)
  assert.throws(() => h.sendBinaryShared(Buffer.alloc(60000)), { code: 'invalid_state' })
})

test('a Buffer detached before it is written is reported, not read', () => {
  for (const take of ['takeTransmit', 'takeTransmitChunks']) {
    const c = openServer()
    const u8 = new Uint8Array(65536).fill(3)
    c.sendBinaryShared(u8)
    structuredClone(u8.buffer, { transfer: [u8.buffer] }) // detaches it
    assert.equal(u8.byteLength, 0)
    assert.throws(() => c[take](), { code: 'buffer_detached' }, take)
    assert.equal(c[take](), null, `${take}: nothing left afterwards`)
  }
})

const tick = () => new Promise((resolve) => setImmediate(resolve))

/** Collects garbage until `ref` is cleared, up to `rounds` times. */
async function collected(ref, rounds = 10) {
  for (let i = 0; i < rounds && ref.deref() !== undefined; i++) {
    await tick()
    gc()
  }
  return ref.deref() === undefined
}

/**
 * Sends a fresh Buffer shared and returns only a WeakRef to it. (A helper,
 * not a block: an async function's frame may keep a block's values alive.)
 */
function sendWeak(c, n, seed) {
  const buf = pattern(n, seed)
  c.sendBinaryShared(buf)
  return new WeakRef(buf)
}

test('a shared Buffer lives while queued and is let go once taken (gc)', async () => {
  const c = openServer()
  const ref = sendWeak(c, 100000, 13)
  // Only the connection holds it now.
  assert.equal(await collected(ref, 3), false, 'kept alive while queued')
  const chunks = c.takeTransmitChunks()
  assert.deepEqual(readBack(concat(chunks)), [pattern(100000, 13)])
  assert.equal(chunks.filter((ch) => ch.length === 100000).length, 1)
  chunks.length = 0
  assert.equal(await collected(ref), true, 'released once handed out')
})

test('queued shared Buffers are let go with a closed or collected connection (gc)', async () => {
  // Cut off: the queue is dropped, the next take releases what it held.
  const c = openServer()
  const ref = sendWeak(c, 50000, 4)
  c.receiveEof(0)
  assert.equal(c.takeEvents().at(-1).type, 'closed')
  c.takeTransmitChunks()
  assert.equal(await collected(ref), true)

  // Collected with a queue: its finalizer lets the Buffers go.
  const refs = []
  const weakConn = (() => {
    const d = openServer()
    for (let i = 0; i < 4; i++) refs.push(sendWeak(d, 40000, i))
    return new WeakRef(d)
  })()
  assert.equal(await collected(weakConn), true, 'the connection itself is collectable')
  for (const r of refs) assert.equal(await collected(r), true, 'its queued Buffers too')
})

test('many shared sends under garbage collection keep every byte', async () => {
  const c = openServer()
  const peer = []
  const r = new Receiver({ isServer: false, binaryType: 'nodebuffer', maxPayload: 0 })
  r.on('message', (data) => peer.push(data))
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 8; i++) c.sendBinaryShared(pattern(9000 + i * 1000, round + i))
    if (round % 3 === 0) gc()
    if (round % 2 === 0) {
      await tick()
      gc()
    }
    for (const ch of c.takeTransmitChunks()) r.write(Buffer.from(ch))
  }
  assert.equal(peer.length, 160)
  for (let round = 0, k = 0; round < 20; round++) {
    for (let i = 0; i < 8; i++, k++) assert.deepEqual(peer[k], pattern(9000 + i * 1000, round + i))
  }
})

test('host: large sends reach a ws client intact and in order, copied or not', async () => {
  const http = require('node:http')
  const { once } = require('node:events')
  const WS = require('ws')
  const evsock = require('..')
  const sizes = [5, 70000, 9000, 1 << 20, 100, 65536, 8192, 300000]
  const payloads = sizes.map((n, i) => pattern(n, i))
  const server = http.createServer()
  evsock.attachServer(server, {
    options: { deflate: false },
    onConnection(ws) {
      ws.on('message', (data) => {
        const copy = data.toString() === 'copy'
        for (const p of payloads) {
          const mine = Buffer.from(p)
          ws.send(mine, copy ? undefined : { copy: false })
          ws.send(`after ${p.length}`)
          if (copy) mine.fill(0) // copied: changing it now changes nothing sent
        }
        assert.throws(() => ws.send(mine0(), { copi: false }), { code: 'invalid_argument' })
        assert.throws(() => ws.send(mine0(), 'no'), { code: 'invalid_argument' })
      })
    },
  })
  const mine0 = () => Buffer.alloc(1)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  try {
    const client = new WS(`ws://127.0.0.1:${server.address().port}`, { maxPayload: 0 })
    await once(client, 'open')
    for (const mode of ['copy', 'share']) {
      const got = []
      const done = new Promise((resolve) => {
        const on = (data, isBinary) => {
          got.push(isBinary ? data : data.toString())
          if (got.length === payloads.length * 2) {
            client.off('message', on)
            resolve()
          }
        }
        client.on('message', on)
      })
      client.send(mode)
      await done
      for (let i = 0; i < payloads.length; i++) {
        assert.ok(Buffer.compare(got[2 * i], payloads[i]) === 0, `${mode}: payload ${i}`)
        assert.equal(got[2 * i + 1], `after ${payloads[i].length}`)
      }
    }
    client.close()
    await once(client, 'close')
  } finally {
    server.closeAllConnections?.()
    server.close()
  }
})

test('received large texts (ASCII or not) and binaries keep their order and content', () => {
  const messages = [
    'small',
    'a'.repeat(4096),
    Buffer.alloc(5000, 7),
    'é'.repeat(3000) + '😀'.repeat(1000) + 'end',
    'ascii '.repeat(20000),
    'x',
    `${'b'.repeat(4095)}\u{10FFFF}`,
    Buffer.from([1]),
  ]
  const frames = Buffer.concat(
    messages.flatMap((m, i) =>
      Sender.frame(Buffer.from(m), {
        fin: true,
        opcode: typeof m === 'string' ? 1 : 2,
        mask: true,
        readOnly: false,
        rsv1: false,
        maskBuffer: Buffer.from([i, 2, 3, 4]),
        generateMask: undefined,
      }),
    ),
  )
  const want = messages.map((m) => (typeof m === 'string' ? { type: 'text', text: m } : { type: 'binary', data: m }))
  for (const how of ['takeEvents', 'pollEvent']) {
    for (const step of [frames.length, 1000, 65536]) {
      const c = openServer()
      const got = []
      for (let at = 0; at < frames.length; at += step) {
        c.receiveData(frames.subarray(at, at + step), 0)
        if (how === 'takeEvents') got.push(...c.takeEvents())
        else for (let e; (e = c.pollEvent()) !== null; ) got.push(e)
      }
      assert.deepEqual(got, want, `${how}, reads of ${step}`)
    }
  }
})
