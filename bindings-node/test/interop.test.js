'use strict'

// Interop with the `ws` package, both ways, over real sockets on loopback:
// ws clients against the evsock host on an http.Server, and the evsock
// client against ws's WebSocketServer.

const test = require('node:test')
const assert = require('node:assert/strict')
const http = require('node:http')
const { once } = require('node:events')

const WS = require('ws')
const evsock = require('..')

/** An http.Server with evsock attached, listening on a free port. */
async function evsockServer(attachOptions) {
  const server = http.createServer((req, res) => {
    res.writeHead(200)
    res.end('plain http still works\n')
  })
  const attached = evsock.attachServer(server, attachOptions)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const url = `ws://127.0.0.1:${server.address().port}`
  return {
    url,
    attached,
    async close() {
      attached.close()
      server.closeAllConnections?.()
      server.close()
      await once(server, 'close')
    },
  }
}

function echo(ws) {
  ws.on('message', (data, isBinary) => ws.send(isBinary ? data : data))
}

/**
 * The arguments of the next 'close' event. (events.once would reject on the
 * 'error' event that precedes a failed connection's 'close'.)
 */
function closeOf(ws) {
  return new Promise((resolve) => ws.once('close', (...args) => resolve(args)))
}

/** Collects `n` messages from a ws client. */
function collect(client, n) {
  return new Promise((resolve, reject) => {
    const got = []
    client.on('message', (data, isBinary) => {
      got.push({ data, isBinary })
      if (got.length === n) resolve(got)
    })
    client.on('error', reject)
  })
}

test('ws client <-> evsock server: text and binary echo, in order', async () => {
  let serverClose
  const srv = await evsockServer({
    path: '/echo',
    onConnection(ws) {
      echo(ws)
      serverClose = once(ws, 'close')
    },
  })
  try {
    const client = new WS(`${srv.url}/echo`)
    await once(client, 'open')
    const n = 200
    const done = collect(client, n)
    for (let i = 0; i < n; i++) {
      if (i % 2) client.send(Buffer.from([i & 0xff, 1, 2, 3]))
      else client.send(`message ${i} ✓`)
    }
    const got = await done
    for (let i = 0; i < n; i++) {
      if (i % 2) {
        assert.equal(got[i].isBinary, true)
        assert.deepEqual([...got[i].data], [i & 0xff, 1, 2, 3])
      } else {
        assert.equal(got[i].isBinary, false)
        assert.equal(got[i].data.toString(), `message ${i} ✓`)
      }
    }
    client.close(1000, 'bye')
    // The server echoes the code (RFC 6455 section 5.5.1), not the reason.
    const [code] = await once(client, 'close')
    assert.equal(code, 1000)
    const [serverCode, serverReason, details] = await serverClose
    assert.equal(serverCode, 1000)
    assert.equal(serverReason, 'bye')
    assert.deepEqual(details, { clean: true, byPeer: true, error: null })
  } finally {
    await srv.close()
  }
})

test('ws client <-> evsock server: large messages and permessage-deflate', async () => {
  const srv = await evsockServer({ onConnection: echo })
  try {
    const client = new WS(srv.url, { perMessageDeflate: true, maxPayload: 0 })
    await once(client, 'open')
    assert.match(client.extensions, /permessage-deflate/)
    const big = Buffer.alloc(1 << 20)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) & 0xff
    const text = 'evsock '.repeat(50000)
    const done = collect(client, 2)
    client.send(big)
    client.send(text)
    const [a, b] = await done
    assert.ok(Buffer.compare(a.data, big) === 0, 'binary round trip')
    assert.equal(b.data.toString(), text)
    client.close()
    await once(client, 'close')
  } finally {
    await srv.close()
  }
})

test('ws client <-> evsock server: subprotocol, headers and verify', async () => {
  const seen = []
  const srv = await evsockServer({
    options: { subprotocols: ['v2.chat', 'v1.chat'] },
    verify(request, req) {
      seen.push({ path: request.path, offered: request.subprotocols, auth: req.headers.authorization })
      if (req.headers.authorization !== 'Bearer good') return { status: 401, body: 'who are you?\n' }
      return { headers: { 'X-Evsock': 'yes' } }
    },
    onConnection(ws) {
      ws.send(`protocol=${ws.protocol}`)
    },
  })
  try {
    // Refused: ws reports the HTTP response.
    const bad = new WS(`${srv.url}/room?x=1`, ['v1.chat'], { headers: { Authorization: 'Bearer bad' } })
    bad.on('error', () => {})
    const [, res] = await once(bad, 'unexpected-response')
    assert.equal(res.statusCode, 401)
    res.resume()
    bad.terminate()

    const good = new WS(`${srv.url}/room?x=1`, ['v1.chat', 'v2.chat'], {
      headers: { Authorization: 'Bearer good' },
    })
    // The first message may arrive in the same read as the 101 response,
    // before 'upgrade' is seen here: listen for both at once.
    const firstMessage = once(good, 'message')
    const [upgrade] = await once(good, 'upgrade')
    assert.equal(upgrade.headers['x-evsock'], 'yes')
    const [msg] = await firstMessage
    assert.equal(good.protocol, 'v2.chat')
    assert.equal(msg.toString(), 'protocol=v2.chat')
    assert.deepEqual(seen[1], { path: '/room?x=1', offered: ['v1.chat', 'v2.chat'], auth: 'Bearer good' })
    good.close()
    await once(good, 'close')
  } finally {
    await srv.close()
  }
})

test('evsock server keep-alive: pings are answered by ws, silence ends in 1011', async () => {
  let serverWs
  const srv = await evsockServer({
    options: { pingIntervalMs: 30, pongTimeoutMs: 100 },
    onConnection(ws) {
      serverWs = ws
    },
  })
  try {
    // A well-behaved client answers every ping.
    const ok = new WS(srv.url)
    await once(ok, 'open')
    await once(ok, 'ping')
    await new Promise((r) => setTimeout(r, 20))
    const pongs = []
    serverWs.on('pong', (d) => pongs.push(d))
    await once(ok, 'ping')
    await new Promise((r) => setTimeout(r, 20))
    assert.ok(pongs.length >= 1, 'the server saw a pong')
    assert.equal(ok.readyState, WS.OPEN)
    ok.close()
    await once(ok, 'close')

    // A client that never answers is dropped with 1011 (pong_timeout).
    const mute = new WS(srv.url, { autoPong: false })
    await once(mute, 'open')
    const [code, reason, details] = await closeOf(serverWs)
    assert.equal(code, 1011)
    assert.match(reason, /pong/)
    assert.equal(details.error.code, 'pong_timeout')
    const [clientCode] = await once(mute, 'close')
    assert.equal(clientCode, 1011)
  } finally {
    await srv.close()
  }
})

test('evsock server: a request for another path is answered 404', async () => {
  const srv = await evsockServer({ path: '/only', onConnection: echo })
  try {
    const c = new WS(`${srv.url}/other`)
    c.on('error', () => {})
    const [, res] = await once(c, 'unexpected-response')
    assert.equal(res.statusCode, 404)
    res.resume()
    c.terminate()
    // And plain HTTP requests still reach the server's own handler.
    const body = await new Promise((resolve, reject) => {
      http.get(`http://127.0.0.1:${new URL(srv.url).port}/`, (res) => {
        let s = ''
        res.on('data', (d) => (s += d))
        res.on('end', () => resolve(s))
      }).on('error', reject)
    })
    assert.equal(body, 'plain http still works\n')
  } finally {
    await srv.close()
  }
})

/** A ws server on a free port. */
async function wsServer(options, onConnection) {
  const wss = new WS.WebSocketServer({ port: 0, host: '127.0.0.1', ...options })
  await once(wss, 'listening')
  wss.on('connection', onConnection)
  return {
    wss,
    url: `ws://127.0.0.1:${wss.address().port}`,
    async close() {
      for (const c of wss.clients) c.terminate()
      wss.close()
      await once(wss, 'close')
    },
  }
}

test('evsock client <-> ws server: echo, ping, clean close from the client', async () => {
  const srv = await wsServer({}, (ws) => ws.on('message', (d, isBinary) => ws.send(d, { binary: isBinary })))
  try {
    const client = evsock.connect(`${srv.url}/path?q=1`)
    assert.equal(client.readyState, evsock.CONNECTING)
    assert.throws(() => client.send('too early'), { code: 'invalid_state' })
    await once(client, 'open')
    assert.equal(client.readyState, evsock.OPEN)
    const got = []
    client.on('message', (data, isBinary) => got.push([data, isBinary]))
    client.send('héllo')
    client.send(Buffer.from([0, 255]))
    client.send(new Uint16Array([1, 2]))
    client.ping('are you there')
    const [pong] = await once(client, 'pong')
    assert.equal(pong.toString(), 'are you there')
    while (got.length < 3) await once(client, 'message')
    assert.deepEqual(got[0], ['héllo', false])
    assert.deepEqual([...got[1][0]], [0, 255])
    assert.equal(got[1][1], true)
    assert.deepEqual([...got[2][0]], [1, 0, 2, 0])
    client.close(4000, 'done here')
    assert.equal(client.readyState, evsock.CLOSING)
    client.send('dropped while closing') // ignored, as in browsers
    const [code, reason, details] = await once(client, 'close')
    assert.equal(code, 4000)
    assert.equal(reason, 'done here')
    assert.equal(details.clean, true)
    assert.equal(details.byPeer, false)
    assert.equal(client.readyState, evsock.CLOSED)
  } finally {
    await srv.close()
  }
})

test('evsock client <-> ws server: server closes first, subprotocol, deflate, big payloads', async () => {
  const srv = await wsServer(
    {
      perMessageDeflate: true,
      maxPayload: 0,
      handleProtocols: (protocols) => (protocols.has('b') ? 'b' : false),
    },
    (ws, req) => {
      ws.send(`${req.headers['x-who']}|${ws.extensions}`)
      ws.on('message', (d, isBinary) => {
        if (!isBinary && d.toString() === 'close please') ws.close(4001, 'as asked')
        else ws.send(d, { binary: isBinary })
      })
    },
  )
  try {
    const client = evsock.connect(srv.url, {
      options: { subprotocols: ['a', 'b'], headers: { 'X-Who': 'evsock' } },
    })
    const [first] = await once(client, 'message')
    assert.equal(client.protocol, 'b')
    assert.match(first, /^evsock\|permessage-deflate/)
    const big = Buffer.alloc(3 << 20, 0x5a)
    client.send(big)
    const [echoed, isBinary] = await once(client, 'message')
    assert.equal(isBinary, true)
    assert.ok(Buffer.compare(echoed, big) === 0)
    client.send('close please')
    const [code, reason, details] = await once(client, 'close')
    assert.equal(code, 4001)
    assert.equal(reason, 'as asked')
    assert.equal(details.byPeer, true)
    assert.equal(details.clean, true)
  } finally {
    await srv.close()
  }
})

test('evsock client: refused handshakes and unreachable servers end with an error', async () => {
  const srv = await wsServer({ verifyClient: () => false }, () => {})
  try {
    const client = evsock.connect(srv.url)
    const errors = []
    client.on('error', (e) => errors.push(e))
    const [code, , details] = await closeOf(client)
    assert.equal(code, 1006)
    assert.equal(details.error.code, 'handshake')
    assert.match(details.error.message, /401/)
    assert.equal(errors.length, 1)
  } finally {
    await srv.close()
  }
  // Nothing listens on this port any more.
  const gone = evsock.connect(srv.url)
  const [code, , details] = await closeOf(gone)
  assert.equal(code, 1006)
  assert.equal(details.error.code, 'ECONNREFUSED')
})

test('evsock client <-> evsock server, many connections at once', async () => {
  const srv = await evsockServer({ onConnection: echo })
  try {
    const clients = Array.from({ length: 20 }, () => evsock.connect(srv.url))
    await Promise.all(clients.map((c) => once(c, 'open')))
    assert.equal(srv.attached.clients.size, 20)
    const replies = clients.map((c, i) => {
      c.send(`client ${i}`)
      return once(c, 'message')
    })
    const got = await Promise.all(replies)
    got.forEach(([data], i) => assert.equal(data, `client ${i}`))
    // Closing the attachment closes every connection with 1001.
    const closes = clients.map((c) => once(c, 'close'))
    srv.attached.close()
    for (const [code] of await Promise.all(closes)) assert.equal(code, 1001)
  } finally {
    await srv.close()
  }
})
