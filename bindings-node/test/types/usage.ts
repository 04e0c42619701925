// Compiled (never run) by test/typings.test.js with tsc --strict: the
// generated index.d.ts must describe the package as it is used here.

import * as http from 'node:http'
import * as evsock from '../..'
import type { Event, SessionOutput, ServerSession, SessionRequest } from '../..'

// Sans-IO connection.
const conn: evsock.Connection = evsock.Connection.server({ pingIntervalMs: 0, deflate: { level: 6 } })
conn.receiveData(new Uint8Array(0))
for (const ev of conn.takeEvents() as Event[]) {
  if (ev.type === 'text') ev.text.toUpperCase()
  else if (ev.type === 'binary') ev.data.byteLength
  else if (ev.type === 'closed') console.log(ev.code, ev.reason, ev.error?.code)
}
const out: Buffer | null = conn.takeTransmit()
conn.sendBinaryShared(new Uint8Array(16384))
conn.sendBinary(Buffer.alloc(16384))
const chunks: Buffer[] | null = conn.takeTransmitChunks()
const deadline: number | null = conn.pollTimeout()
conn.sendMany(['a', new Uint8Array([1])])

// Sans-IO session.
const s = evsock.Session.client({ format: 'json', pingIntervalMs: 0 })
s.handleConnected()
const id: number = s.sendReliable('chat/say', '{"text":"hi"}')
const outs: SessionOutput[] = s.takeOutputs()
for (const o of outs) {
  if (o.type === 'send') typeof o.message === 'string'
  else if (o.type === 'message') console.log(o.name, o.id ?? 'unreliable')
  else if (o.type === 'requestFailed') console.log(o.error === 'timeout')
}
const hello = evsock.peekHello('["evs/hello",{"v":1,"rx":0,"lo":1}]')
console.log(hello.sessionId, id, out, deadline, evsock.newSessionId(), evsock.now())

// WebSocket hosts.
const server = http.createServer()
const attached = evsock.attachServer(server, {
  path: '/ws',
  verify: (request) => request.path.startsWith('/ws'),
  onConnection(ws) {
    ws.on('message', (data, isBinary) => ws.send(isBinary ? (data as Buffer) : String(data), { copy: false }))
    ws.on('close', (code, reason, details) => console.log(code, reason, details.clean))
  },
})
attached.clients.size
const ws: evsock.WebSocket = evsock.connect('ws://127.0.0.1:1/ws', { options: { subprotocols: ['a'] } })
ws.readyState === evsock.OPEN

// Session hosts.
const hub = evsock.attachSessionServer(server, {
  session: { resumeWindowMs: 30000 },
  onSession(peer: ServerSession) {
    peer.on('request', (r: SessionRequest) => r.reply({ ok: true, name: r.name }))
    peer.on('message', (name, data, info) => console.log(name, data, info.id))
    peer.goAway(1000)
  },
})
hub.sessions.get('x')?.close()
const client = evsock.connectSession('ws://127.0.0.1:1/', { session: { backoffMaxMs: 5000 } })
client.on('established', ({ sessionId, resumed }) => console.log(sessionId, resumed))
client.on('disconnected', ({ code, reason }) => console.log(code, reason))
const answer: Promise<unknown> = client.request('math/add', { a: 1 }, { timeoutMs: 500 })
answer.catch((e: evsock.RequestError) => e.code === 'remote' && e.data)
client.transport?.terminate()
