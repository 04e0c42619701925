// evsock.js: the evsock session protocol v1 (docs/protocol.md) for browsers.
//
// A dependency-free ES module in two layers:
//
//  * `Session`: a sans-IO state machine, a JavaScript twin of the Rust
//    `evsock::session::Session`. It never touches a socket, a timer or a
//    clock: the host feeds it transport messages and the current time in
//    milliseconds, makes application calls, and drains what it produces with
//    `pollOutput()` (messages to send, events for the application) and
//    `pollTimeout()` (when to call `handleTimeout` next). Random numbers for
//    reconnect jitter come from an injected function. This is what the tests
//    run against the golden vectors in tests/vectors/session/.
//
//  * `EvsockClient`: a thin host owning the browser's WebSocket and
//    setTimeout, with a small event/request API on top.
//
// Data handed to `Session` is already encoded in the session's format (JSON
// text, or MessagePack bytes with the codec from msgpack.js); `EvsockClient`
// encodes and decodes plain JavaScript values for you.

export const PROTOCOL_VERSION = 1;
/** Largest id, ack or timeout the protocol carries (2^53 - 1). */
export const MAX_SAFE_INT = Number.MAX_SAFE_INTEGER;
export const MAX_EVENT_ID_LEN = 128;
export const MAX_IDEMPOTENCY_KEY_LEN = 128;
export const MAX_DEPTH = 64;
export const PROTOCOL_PREFIX = 'evs/';

const U64_MAX = (1n << 64n) - 1n;

const HELLO = 'evs/hello';
const WELCOME = 'evs/welcome';
const PING = 'evs/ping';
const PONG = 'evs/pong';
const ACK = 'evs/ack';
const BYE = 'evs/bye';
const REPLY = 'evs/reply';
const RERR = 'evs/rerr';

// ------------------------------------------------------------------ errors --

/** A frame that could not be decoded. `kind` says why (e.g. `syntax`). */
export class EnvelopeError extends Error {
  constructor(kind, message) {
    super(message || kind);
    this.name = 'EnvelopeError';
    this.kind = kind;
  }
}

/** An application call the session refused; nothing was sent. `code` is
 * one of bad_event_id, reserved_event, invalid_data, too_large,
 * not_connected, too_many_pending, buffer_full, bad_timeout,
 * unknown_request, bad_idempotency_key, closed (or bad_config / bad_url for set-up errors). */
export class EvsockError extends Error {
  constructor(code, message) {
    super(message ? `${code}: ${message}` : code);
    this.name = 'EvsockError';
    this.code = code;
  }
}

/** Why a request ended without a reply: `code` is timeout, session_closed,
 * resume_failed or remote (then `data` holds the replier's error data). */
export class RequestError extends Error {
  constructor(code, data, message) {
    super(message || (code === 'remote' ? `remote error: ${describe(data)}` : `request failed: ${code}`));
    this.name = 'RequestError';
    this.code = code;
    this.data = data;
  }
}

function describe(v) {
  if (v && typeof v === 'object') {
    if (typeof v.message === 'string') return v.code ? `${v.code} (${v.message})` : v.message;
    if (typeof v.code === 'string') return v.code;
  }
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

const REFUSAL_TEXT = {
  bad_event_id: 'invalid event id (1 to 128 printable ASCII characters, no space, quote or backslash)',
  reserved_event: 'event ids starting with evs/ are reserved for the protocol',
  invalid_data: 'data is not one well-formed value',
  too_large: 'message too large',
  not_connected: 'not connected',
  too_many_pending: 'too many pending requests',
  buffer_full: 'resume buffer full while the session handshakes; retry once established',
  bad_timeout: 'request timeout out of range',
  unknown_request: 'no such incoming request awaits a reply',
  bad_idempotency_key: 'idempotency key must be 1 to 128 bytes',
  closed: 'session closed',
};

function refuse(code, detail) {
  return new EvsockError(code, detail ? `${REFUSAL_TEXT[code]}: ${detail}` : REFUSAL_TEXT[code]);
}

// ----------------------------------------------------------------- helpers --

/** Whether `s` is a valid event id: 1 to 128 printable ASCII characters
 * other than space, `"` and `\`. */
export function isValidEventId(s) {
  if (typeof s !== 'string' || s.length === 0 || s.length > MAX_EVENT_ID_LEN) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

function isValidSessionId(s) {
  return typeof s === 'string' && s.length <= 64 && isValidEventId(s);
}

/** UTF-8 length of a JavaScript string (lone surrogates count 3 bytes). */
export function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function isWellFormed(s) {
  return typeof s.isWellFormed === 'function' ? s.isWellFormed() : !LONE_SURROGATE.test(s);
}

function isUint(v) {
  return typeof v === 'bigint' && v >= 0n && v <= U64_MAX;
}

// ------------------------------------------------------------ JSON codec ---

const WS = (c) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
const DIGIT = (c) => c >= 0x30 && c <= 0x39;
const HEX = (c) => DIGIT(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);

/** A cursor over JSON text that checks well-formedness without building
 * values, so that data elements pass through byte for byte. */
class JsonCursor {
  constructor(s, p = 0) {
    this.s = s;
    this.p = p;
  }

  fail() {
    return new EnvelopeError('syntax', `JSON syntax error at offset ${this.p}`);
  }

  peek() {
    return this.p < this.s.length ? this.s.charCodeAt(this.p) : -1;
  }

  ws() {
    const s = this.s;
    while (this.p < s.length && WS(s.charCodeAt(this.p))) this.p++;
  }

  eat(c) {
    if (this.peek() !== c) throw this.fail();
    this.p++;
  }

  lit(word) {
    if (!this.s.startsWith(word, this.p)) throw this.fail();
    this.p += word.length;
  }

  /** Skips a string at its opening quote; returns [start, end, escaped]
   * for its raw contents. */
  string() {
    this.eat(0x22);
    const s = this.s;
    const start = this.p;
    let escaped = false;
    for (;;) {
      if (this.p >= s.length) throw this.fail();
      const c = s.charCodeAt(this.p);
      if (c === 0x22) {
        const end = this.p;
        this.p++;
        return [start, end, escaped];
      }
      if (c === 0x5c) {
        escaped = true;
        this.p++;
        const e = this.peek();
        if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
          this.p++;
        } else if (e === 0x75) {
          this.p++;
          for (let i = 0; i < 4; i++) {
            if (!HEX(this.peek())) throw this.fail();
            this.p++;
          }
        } else throw this.fail();
      } else if (c < 0x20) {
        throw this.fail();
      } else this.p++;
    }
  }

  digits() {
    const start = this.p;
    while (DIGIT(this.peek())) this.p++;
    return this.p - start;
  }

  number() {
    if (this.peek() === 0x2d) this.p++;
    const c = this.peek();
    if (c === 0x30) this.p++;
    else if (c >= 0x31 && c <= 0x39) this.digits();
    else throw this.fail();
    if (this.peek() === 0x2e) {
      this.p++;
      if (this.digits() === 0) throw this.fail();
    }
    if (this.peek() === 0x65 || this.peek() === 0x45) {
      this.p++;
      if (this.peek() === 0x2b || this.peek() === 0x2d) this.p++;
      if (this.digits() === 0) throw this.fail();
    }
  }

  value(depth) {
    if (depth > MAX_DEPTH) throw new EnvelopeError('too_deep', 'nesting too deep');
    const c = this.peek();
    if (c === 0x7b) {
      this.p++;
      this.ws();
      if (this.peek() === 0x7d) {
        this.p++;
        return;
      }
      for (;;) {
        this.string();
        this.ws();
        this.eat(0x3a);
        this.ws();
        this.value(depth + 1);
        this.ws();
        const d = this.peek();
        if (d === 0x2c) {
          this.p++;
          this.ws();
        } else if (d === 0x7d) {
          this.p++;
          return;
        } else throw this.fail();
      }
    } else if (c === 0x5b) {
      this.p++;
      this.ws();
      if (this.peek() === 0x5d) {
        this.p++;
        return;
      }
      for (;;) {
        this.value(depth + 1);
        this.ws();
        const d = this.peek();
        if (d === 0x2c) {
          this.p++;
          this.ws();
        } else if (d === 0x5d) {
          this.p++;
          return;
        } else throw this.fail();
      }
    } else if (c === 0x22) this.string();
    else if (c === 0x74) this.lit('true');
    else if (c === 0x66) this.lit('false');
    else if (c === 0x6e) this.lit('null');
    else if (c === 0x2d || DIGIT(c)) this.number();
    else throw this.fail();
  }

  /** An id-like integer: digits only, at most 2^53 - 1. */
  uint() {
    const start = this.p;
    this.number();
    const raw = this.s.slice(start, this.p);
    if (!/^[0-9]{1,16}$/.test(raw)) throw new EnvelopeError('id_out_of_range', `id out of range: ${raw}`);
    const v = Number(raw);
    if (v > MAX_SAFE_INT) throw new EnvelopeError('id_out_of_range', `id out of range: ${raw}`);
    return v;
  }

  meta() {
    const m = emptyMeta();
    if (this.peek() !== 0x7b) throw new EnvelopeError('bad_meta', 'bad metadata: not an object');
    this.p++;
    this.ws();
    if (this.peek() === 0x7d) {
      this.p++;
      return m;
    }
    for (;;) {
      const [ks, ke, esc] = this.string();
      const key = esc ? null : this.s.slice(ks, ke);
      this.ws();
      this.eat(0x3a);
      this.ws();
      if (key === 'ik') {
        if (this.peek() !== 0x22) throw new EnvelopeError('bad_meta', 'bad metadata: ik');
        const s = this.p;
        this.string();
        const text = JSON.parse(this.s.slice(s, this.p));
        if (text.length === 0 || !isWellFormed(text) || utf8Length(text) > MAX_IDEMPOTENCY_KEY_LEN) {
          throw new EnvelopeError('bad_meta', 'bad metadata: ik');
        }
        setOnce(m, 'ik', text);
      } else if (key === 'id' || key === 'rq' || key === 're' || key === 'ack') {
        setOnce(m, key, this.uint());
      } else {
        // Unknown keys are skipped: room for later protocol versions.
        this.value(2);
      }
      this.ws();
      const d = this.peek();
      if (d === 0x2c) {
        this.p++;
        this.ws();
      } else if (d === 0x7d) {
        this.p++;
        return m;
      } else throw this.fail();
    }
  }

  /** One envelope; the cursor is on its `[`. */
  envelope() {
    this.eat(0x5b);
    this.ws();
    if (this.peek() !== 0x22) throw new EnvelopeError('bad_event_id', 'missing or invalid event id');
    const [s, e, esc] = this.string();
    const event = this.s.slice(s, e);
    if (esc || !isValidEventId(event)) throw new EnvelopeError('bad_event_id', 'missing or invalid event id');
    let data = '';
    let meta = emptyMeta();
    this.ws();
    if (this.peek() === 0x2c) {
      this.p++;
      this.ws();
      const ds = this.p;
      this.value(1);
      data = this.s.slice(ds, this.p);
      this.ws();
      if (this.peek() === 0x2c) {
        this.p++;
        this.ws();
        meta = this.meta();
        this.ws();
      }
    }
    if (this.peek() !== 0x5d) {
      if (this.peek() === 0x2c) throw new EnvelopeError('not_an_envelope', 'an envelope has at most three elements');
      throw this.fail();
    }
    this.p++;
    return { event, data, meta };
  }
}

function emptyMeta() {
  return { id: null, rq: null, re: null, ack: null, ik: null };
}

function setOnce(m, key, v) {
  if (m[key] !== null) throw new EnvelopeError('bad_meta', `bad metadata: repeated ${key}`);
  m[key] = v;
}

function metaIsEmpty(m) {
  return m.id === null && m.rq === null && m.re === null && m.ack === null && m.ik === null;
}

function metaFieldCount(m) {
  return (m.id !== null) + (m.rq !== null) + (m.re !== null) + (m.ack !== null) + (m.ik !== null);
}

/** Reads the known fields of a protocol object (hello, welcome, bye) from
 * JSON text. Plain non-negative integer literals become BigInt (so that
 * range checks are exact), other numbers stay Numbers (and fail as ids); a
 * repeated known field is an error; unknown fields are skipped. */
function jsonProtoObject(text, known) {
  const c = new JsonCursor(text);
  c.ws();
  if (c.peek() !== 0x7b) throw new EnvelopeError('bad_protocol_data', 'expected an object');
  c.p++;
  c.ws();
  const out = {};
  if (c.peek() === 0x7d) return out;
  for (;;) {
    const ks = c.p;
    c.string();
    const key = JSON.parse(text.slice(ks, c.p));
    c.ws();
    c.eat(0x3a);
    c.ws();
    const vs = c.p;
    c.value(2);
    if (known.includes(key)) {
      if (Object.prototype.hasOwnProperty.call(out, key)) {
        throw new EnvelopeError('bad_protocol_data', `repeated field ${key}`);
      }
      out[key] = jsonLiteral(text.slice(vs, c.p));
    }
    c.ws();
    const d = c.peek();
    if (d === 0x2c) {
      c.p++;
      c.ws();
    } else if (d === 0x7d) {
      return out;
    } else throw c.fail();
  }
}

function jsonLiteral(raw) {
  if (/^[0-9]+$/.test(raw)) return BigInt(raw);
  if (raw.charCodeAt(0) !== 0x5b) return JSON.parse(raw);
  // Arrays (such as `lost: [1, 3]`) keep the same literal rules inside.
  const c = new JsonCursor(raw);
  const out = [];
  c.eat(0x5b);
  c.ws();
  if (c.peek() === 0x5d) return out;
  for (;;) {
    const s = c.p;
    c.value(2);
    out.push(jsonLiteral(raw.slice(s, c.p)));
    c.ws();
    if (c.peek() !== 0x2c) return out;
    c.p++;
    c.ws();
  }
}

/** JSON envelopes in WebSocket text messages. Data elements are JSON text
 * (`''` for "no data"). */
export const jsonCodec = Object.freeze({
  name: 'json',
  kind: 'text',

  isEmpty(data) {
    return data.length === 0;
  },

  byteLength(data) {
    return utf8Length(data);
  },

  checkType(data) {
    return typeof data === 'string';
  },

  decodeFrame(frame, maxEnvelopes) {
    if (!isWellFormed(frame)) throw new EnvelopeError('invalid_utf8', 'text frame is not valid UTF-8');
    const c = new JsonCursor(frame);
    c.ws();
    if (c.peek() === -1) throw new EnvelopeError('empty', 'empty frame');
    if (c.peek() !== 0x5b) throw new EnvelopeError('not_an_envelope', 'not an event vector');
    const look = new JsonCursor(frame, c.p + 1);
    look.ws();
    const out = [];
    const k = look.peek();
    if (k === 0x22) {
      out.push(c.envelope());
    } else if (k === 0x5b) {
      c.p = look.p;
      for (let n = 0; ; ) {
        if (n === maxEnvelopes) {
          throw new EnvelopeError('too_many_envelopes', `more than ${maxEnvelopes} envelopes in one frame`);
        }
        if (c.peek() !== 0x5b) throw new EnvelopeError('not_an_envelope', 'not an event vector');
        out.push(c.envelope());
        n++;
        c.ws();
        const d = c.peek();
        if (d === 0x2c) {
          c.p++;
          c.ws();
        } else if (d === 0x5d) {
          c.p++;
          break;
        } else throw c.fail();
      }
    } else if (k === -1) {
      throw look.fail();
    } else {
      throw new EnvelopeError('not_an_envelope', 'not an event vector');
    }
    c.ws();
    if (c.p !== frame.length) throw c.fail();
    return out;
  },

  validateValue(data) {
    if (!isWellFormed(data)) throw new EnvelopeError('invalid_utf8', 'data is not valid UTF-8');
    const c = new JsonCursor(data);
    c.ws();
    c.value(1);
    c.ws();
    if (c.p !== data.length) throw c.fail();
  },

  writeEnvelope(event, data, meta) {
    let out = '["' + event + '"';
    const empty = metaIsEmpty(meta);
    if (data.length > 0 || !empty) out += ',' + (data.length > 0 ? data : 'null');
    if (!empty) {
      const parts = [];
      if (meta.id !== null) parts.push('"id":' + meta.id);
      if (meta.rq !== null) parts.push('"rq":' + meta.rq);
      if (meta.re !== null) parts.push('"re":' + meta.re);
      if (meta.ack !== null) parts.push('"ack":' + meta.ack);
      if (meta.ik !== null) parts.push('"ik":' + JSON.stringify(meta.ik));
      out += ',{' + parts.join(',') + '}';
    }
    return out + ']';
  },

  joinFrame(pieces) {
    return pieces.length === 1 ? pieces[0] : '[' + pieces.join(',') + ']';
  },

  /** Encodes a protocol object; fields in insertion order, undefined
   * fields omitted. */
  encodeProto(obj) {
    return JSON.stringify(obj, (k, v) => (typeof v === 'bigint' ? Number(v) : v));
  },

  decodeProto(data, known) {
    return jsonProtoObject(data.length === 0 ? 'null' : data, known);
  },

  /** Application value -> data element (undefined -> no data). */
  encodeValue(value) {
    if (value === undefined) return '';
    let text;
    try {
      text = JSON.stringify(value);
    } catch (e) {
      throw refuse('invalid_data', e.message);
    }
    if (text === undefined) throw refuse('invalid_data', `cannot encode ${typeof value} as JSON`);
    return text;
  },

  /** Data element -> application value (no data -> null). */
  decodeValue(data) {
    return data.length === 0 ? null : JSON.parse(data);
  },
});

// --------------------------------------------------------------- backoff ---

/** Exponential backoff with full jitter: attempt n waits
 * `r mod (min(max, base * 2^n) + 1)` ms for a random 64-bit `r`, raised to
 * the server's retry-after if that is longer. */
export class Backoff {
  constructor(baseMs, maxMs) {
    this.base = BigInt(baseMs);
    this.max = BigInt(Math.max(maxMs, baseMs));
    this.attempt = 0;
  }

  cap() {
    const c = this.base << BigInt(Math.min(this.attempt, 63));
    return c < this.max ? c : this.max;
  }

  /** `random` returns a number or BigInt taken modulo 2^64. */
  nextDelay(random, retryAfterMs) {
    const cap = this.cap();
    this.attempt++;
    const r = BigInt.asUintN(64, BigInt(random()));
    const jitter = cap === U64_MAX ? r : r % (cap + 1n);
    const ra = BigInt(retryAfterMs || 0);
    return Number(jitter > ra ? jitter : ra);
  }

  reset() {
    this.attempt = 0;
  }
}

/** A random unsigned 64-bit BigInt from the platform's CSPRNG (or
 * Math.random where there is none). */
export function cryptoRandomU64() {
  const c = globalThis.crypto;
  if (c && typeof c.getRandomValues === 'function') {
    const w = c.getRandomValues(new Uint32Array(2));
    return (BigInt(w[0]) << 32n) | BigInt(w[1]);
  }
  const hi = Math.floor(Math.random() * 2 ** 32);
  const lo = Math.floor(Math.random() * 2 ** 32);
  return (BigInt(hi) << 32n) | BigInt(lo);
}

// ---------------------------------------------------------------- config ---

/** Defaults, as in the Rust engine's `Config` (all durations in ms). */
export const DEFAULT_CONFIG = Object.freeze({
  format: 'json',
  codecs: null,
  maxMessageBytes: 1 << 20,
  maxBatchEnvelopes: 64,
  resumeWindowMs: 60_000,
  resumeBufferBytes: 1 << 20,
  resumeBufferAgeMs: 60_000,
  maxPendingRequests: 1024,
  maxIncomingRequests: 1024,
  maxRequestTimeoutMs: 600_000,
  ackDelayMs: 50,
  ackEvery: 32,
  pingIntervalMs: 20_000,
  idleTimeoutMs: 45_000,
  handshakeTimeoutMs: 10_000,
  batchWindowMs: 0,
  batchMaxBytes: 16 * 1024,
  backoffBaseMs: 500,
  backoffMaxMs: 30_000,
});

const NULLABLE = new Set(['pingIntervalMs', 'idleTimeoutMs']);

function makeConfig(overrides) {
  const cfg = { ...DEFAULT_CONFIG };
  for (const [k, v] of Object.entries(overrides || {})) {
    if (!(k in DEFAULT_CONFIG)) throw new EvsockError('bad_config', `unknown config key ${k}`);
    if (k === 'format' || k === 'codecs') {
      cfg[k] = v;
    } else if (v === null && NULLABLE.has(k)) {
      cfg[k] = null;
    } else if (!Number.isSafeInteger(v) || v < 0) {
      throw new EvsockError('bad_config', `${k} must be a non-negative integer, got ${v}`);
    } else cfg[k] = v;
  }
  const codecs = [jsonCodec, ...(cfg.codecs || [])];
  cfg.codecs = codecs;
  const fmt = typeof cfg.format === 'string' ? codecs.find((c) => c.name === cfg.format) : cfg.format;
  if (!fmt || typeof fmt.decodeFrame !== 'function') {
    throw new EvsockError('bad_config', `unknown format ${cfg.format} (pass its codec in config.codecs)`);
  }
  if (!codecs.includes(fmt)) codecs.push(fmt);
  cfg.format = fmt;
  return cfg;
}

// --------------------------------------------------------------- session ---

/** A double-ended queue with O(1) pops from the front and random access. */
class Deque {
  constructor() {
    this.items = [];
    this.head = 0;
  }
  get length() {
    return this.items.length - this.head;
  }
  get(i) {
    return this.items[this.head + i];
  }
  front() {
    return this.length > 0 ? this.items[this.head] : undefined;
  }
  back() {
    return this.length > 0 ? this.items[this.items.length - 1] : undefined;
  }
  push(x) {
    this.items.push(x);
  }
  shift() {
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 64 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }
  clear() {
    this.items = [];
    this.head = 0;
  }
  *[Symbol.iterator]() {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i];
  }
}

const IDLE = 'idle';
const HANDSHAKING = 'handshaking';
const ESTABLISHED = 'established';
const DISCONNECTED = 'disconnected';
const CLOSED = 'closed';

function readHello(codec, data) {
  const h = codec.decodeProto(data, ['v', 'sid', 'rx', 'lo']);
  const bad = () => new EnvelopeError('bad_protocol_data', 'bad protocol event data: hello');
  if (!isUint(h.v)) throw bad();
  if (h.sid !== undefined && h.sid !== null && typeof h.sid !== 'string') throw bad();
  if (h.rx !== undefined && !isUint(h.rx)) throw bad();
  if (h.lo !== undefined && !isUint(h.lo)) throw bad();
  const rx = h.rx === undefined ? 0n : h.rx;
  const lo = h.lo === undefined ? 1n : h.lo;
  if (rx > BigInt(MAX_SAFE_INT) || lo > BigInt(MAX_SAFE_INT) || lo === 0n) {
    throw new EnvelopeError('id_out_of_range', 'hello: id out of range');
  }
  const sid = h.sid == null ? null : h.sid;
  if (sid !== null && !isValidSessionId(sid)) throw new EnvelopeError('bad_protocol_data', 'bad protocol event data: sid');
  return { v: h.v, sid, rx: Number(rx), lo: Number(lo) };
}

function readWelcome(codec, data) {
  const w = codec.decodeProto(data, ['v', 'sid', 'st', 'rx', 'lo', 'lost']);
  const bad = () => new EnvelopeError('bad_protocol_data', 'bad protocol event data: welcome');
  if (!isUint(w.v) || typeof w.sid !== 'string' || typeof w.st !== 'string') throw bad();
  if (w.rx !== undefined && !isUint(w.rx)) throw bad();
  if (w.lo !== undefined && !isUint(w.lo)) throw bad();
  if (w.lost !== undefined && w.lost !== null) {
    if (!Array.isArray(w.lost) || w.lost.length !== 2 || !w.lost.every(isUint)) throw bad();
  }
  const rx = w.rx === undefined ? 0n : w.rx;
  const lo = w.lo === undefined ? 1n : w.lo;
  if (rx > BigInt(MAX_SAFE_INT) || lo > BigInt(MAX_SAFE_INT) || lo === 0n) {
    throw new EnvelopeError('id_out_of_range', 'welcome: id out of range');
  }
  if (!isValidSessionId(w.sid)) throw new EnvelopeError('bad_protocol_data', 'bad protocol event data: sid');
  if (w.st !== 'new' && w.st !== 'resumed' && w.st !== 'reset') {
    throw new EnvelopeError('bad_protocol_data', 'bad protocol event data: st');
  }
  return { v: w.v, sid: w.sid, st: w.st, rx: Number(rx), lo: Number(lo) };
}

function readBye(codec, data) {
  // Anything malformed reads as a plain bye (no retry-after, not the end).
  try {
    const b = codec.decodeProto(data, ['ra', 'end']);
    if (b.ra !== undefined && !isUint(b.ra)) return { ra: 0, end: false };
    if (b.end !== undefined && typeof b.end !== 'boolean') return { ra: 0, end: false };
    const ra = b.ra === undefined ? 0 : Number(b.ra > BigInt(MAX_SAFE_INT) ? BigInt(MAX_SAFE_INT) : b.ra);
    return { ra, end: b.end === true };
  } catch {
    return { ra: 0, end: false };
  }
}

function codecForPayload(codecs, payload) {
  const kind = typeof payload === 'string' ? 'text' : 'binary';
  return { kind, codec: codecs.find((c) => c.kind === kind) || null };
}

function toBytes(payload) {
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  if (ArrayBuffer.isView(payload)) return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  return null;
}

/**
 * One end of an evsock session (client or server), as a pure state machine.
 *
 * Inputs: `handleConnected(now)`, `handleMessage(now, payload)` (a string
 * for a text message, bytes for a binary one), `handleDisconnected(now)`,
 * `handleTimeout(now)`, and the application calls `send`, `sendReliable`,
 * `request`, `reply`, `replyError`, `close`, `goAway`. Application calls
 * throw an `EvsockError` when refused.
 *
 * Outputs, drained with `pollOutput()` after every input:
 *   {type:'send', payload}                        write to the transport
 *   {type:'established', sessionId, resumed}
 *   {type:'reset', unconfirmed: [from, to] | null}
 *   {type:'gap', from, to}
 *   {type:'message', name, data, id}              (id null: fire-and-forget)
 *   {type:'request', req, name, data, timeoutMs, idempotencyKey}
 *   {type:'reply', req, data}
 *   {type:'request_failed', req, error, data?}    error: timeout |
 *                                                 session_closed |
 *                                                 resume_failed | remote
 *   {type:'reconnect'}                            client: open a connection
 *   {type:'close_transport', reason}              close the connection
 *   {type:'expired'}                              server: resume window over
 *   {type:'closed', byPeer}
 *   {type:'error', code, message}                 bad input, ignored
 */
export class Session {
  /** A client session; `random` returns a 64-bit number (BigInt or
   * number) for reconnect jitter. */
  static client(config, random) {
    return new Session('client', makeConfig(config), null, random);
  }

  /** A server session with the id its host chose. */
  static server(config, sessionId, random) {
    if (!isValidSessionId(sessionId)) throw new EvsockError('bad_config', `invalid session id ${sessionId}`);
    return new Session('server', makeConfig(config), sessionId, random);
  }

  constructor(role, cfg, sid, random) {
    this.role = role;
    this.cfg = cfg;
    this.random = random || cryptoRandomU64;
    this.codec = cfg.format;
    this.sid = sid;
    this.state = IDLE;
    this.since = 0;
    this.everEstablished = false;
    this.now = 0;

    this.nextId = 1;
    this.buf = new Deque();
    this.bufBytes = 0;
    this.flushedUpto = 0;

    this.rx = 0;
    this.ackSent = 0;
    this.ackDue = null;

    this.pending = new Map(); // outgoing request id -> deadline
    this.incoming = new Map(); // incoming request id -> deadline

    this.outq = [];
    this.outqBytes = 0;
    this.batchDue = null;

    this.lastRxAt = 0;
    this.lastPingAt = 0;

    this.backoff = new Backoff(cfg.backoffBaseMs, cfg.backoffMaxMs);
    this.retryAfter = null;
    this.reconnectAt = null;
    this.honourUntil = null; // a server's retry-after is never cut short

    this.out = [];
  }

  // ------------------------------------------------------- accessors ---

  get sessionId() {
    return this.sid;
  }
  /** idle | handshaking | established | disconnected | closed */
  get phase() {
    return this.state;
  }
  get isEstablished() {
    return this.state === ESTABLISHED;
  }
  get isClosed() {
    return this.state === CLOSED;
  }
  get pendingRequests() {
    return this.pending.size;
  }
  get unackedMessages() {
    return this.buf.length;
  }
  get unackedBytes() {
    return this.bufBytes;
  }
  get lastReceivedId() {
    return this.rx;
  }

  // --------------------------------------------------------- outputs ---

  /** The next output, or undefined. */
  pollOutput() {
    return this.out.shift();
  }

  /** Every pending output, in order. */
  drain() {
    const o = this.out;
    this.out = [];
    return o;
  }

  /** When `handleTimeout` must be called next (absolute ms), or null. */
  pollTimeout() {
    if (this.state === CLOSED) return null;
    let t = null;
    const at = (x) => {
      if (t === null || x < t) t = x;
    };
    for (const d of this.pending.values()) at(d);
    if (this.ackDue !== null) at(this.ackDue);
    if (this.batchDue !== null) at(this.batchDue);
    const cfg = this.cfg;
    if (this.state === ESTABLISHED) {
      if (cfg.idleTimeoutMs !== null) at(this.lastRxAt + cfg.idleTimeoutMs);
      if (cfg.pingIntervalMs !== null) at(Math.max(this.lastRxAt, this.lastPingAt) + cfg.pingIntervalMs);
    } else if (this.state === HANDSHAKING) {
      at(this.since + cfg.handshakeTimeoutMs);
    } else if (this.state === DISCONNECTED) {
      if (this.role === 'client') {
        if (this.reconnectAt !== null) at(this.reconnectAt);
      } else at(this.since + cfg.resumeWindowMs);
    }
    const f = this.buf.front();
    if (f && this.evictable(f.id)) at(f.at + cfg.resumeBufferAgeMs);
    return t;
  }

  // ---------------------------------------------------------- inputs ---

  /** A transport connection opened; a client sends its hello now. */
  handleConnected(now) {
    this.tick(now);
    if (this.state === CLOSED) {
      this.emit({ type: 'close_transport', reason: 'session_closed' });
      return;
    }
    if (this.state === ESTABLISHED || this.state === HANDSHAKING) this.transportLost();
    this.state = HANDSHAKING;
    this.since = this.now;
    this.reconnectAt = null;
    this.lastRxAt = this.now;
    this.lastPingAt = this.now;
    this.flushedUpto = 0;
    if (this.role === 'client') {
      const hello = { v: PROTOCOL_VERSION };
      if (this.sid !== null) hello.sid = this.sid;
      hello.rx = this.rx;
      hello.lo = this.lo();
      this.sendControl(HELLO, hello);
    }
  }

  /** The transport closed or failed, or a connection attempt failed. */
  handleDisconnected(now) {
    this.tick(now);
    this.transportLost();
  }

  /** A whole transport message arrived: a string (text message) or bytes
   * (Uint8Array / ArrayBuffer: binary message). */
  handleMessage(now, payload) {
    this.tick(now);
    if (typeof payload !== 'string') {
      const b = toBytes(payload);
      if (b === null) {
        this.emitError('envelope', 'a message must be a string or bytes');
        return;
      }
      payload = b;
    }
    const len = typeof payload === 'string' ? (payload.length * 3 <= this.cfg.maxMessageBytes ? 0 : utf8Length(payload)) : payload.length;
    if (len > this.cfg.maxMessageBytes) {
      this.emitError('envelope', `frame of ${len} bytes exceeds limit of ${this.cfg.maxMessageBytes}`);
      return;
    }
    if (this.state !== ESTABLISHED && this.state !== HANDSHAKING) {
      this.emitError('not_connected', 'message while no connection is open');
      return;
    }
    const { codec } = codecForPayload(this.cfg.codecs, payload);
    const serverHello = this.role === 'server' && this.state !== ESTABLISHED;
    if (codec !== this.codec && !serverHello) {
      this.emitError('wrong_kind', 'message kind does not match the session format');
      return;
    }
    this.lastRxAt = this.now;
    let envs;
    try {
      if (codec === null) throw new EnvelopeError('wrong_kind', 'no codec for this message kind');
      envs = codec.decodeFrame(payload, this.cfg.maxBatchEnvelopes);
    } catch (e) {
      if (!(e instanceof EnvelopeError)) throw e;
      this.emitError('envelope', e.message);
      if (this.state !== ESTABLISHED) this.protocolDrop('protocol_error');
      this.finish();
      return;
    }
    for (const env of envs) {
      if (!this.onEnvelope(env, codec)) break;
    }
    this.finish();
  }

  /** Runs the timers that are due at `now`. */
  handleTimeout(now) {
    this.tick(now);
    now = this.now;
    const due = [...this.pending].filter(([, d]) => d <= now).sort((a, b) => a[1] - b[1] || a[0] - b[0]);
    for (const [id] of due) {
      this.pending.delete(id);
      this.emit({ type: 'request_failed', req: id, error: 'timeout' });
    }
    const cfg = this.cfg;
    if (this.state === ESTABLISHED) {
      if (cfg.idleTimeoutMs !== null && now >= this.lastRxAt + cfg.idleTimeoutMs) {
        this.protocolDrop('idle_timeout');
      } else {
        if (cfg.pingIntervalMs !== null && now >= Math.max(this.lastRxAt, this.lastPingAt) + cfg.pingIntervalMs) {
          this.lastPingAt = now;
          this.enqueueOnce(PING, emptyData(this.codec));
        }
        if (this.ackDue !== null && this.ackDue <= now) {
          if (this.outq.length === 0) this.enqueueOnce(ACK, emptyData(this.codec));
          this.flush();
        }
        if (this.batchDue !== null && this.batchDue <= now) this.flush();
      }
    } else if (this.state === HANDSHAKING) {
      if (now >= this.since + cfg.handshakeTimeoutMs) this.protocolDrop('handshake_timeout');
    } else if (this.state === DISCONNECTED) {
      if (this.role === 'client') {
        if (this.reconnectAt !== null && this.reconnectAt <= now) {
          this.reconnectAt = null;
          this.emit({ type: 'reconnect' });
        }
      } else if (now >= this.since + cfg.resumeWindowMs) {
        this.end('session_closed');
        this.emit({ type: 'expired' });
      }
    }
    this.evict();
    this.finish();
  }

  // ------------------------------------------------ application calls ---

  /** Fire-and-forget: at most once, only while established. */
  send(now, event, data) {
    this.tick(now);
    data = this.checkApp(event, data);
    if (this.state !== ESTABLISHED) throw refuse('not_connected');
    this.enqueueOnce(event, data);
    this.finish();
  }

  /** Reliable: numbered, acknowledged, retransmitted after a reconnect;
   * accepted while disconnected. Returns its id. */
  sendReliable(now, event, data) {
    this.tick(now);
    data = this.checkApp(event, data);
    if (this.state === HANDSHAKING && this.buf.length > 0) {
      // Nothing may be evicted until the welcome (the hello promised every
      // buffered id): refuse rather than grow without bound.
      const meta = emptyMeta();
      meta.id = this.nextId;
      if (this.bufBytes + this.sizeHint(event, data, meta) > this.cfg.resumeBufferBytes) {
        throw refuse('buffer_full');
      }
    }
    const id = this.pushReliable(event, data, emptyMeta());
    this.finish();
    return id;
  }

  /** A reliable request; it ends in exactly one `reply` or
   * `request_failed` output for the returned id. */
  request(now, event, data, timeoutMs, idempotencyKey) {
    if (idempotencyKey !== undefined && idempotencyKey !== null) {
      if (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0 || !isWellFormed(idempotencyKey) || utf8Length(idempotencyKey) > MAX_IDEMPOTENCY_KEY_LEN) {
        throw refuse('bad_idempotency_key');
      }
    } else idempotencyKey = null;
    this.tick(now);
    data = this.checkApp(event, data);
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > this.cfg.maxRequestTimeoutMs) {
      throw refuse('bad_timeout', `${timeoutMs} (1 to ${this.cfg.maxRequestTimeoutMs} ms)`);
    }
    if (this.pending.size >= this.cfg.maxPendingRequests) throw refuse('too_many_pending');
    const meta = emptyMeta();
    meta.rq = timeoutMs;
    meta.ik = idempotencyKey;
    const id = this.pushReliable(event, data, meta);
    this.pending.set(id, this.now + timeoutMs);
    this.finish();
    return id;
  }

  /** Answers incoming request `req`. */
  reply(now, req, data) {
    this.replyInner(now, req, data, REPLY);
  }

  /** Answers incoming request `req` with an error (`remote` at the peer). */
  replyError(now, req, data) {
    this.replyInner(now, req, data, RERR);
  }

  replyInner(now, req, data, kind) {
    this.tick(now);
    if (this.state === CLOSED) throw refuse('closed');
    data = this.checkData(kind, data);
    const d = this.incoming.get(req);
    if (d === undefined) throw refuse('unknown_request');
    this.incoming.delete(req);
    if (d <= this.now) throw refuse('unknown_request', 'the requester has stopped waiting');
    const meta = emptyMeta();
    meta.re = req;
    this.pushReliable(kind, data, meta);
    this.finish();
  }

  /** Ends the session for good. */
  close(now) {
    this.tick(now);
    if (this.state === CLOSED) return;
    const connected = this.state === ESTABLISHED || this.state === HANDSHAKING;
    if (connected) {
      this.flush();
      this.sendControl(BYE, { end: true });
    }
    this.end('session_closed');
    this.emit({ type: 'closed', byPeer: false });
    if (connected) this.emit({ type: 'close_transport', reason: 'session_closed' });
  }

  /** Client: if waiting for the backoff delay (and not for a server's
   * retry-after), reconnect at `now` instead, e.g. because the browser just
   * came back online. An addition of the JS client; the wire is unchanged. */
  reconnectNow(now) {
    this.tick(now);
    if (this.role !== 'client' || this.state !== DISCONNECTED || this.reconnectAt === null) return false;
    if (this.honourUntil !== null && this.honourUntil > this.now) return false;
    if (this.reconnectAt > this.now) this.reconnectAt = this.now;
    return true;
  }

  /** Server: asks the client to disconnect and retry after a while. */
  goAway(now, retryAfterMs) {
    this.tick(now);
    if (this.state !== ESTABLISHED && this.state !== HANDSHAKING) return;
    this.flush();
    this.sendControl(BYE, { ra: Math.min(retryAfterMs, MAX_SAFE_INT) });
    this.protocolDrop('go_away');
  }

  // -------------------------------------------------------- internals ---

  tick(now) {
    if (typeof now !== 'number' || Number.isNaN(now)) throw new TypeError(`now must be a number of ms, got ${now}`);
    if (now > this.now) this.now = now;
  }

  emit(o) {
    this.out.push(o);
  }

  emitError(code, message) {
    this.emit({ type: 'error', code, message: message || code });
  }

  lo() {
    const f = this.buf.front();
    return f ? f.id : this.nextId;
  }

  evictable(id) {
    return this.state !== ESTABLISHED || id <= this.flushedUpto;
  }

  checkData(event, data) {
    const codec = this.codec;
    if (data === undefined || data === null) data = emptyData(codec);
    if (!codec.checkType(data)) throw refuse('invalid_data', `expected ${codec.name} data`);
    if (!codec.isEmpty(data)) {
      try {
        codec.validateValue(data);
      } catch (e) {
        if (e instanceof EnvelopeError) throw refuse('invalid_data', e.message);
        throw e;
      }
    }
    if (event.length + codec.byteLength(data) + 64 > this.cfg.maxMessageBytes) throw refuse('too_large');
    return typeof data === 'string' ? data : Uint8Array.from(data);
  }

  checkApp(event, data) {
    if (this.state === CLOSED) throw refuse('closed');
    if (!isValidEventId(event)) throw refuse('bad_event_id', JSON.stringify(event));
    if (event.startsWith(PROTOCOL_PREFIX)) throw refuse('reserved_event', event);
    return this.checkData(event, data);
  }

  sizeHint(event, data, meta) {
    return (
      event.length +
      this.codec.byteLength(data) +
      24 +
      metaFieldCount(meta) * 24 +
      (meta.ik === null ? 0 : utf8Length(meta.ik) * 6)
    );
  }

  pushReliable(event, data, meta) {
    const id = this.nextId++;
    meta.id = id;
    const size = this.sizeHint(event, data, meta);
    this.buf.push({ id, event, data, meta, at: this.now, size });
    this.bufBytes += size;
    if (this.state === ESTABLISHED) this.enqueue({ reliable: id }, size);
    this.evict();
    return id;
  }

  enqueueOnce(event, data) {
    const size = this.sizeHint(event, data, emptyMeta()) + 16;
    this.enqueue({ reliable: null, event, data }, size);
  }

  enqueue(q, size) {
    const limit = Math.min(this.cfg.batchMaxBytes, this.cfg.maxMessageBytes);
    if (this.outq.length > 0 && this.outqBytes + size > limit) this.flush();
    this.outq.push(q);
    this.outqBytes += size;
    if (this.outq.length >= Math.max(this.cfg.maxBatchEnvelopes, 1)) this.flush();
    else if (this.cfg.batchWindowMs > 0 && this.batchDue === null) this.batchDue = this.now + this.cfg.batchWindowMs;
  }

  finish() {
    if (this.cfg.batchWindowMs === 0 && this.outq.length > 0) this.flush();
  }

  /** Writes the queued envelopes as one frame and piggy-backs the ack. */
  flush() {
    this.batchDue = null;
    if (this.outq.length === 0) return;
    const queue = this.outq;
    this.outq = [];
    this.outqBytes = 0;
    if (this.state !== ESTABLISHED) return;
    const front = this.lo();
    const items = [];
    let maxId = this.flushedUpto;
    for (const q of queue) {
      if (q.reliable !== null) {
        if (q.reliable < front) continue; // evicted before it could be sent
        const m = this.buf.get(q.reliable - front);
        if (m) {
          items.push(m);
          if (q.reliable > maxId) maxId = q.reliable;
        }
      } else items.push({ event: q.event, data: q.data, meta: emptyMeta() });
    }
    const ack = this.rx > this.ackSent ? this.rx : null;
    const pieces = items.map((m, i) => {
      const meta = i === 0 && ack !== null ? { ...m.meta, ack } : m.meta;
      return this.codec.writeEnvelope(m.event, m.data, meta);
    });
    this.flushedUpto = maxId;
    if (pieces.length === 0) return;
    if (ack !== null) {
      this.ackSent = this.rx;
      this.ackDue = null;
    }
    this.emit({ type: 'send', payload: this.codec.joinFrame(pieces) });
  }

  /** Sends a protocol event as its own frame, after anything queued. */
  sendControl(event, obj) {
    this.flush();
    const data = this.codec.encodeProto(obj);
    this.emit({ type: 'send', payload: this.codec.joinFrame([this.codec.writeEnvelope(event, data, emptyMeta())]) });
  }

  /** Drops unacknowledged messages beyond the resume buffer's byte and age
   * bounds (never the newest, never one still unwritten on an open
   * connection). */
  evict() {
    for (;;) {
      const f = this.buf.front();
      if (!f) break;
      const over = this.bufBytes > this.cfg.resumeBufferBytes && this.buf.length > 1;
      const old = f.at + this.cfg.resumeBufferAgeMs <= this.now;
      if (!(over || old) || !this.evictable(f.id)) break;
      this.bufBytes -= f.size;
      this.buf.shift();
    }
  }

  onAck(a) {
    if (a >= this.nextId) {
      this.emitError('bad_ack', `ack ${a} for ids never sent`);
      return false;
    }
    for (;;) {
      const f = this.buf.front();
      if (!f || f.id > a) break;
      this.bufBytes -= f.size;
      this.buf.shift();
    }
    return true;
  }

  transportLost() {
    if (this.state === CLOSED) return;
    if (this.state === DISCONNECTED) {
      // A reconnect attempt failed.
      if (this.role === 'client' && this.reconnectAt === null) this.scheduleReconnect();
      return;
    }
    this.outq = [];
    this.outqBytes = 0;
    this.batchDue = null;
    this.ackDue = null;
    this.state = DISCONNECTED;
    this.since = this.now;
    if (this.role === 'client') this.scheduleReconnect();
  }

  scheduleReconnect() {
    const ra = this.retryAfter;
    this.retryAfter = null;
    const d = this.backoff.nextDelay(this.random, ra);
    this.reconnectAt = this.now + d;
    this.honourUntil = ra ? this.now + ra : null;
  }

  protocolDrop(reason) {
    this.emit({ type: 'close_transport', reason });
    this.transportLost();
  }

  end(why) {
    this.failPending(() => true, why);
    this.state = CLOSED;
    this.buf.clear();
    this.bufBytes = 0;
    this.outq = [];
    this.outqBytes = 0;
    this.incoming.clear();
    this.ackDue = null;
    this.batchDue = null;
    this.reconnectAt = null;
  }

  failPending(pred, why) {
    const ids = [...this.pending.keys()].filter(pred).sort((a, b) => a - b);
    for (const id of ids) {
      this.pending.delete(id);
      this.emit({ type: 'request_failed', req: id, error: why });
    }
  }

  resetStreams() {
    this.failPending(() => true, 'resume_failed');
    this.buf.clear();
    this.bufBytes = 0;
    this.nextId = 1;
    this.rx = 0;
    this.ackSent = 0;
    this.incoming.clear();
  }

  /** Applies the peer's view after a handshake. Returns the range of our
   * ids the peer will never get, if any. */
  resumeStreams(peerRx, peerLo) {
    if (peerRx >= this.nextId) this.emitError('bad_ack', `ack ${peerRx} for ids never sent`);
    else this.onAck(peerRx);
    peerRx = Math.min(peerRx, this.nextId - 1);
    const myLo = this.lo();
    let lostOut = null;
    if (myLo > peerRx + 1) {
      lostOut = [peerRx + 1, myLo - 1];
      this.failPending((i) => i > peerRx && i < myLo, 'resume_failed');
    }
    if (peerLo > this.rx + 1) {
      const from = this.rx + 1;
      const to = peerLo - 1;
      this.rx = to;
      this.emit({ type: 'gap', from, to });
      // Replies to requests the peer already had may be in the hole.
      this.failPending((i) => i <= peerRx, 'resume_failed');
    }
    return lostOut;
  }

  established(resumed) {
    this.state = ESTABLISHED;
    this.everEstablished = true;
    this.ackSent = this.rx;
    this.ackDue = null;
    this.backoff.reset();
    this.retryAfter = null;
    this.emit({ type: 'established', sessionId: this.sid || '', resumed });
  }

  retransmitAll() {
    for (const m of this.buf) this.enqueue({ reliable: m.id }, m.size);
  }

  handshakeFailure(e) {
    if (!(e instanceof EnvelopeError)) throw e;
    this.emitError('envelope', e.message);
    this.protocolDrop('protocol_error');
  }

  onHello(env, codec) {
    let h;
    try {
      h = readHello(codec, env.data);
    } catch (e) {
      return this.handshakeFailure(e);
    }
    if (h.v !== BigInt(PROTOCOL_VERSION)) {
      this.emitError('unsupported_version', `unsupported protocol version ${h.v}`);
      return this.protocolDrop('protocol_error');
    }
    this.codec = codec;
    const own = this.sid || '';
    let st;
    let resumed = false;
    let lost = null;
    if (this.everEstablished && h.sid === own) {
      lost = this.resumeStreams(h.rx, h.lo);
      st = 'resumed';
      resumed = true;
    } else if (h.sid === null && !this.everEstablished) {
      lost = this.resumeStreams(h.rx, h.lo);
      st = 'new';
    } else {
      if (this.everEstablished) this.resetStreams();
      st = 'reset';
    }
    const welcome = { v: PROTOCOL_VERSION, sid: own, st, rx: this.rx, lo: this.lo() };
    if (lost !== null) welcome.lost = lost;
    this.state = ESTABLISHED;
    this.sendControl(WELCOME, welcome);
    this.established(resumed);
    this.retransmitAll();
  }

  onWelcome(env) {
    let w;
    try {
      w = readWelcome(this.codec, env.data);
    } catch (e) {
      return this.handshakeFailure(e);
    }
    if (w.v !== BigInt(PROTOCOL_VERSION)) {
      this.emitError('unsupported_version', `unsupported protocol version ${w.v}`);
      return this.protocolDrop('protocol_error');
    }
    const resumed = this.sid === w.sid && w.st === 'resumed';
    if (!resumed && this.sid !== null) {
      const a = this.buf.front();
      const b = this.buf.back();
      const unconfirmed = a && b ? [a.id, b.id] : null;
      this.resetStreams();
      this.emit({ type: 'reset', unconfirmed });
    }
    // Also for a new session: the server may have evicted pushes it queued
    // before this first welcome.
    this.resumeStreams(w.rx, w.lo);
    this.sid = w.sid;
    this.established(resumed);
    this.retransmitAll();
  }

  onBye(env) {
    const b = readBye(this.codec, env.data);
    if (b.end) {
      this.end('session_closed');
      this.emit({ type: 'closed', byPeer: true });
      this.emit({ type: 'close_transport', reason: 'session_closed' });
    } else {
      if (b.ra > 0) this.retryAfter = b.ra;
      this.protocolDrop('go_away');
    }
  }

  /** Handles one envelope; returns whether to go on with the frame. */
  onEnvelope(env, codec) {
    const ev = env.event;
    if (ev === BYE) {
      this.onBye(env);
      return false;
    }
    if (this.state === HANDSHAKING) {
      const expected = this.role === 'client' ? WELCOME : HELLO;
      if (ev !== expected) {
        this.emitError('unexpected_handshake', `expected ${expected}, got ${ev}`);
        this.protocolDrop('protocol_error');
        return false;
      }
      if (this.role === 'client') this.onWelcome(env);
      else this.onHello(env, codec);
      return this.state === ESTABLISHED;
    }
    if (this.state !== ESTABLISHED) return false;
    const meta = env.meta;
    if (meta.ack !== null) this.onAck(meta.ack);
    const isReply = ev === REPLY || ev === RERR;
    const isProtocol = ev.startsWith(PROTOCOL_PREFIX);
    if (isProtocol && !isReply) {
      if (ev === PING) {
        this.enqueueOnce(PONG, emptyData(this.codec));
        return true;
      }
      if (ev === PONG || ev === ACK) return true;
      if (ev === HELLO || ev === WELCOME) {
        this.emitError('unexpected_handshake', `${ev} on an established connection`);
        return true;
      }
      // Unknown protocol events still take their place in the stream.
    }
    if (meta.id !== null) {
      const id = meta.id;
      if (id <= this.rx) return true; // duplicate: already delivered
      if (id !== this.rx + 1) {
        this.emitError('out_of_order', `expected reliable id ${this.rx + 1}, got ${id}`);
        this.protocolDrop('protocol_error');
        return false;
      }
      this.rx = id;
      if (this.rx - this.ackSent >= Math.max(this.cfg.ackEvery, 1)) this.ackDue = this.now;
      else if (this.ackDue === null) this.ackDue = this.now + this.cfg.ackDelayMs;
    }
    if (isReply) {
      if (meta.id === null || meta.re === null) {
        this.emitError('bad_request', `${ev} without id or re`);
        return true;
      }
      const re = meta.re;
      if (this.pending.has(re)) {
        this.pending.delete(re);
        if (ev === REPLY) this.emit({ type: 'reply', req: re, data: env.data });
        else this.emit({ type: 'request_failed', req: re, error: 'remote', data: env.data });
      }
      // A reply to a request that already ended is dropped.
      return true;
    }
    if (isProtocol) {
      this.emitError('unknown_protocol_event', `unknown protocol event ${ev}`);
      return true;
    }
    if (meta.rq !== null) {
      if (meta.id === null || meta.rq === 0) {
        this.emitError('bad_request', 'a request needs an id and a timeout above 0');
        return true;
      }
      const id = meta.id;
      const rq = Math.min(meta.rq, this.cfg.maxRequestTimeoutMs);
      if (this.incoming.size >= this.cfg.maxIncomingRequests) {
        for (const [k, d] of this.incoming) if (d <= this.now) this.incoming.delete(k);
      }
      if (this.incoming.size >= this.cfg.maxIncomingRequests) {
        const m = emptyMeta();
        m.re = id;
        this.pushReliable(RERR, this.codec.encodeProto({ code: 'busy' }), m);
        return true;
      }
      this.incoming.set(id, this.now + rq);
      this.emit({ type: 'request', req: id, name: ev, data: env.data, timeoutMs: rq, idempotencyKey: meta.ik });
      return true;
    }
    this.emit({ type: 'message', name: ev, data: env.data, id: meta.id });
    return true;
  }
}

function emptyData(codec) {
  return codec.kind === 'text' ? '' : new Uint8Array(0);
}

/** Reads the hello from the first message of a new connection (a string
 * or bytes), so a server host can find the session to resume. Throws an
 * EnvelopeError if it is not a valid hello. */
export function peekHello(payload, codecs = [jsonCodec]) {
  if (typeof payload !== 'string') payload = toBytes(payload);
  const { codec } = codecForPayload(codecs, payload);
  if (!codec) throw new EnvelopeError('wrong_kind', 'no codec for this message kind');
  const envs = codec.decodeFrame(payload, 1);
  if (envs.length !== 1 || envs[0].event !== HELLO) throw new EnvelopeError('bad_protocol_data', 'expected evs/hello');
  const h = readHello(codec, envs[0].data);
  return { format: codec.name, sessionId: h.sid, rx: h.rx, lo: h.lo, version: Number(h.v) };
}

/** A fresh session id: 16 random bytes in unpadded base64url. */
export function newSessionId(randomBytes) {
  const b = randomBytes ? randomBytes(16) : globalThis.crypto.getRandomValues(new Uint8Array(16));
  let bin = '';
  for (const x of b) bin += String.fromCharCode(x);
  return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The session-less `["evs/bye",{"ra":N}]` a server sends to refuse a
 * connection before any session exists. */
export function encodeGoAway(retryAfterMs, codec = jsonCodec) {
  return codec.joinFrame([codec.writeEnvelope(BYE, codec.encodeProto({ ra: Math.min(retryAfterMs, MAX_SAFE_INT) }), emptyMeta())]);
}

// ---------------------------------------------------------------- client ---

const WS_OPEN = 1;

function defaultNow() {
  const p = globalThis.performance;
  return Math.floor(p && typeof p.now === 'function' ? p.now() : Date.now());
}

/** Resolves `url` against the page (relative URLs allowed) and turns
 * http(s) into ws(s). */
function resolveUrl(url) {
  let u;
  try {
    const base = globalThis.location && globalThis.location.href;
    u = base ? new URL(url, base) : new URL(url);
  } catch {
    throw new EvsockError('bad_url', `cannot parse WebSocket URL ${JSON.stringify(url)}`);
  }
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new EvsockError('bad_url', `WebSocket URL must be ws:, wss:, http: or https:, got ${u.protocol}`);
  }
  return u.href;
}

/**
 * An evsock client over the browser's WebSocket.
 *
 *   const c = new EvsockClient('/ws?user=ann', {
 *     onEvent(name, data, info) {},   // every application event
 *     onState(state, previous) {},    // connecting | online | reconnecting | offline
 *     onGap({from, to}) {},           // pushes the server evicted: refetch
 *     onReset({unconfirmed}) {},      // the server forgot the session
 *     onError(err) {},                // bad input from the server, ignored
 *   });
 *   c.on('chat/msg', (data, info) => {});
 *   c.handle('ui/confirm', async (data) => answer);   // server -> client requests
 *   c.send('chat/typing', true);           // fire-and-forget; false if offline
 *   c.sendReliable('chat/read', {id: 9});  // exactly once, survives reconnects
 *   await c.request('chat/send', {room, text}, {timeoutMs: 5000});
 *   c.close();
 *
 * Options also take `config` (Session config overrides), `WebSocket` (a
 * constructor, for tests or Node), `now` and `random` (for tests),
 * `protocols`, `connectTimeoutMs` (default: the handshake timeout),
 * `autoConnect` (default true; otherwise call `connect()`) and
 * `reconnectOnOnline` (default true: skip the backoff wait when the
 * browser fires `online`).
 */
export class EvsockClient {
  constructor(url, options = {}) {
    this.url = resolveUrl(url);
    this.options = options;
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    if (typeof this._WebSocket !== 'function') {
      throw new EvsockError('bad_config', 'no WebSocket implementation (pass options.WebSocket)');
    }
    this._now = options.now || defaultNow;
    this._setTimeout = options.setTimeout || ((f, ms) => setTimeout(f, ms));
    this._clearTimeout = options.clearTimeout || ((t) => clearTimeout(t));
    this.session = Session.client(options.config, options.random || cryptoRandomU64);
    this.codec = this.session.codec;
    this._connectTimeoutMs = options.connectTimeoutMs || this.session.cfg.handshakeTimeoutMs;
    this._handlers = new Map();
    this._requestHandlers = new Map();
    this._waiters = new Map();
    this._ws = null;
    this._timer = null;
    this._timerAt = null;
    this._connectTimer = null;
    this._pumping = false;
    this._state = 'connecting';
    this._started = false;
    this.sessionId = null;
    this._onOnline = () => this.reconnectNow();
    if (options.reconnectOnOnline !== false && typeof globalThis.addEventListener === 'function') {
      globalThis.addEventListener('online', this._onOnline);
    }
    if (options.autoConnect !== false) this.connect();
  }

  /** While reconnecting, try again now instead of waiting out the backoff
   * delay (a server's retry-after is still honoured). Called by itself when
   * the browser fires `online`. */
  reconnectNow() {
    if (this.session.reconnectNow(this._now())) this._pump();
  }

  /** connecting | online | reconnecting | offline */
  get state() {
    return this._state;
  }

  /** Opens the first connection (done by the constructor unless
   * `autoConnect: false`). */
  connect() {
    if (this._started) return;
    this._started = true;
    this._open();
  }

  /** Subscribes to an application event; returns an unsubscribe function.
   * The handler gets `(data, {name, id})`. */
  on(name, fn) {
    if (typeof fn !== 'function') throw new TypeError('on(name, fn): fn must be a function');
    let set = this._handlers.get(name);
    if (!set) this._handlers.set(name, (set = new Set()));
    set.add(fn);
    return () => this.off(name, fn);
  }

  off(name, fn) {
    const set = this._handlers.get(name);
    if (set) set.delete(fn);
  }

  /** Answers incoming requests named `name` with `fn(data, info)` (may be
   * async). A thrown error becomes an error reply `{code, message}`. */
  handle(name, fn) {
    if (typeof fn !== 'function') throw new TypeError('handle(name, fn): fn must be a function');
    this._requestHandlers.set(name, fn);
    return () => {
      if (this._requestHandlers.get(name) === fn) this._requestHandlers.delete(name);
    };
  }

  /** Fire-and-forget. Returns false (and sends nothing) while not online;
   * throws an EvsockError on a bad event id or data. */
  send(name, data) {
    const encoded = this.codec.encodeValue(data);
    try {
      this.session.send(this._now(), name, encoded);
    } catch (e) {
      if (e instanceof EvsockError && e.code === 'not_connected') return false;
      throw e;
    } finally {
      this._pump();
    }
    return true;
  }

  /** Reliable send: delivered exactly once, in order, across reconnects
   * within the resume window; queued while offline. While the session
   * handshakes it throws an EvsockError (code buffer_full) once the resume
   * buffer is full. Returns its id. */
  sendReliable(name, data) {
    const encoded = this.codec.encodeValue(data);
    try {
      return this.session.sendReliable(this._now(), name, encoded);
    } finally {
      this._pump();
    }
  }

  /** A request; resolves with the reply data or rejects with a
   * RequestError (timeout, session_closed, resume_failed, remote) or an
   * EvsockError if refused at once. Options: `timeoutMs` (default 10000),
   * `idempotencyKey`. */
  request(name, data, opts) {
    opts = opts || {};
    const timeoutMs = opts.timeoutMs === undefined ? 10_000 : opts.timeoutMs;
    let req;
    try {
      const encoded = this.codec.encodeValue(data);
      req = this.session.request(this._now(), name, encoded, timeoutMs, opts.idempotencyKey);
    } catch (e) {
      this._pump();
      return Promise.reject(e);
    }
    const p = new Promise((resolve, reject) => this._waiters.set(req, { resolve, reject }));
    this._pump();
    return p;
  }

  /** Ends the session for good (pending requests fail with
   * session_closed) and closes the connection. */
  close() {
    if (typeof globalThis.removeEventListener === 'function') globalThis.removeEventListener('online', this._onOnline);
    this.session.close(this._now());
    this._pump();
    this._clearTimers();
    if (this._ws) this._dropSocket(1000, 'closed');
  }

  // ----------------------------------------------------------- host ---

  _open() {
    if (this.session.isClosed) return;
    let ws;
    try {
      ws = new this._WebSocket(this.url, this.options.protocols);
    } catch (e) {
      // Cannot even start a connection: count it as a failed attempt.
      this._report({ type: 'error', code: 'connect_failed', message: String(e && e.message) });
      this.session.handleDisconnected(this._now());
      this._pump();
      return;
    }
    this._ws = ws;
    try {
      ws.binaryType = 'arraybuffer';
    } catch {
      /* not every implementation has it */
    }
    this._connectTimer = this._setTimeout(() => {
      this._connectTimer = null;
      if (this._ws === ws && ws.readyState !== WS_OPEN) {
        this._dropSocket(4000, 'connect timeout');
        this.session.handleDisconnected(this._now());
        this._pump();
      }
    }, this._connectTimeoutMs);
    ws.onopen = () => {
      if (this._ws !== ws) return;
      this._clearConnectTimer();
      this.session.handleConnected(this._now());
      this._pump();
    };
    ws.onmessage = (m) => {
      if (this._ws !== ws) return;
      this.session.handleMessage(this._now(), m.data);
      this._pump();
    };
    ws.onclose = () => {
      if (this._ws !== ws) return;
      this._ws = null;
      this._clearConnectTimer();
      this.session.handleDisconnected(this._now());
      this._pump();
    };
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  _clearConnectTimer() {
    if (this._connectTimer !== null) {
      this._clearTimeout(this._connectTimer);
      this._connectTimer = null;
    }
  }

  _clearTimers() {
    this._clearConnectTimer();
    if (this._timer !== null) {
      this._clearTimeout(this._timer);
      this._timer = null;
      this._timerAt = null;
    }
  }

  /** Closes the current socket without telling the session (it already
   * knows). */
  _dropSocket(code, reason) {
    const ws = this._ws;
    this._ws = null;
    this._clearConnectTimer();
    if (!ws) return;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
      try {
        ws.close();
      } catch {
        /* already closed */
      }
    }
  }

  /** Acts on everything the session produced, then re-arms the timer. */
  _pump() {
    if (this._pumping) return;
    this._pumping = true;
    try {
      let o;
      while ((o = this.session.pollOutput()) !== undefined) this._act(o);
    } finally {
      this._pumping = false;
    }
    this._updateState();
    this._arm();
  }

  _arm() {
    const t = this.session.pollTimeout();
    if (t === this._timerAt) return;
    if (this._timer !== null) this._clearTimeout(this._timer);
    this._timer = null;
    this._timerAt = t;
    if (t === null) return;
    const delay = Math.min(Math.max(0, Math.ceil(t - this._now())), 0x7fffffff);
    this._timer = this._setTimeout(() => {
      this._timer = null;
      this._timerAt = null;
      this.session.handleTimeout(this._now());
      this._pump();
    }, delay);
  }

  _updateState() {
    const s = this.session;
    let next;
    if (s.isClosed) next = 'offline';
    else if (s.isEstablished) next = 'online';
    else if (s.everEstablished) next = 'reconnecting';
    else next = 'connecting';
    if (next === this._state) return;
    const prev = this._state;
    this._state = next;
    this._call(this.options.onState, next, prev);
  }

  _call(fn, ...args) {
    if (typeof fn !== 'function') return undefined;
    try {
      return fn(...args);
    } catch (e) {
      this._appError(e);
      return undefined;
    }
  }

  _appError(e) {
    if (typeof this.options.onHandlerError === 'function') this.options.onHandlerError(e);
    else if (globalThis.console) console.error('evsock: an event handler threw', e);
  }

  _report(o) {
    this._call(this.options.onError, new EvsockError(o.code, o.message));
  }

  _decode(data) {
    try {
      return this.codec.decodeValue(data);
    } catch {
      return null;
    }
  }

  _act(o) {
    switch (o.type) {
      case 'send':
        if (this._ws && this._ws.readyState === WS_OPEN) this._ws.send(o.payload);
        break;
      case 'established':
        this.sessionId = o.sessionId;
        this._updateState();
        this._call(this.options.onEstablished, { sessionId: o.sessionId, resumed: o.resumed });
        break;
      case 'reset':
        this._call(this.options.onReset, { unconfirmed: o.unconfirmed });
        break;
      case 'gap':
        this._call(this.options.onGap, { from: o.from, to: o.to });
        break;
      case 'message': {
        const data = this._decode(o.data);
        const info = { name: o.name, id: o.id };
        const set = this._handlers.get(o.name);
        if (set) for (const fn of [...set]) this._call(fn, data, info);
        this._call(this.options.onEvent, o.name, data, info);
        break;
      }
      case 'request':
        this._answer(o);
        break;
      case 'reply': {
        const w = this._waiters.get(o.req);
        if (w) {
          this._waiters.delete(o.req);
          w.resolve(this._decode(o.data));
        }
        break;
      }
      case 'request_failed': {
        const w = this._waiters.get(o.req);
        if (w) {
          this._waiters.delete(o.req);
          w.reject(new RequestError(o.error, o.error === 'remote' ? this._decode(o.data) : undefined));
        }
        break;
      }
      case 'reconnect':
        this._open();
        break;
      case 'close_transport':
        this._dropSocket(o.reason === 'session_closed' ? 1000 : 4000, o.reason);
        break;
      case 'closed':
        this._updateState();
        break;
      case 'error':
        this._report(o);
        break;
      default:
        break;
    }
  }

  _answer(o) {
    const fn = this._requestHandlers.get(o.name);
    const data = this._decode(o.data);
    const finish = (ok, value) => {
      try {
        const enc = ok ? this.codec.encodeValue(value === undefined ? null : value) : this.codec.encodeValue(value);
        if (ok) this.session.reply(this._now(), o.req, enc);
        else this.session.replyError(this._now(), o.req, enc);
      } catch (e) {
        if (!(e instanceof EvsockError)) throw e;
        // unknown_request: too late, or the session ended; nothing to do.
      }
      this._pump();
    };
    if (!fn) {
      // Answer asynchronously so that the pump is not re-entered.
      Promise.resolve().then(() => finish(false, { code: 'no_handler', message: `no handler for ${o.name}` }));
      return;
    }
    Promise.resolve()
      .then(() => fn(data, { name: o.name, req: o.req, timeoutMs: o.timeoutMs, idempotencyKey: o.idempotencyKey }))
      .then(
        (v) => finish(true, v),
        (e) => finish(false, { code: (e && e.code) || 'error', message: String((e && e.message) || e) }),
      );
  }
}

export default EvsockClient;
