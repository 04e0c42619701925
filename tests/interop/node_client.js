#!/usr/bin/env node
// Scripted interop checks against an evsock echo server, using `ws` as the
// client. Usage: node_client.js ws://HOST:PORT[/path]
// Prints one line per check and exits 0 only if every check passed.
// With INTEROP_DEFLATE=1 the client offers permessage-deflate (ws' defaults,
// threshold 0 so every message is compressed) and checks it was negotiated.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const TIMEOUT_MS = 20000;
const DEFLATE = process.env.INTEROP_DEFLATE === '1';
const url = process.argv[2];
if (!url) {
  console.error('usage: node_client.js ws://HOST:PORT');
  process.exit(2);
}

// A connection wrapper that queues incoming messages so checks can await
// them one at a time.
function open(protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { perMessageDeflate: DEFLATE ? { threshold: 0 } : false, maxPayload: 64 * 1024 * 1024 });
    const queue = [];
    const waiters = [];
    let closed = null;
    ws.on('message', (data, isBinary) => {
      const msg = { data, isBinary };
      if (waiters.length) waiters.shift().resolve(msg);
      else queue.push(msg);
    });
    ws.on('close', (code, reason) => {
      closed = { code, reason: reason.toString() };
      while (waiters.length) waiters.shift().reject(new Error(`connection closed (${code})`));
    });
    ws.once('open', () => {
      ws.nextMessage = () => {
        if (queue.length) return Promise.resolve(queue.shift());
        if (closed) return Promise.reject(new Error(`connection closed (${closed.code})`));
        return withTimeout(new Promise((res, rej) => waiters.push({ resolve: res, reject: rej })), 'message');
      };
      ws.closeInfo = () => closed;
      resolve(ws);
    });
    ws.once('error', reject);
    ws.on('error', () => {});
  });
}

function withTimeout(promise, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS);
    }),
  ]);
}

function expectEcho(msg, payload, binary) {
  if (msg.isBinary !== binary) {
    throw new Error(`sent ${binary ? 'binary' : 'text'}, got ${msg.isBinary ? 'binary' : 'text'} back`);
  }
  const want = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
  if (!want.equals(msg.data)) throw new Error(`echo differs (sent ${want.length} bytes, got ${msg.data.length})`);
}

async function roundtrip(ws, payload, binary) {
  ws.send(payload, { binary });
  expectEcho(await ws.nextMessage(), payload, binary);
}

function multiByteText(minBytes) {
  const alphabet = ['a', 'é', '€', '😀', 'ж', '中', 'ß']; // 1- to 4-byte UTF-8
  const parts = [];
  let bytes = 0;
  let seed = 6455;
  while (bytes < minBytes) {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    const ch = alphabet[seed % alphabet.length];
    parts.push(ch);
    bytes += Buffer.byteLength(ch);
  }
  return parts.join('');
}

async function main() {
  const ws = await withTimeout(open(), 'opening handshake');
  const checks = [
    ['extensions negotiated as asked', () => {
      const got = ws.extensions || '';
      if (DEFLATE && !got.startsWith('permessage-deflate')) throw new Error(`asked for permessage-deflate, got '${got}'`);
      if (!DEFLATE && got !== '') throw new Error(`asked for no extension, got '${got}'`);
      return got || 'none';
    }],
    ['text', () => roundtrip(ws, 'Hello, evsock!', false)],
    ['binary', () => roundtrip(ws, Buffer.from([...Array(256).keys()]), true)],
    ['empty text', () => roundtrip(ws, '', false)],
    ['empty binary', () => roundtrip(ws, Buffer.alloc(0), true)],
    ['binary 1 MiB', () => roundtrip(ws, crypto.randomBytes(1024 * 1024), true)],
    ['text 200 KiB multi-byte UTF-8', () => roundtrip(ws, multiByteText(200 * 1024), false)],
    ['fragmented text (3 frames)', async () => {
      const parts = ['frag', 'ment', 'ed ✓'];
      parts.forEach((p, i) => ws.send(p, { binary: false, fin: i === parts.length - 1 }));
      expectEcho(await ws.nextMessage(), parts.join(''), false);
    }],
    ['fragmented binary (4 frames)', async () => {
      const parts = [0, 1, 2, 3].map(() => crypto.randomBytes(1000));
      parts.forEach((p, i) => ws.send(p, { binary: true, fin: i === parts.length - 1 }));
      expectEcho(await ws.nextMessage(), Buffer.concat(parts), true);
    }],
    ['ping/pong', async () => {
      const payload = Buffer.from('evsock-ping');
      const pong = withTimeout(new Promise((resolve) => ws.once('pong', resolve)), 'pong');
      ws.ping(payload);
      const got = await pong;
      if (!payload.equals(got)) throw new Error(`pong payload ${JSON.stringify(got.toString())}`);
    }],
    ['burst of 1000 messages, in order', async () => {
      for (let i = 0; i < 1000; i++) ws.send(`msg-${i}`);
      for (let i = 0; i < 1000; i++) {
        const msg = await ws.nextMessage();
        if (msg.isBinary || msg.data.toString() !== `msg-${i}`) {
          throw new Error(`message ${i}: got ${JSON.stringify(msg.data.toString())}`);
        }
      }
    }],
    ['close 1000 with reason, code echoed', async () => {
      const done = withTimeout(new Promise((resolve) => ws.once('close', resolve)), 'close');
      ws.close(1000, 'bye from ws');
      await done;
      const info = ws.closeInfo();
      if (!info || info.code !== 1000) throw new Error(`server closed with ${info && info.code}`);
    }],
    ["subprotocol offer 'chat'", async () => {
      let ws2;
      try {
        ws2 = await withTimeout(open(['chat']), 'opening handshake');
      } catch (err) {
        // ws aborts the handshake itself when the server selects nothing;
        // the server is allowed to do that, so it is not an evsock failure.
        if (/no subprotocol/i.test(err.message)) return 'none selected; ws refuses such a connection';
        throw err;
      }
      try {
        if (ws2.protocol !== '' && ws2.protocol !== 'chat') throw new Error(`server selected ${ws2.protocol}`);
        await roundtrip(ws2, 'in a subprotocol', false);
        return ws2.protocol || 'none selected';
      } finally {
        ws2.close(1000);
      }
    }],
  ];

  let failed = 0;
  for (const [name, fn] of checks) {
    try {
      const detail = await fn();
      console.log(`ok   ${name}${detail ? ` (${detail})` : ''}`);
    } catch (err) {
      failed++;
      console.log(`FAIL ${name}: ${err.message}`);
    }
  }
  console.log(`node_client: ${checks.length - failed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.log(`FAIL connect: ${err.message}`);
    process.exit(1);
  },
);
