'use strict'

// Runs every language-neutral connection vector (tests/vectors/ws, format in
// the README there) through the JS API, as engine/tests/ws_vectors.rs does
// through the Rust one.

const test = require('node:test')
const assert = require('node:assert/strict')
const fs = require('node:fs')
const path = require('node:path')

const { Connection } = require('..')

const DIR = path.join(__dirname, '..', '..', 'tests', 'vectors', 'ws')

const CONFIG_KEYS = {
  max_frame_size: 'maxFrameSize',
  max_message_size: 'maxMessageSize',
  max_fragments: 'maxFragments',
  max_handshake_bytes: 'maxHandshakeBytes',
  max_headers: 'maxHeaders',
  max_outbound_bytes: 'maxOutboundBytes',
  ping_interval_ms: 'pingIntervalMs',
  pong_timeout_ms: 'pongTimeoutMs',
  idle_timeout_ms: 'idleTimeoutMs',
  handshake_timeout_ms: 'handshakeTimeoutMs',
  close_timeout_ms: 'closeTimeoutMs',
  auto_pong: 'autoPong',
  subprotocols: 'subprotocols',
}

const STEP_KEYS = new Set([
  'input', 'input_text', 'eof', 'timeout', 'call', 'at', 'subprotocol', 'status', 'body', 'text',
  'hex', 'code', 'reason', 'transmit', 'transmit_text', 'transmit_prefix_text', 'events', 'error',
  'state', 'deadline',
])

const DEFLATE_KEYS = {
  threshold: 'threshold',
  level: 'level',
  server_max_window_bits: 'serverMaxWindowBits',
  client_max_window_bits: 'clientMaxWindowBits',
  server_no_context_takeover: 'serverNoContextTakeover',
  client_no_context_takeover: 'clientNoContextTakeover',
}

function deflateOptions(d) {
  const o = {}
  for (const [k, v] of Object.entries(d)) {
    if (!(k in DEFLATE_KEYS)) throw new Error(`unknown deflate key ${k}`)
    o[DEFLATE_KEYS[k]] = v
  }
  return o
}

function options(config) {
  // Vectors list what differs from the engine's "no timers" configuration.
  const o = { timers: false }
  for (const [k, v] of Object.entries(config)) {
    if (k === 'deflate') {
      o.deflate = typeof v === 'boolean' ? v : deflateOptions(v)
    } else if (k === 'origins') {
      o.origins = v
      o.allowMissingOrigin = false
    } else if (k in CONFIG_KEYS) {
      // null means "off", which is 0 in the JS options.
      o[CONFIG_KEYS[k]] = v === null ? 0 : v
    } else {
      throw new Error(`unknown config key ${k}`)
    }
  }
  return o
}

function eventJson(e) {
  switch (e.type) {
    case 'request':
      return { type: 'request', path: e.path, subprotocols: e.subprotocols }
    case 'open':
      return { type: 'open', subprotocol: e.subprotocol }
    case 'text':
      return { type: 'text', text: e.text }
    case 'binary':
    case 'ping':
    case 'pong':
      assert.ok(Buffer.isBuffer(e.data), `${e.type} data is a Buffer`)
      return { type: e.type, hex: e.data.toString('hex') }
    case 'closed':
      return {
        type: 'closed',
        code: e.code,
        reason: e.reason,
        clean: e.clean,
        by_peer: e.byPeer,
        error: e.error === null ? null : e.error.code,
      }
    default:
      throw new Error(`unknown event type ${e.type}`)
  }
}

function callStep(conn, step) {
  switch (step.call) {
    case 'accept':
      return conn.accept(step.subprotocol == null ? undefined : { subprotocol: step.subprotocol })
    case 'reject':
      return conn.reject(step.status, step.body)
    case 'send_text':
      return conn.sendText(step.text)
    case 'send_binary':
      return conn.sendBinary(Buffer.from(step.hex, 'hex'))
    case 'ping':
      return conn.ping(Buffer.from(step.hex, 'hex'))
    case 'close':
      return conn.close(step.code, step.reason)
    default:
      throw new Error(`unknown call ${step.call}`)
  }
}

function runVector(v) {
  let conn
  if (v.role === 'server') {
    conn = Connection.server(options(v.config), 0)
  } else if (v.role === 'client') {
    const c = v.client
    conn = Connection.client(
      `ws://${c.host}${c.path}`,
      { ...options(v.config), subprotocols: c.subprotocols, seed: c.seed },
      0,
    )
  } else {
    throw new Error(`bad role ${v.role}`)
  }
  v.steps.forEach((step, i) => {
    const ctx = `${v.name} step ${i}`
    for (const k of Object.keys(step)) assert.ok(STEP_KEYS.has(k), `${ctx}: unknown key ${k}`)
    const at = step.at ?? 0
    let error = null
    if ('input' in step) conn.receiveData(Buffer.from(step.input, 'hex'), at)
    else if ('input_text' in step) conn.receiveData(Buffer.from(step.input_text, 'utf8'), at)
    else if ('eof' in step) conn.receiveEof(at)
    else if ('timeout' in step) conn.handleTimeout(at)
    else if ('call' in step) {
      try {
        callStep(conn, step)
      } catch (e) {
        error = e
      }
    } else throw new Error(`${ctx}: no action`)

    if ('error' in step) {
      assert.ok(error instanceof Error, `${ctx}: expected error ${step.error}`)
      assert.equal(error.code, step.error, `${ctx}: error code (${error.message})`)
      assert.ok(error.message.length > 0)
    } else if (error !== null) {
      throw new Error(`${ctx}: unexpected error ${error.code}: ${error.message}`)
    }

    // Drain as a host does: events first (frames are decoded as events are
    // taken, which can queue bytes such as a close reply), then bytes.
    const events = conn.takeEvents().map(eventJson)
    assert.deepEqual(conn.takeEvents(), [], `${ctx}: takeEvents drains everything`)
    const out = conn.takeTransmit() ?? Buffer.alloc(0)
    assert.equal(conn.takeTransmit(), null, `${ctx}: takeTransmit drains everything`)
    if ('transmit' in step) assert.equal(out.toString('hex'), step.transmit, `${ctx}: transmit`)
    if ('transmit_text' in step) assert.equal(out.toString('utf8'), step.transmit_text, `${ctx}: transmit_text`)
    if ('transmit_prefix_text' in step) {
      const got = out.toString('utf8')
      assert.ok(got.startsWith(step.transmit_prefix_text), `${ctx}: got ${JSON.stringify(got)}`)
    }
    assert.deepEqual(events, step.events ?? [], `${ctx}: events`)
    if ('deadline' in step) assert.equal(conn.pollTimeout(), step.deadline, `${ctx}: deadline`)
    if ('state' in step) assert.equal(conn.state, step.state, `${ctx}: state`)
  })
}

const files = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()

test('the shared vectors are all there', () => {
  assert.ok(files.length >= 20, `only ${files.length} vectors in ${DIR}`)
})

for (const f of files) {
  const v = JSON.parse(fs.readFileSync(path.join(DIR, f), 'utf8'))
  test(`vector ${v.name}: ${v.description}`, () => runVector(v))
}
