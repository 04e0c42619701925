'use strict'

// Runs every language-neutral session vector (tests/vectors/session, format
// in the README there) through the JS Session API, as
// engine/tests/session_vectors.rs does through the Rust one: same calls,
// same clock, every output compared in order.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { Session } = require('..')

const DIR = path.join(__dirname, '..', '..', 'tests', 'vectors', 'session')

const CONFIG_KEYS = {
  format: 'format',
  max_message_bytes: 'maxMessageBytes',
  max_batch_envelopes: 'maxBatchEnvelopes',
  resume_window_ms: 'resumeWindowMs',
  resume_buffer_bytes: 'resumeBufferBytes',
  resume_buffer_age_ms: 'resumeBufferAgeMs',
  max_pending_requests: 'maxPendingRequests',
  max_incoming_requests: 'maxIncomingRequests',
  max_request_timeout_ms: 'maxRequestTimeoutMs',
  ack_delay_ms: 'ackDelayMs',
  ack_every: 'ackEvery',
  ping_interval_ms: 'pingIntervalMs',
  idle_timeout_ms: 'idleTimeoutMs',
  handshake_timeout_ms: 'handshakeTimeoutMs',
  batch_window_ms: 'batchWindowMs',
  batch_max_bytes: 'batchMaxBytes',
  backoff_base_ms: 'backoffBaseMs',
  backoff_max_ms: 'backoffMaxMs',
}

function options(vector) {
  const o = {}
  for (const [k, v] of Object.entries(vector.config ?? {})) {
    if (!(k in CONFIG_KEYS)) throw new Error(`${vector.name}: unknown config key ${k}`)
    // The vectors turn keep-alive off with null; the JS options with 0.
    o[CONFIG_KEYS[k]] = v === null ? 0 : v
  }
  if (vector.rng) o.testRandom = vector.rng
  return o
}

const hex = (b) => Buffer.from(b).toString('hex')

/** An output in the vectors' notation. */
function canonical(out, format) {
  const data = (m, d) => {
    if (format === 'json') m.data = d
    else m.data_hex = hex(d)
  }
  const m = {}
  switch (out.type) {
    case 'send':
      if (typeof out.message === 'string') m.send = out.message
      else m.send_hex = hex(out.message)
      return m
    case 'established':
      return { event: 'established', session_id: out.sessionId, resumed: out.resumed }
    case 'reset':
      return { event: 'reset', unconfirmed: out.unconfirmed }
    case 'gap':
      return { event: 'gap', from: out.from, to: out.to }
    case 'message':
      m.event = 'message'
      m.name = out.name
      data(m, out.data)
      m.id = out.id
      return m
    case 'request':
      m.event = 'request'
      m.req = out.req
      m.name = out.name
      data(m, out.data)
      m.timeout_ms = out.timeoutMs
      m.idempotency_key = out.idempotencyKey
      return m
    case 'reply':
      m.event = 'reply'
      m.req = out.req
      data(m, out.data)
      return m
    case 'requestFailed':
      m.event = 'request_failed'
      m.req = out.req
      m.error = out.error
      if (out.error === 'remote') data(m, out.data)
      return m
    case 'reconnect':
      return { event: 'reconnect' }
    case 'closeTransport':
      return { event: 'close_transport', reason: out.reason }
    case 'expired':
      return { event: 'expired' }
    case 'closed':
      return { event: 'closed', by_peer: out.byPeer }
    case 'error':
      assert.equal(typeof out.message, 'string')
      return { event: 'error', code: out.code }
    default:
      throw new Error(`unknown output type ${out.type}`)
  }
}

function stepData(step) {
  if (typeof step.data === 'string') return step.data
  if (typeof step.data_hex === 'string') return Buffer.from(step.data_hex, 'hex')
  return undefined
}

function call(s, step, now) {
  const result = (f) => {
    try {
      const r = f()
      return r === undefined ? null : r
    } catch (e) {
      assert.equal(typeof e.code, 'string', `a refused call throws an error with a code: ${e}`)
      assert.ok(e.message.length > 0)
      return { error: e.code }
    }
  }
  switch (step.call) {
    case 'connected':
      return result(() => s.handleConnected(now))
    case 'disconnected':
      return result(() => s.handleDisconnected(now))
    case 'timeout':
      return result(() => s.handleTimeout(now))
    case 'message':
      return result(() =>
        s.handleMessage(typeof step.text === 'string' ? step.text : Buffer.from(step.hex, 'hex'), now),
      )
    case 'send':
      return result(() => s.send(step.name, stepData(step), now))
    case 'send_reliable':
      return result(() => s.sendReliable(step.name, stepData(step), now))
    case 'request':
      return result(() => s.request(step.name, stepData(step), step.timeout_ms, step.idempotency_key, now))
    case 'reply':
      return result(() => s.reply(step.req, stepData(step), now))
    case 'reply_error':
      return result(() => s.replyError(step.req, stepData(step), now))
    case 'close':
      return result(() => s.close(now))
    case 'go_away':
      return result(() => s.goAway(step.retry_after_ms, now))
    default:
      throw new Error(`unknown call ${step.call}`)
  }
}

const files = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()

test('the shared session vectors are all there', () => {
  assert.ok(files.length >= 8, `expected the session vectors in ${DIR}, found ${files.length}`)
})

for (const file of files) {
  const vector = JSON.parse(fs.readFileSync(path.join(DIR, file), 'utf8'))
  test(`session vector ${vector.name}: ${vector.description}`, () => {
    const o = options(vector)
    const s = vector.role === 'client' ? Session.client(o) : Session.server(vector.session_id, o)
    assert.equal(s.role, vector.role)
    let now = 0
    vector.steps.forEach((step, i) => {
      const ctx = `${vector.name} step ${i} (${JSON.stringify(step)})`
      if (typeof step.at === 'number') now = step.at
      const got = call(s, step, now)
      assert.deepEqual(got, step.result ?? null, `${ctx}: result`)
      const format = s.format
      const outs = s.takeOutputs().map((o) => canonical(o, format))
      assert.deepEqual(outs, step.expect ?? [], `${ctx}: outputs`)
      if ('next_timeout' in step) assert.equal(s.pollTimeout(), step.next_timeout, `${ctx}: next_timeout`)
    })
  })
}
