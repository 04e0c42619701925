// A rough load measurement of the chat host, one or two nodes: N clients
// (EvsockClient over `ws`) join one room, spread over the nodes; senders on
// every node post M messages; prints delivered messages per second, delivery
// latency percentiles (send start to receipt, all tabs) and each node's RSS.
// Not a test (no pass/fail on speed); run by hand:
//
//   node tests/hub-multinode/load.mjs http://127.0.0.1:8080/ [http://127.0.0.1:8081/] \
//        [--clients 200] [--messages 200] [--pids PID,PID]

import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { EvsockClient } from '../../browser/evsock.js';

const argv = process.argv.slice(2);
const nodes = argv.filter((a) => a.startsWith('http'));
const opt = (name, d) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : d;
};
const N = Number(opt('--clients', 200));
const M = Number(opt('--messages', 200));
const pids = (opt('--pids', '') || '').split(',').filter(Boolean);

function rssMiB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? (Number(m[1]) / 1024).toFixed(1) : '?';
}

async function until(cond, ms = 60_000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sentAt = new Map(); // text -> ms
const lat = [];
let received = 0;
const tabs = [];
for (let i = 0; i < N; i++) {
  const base = nodes[i % nodes.length].replace(/^http/, 'ws').replace(/\/$/, '');
  const t = { state: 'connecting' };
  t.client = new EvsockClient(`${base}/ws?user=u${i}`, { WebSocket, reconnectOnOnline: false, onState: (s) => (t.state = s) });
  t.client.on('chat/msg', (m) => {
    received++;
    const s = sentAt.get(m.text);
    if (s !== undefined) lat.push(performance.now() - s);
  });
  tabs.push(t);
}
await until(() => tabs.every((t) => t.state === 'online'));
await Promise.all(tabs.map((t) => t.client.request('chat/join', { room: 'load' }, { timeoutMs: 30_000 })));
if (pids.length) console.log(`idle with ${N} clients joined: RSS ${pids.map((p) => `${rssMiB(p)} MiB`).join(', ')}`);

const senders = tabs.slice(0, Math.min(nodes.length * 2, N));
const t0 = performance.now();
await Promise.all(
  senders.map(async (t, s) => {
    for (let k = s; k < M; k += senders.length) {
      const text = `m${k}`;
      sentAt.set(text, performance.now());
      await t.client.request('chat/send', { room: 'load', text }, { timeoutMs: 30_000 });
    }
  }),
);
await until(() => received >= N * M);
const secs = (performance.now() - t0) / 1000;
lat.sort((a, b) => a - b);
const p = (q) => lat[Math.min(lat.length - 1, Math.floor(q * lat.length))].toFixed(1);
console.log(
  `${nodes.length} node(s), ${N} clients, ${M} messages: ${received} deliveries in ${secs.toFixed(2)} s ` +
    `= ${Math.round(received / secs)} deliveries/s; latency p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${p(1)} ms`,
);
if (pids.length) console.log(`after: RSS ${pids.map((p) => `${rssMiB(p)} MiB`).join(', ')}`);
for (const t of tabs) t.client.close();
setTimeout(() => process.exit(0), 200);
