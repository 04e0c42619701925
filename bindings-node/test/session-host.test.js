'use strict'

// Event vectors over real sockets on loopback: connectSession against
// attachSessionServer on an http.Server, with the transport cut under load,
// plus the engine's timers seen from outside through raw `ws` peers that
// speak the wire protocol by hand (docs/protocol.md).

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { once } = require('node:events')

const WS = require('ws')
const evsock = require('..')

const delay = (ms) => new Promise((r) => setTimeout(r, ms))

/** Resolves with the arguments of the next `event` (never rejects). */
function next(emitter, event) {
  return new Promise((resolve) => emitter.once(event, (...args) => resolve(args)))
}

async function sessionServer(opts) {
  const server = http.createServer()
  const hub = evsock.attachSessionServer(server, opts)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    hub,
    url: `ws://127.0.0.1:${server.address().port}/`,
    async close() {
      hub.close()
      server.closeAllConnections?.()
      server.close()
      await once(server, 'close')
    },
  }
}

const FAST = { ackDelayMs: 5, backoffBaseMs: 20, backoffMaxMs: 60 }

test('session client <-> server: events, reliable sends, requests both ways', async () => {
  let serverSide
  const srv = await sessionServer({
    session: FAST,
    onSession(s) {
      serverSide = s
      s.on('message', (name, data) => {
        if (name === 'chat/say') s.sendReliable('chat/echo', { ...data, echoed: true })
      })
      s.on('request', (r) => {
        if (r.name === 'math/add') r.reply(r.data.a + r.data.b)
        else if (r.name === 'math/fail') r.fail({ why: 'asked to', key: r.idempotencyKey })
        // 'math/slow' is never answered.
      })
    },
  })
  const c = evsock.connectSession(srv.url, { session: FAST })
  try {
    assert.equal(c.connected, false)
    assert.throws(() => c.send('chat/typing', true), { code: 'not_connected' })
    // Reliable sends are accepted before the connection is up.
    const early = c.sendReliable('chat/say', { text: 'early' })
    assert.equal(early, 1)
    const echo = next(c, 'message')
    const [est] = await next(c, 'established')
    assert.equal(est.resumed, false)
    assert.equal(typeof est.sessionId, 'string')
    assert.equal(c.id, est.sessionId)
    assert.equal(serverSide.id, est.sessionId)
    assert.ok(srv.hub.sessions.has(est.sessionId))
    const [name, data, info] = await echo
    assert.equal(name, 'chat/echo')
    assert.deepEqual(data, { text: 'early', echoed: true })
    assert.equal(info.id, 1)

    // Fire-and-forget, with every JSON shape and no data at all.
    const got = []
    serverSide.on('message', (n, d, i) => got.push([n, d, i.id]))
    c.send('x/none')
    c.send('x/value', [1, 'two', { three: null }, 'ünï😀'])
    await delay(30)
    assert.deepEqual(got, [
      ['x/none', null, null], // no data travels as null (docs/protocol.md)
      ['x/value', [1, 'two', { three: null }, 'ünï😀'], null],
    ])

    // Requests from the client...
    assert.equal(await c.request('math/add', { a: 2, b: 40 }), 42)
    await assert.rejects(c.request('math/fail', null, { idempotencyKey: 'k1' }), (e) => {
      assert.equal(e.code, 'remote')
      assert.deepEqual(e.data, { why: 'asked to', key: 'k1' })
      return true
    })
    const t0 = Date.now()
    await assert.rejects(c.request('math/slow', 1, { timeoutMs: 60 }), { code: 'timeout' })
    assert.ok(Date.now() - t0 >= 55, 'the timeout came from the engine timer, not before')

    // ...and from the server.
    c.on('request', (r) => r.reply(`pong ${r.data}`))
    assert.equal(await serverSide.request('client/ping', 7), 'pong 7')
    assert.equal(c.session.pendingRequests, 0)

    // Closing ends both sides; pending requests fail with session_closed.
    const pending = c.request('math/slow', 1, { timeoutMs: 5000 })
    const serverClosed = next(serverSide, 'closed')
    const clientClosed = next(c, 'closed')
    c.close()
    await assert.rejects(pending, { code: 'session_closed' })
    assert.deepEqual((await clientClosed)[0], { byPeer: false, expired: false })
    assert.deepEqual((await serverClosed)[0], { byPeer: true, expired: false })
    assert.equal(srv.hub.sessions.size, 0)
    assert.throws(() => c.sendReliable('chat/say', 1), { code: 'closed' })
  } finally {
    c.close()
    await srv.close()
  }
})

test('reconnect: cut connections lose no reliable event and apply none twice', async () => {
  let serverSide
  const srv = await sessionServer({
    session: FAST,
    onSession(s) {
      serverSide = s
    },
  })
  const c = evsock.connectSession(srv.url, { session: FAST })
  try {
    await next(c, 'established')
    const received = []
    c.on('message', (name, data) => received.push(data))
    const fromClient = []
    serverSide.on('message', (name, data) => fromClient.push(data))
    let reconnects = 0
    c.on('reconnecting', () => reconnects++)
    const resumed = []
    c.on('established', (e) => resumed.push(e.resumed))

    const N = 300
    for (let i = 0; i < N; i++) {
      serverSide.sendReliable('feed/item', i)
      c.sendReliable('up/item', i)
      // Cut the TCP connection (no closing handshake) every 50 messages,
      // in the middle of the traffic; the sends in between happen while
      // the client is offline or resuming.
      if (i % 50 === 25) {
        while (!c.connected) await delay(2)
        c.transport.terminate()
      }
      if (i % 10 === 0) await delay(2)
    }
    const deadline = Date.now() + 10000
    while ((received.length < N || fromClient.length < N) && Date.now() < deadline) await delay(10)
    assert.deepEqual(received, Array.from({ length: N }, (_, i) => i), 'server -> client: each once, in order')
    assert.deepEqual(fromClient, Array.from({ length: N }, (_, i) => i), 'client -> server: each once, in order')
    assert.ok(reconnects >= 6, `reconnected after each cut (${reconnects})`)
    assert.ok(resumed.length >= 6 && resumed.every((r) => r === true), 'every reconnect resumed the session')
    assert.equal(srv.hub.sessions.size, 1)
  } finally {
    c.close()
    await srv.close()
  }
})

/** A plain ws server on a free port. */
async function wsServer(onConnection) {
  const wss = new WS.WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  wss.on('connection', onConnection)
  return {
    url: `ws://127.0.0.1:${wss.address().port}/`,
    async close() {
      for (const c of wss.clients) c.terminate()
      wss.close()
      await once(wss, 'close')
    },
  }
}

test('client timers: no welcome -> handshake timeout, then backoff reconnects; then a hand-written welcome', async () => {
  const hellos = []
  let answer = false
  const srv = await wsServer((ws) => {
    ws.on('message', (m) => {
      hellos.push({ at: Date.now(), text: m.toString() })
      if (answer) ws.send('["evs/welcome",{"v":1,"sid":"hand-made","st":"new","rx":0,"lo":1}]')
    })
  })
  const c = evsock.connectSession(srv.url, {
    session: { handshakeTimeoutMs: 80, backoffBaseMs: 30, backoffMaxMs: 30, pingIntervalMs: 0, idleTimeoutMs: 0 },
  })
  try {
    const drops = []
    c.on('disconnected', (d) => drops.push(d))
    while (hellos.length < 3) await delay(10)
    answer = true
    const [est] = await next(c, 'established')
    assert.deepEqual(est, { sessionId: 'hand-made', resumed: false })
    assert.match(hellos[0].text, /^\["evs\/hello",\{"v":1/)
    // Each unanswered hello was given up after the handshake timeout (the
    // host closed the socket with the session's reason), then redialed.
    assert.ok(drops.length >= 2)
    assert.ok(hellos[1].at - hellos[0].at >= 75, `${hellos[1].at - hellos[0].at} ms between dials`)
  } finally {
    c.close()
    await srv.close()
  }
})

test('server timers: evs/ping keep-alive, then idle timeout closes a silent client', async () => {
  const srv = await sessionServer({
    session: { pingIntervalMs: 40, idleTimeoutMs: 150 },
    onSession() {},
  })
  try {
    const raw = new WS(srv.url)
    await once(raw, 'open')
    const seen = []
    raw.on('message', (m) => seen.push({ at: Date.now(), text: m.toString() }))
    const t0 = Date.now()
    raw.send('["evs/hello",{"v":1,"rx":0,"lo":1}]')
    const [code, reason] = await once(raw, 'close')
    const elapsed = Date.now() - t0
    assert.match(seen[0].text, /^\["evs\/welcome",\{"v":1,"sid":"[^"]+","st":"new"/)
    const pings = seen.filter((m) => m.text.startsWith('["evs/ping"'))
    assert.ok(pings.length >= 2, `pinged while silent (${pings.length})`)
    assert.equal(code, 4000)
    assert.equal(reason.toString(), 'idle_timeout')
    assert.ok(elapsed >= 140 && elapsed < 2000, `closed after ${elapsed} ms`)
    // The session itself stays resumable until its window passes.
    assert.equal(srv.hub.sessions.size, 1)
  } finally {
    await srv.close()
  }
})

test('server: the resume window expires a session; an unknown id gets a fresh session', async () => {
  const made = []
  const srv = await sessionServer({
    session: { resumeWindowMs: 60, pingIntervalMs: 0 },
    onSession(s) {
      made.push(s)
    },
  })
  try {
    const raw = new WS(srv.url)
    await once(raw, 'open')
    raw.send('["evs/hello",{"v":1,"rx":0,"lo":1}]')
    const [welcome] = await once(raw, 'message')
    const sid = JSON.parse(welcome.toString())[1].sid
    assert.ok(srv.hub.sessions.has(sid))
    const expired = next(made[0], 'closed')
    raw.terminate()
    assert.deepEqual((await expired)[0], { byPeer: false, expired: true })
    assert.equal(srv.hub.sessions.size, 0)

    const again = new WS(srv.url)
    await once(again, 'open')
    again.send(`["evs/hello",{"v":1,"sid":"${sid}","rx":3,"lo":1}]`)
    const [w2] = await once(again, 'message')
    const [, data] = JSON.parse(w2.toString())
    assert.equal(data.st, 'reset')
    assert.notEqual(data.sid, sid)
    assert.equal(made.length, 2)
    again.terminate()
  } finally {
    await srv.close()
  }
})

test('server: a first message that is not a hello closes the connection', async () => {
  const srv = await sessionServer({ onSession() {} })
  try {
    const raw = new WS(srv.url)
    await once(raw, 'open')
    raw.send('["chat/say","too soon"]')
    const [code, reason] = await once(raw, 'close')
    assert.equal(code, 4002)
    assert.equal(reason.toString(), 'expected evs/hello')
    assert.equal(srv.hub.sessions.size, 0)
  } finally {
    await srv.close()
  }
})

test('session host errors are typed', async () => {
  const server = http.createServer()
  assert.throws(() => evsock.attachSessionServer(server, {}), { code: 'invalid_argument', message: /onSession/ })
  assert.throws(() => evsock.attachSessionServer(server, { onSession() {}, session: { ackEvery: 0 } }), {
    code: 'invalid_argument',
    message: /ackEvery/,
  })
  assert.throws(() => evsock.connectSession(42), { code: 'invalid_argument' })
  assert.throws(() => evsock.connectSession('http://x/'), { code: 'invalid_argument', message: /ws:\/\// })
  assert.throws(() => evsock.connectSession('ws://127.0.0.1:1/', { session: { format: 'xml' } }), {
    code: 'invalid_argument',
  })

  // Refusals by a live session, before anything is sent.
  const srv = await sessionServer({ session: FAST, onSession() {} })
  const c = evsock.connectSession(srv.url, { session: { ...FAST, maxRequestTimeoutMs: 1000 } })
  try {
    await next(c, 'established')
    assert.throws(() => c.send('evs/ping'), { code: 'reserved_event' })
    assert.throws(() => c.send('no spaces allowed'), { code: 'bad_event_id' })
    assert.throws(() => c.send('a/b', 10n), { code: 'invalid_data' })
    assert.throws(() => c.send('a/b', () => 1), { code: 'invalid_data' })
    const cyclic = {}
    cyclic.self = cyclic
    assert.throws(() => c.sendReliable('a/b', cyclic), { code: 'invalid_data' })
    assert.throws(() => c.request('a/b', 1, { timeoutMs: 0 }), { code: 'bad_timeout' })
    assert.throws(() => c.request('a/b', 1, { timeoutMs: 5000 }), { code: 'bad_timeout' })
    assert.throws(() => c.request('a/b', 1, { timeoutMs: 'soon' }), { code: 'invalid_argument' })
    assert.throws(() => c.request('a/b', 1, { idempotencyKey: '' }), { code: 'bad_idempotency_key' })
    assert.throws(() => c.request('a/b', 1, null), { code: 'invalid_argument' })
    assert.throws(() => c.send('a/b', 'x'.repeat(2 << 20)), { code: 'too_large' })
    // None of it reached the wire: the session still works.
    assert.equal(c.session.unackedMessages, 0)
    assert.equal(c.connected, true)
  } finally {
    c.close()
    await srv.close()
  }
})
