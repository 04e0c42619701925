// Multi-node chat: two evsock-chat processes sharing rooms through Redis,
// clients on both, speaking docs/protocol.md through browser/evsock.js's
// EvsockClient (over the `ws` package). Started by scripts/test-hub.sh with
// EVSOCK_NODE_A and EVSOCK_NODE_B set to the nodes' http:// base URLs.
//
// Asserts: presence spans nodes (join replies and chat/presence pushes);
// every chat/msg sent to a room reaches every member's every tab exactly
// once, whichever node it was sent on, with one id sequence per room and
// each sender's messages in order; nothing leaks into other rooms; a leave
// on one node is seen on the other.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import WebSocket from 'ws';
import { EvsockClient } from '../../browser/evsock.js';

const A = process.env.EVSOCK_NODE_A;
const B = process.env.EVSOCK_NODE_B;
const REDIS_PORT = process.env.EVSOCK_REDIS_PORT;

function redis(...args) {
  return execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', REDIS_PORT, ...args], { encoding: 'utf8' });
}

/** How many connections of a type (pubsub / normal) Redis has, itself excluded. */
function redisClients(type) {
  return redis('CLIENT', 'LIST', 'TYPE', type)
    .split('\n')
    .filter((l) => l.includes('addr=') && !l.includes('cmd=client')).length;
}
const WAIT = 10_000;
const clients = [];

after(() => {
  for (const c of clients) c.client.close();
});

function wsUrl(base, user) {
  return `${base.replace(/^http/, 'ws').replace(/\/$/, '')}/ws?user=${user}`;
}

/** A chat client (one tab) of `user` on the node at `base`. */
function open(base, user, node) {
  const t = { user, node, msgs: [], presence: [], errors: [], state: 'connecting' };
  t.client = new EvsockClient(wsUrl(base, user), {
    WebSocket,
    reconnectOnOnline: false,
    onState: (s) => (t.state = s),
    onError: (e) => t.errors.push(String(e && e.message)),
    onGap: (g) => t.errors.push(`gap ${JSON.stringify(g)}`),
    onReset: () => t.errors.push('reset'),
  });
  t.client.on('chat/msg', (m) => t.msgs.push(m));
  t.client.on('chat/presence', (p) => t.presence.push(p));
  clients.push(t);
  return t;
}

async function until(what, cond, ms = WAIT) {
  const end = Date.now() + ms;
  for (;;) {
    const v = cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Who `t` believes is in `room`: its join reply, then presence pushes. */
function members(t, room) {
  const s = new Set(t.joined?.[room] || []);
  for (const p of t.presence) {
    if (p.room !== room) continue;
    if (p.online) s.add(p.user);
    else s.delete(p.user);
  }
  return [...s].sort();
}

test('two nodes share a room through Redis', { timeout: 60_000 }, async () => {
  assert.ok(A && B, 'EVSOCK_NODE_A and EVSOCK_NODE_B name the two nodes');
  // alice has a tab on each node; carol on A; bob and dave on B; erin (B) is
  // in another room only.
  const tabs = [open(A, 'alice', 'A'), open(B, 'alice', 'B'), open(A, 'carol', 'A'), open(B, 'bob', 'B'), open(B, 'dave', 'B')];
  const erin = open(B, 'erin', 'B');
  await until('every client online', () => clients.every((t) => t.state === 'online'));

  for (const t of tabs) {
    const r = await t.client.request('chat/join', { room: 'lobby' }, { timeoutMs: 5000 });
    assert.equal(r.room, 'lobby');
    assert.ok(r.members.includes(t.user), `${t.user}'s join reply lists itself: ${r.members}`);
    t.joined = { lobby: r.members };
  }
  await erin.client.request('chat/join', { room: 'side' }, { timeoutMs: 5000 });

  // Presence spans the nodes: everyone sees the four lobby users.
  const everyone = ['alice', 'bob', 'carol', 'dave'];
  for (const t of tabs) {
    await until(`${t.user}@${t.node} sees ${everyone} in lobby (has ${members(t, 'lobby')})`, () =>
      members(t, 'lobby').join() === everyone.join(),
    );
  }
  // The last joiner's reply, answered by B, lists A's users: the hub's
  // cluster-wide view, not just B's own clients.
  assert.deepEqual(tabs[4].joined.lobby, everyone, `dave's join reply (${tabs[4].joined.lobby})`);

  // Everyone talks, on both nodes, interleaved and concurrently.
  const perTab = 6;
  const sent = [];
  await Promise.all(
    tabs.map(async (t, i) => {
      for (let k = 0; k < perTab; k++) {
        const text = `${t.user}@${t.node} #${k}`;
        const r = await t.client.request('chat/send', { room: 'lobby', text }, { timeoutMs: 5000 });
        assert.equal(r.room, 'lobby');
        assert.ok(Number.isSafeInteger(r.id) && r.id > 0, `id ${r.id}`);
        sent.push({ id: r.id, from: t.user, text, tab: i });
      }
    }),
  );
  const total = tabs.length * perTab;
  assert.equal(sent.length, total);
  assert.equal(new Set(sent.map((s) => s.id)).size, total, 'the room hands out each id once, across nodes');

  for (const t of tabs) {
    await until(`${t.user}@${t.node} receives all ${total} messages (has ${t.msgs.length})`, () => t.msgs.length >= total);
  }
  // Give any duplicate a chance to arrive.
  await new Promise((r) => setTimeout(r, 500));
  const byId = new Map(sent.map((s) => [s.id, s]));
  for (const t of tabs) {
    const who = `${t.user}@${t.node}`;
    assert.equal(t.msgs.length, total, `${who} got each message exactly once`);
    assert.equal(new Set(t.msgs.map((m) => m.id)).size, total, `${who}: no id twice`);
    for (const m of t.msgs) {
      const s = byId.get(m.id);
      assert.ok(s, `${who} got id ${m.id} that nobody sent`);
      assert.deepEqual([m.room, m.from, m.text], ['lobby', s.from, s.text], `${who}: message ${m.id} intact`);
      assert.ok(Number.isSafeInteger(m.ts));
    }
    // Each sender's messages arrive in the order they were sent.
    for (let i = 0; i < tabs.length; i++) {
      const mine = sent.filter((s) => s.tab === i).map((s) => s.text);
      const seen = t.msgs.filter((m) => mine.includes(m.text)).map((m) => m.text);
      assert.deepEqual(seen, mine, `${who} sees tab ${i}'s messages in order`);
    }
    assert.deepEqual(t.errors, [], `${who}: no protocol errors, gaps or resets`);
  }
  assert.equal(erin.msgs.length, 0, 'nothing leaked into another room');

  // A leave on B is seen on A (and B).
  await tabs[4].client.request('chat/leave', { room: 'lobby' }, { timeoutMs: 5000 });
  for (const t of tabs.slice(0, 4)) {
    await until(`${t.user}@${t.node} sees dave leave`, () => !members(t, 'lobby').includes('dave'));
  }
  // And dave no longer gets lobby messages; the rest still get them once.
  const r = await tabs[0].client.request('chat/send', { room: 'lobby', text: 'after dave left' }, { timeoutMs: 5000 });
  for (const t of tabs.slice(0, 4)) {
    await until(`${t.user}@${t.node} gets the last message`, () => t.msgs.some((m) => m.id === r.id));
  }
  await new Promise((res) => setTimeout(res, 300));
  assert.ok(!tabs[4].msgs.some((m) => m.id === r.id), 'dave left: not delivered to him');
  for (const t of tabs.slice(0, 4)) assert.equal(t.msgs.filter((m) => m.id === r.id).length, 1);
  // Redis drops both nodes' connections (as a restart or a network cut
  // would): they reconnect, subscribe again, and the room works across
  // nodes as before, each message still delivered once.
  if (REDIS_PORT) {
    const killed = Number(redis('CLIENT', 'KILL', 'TYPE', 'pubsub').trim()) + Number(redis('CLIENT', 'KILL', 'TYPE', 'normal').trim());
    assert.ok(killed >= 4, `Redis cut the nodes' 4 connections (cut ${killed})`);
    await until('both nodes reconnected to Redis', () => redisClients('pubsub') === 2 && redisClients('normal') >= 2);
    const texts = [];
    for (const t of [tabs[0], tabs[3], tabs[2], tabs[1]]) {
      const text = `${t.user}@${t.node} after the cut`;
      texts.push(text);
      await t.client.request('chat/send', { room: 'lobby', text }, { timeoutMs: 5000 });
    }
    for (const t of tabs.slice(0, 4)) {
      await until(`${t.user}@${t.node} gets the messages sent after the cut`, () => texts.every((x) => t.msgs.some((m) => m.text === x)));
    }
    await new Promise((res) => setTimeout(res, 300));
    for (const t of tabs.slice(0, 4)) {
      for (const x of texts) assert.equal(t.msgs.filter((m) => m.text === x).length, 1, `${t.user}@${t.node}: "${x}" once`);
      assert.equal(new Set(t.msgs.map((m) => m.id)).size, t.msgs.length, 'ids still unique');
    }
  }

  // Sending to a room one is not in is refused.
  await assert.rejects(
    tabs[4].client.request('chat/send', { room: 'lobby', text: 'x' }, { timeoutMs: 5000 }),
    (e) => e.data && e.data.code === 'not_member',
  );
});
