// Runs every golden session vector (tests/vectors/session/*.json, format in
// its README.md) through the JavaScript Session and compares every output
// byte for byte, every call result and every poll_timeout the vector names.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session, EvsockError } from '../evsock.js';
import { msgpackCodec } from '../msgpack.js';

const here = dirname(fileURLToPath(import.meta.url));
const dir = join(here, '..', '..', 'tests', 'vectors', 'session');

const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
const unhex = (s) => {
  if (s.length % 2 !== 0 || /[^0-9a-f]/i.test(s)) throw new Error(`bad hex ${s}`);
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
  return out;
};

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
};

function config(v) {
  const out = { codecs: [msgpackCodec] };
  for (const [k, val] of Object.entries(v || {})) {
    const key = CONFIG_KEYS[k];
    if (!key) throw new Error(`unknown config key ${k}`);
    out[key] = k === 'format' ? (val === 'msgpack' ? msgpackCodec : 'json') : val;
  }
  return out;
}

/** The vector's scripted random numbers, read from the raw text so that
 * 64-bit values stay exact, returned in a cycle (0 when there are none). */
function scriptedRng(raw) {
  const m = /"rng"\s*:\s*\[([^\]]*)\]/.exec(raw);
  const values = m && m[1].trim() ? m[1].split(',').map((x) => BigInt(x.trim())) : [];
  let at = 0;
  return () => (values.length === 0 ? 0n : values[at++ % values.length]);
}

function dataOf(v) {
  if (typeof v === 'string') return { data: v };
  return { data_hex: hex(v) };
}

function canonical(o) {
  switch (o.type) {
    case 'send':
      return typeof o.payload === 'string' ? { send: o.payload } : { send_hex: hex(o.payload) };
    case 'established':
      return { event: 'established', session_id: o.sessionId, resumed: o.resumed };
    case 'reset':
      return { event: 'reset', unconfirmed: o.unconfirmed };
    case 'gap':
      return { event: 'gap', from: o.from, to: o.to };
    case 'message':
      return { event: 'message', name: o.name, ...dataOf(o.data), id: o.id };
    case 'request':
      return {
        event: 'request',
        req: o.req,
        name: o.name,
        ...dataOf(o.data),
        timeout_ms: o.timeoutMs,
        idempotency_key: o.idempotencyKey,
      };
    case 'reply':
      return { event: 'reply', req: o.req, ...dataOf(o.data) };
    case 'request_failed':
      return { event: 'request_failed', req: o.req, error: o.error, ...(o.error === 'remote' ? dataOf(o.data) : {}) };
    case 'reconnect':
    case 'expired':
      return { event: o.type };
    case 'closed':
      return { event: 'closed', by_peer: o.byPeer };
    case 'close_transport':
      return { event: 'close_transport', reason: o.reason };
    case 'error':
      return { event: 'error', code: o.code };
    default:
      throw new Error(`unknown output ${JSON.stringify(o)}`);
  }
}

function stepData(step) {
  if (typeof step.data === 'string') return step.data;
  if (typeof step.data_hex === 'string') return unhex(step.data_hex);
  return undefined;
}

function call(s, step, now) {
  const result = (f) => {
    try {
      const r = f();
      return r === undefined ? null : r;
    } catch (e) {
      if (e instanceof EvsockError) return { error: e.code };
      throw e;
    }
  };
  switch (step.call) {
    case 'connected':
      return result(() => s.handleConnected(now));
    case 'disconnected':
      return result(() => s.handleDisconnected(now));
    case 'timeout':
      return result(() => s.handleTimeout(now));
    case 'message':
      return result(() => s.handleMessage(now, typeof step.text === 'string' ? step.text : unhex(step.hex)));
    case 'send':
      return result(() => s.send(now, step.name, stepData(step)));
    case 'send_reliable':
      return result(() => s.sendReliable(now, step.name, stepData(step)));
    case 'request':
      return result(() => s.request(now, step.name, stepData(step), step.timeout_ms, step.idempotency_key));
    case 'reply':
      return result(() => s.reply(now, step.req, stepData(step)));
    case 'reply_error':
      return result(() => s.replyError(now, step.req, stepData(step)));
    case 'close':
      return result(() => s.close(now));
    case 'go_away':
      return result(() => s.goAway(now, step.retry_after_ms));
    default:
      throw new Error(`unknown call ${step.call}`);
  }
}

export function runVector(file) {
  const raw = readFileSync(file, 'utf8');
  const v = JSON.parse(raw);
  const rng = scriptedRng(raw);
  const cfg = config(v.config);
  let s;
  if (v.role === 'client') s = Session.client(cfg, rng);
  else if (v.role === 'server') s = Session.server(cfg, v.session_id, rng);
  else throw new Error(`${v.name}: role ${v.role}`);
  let now = 0;
  v.steps.forEach((step, i) => {
    const ctx = `${v.name} step ${i} (${JSON.stringify(step)})`;
    if (typeof step.at === 'number') now = step.at;
    const got = call(s, step, now);
    assert.deepStrictEqual(got, step.result === undefined ? null : step.result, `${ctx}: result`);
    const outs = s.drain().map(canonical);
    assert.deepStrictEqual(outs, step.expect || [], `${ctx}: outputs`);
    if ('next_timeout' in step) assert.equal(s.pollTimeout(), step.next_timeout, `${ctx}: next_timeout`);
  });
  return v;
}

const files = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();

test('the session vectors are there', () => {
  assert.ok(files.length >= 6, `expected the session vectors in ${dir}`);
});

let passed = 0;
for (const f of files) {
  test(`vector ${f}`, () => {
    runVector(join(dir, f));
    passed++;
  });
}

test('summary', () => {
  console.log(`session vectors: ${passed} of ${files.length} passed byte for byte (client and server roles, no steps skipped)`);
  assert.equal(passed, files.length);
});
