// Envelope codecs: what is accepted, what is refused, and exact encodings.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jsonCodec, EnvelopeError, Session, peekHello, newSessionId, encodeGoAway, utf8Length } from '../evsock.js';
import { msgpackCodec, encode, decode } from '../msgpack.js';

const kind = (f) => {
  try {
    f();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof EnvelopeError, `expected an EnvelopeError, got ${e}`);
    return e.kind;
  }
};

test('JSON frames: envelopes, batches, meta', () => {
  const [e] = jsonCodec.decodeFrame(' ["chat/send" , {"text":"hi"} , {"id":7,"rq":5000,"x":[1,{}],"ik":"k\\u00e9"}] ', 64);
  assert.equal(e.event, 'chat/send');
  assert.equal(e.data, '{"text":"hi"}');
  assert.deepEqual(e.meta, { id: 7, rq: 5000, re: null, ack: null, ik: 'ké' });
  const b = jsonCodec.decodeFrame('[["a/b"],["c/d",[2],{"ack":3}]]', 64);
  assert.equal(b.length, 2);
  assert.equal(b[0].data, '');
  assert.equal(b[1].data, '[2]');
  assert.equal(b[1].meta.ack, 3);
  // Escaped meta keys are unknown keys: skipped.
  assert.equal(jsonCodec.decodeFrame('["a",1,{"\\u0069d":5}]', 64)[0].meta.id, null);
});

test('JSON frames: refusals', () => {
  const d = (s, max = 64) => kind(() => jsonCodec.decodeFrame(s, max));
  assert.equal(d(''), 'empty');
  assert.equal(d('   '), 'empty');
  assert.equal(d('{}'), 'not_an_envelope');
  assert.equal(d('[]'), 'not_an_envelope');
  assert.equal(d('[1]'), 'not_an_envelope');
  assert.equal(d('["a",1,{},4]'), 'not_an_envelope');
  assert.equal(d('["a b"]'), 'bad_event_id');
  assert.equal(d('["a\\u0062"]'), 'bad_event_id');
  assert.equal(d('["' + 'x'.repeat(129) + '"]'), 'bad_event_id');
  assert.equal(d('["a",1,{"id":1,"id":2}]'), 'bad_meta');
  assert.equal(d('["a",1,[]]'), 'bad_meta');
  assert.equal(d('["a",1,{"ik":""}]'), 'bad_meta');
  assert.equal(d('["a",1,{"ik":7}]'), 'bad_meta');
  assert.equal(d('["a",1,{"id":-1}]'), 'id_out_of_range');
  assert.equal(d('["a",1,{"id":1.5}]'), 'id_out_of_range');
  assert.equal(d('["a",1,{"id":1e3}]'), 'id_out_of_range');
  assert.equal(d('["a",1,{"id":9007199254740992}]'), 'id_out_of_range');
  assert.equal(d('["a",1,{"id":9007199254740991}]'), 'ok');
  assert.equal(d('["a",01]'), 'syntax');
  assert.equal(d('["a",tru]'), 'syntax');
  assert.equal(d('["a","\u0001"]'), 'syntax');
  assert.equal(d('["a",1] x'), 'syntax');
  assert.equal(d('["a",1'), 'syntax');
  assert.equal(d('["a","\ud800"]'), 'invalid_utf8');
  assert.equal(d('[["a"],["b"],["c"]]', 2), 'too_many_envelopes');
  assert.equal(d('[["a"],1]'), 'not_an_envelope');
  const deep = (n) => '["a",' + '['.repeat(n) + ']'.repeat(n) + ']';
  assert.equal(d(deep(64)), 'ok');
  assert.equal(d(deep(65)), 'too_deep');
});

test('JSON writer matches the documented layout', () => {
  const m = { id: 1, rq: 2, re: 3, ack: 4, ik: 'q"\n' };
  assert.equal(jsonCodec.writeEnvelope('a/b', '', m), '["a/b",null,{"id":1,"rq":2,"re":3,"ack":4,"ik":"q\\"\\n"}]');
  const none = { id: null, rq: null, re: null, ack: null, ik: null };
  assert.equal(jsonCodec.writeEnvelope('evs/ping', '', none), '["evs/ping"]');
  assert.equal(jsonCodec.joinFrame(['["a"]', '["b"]']), '[["a"],["b"]]');
  assert.equal(encodeGoAway(5000), '["evs/bye",{"ra":5000}]');
});

test('MessagePack: the documented example, round trips and refusals', () => {
  const hex = (b) => Buffer.from(b).toString('hex');
  const meta = { id: 7, rq: null, re: null, ack: null, ik: null };
  const env = msgpackCodec.writeEnvelope('chat/send', encode({ text: 'hi' }), meta);
  assert.equal(hex(env), '93a9636861742f73656e6481a474657874a2686981a2696407');
  const [e] = msgpackCodec.decodeFrame(env, 64);
  assert.equal(e.event, 'chat/send');
  assert.deepEqual(decode(e.data), { text: 'hi' });
  assert.equal(e.meta.id, 7);
  for (const v of [0, 127, 128, 65535, 65536, 2 ** 32, 2 ** 53 - 1, -1, -33, -129, -40000, -(2 ** 40), 1.5, 'é', [1, [2]], { a: null }, true, false, null, new Uint8Array([1, 2])]) {
    assert.deepEqual(decode(encode(v)), v);
  }
  const d = (bytes) => kind(() => msgpackCodec.decodeFrame(Uint8Array.from(bytes), 16));
  assert.equal(d([]), 'empty');
  assert.equal(d([0x01]), 'not_an_envelope');
  assert.equal(d([0x91, 0x01]), 'bad_event_id');
  assert.equal(d([0x91, 0xa1, 0x20]), 'bad_event_id');
  assert.equal(d([0x93, 0xa1, 0x61, 0xc0, 0x81, 0xa2, 0x69, 0x64, 0xff]), 'id_out_of_range');
  assert.equal(d([0x92, 0xa1, 0x61, 0xc1]), 'syntax');
  assert.equal(d([0x92, 0xa1, 0x61, 0xdc, 0xff, 0xff]), 'syntax');
});

test('hello peeking, session ids, UTF-8 lengths', () => {
  assert.deepEqual(peekHello('["evs/hello",{"v":1,"sid":"abc","rx":4,"lo":2}]'), { format: 'json', sessionId: 'abc', rx: 4, lo: 2, version: 1 });
  assert.deepEqual(peekHello('["evs/hello",{"v":1}]'), { format: 'json', sessionId: null, rx: 0, lo: 1, version: 1 });
  for (const bad of ['["chat/x",1]', '["evs/hello",1]', '["evs/hello",{"v":1,"sid":"a b"}]', '["evs/hello",{"v":1,"lo":0}]', '["evs/hello",{"v":1,"rx":-1}]', '["evs/hello",{"v":1,"v":1}]', '[["evs/hello"],["evs/hello"]]']) {
    assert.throws(() => peekHello(bad), EnvelopeError, bad);
  }
  const id = newSessionId();
  assert.match(id, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(id, newSessionId());
  assert.equal(utf8Length('aé€😀'), 1 + 2 + 3 + 4);
});

test('a welcome with a bad shape closes the connection', () => {
  for (const w of ['["evs/welcome",{"v":1,"sid":"S1","st":"odd"}]', '["evs/welcome",{"v":1,"st":"new"}]', '["evs/welcome",{"v":2,"sid":"S1","st":"new"}]', '["evs/welcome",{"v":1,"sid":"S1","st":"new","lost":[1]}]', '["chat/x"]']) {
    const s = Session.client({ pingIntervalMs: null, idleTimeoutMs: null }, () => 0n);
    s.handleConnected(0);
    s.drain();
    s.handleMessage(1, w);
    const out = s.drain();
    assert.equal(out.at(-1).type, 'close_transport', w);
    assert.equal(out.at(-1).reason, 'protocol_error', w);
    assert.equal(s.phase, 'disconnected', w);
  }
});
