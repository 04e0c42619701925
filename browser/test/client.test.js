// EvsockClient (the WebSocket host around Session) on a fake network with
// a virtual clock: states, events, requests, reconnects, resume, bad input.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EvsockClient, EvsockError, RequestError } from '../evsock.js';
import { FakeClock, FakeServer } from '../test-support/fake-net.js';

function setup({ server: serverOpts = {}, client: clientOpts = {}, seq = [0n] } = {}) {
  const clock = new FakeClock();
  const server = new FakeServer(clock, serverOpts);
  const states = [];
  const events = [];
  const errors = [];
  let i = 0;
  const c = new EvsockClient('ws://chat.test/ws?user=ann', {
    WebSocket: server.WebSocket,
    now: clock.now,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => seq[i++ % seq.length],
    onState: (s) => states.push(s),
    onEvent: (name, data, info) => events.push({ name, data, id: info.id }),
    onError: (e) => errors.push(e),
    ...clientOpts,
  });
  return { clock, server, c, states, events, errors };
}

test('connects, sends, receives pushes and answers requests', async () => {
  const { clock, server, c, states, events } = setup();
  assert.equal(c.state, 'connecting');
  const got = [];
  c.on('chat/msg', (d, info) => got.push([d, info.id]));
  const id = c.sendReliable('chat/read', { upto: 3 });
  assert.equal(id, 1);
  const reply = c.request('chat/join', { room: 'lobby' }, { timeoutMs: 5000 });
  await clock.advance(50);
  assert.equal(c.state, 'online');
  assert.deepEqual(states, ['online']);
  assert.deepEqual(await reply, { room: 'lobby' }); // the fake server echoes
  assert.deepEqual(
    server.received.map((m) => [m.name, m.data]),
    [['chat/read', { upto: 3 }]],
  );
  server.push(c.sessionId, 'chat/msg', { text: 'hi' });
  server.push(c.sessionId, 'chat/msg', { text: 'there' });
  await clock.advance(20);
  assert.deepEqual(got, [
    [{ text: 'hi' }, 2],
    [{ text: 'there' }, 3],
  ]);
  assert.equal(events.length, 2);
  assert.equal(c.send('chat/typing', true), true);
  await clock.advance(20);
  assert.deepEqual(server.received.at(-1), { sid: c.sessionId, name: 'chat/typing', data: true, id: null });
  c.close();
  assert.equal(c.state, 'offline');
});

test('a dropped connection reconnects, resumes, and loses or repeats nothing', async () => {
  // rng 300 with base 500 ms: the first retry comes 300 ms after the drop.
  const { clock, server, c, states } = setup({ seq: [300n] });
  const got = [];
  c.on('feed/item', (d) => got.push(d));
  await clock.advance(50);
  const sid = c.sessionId;
  server.push(sid, 'feed/item', 1);
  await clock.advance(20);
  // A request in flight when the link dies.
  const pending = c.request('slow/op', { n: 1 }, { timeoutMs: 10_000 });
  server.onRequest = () => {}; // answer later, by hand
  await clock.advance(10);
  const req = server.log.find((o) => o.type === 'request');
  assert.ok(req, 'the server saw the request');
  server.dropAll();
  await clock.advance(5);
  assert.equal(c.state, 'reconnecting');
  // Pushes and a reply while the client is away are buffered server side.
  server.push(sid, 'feed/item', 2);
  server.push(sid, 'feed/item', 3);
  server.session(sid).s.reply(clock.now(), req.req, JSON.stringify({ done: 1 }));
  // Sends while away are buffered client side.
  c.sendReliable('chat/read', 'while away');
  assert.equal(c.send('chat/typing', true), false, 'fire-and-forget is refused while offline');
  await clock.advance(290);
  assert.equal(c.state, 'reconnecting', 'waits for the backoff delay');
  await clock.advance(50);
  assert.equal(c.state, 'online');
  assert.equal(c.sessionId, sid, 'the same session resumed');
  assert.deepEqual(await pending, { done: 1 });
  assert.deepEqual(got, [1, 2, 3]);
  assert.deepEqual(
    server.received.filter((m) => m.name === 'chat/read').map((m) => m.data),
    ['while away'],
  );
  assert.deepEqual(states, ['online', 'reconnecting', 'online']);
  // Nothing left unacknowledged on either side once acks flow.
  await clock.advance(200);
  assert.equal(c.session.unackedMessages, 0);
  assert.equal(server.session(sid).s.unackedMessages, 0);
});

test('a request times out once, and a late reply is ignored', async () => {
  const { clock, server, c } = setup();
  server.onRequest = () => {};
  await clock.advance(20);
  const p = c.request('slow/op', null, { timeoutMs: 100 });
  let outcome = 0;
  const r = p.then(
    () => assert.fail('should not resolve'),
    (e) => {
      outcome++;
      return e;
    },
  );
  await clock.advance(99);
  assert.equal(outcome, 0);
  await clock.advance(2);
  const err = await r;
  assert.ok(err instanceof RequestError);
  assert.equal(err.code, 'timeout');
  const req = server.log.find((o) => o.type === 'request');
  server.session(c.sessionId).s.reply(clock.now(), req.req, '1');
  server.pump(server.session(c.sessionId));
  await clock.advance(50);
  assert.equal(outcome, 1);
});

test('error replies reject with the remote data', async () => {
  const { clock, server, c } = setup();
  server.onRequest = (e, o) => e.s.replyError(clock.now(), o.req, JSON.stringify({ code: 'not_member', message: 'join first' }));
  const p = c.request('chat/send', { room: 'x', text: 'hi' });
  await clock.advance(50);
  await assert.rejects(p, (e) => e instanceof RequestError && e.code === 'remote' && e.data.code === 'not_member' && /join first/.test(e.message));
});

test('bad input fails at once with a clear error', async () => {
  const { clock, c } = setup();
  await clock.advance(20);
  assert.throws(() => c.send('evs/hello', 1), (e) => e instanceof EvsockError && e.code === 'reserved_event');
  assert.throws(() => c.send('has space', 1), (e) => e.code === 'bad_event_id');
  assert.throws(() => c.send('', 1), (e) => e.code === 'bad_event_id');
  assert.throws(() => c.sendReliable('a/b', 10n), (e) => e.code === 'invalid_data');
  const cyclic = {};
  cyclic.self = cyclic;
  assert.throws(() => c.sendReliable('a/b', cyclic), (e) => e.code === 'invalid_data');
  assert.throws(() => c.sendReliable('a/b', () => 1), (e) => e.code === 'invalid_data');
  assert.throws(() => c.sendReliable('a/b', 'x'.repeat(1 << 20)), (e) => e.code === 'too_large');
  await assert.rejects(c.request('a/b', 1, { timeoutMs: 0 }), (e) => e.code === 'bad_timeout');
  await assert.rejects(c.request('a/b', 1, { timeoutMs: 'soon' }), (e) => e.code === 'bad_timeout');
  await assert.rejects(c.request('a/b', 1, { idempotencyKey: '' }), (e) => e.code === 'bad_idempotency_key');
  assert.throws(() => new EvsockClient('not a url'), (e) => e.code === 'bad_url');
  assert.throws(() => new EvsockClient('ftp://x/'), (e) => e.code === 'bad_url');
  assert.throws(() => new EvsockClient('ws://x/', { WebSocket: null }), (e) => e.code === 'bad_config');
  assert.throws(() => new EvsockClient('ws://x/', { WebSocket: class {}, config: { nope: 1 } }), (e) => e.code === 'bad_config');
  assert.throws(() => c.on('x', 'not a function'), TypeError);
  assert.equal(c.state, 'online', 'refused calls leave the session alone');
});

test('close fails pending requests and refuses further calls', async () => {
  const { clock, server, c, states } = setup();
  server.onRequest = () => {};
  await clock.advance(20);
  const p = c.request('slow/op', 1);
  await clock.advance(10);
  c.close();
  await assert.rejects(p, (e) => e.code === 'session_closed');
  assert.equal(c.state, 'offline');
  assert.deepEqual(states, ['online', 'offline']);
  assert.throws(() => c.sendReliable('a/b', 1), (e) => e.code === 'closed');
  await assert.rejects(c.request('a/b', 1), (e) => e.code === 'closed');
  await clock.advance(100);
  const bye = server.log.find((o) => o.type === 'closed');
  assert.deepEqual(bye && bye.byPeer, true, 'the server learned the session is over');
});

test('a server that forgot the session resets it; pending requests fail', async () => {
  const resets = [];
  const { clock, server, c } = setup({ client: { onReset: (r) => resets.push(r) } });
  server.onRequest = () => {};
  await clock.advance(20);
  const first = c.sessionId;
  const p = c.request('slow/op', 1, { timeoutMs: 60_000 });
  await clock.advance(10);
  server.forgetAll();
  await clock.advance(2000);
  assert.equal(c.state, 'online');
  assert.notEqual(c.sessionId, first);
  await assert.rejects(p, (e) => e.code === 'resume_failed');
  assert.deepEqual(resets, [{ unconfirmed: [1, 1] }]);
});

test('go-away with retry-after delays the reconnect at least that long', async () => {
  const { clock, server, c, states } = setup({ seq: [0n] });
  await clock.advance(20);
  const sid = c.sessionId;
  server.session(sid).s.goAway(clock.now(), 3000);
  server.pump(server.session(sid));
  await clock.advance(2900);
  assert.equal(c.state, 'reconnecting');
  await clock.advance(200);
  assert.equal(c.state, 'online');
  assert.equal(c.sessionId, sid);
  assert.deepEqual(states, ['online', 'reconnecting', 'online']);
});

test('refused and hanging connection attempts back off and retry', async () => {
  const { clock, server, c } = setup({ seq: [400n], client: { connectTimeoutMs: 1000 } });
  server.refuse = true;
  await clock.advance(2000);
  assert.equal(c.state, 'connecting');
  const attempts = server.conns.size;
  assert.ok(attempts >= 3, `retried (${attempts} attempts)`);
  server.refuse = false;
  server.hang = true;
  await clock.advance(1000);
  server.hang = false;
  await clock.advance(2500);
  assert.equal(c.state, 'online');
});

test('the server can make requests of the client', async () => {
  const { clock, server, c } = setup();
  c.handle('ui/confirm', async (d) => ({ ok: d.q === 'sure?' }));
  c.handle('ui/fail', () => {
    const e = new Error('nope');
    e.code = 'refused';
    throw e;
  });
  await clock.advance(20);
  const e = server.session(c.sessionId);
  const t = clock.now();
  e.s.request(t, 'ui/confirm', JSON.stringify({ q: 'sure?' }), 1000);
  e.s.request(t, 'ui/fail', 'null', 1000);
  e.s.request(t, 'ui/unknown', 'null', 1000);
  server.pump(e);
  await clock.advance(50);
  const outcomes = server.log.filter((o) => o.type === 'reply' || o.type === 'request_failed');
  assert.deepEqual(
    outcomes.map((o) => [o.req, o.type, JSON.parse(o.data)]).sort((a, b) => a[0] - b[0]),
    [
      [1, 'reply', { ok: true }],
      [2, 'request_failed', { code: 'refused', message: 'nope' }],
      [3, 'request_failed', { code: 'no_handler', message: 'no handler for ui/unknown' }],
    ],
  );
});

test('idle timeout: a silent server is given up on and the client reconnects', async () => {
  const { clock, server, c, states } = setup({
    client: { config: { pingIntervalMs: 1000, idleTimeoutMs: 3000 } },
    server: { config: { pingIntervalMs: null, idleTimeoutMs: null } },
  });
  await clock.advance(20);
  // Swallow everything the server would send: a half-open connection.
  const conn = [...server.conns][0];
  server.pump = ((orig) => (e) => {
    if (e.conn === conn) {
      e.s.drain();
      return;
    }
    orig.call(server, e);
  })(server.pump);
  await clock.advance(3100);
  assert.ok(states.includes('reconnecting'), `states: ${states}`);
  await clock.advance(1000);
  assert.equal(c.state, 'online');
});

test('handler exceptions do not break the client', async () => {
  const seen = [];
  const { clock, server, c } = setup({ client: { onHandlerError: (e) => seen.push(e.message) } });
  c.on('x/y', () => {
    throw new Error('boom');
  });
  const ok = [];
  c.on('x/y', (d) => ok.push(d));
  await clock.advance(20);
  server.push(c.sessionId, 'x/y', 1);
  server.push(c.sessionId, 'x/y', 2);
  await clock.advance(20);
  assert.deepEqual(ok, [1, 2]);
  assert.deepEqual(seen, ['boom', 'boom']);
});

test('reconnectNow skips the backoff wait but not a retry-after', async () => {
  // rng near the cap: each retry would wait almost the whole cap.
  const { clock, server, c } = setup({ seq: [2n ** 63n - 1n] });
  await clock.advance(20);
  const sid = c.sessionId;
  server.refuse = true;
  server.dropAll();
  await clock.advance(3000); // several refused attempts, backoff growing
  assert.equal(c.state, 'reconnecting');
  server.refuse = false;
  c.reconnectNow();
  await clock.advance(10);
  assert.equal(c.state, 'online');
  assert.equal(c.sessionId, sid);
  // After a go-away with retry-after, reconnectNow does not cut it short.
  server.session(sid).s.goAway(clock.now(), 5000);
  server.pump(server.session(sid));
  await clock.advance(10);
  c.reconnectNow();
  await clock.advance(4000);
  assert.equal(c.state, 'reconnecting');
  await clock.advance(1500);
  assert.equal(c.state, 'online');
});
