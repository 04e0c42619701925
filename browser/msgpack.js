// msgpack.js: the MessagePack envelope codec for evsock.js (binary
// WebSocket messages). Optional: the browser chat speaks JSON; pass
// `config: {format: msgpackCodec}` (or put it in `config.codecs` on a
// server session) to use it. Data elements are Uint8Array holding exactly
// one MessagePack value (empty for "no data").

import { EnvelopeError, EvsockError, MAX_DEPTH, MAX_IDEMPOTENCY_KEY_LEN, MAX_SAFE_INT, isValidEventId } from './evsock.js';

const U64_MAX = (1n << 64n) - 1n;
const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

function latin1(b, s, e) {
  let out = '';
  for (let i = s; i < e; i++) out += String.fromCharCode(b[i]);
  return out;
}

/** A cursor over MessagePack bytes that checks structure without building
 * values (data elements pass through unchanged). */
class MpCursor {
  constructor(b, p = 0) {
    this.b = b;
    this.p = p;
  }

  fail() {
    return new EnvelopeError('syntax', `MessagePack syntax error at offset ${this.p}`);
  }

  byte() {
    if (this.p >= this.b.length) throw this.fail();
    return this.b[this.p++];
  }

  /** Big-endian unsigned integer of n bytes, as a Number when n <= 4 and a
   * BigInt when n == 8. */
  be(n) {
    if (this.b.length - this.p < n) throw this.fail();
    let v = 0;
    if (n <= 4) {
      for (let i = 0; i < n; i++) v = v * 256 + this.b[this.p + i];
    } else {
      let w = 0n;
      for (let i = 0; i < n; i++) w = (w << 8n) | BigInt(this.b[this.p + i]);
      v = w;
    }
    this.p += n;
    return v;
  }

  skip(n) {
    if (this.b.length - this.p < n) throw this.fail();
    this.p += n;
  }

  /** Array or string header: {array: n} | {str: n} | null (nothing
   * consumed for other types). */
  head() {
    const c = this.byte();
    if (c >= 0x90 && c <= 0x9f) return { array: c & 0x0f };
    if (c === 0xdc) return { array: this.be(2) };
    if (c === 0xdd) return { array: this.be(4) };
    if (c >= 0xa0 && c <= 0xbf) return { str: c & 0x1f };
    if (c === 0xd9) return { str: this.be(1) };
    if (c === 0xda) return { str: this.be(2) };
    if (c === 0xdb) return { str: this.be(4) };
    this.p--;
    return null;
  }

  strSpan() {
    const h = this.head();
    if (h === null) return null;
    if (h.array !== undefined) throw new EnvelopeError('not_an_envelope', 'not an event vector');
    const s = this.p;
    this.skip(h.str);
    return [s, this.p];
  }

  value(depth) {
    if (depth > MAX_DEPTH) throw new EnvelopeError('too_deep', 'nesting too deep');
    const c = this.byte();
    let items = 0;
    let skip = 0;
    if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) {
      /* single byte */
    } else if (c >= 0x80 && c <= 0x8f) items = 2 * (c & 0x0f);
    else if (c >= 0x90 && c <= 0x9f) items = c & 0x0f;
    else if (c >= 0xa0 && c <= 0xbf) skip = c & 0x1f;
    else {
      switch (c) {
        case 0xc1:
          this.p--;
          throw this.fail();
        case 0xc4:
        case 0xd9:
          skip = this.be(1);
          break;
        case 0xc5:
        case 0xda:
          skip = this.be(2);
          break;
        case 0xc6:
        case 0xdb:
          skip = this.be(4);
          break;
        case 0xc7:
          skip = this.be(1) + 1;
          break;
        case 0xc8:
          skip = this.be(2) + 1;
          break;
        case 0xc9:
          skip = this.be(4) + 1;
          break;
        case 0xca:
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
        case 0xd4:
          skip = 2;
          break;
        case 0xd5:
          skip = 3;
          break;
        case 0xd6:
          skip = 5;
          break;
        case 0xd7:
          skip = 9;
          break;
        case 0xd8:
          skip = 17;
          break;
        case 0xdc:
          items = this.be(2);
          break;
        case 0xdd:
          items = this.be(4);
          break;
        case 0xde:
          items = 2 * this.be(2);
          break;
        case 0xdf:
          items = 2 * this.be(4);
          break;
        default:
          throw this.fail();
      }
    }
    this.skip(skip);
    // Each item takes at least one byte, so a lying count fails quickly.
    for (let i = 0; i < items; i++) this.value(depth + 1);
  }

  uint() {
    const c = this.byte();
    let v;
    if (c <= 0x7f) v = c;
    else if (c === 0xcc) v = this.be(1);
    else if (c === 0xcd) v = this.be(2);
    else if (c === 0xce) v = this.be(4);
    else if (c === 0xcf || c === 0xd3) {
      // A negative int64 reads as a huge unsigned value and fails below.
      const w = this.be(8);
      v = w > BigInt(MAX_SAFE_INT) ? -1 : Number(w);
    }
    else if (c === 0xd0) v = (this.be(1) << 24) >> 24;
    else if (c === 0xd1) v = (this.be(2) << 16) >> 16;
    else if (c === 0xd2) v = this.be(4) | 0;
    else throw new EnvelopeError('id_out_of_range', 'id out of range');
    if (v < 0 || v > MAX_SAFE_INT) throw new EnvelopeError('id_out_of_range', 'id out of range');
    return v;
  }

  meta() {
    const c = this.byte();
    let n;
    if (c >= 0x80 && c <= 0x8f) n = c & 0x0f;
    else if (c === 0xde) n = this.be(2);
    else if (c === 0xdf) n = this.be(4);
    else throw new EnvelopeError('bad_meta', 'bad metadata: not a map');
    const m = { id: null, rq: null, re: null, ack: null, ik: null };
    const set = (k, v) => {
      if (m[k] !== null) throw new EnvelopeError('bad_meta', `bad metadata: repeated ${k}`);
      m[k] = v;
    };
    for (let i = 0; i < n; i++) {
      let key = null;
      let span;
      try {
        span = this.strSpan();
      } catch {
        throw new EnvelopeError('bad_meta', 'bad metadata: key');
      }
      if (span === null) this.value(2);
      else key = latin1(this.b, span[0], span[1]);
      if (key === 'ik') {
        const s = this.strSpan();
        if (s === null) throw new EnvelopeError('bad_meta', 'bad metadata: ik');
        let text;
        try {
          text = utf8Strict.decode(this.b.subarray(s[0], s[1]));
        } catch {
          throw new EnvelopeError('bad_meta', 'bad metadata: ik');
        }
        const len = s[1] - s[0];
        if (len === 0 || len > MAX_IDEMPOTENCY_KEY_LEN) throw new EnvelopeError('bad_meta', 'bad metadata: ik');
        set('ik', text);
      } else if (key === 'id' || key === 'rq' || key === 're' || key === 'ack') {
        set(key, this.uint());
      } else {
        this.value(2);
      }
    }
    return m;
  }

  /** The rest of an envelope whose array header (n elements) was read. */
  envelopeBody(n) {
    if (n < 1 || n > 3) throw new EnvelopeError('not_an_envelope', 'an envelope has 1 to 3 elements');
    const span = this.strSpan();
    if (span === null) throw new EnvelopeError('bad_event_id', 'missing or invalid event id');
    const event = latin1(this.b, span[0], span[1]);
    if (!isValidEventId(event)) throw new EnvelopeError('bad_event_id', 'missing or invalid event id');
    let data = new Uint8Array(0);
    let meta = { id: null, rq: null, re: null, ack: null, ik: null };
    if (n >= 2) {
      const ds = this.p;
      this.value(1);
      data = this.b.slice(ds, this.p);
    }
    if (n === 3) meta = this.meta();
    return { event, data, meta };
  }
}

// ------------------------------------------------------------- writing ---

class Writer {
  constructor() {
    this.buf = new Uint8Array(64);
    this.n = 0;
  }
  room(k) {
    if (this.n + k <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.n + k) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.n));
    this.buf = b;
  }
  u8(x) {
    this.room(1);
    this.buf[this.n++] = x;
  }
  be(x, k) {
    this.room(k);
    for (let i = k - 1; i >= 0; i--) {
      this.buf[this.n + i] = x & 0xff;
      x = Math.floor(x / 256);
    }
    this.n += k;
  }
  big(x) {
    this.room(8);
    for (let i = 7; i >= 0; i--) {
      this.buf[this.n + i] = Number(x & 0xffn);
      x >>= 8n;
    }
    this.n += 8;
  }
  bytes(b) {
    this.room(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }
  done() {
    return this.buf.slice(0, this.n);
  }
}

function arrayHeader(w, n) {
  if (n < 16) w.u8(0x90 | n);
  else if (n <= 0xffff) {
    w.u8(0xdc);
    w.be(n, 2);
  } else {
    w.u8(0xdd);
    w.be(n, 4);
  }
}

function mapHeader(w, n) {
  if (n < 16) w.u8(0x80 | n);
  else if (n <= 0xffff) {
    w.u8(0xde);
    w.be(n, 2);
  } else {
    w.u8(0xdf);
    w.be(n, 4);
  }
}

function strBytes(w, b) {
  const n = b.length;
  if (n < 32) w.u8(0xa0 | n);
  else if (n <= 0xff) {
    w.u8(0xd9);
    w.u8(n);
  } else if (n <= 0xffff) {
    w.u8(0xda);
    w.be(n, 2);
  } else {
    w.u8(0xdb);
    w.be(n, 4);
  }
  w.bytes(b);
}

function uint(w, v) {
  if (typeof v === 'bigint') {
    if (v <= BigInt(MAX_SAFE_INT)) return uint(w, Number(v));
    w.u8(0xcf);
    w.big(v);
    return;
  }
  if (v < 0x80) w.u8(v);
  else if (v <= 0xff) {
    w.u8(0xcc);
    w.u8(v);
  } else if (v <= 0xffff) {
    w.u8(0xcd);
    w.be(v, 2);
  } else if (v <= 0xffffffff) {
    w.u8(0xce);
    w.be(v, 4);
  } else {
    w.u8(0xcf);
    w.big(BigInt(v));
  }
}

function negint(w, v) {
  if (v >= -32) w.u8(v & 0xff);
  else if (v >= -128) {
    w.u8(0xd0);
    w.u8(v & 0xff);
  } else if (v >= -32768) {
    w.u8(0xd1);
    w.be(v & 0xffff, 2);
  } else if (v >= -2147483648) {
    w.u8(0xd2);
    w.be(v >>> 0, 4);
  } else {
    w.u8(0xd3);
    w.big(BigInt.asUintN(64, BigInt(v)));
  }
}

/** Encodes a JavaScript value as one MessagePack value. */
function encodeInto(w, v, depth) {
  if (depth > MAX_DEPTH) throw new EnvelopeError('too_deep', 'nesting too deep');
  if (v === null || v === undefined) w.u8(0xc0);
  else if (v === false) w.u8(0xc2);
  else if (v === true) w.u8(0xc3);
  else if (typeof v === 'number') {
    if (Number.isSafeInteger(v)) {
      if (v >= 0) uint(w, v);
      else negint(w, v);
    } else {
      w.u8(0xcb);
      const f = new DataView(new ArrayBuffer(8));
      f.setFloat64(0, v);
      w.bytes(new Uint8Array(f.buffer));
    }
  } else if (typeof v === 'bigint') {
    if (v >= 0n && v <= U64_MAX) uint(w, v);
    else if (v < 0n && v >= -(1n << 63n)) {
      if (v >= -BigInt(MAX_SAFE_INT)) negint(w, Number(v));
      else {
        w.u8(0xd3);
        w.big(BigInt.asUintN(64, v));
      }
    } else throw new EnvelopeError('invalid_data', 'integer out of 64-bit range');
  } else if (typeof v === 'string') strBytes(w, utf8.encode(v));
  else if (v instanceof Uint8Array) {
    const n = v.length;
    if (n <= 0xff) {
      w.u8(0xc4);
      w.u8(n);
    } else if (n <= 0xffff) {
      w.u8(0xc5);
      w.be(n, 2);
    } else {
      w.u8(0xc6);
      w.be(n, 4);
    }
    w.bytes(v);
  } else if (Array.isArray(v)) {
    arrayHeader(w, v.length);
    for (const x of v) encodeInto(w, x, depth + 1);
  } else if (typeof v === 'object') {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    mapHeader(w, entries.length);
    for (const [k, x] of entries) {
      strBytes(w, utf8.encode(k));
      encodeInto(w, x, depth + 1);
    }
  } else throw new EnvelopeError('invalid_data', `cannot encode ${typeof v} as MessagePack`);
}

export function encode(value) {
  const w = new Writer();
  encodeInto(w, value, 1);
  return w.done();
}

// ------------------------------------------------------------- reading ---

/** Decodes one MessagePack value. Unsigned integers become BigInt when
 * `bigUints` is set (exact protocol checks), otherwise Number when safe. */
function decodeAt(c, depth, bigUints) {
  if (depth > MAX_DEPTH) throw new EnvelopeError('too_deep', 'nesting too deep');
  const b = c.byte();
  const num = (v) => (bigUints ? BigInt(v) : v);
  const big = (v) => (bigUints || v > BigInt(MAX_SAFE_INT) ? v : Number(v));
  if (b <= 0x7f) return num(b);
  if (b >= 0xe0) return b - 0x100;
  if (b >= 0x80 && b <= 0x8f) return readMap(c, b & 0x0f, depth, bigUints);
  if (b >= 0x90 && b <= 0x9f) return readArray(c, b & 0x0f, depth, bigUints);
  if (b >= 0xa0 && b <= 0xbf) return readStr(c, b & 0x1f);
  const dv = () => new DataView(c.b.buffer, c.b.byteOffset + c.p);
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xc4:
    case 0xc5:
    case 0xc6: {
      const n = c.be(b === 0xc4 ? 1 : b === 0xc5 ? 2 : 4);
      const s = c.p;
      c.skip(n);
      return c.b.slice(s, c.p);
    }
    case 0xca: {
      c.skip(4);
      c.p -= 4;
      const v = dv().getFloat32(0);
      c.p += 4;
      return v;
    }
    case 0xcb: {
      c.skip(8);
      c.p -= 8;
      const v = dv().getFloat64(0);
      c.p += 8;
      return v;
    }
    case 0xcc:
      return num(c.be(1));
    case 0xcd:
      return num(c.be(2));
    case 0xce:
      return num(c.be(4));
    case 0xcf:
      return big(c.be(8));
    case 0xd0:
      return signed(c.be(1), 8, bigUints);
    case 0xd1:
      return signed(c.be(2), 16, bigUints);
    case 0xd2:
      return signed(c.be(4), 32, bigUints);
    case 0xd3: {
      const v = BigInt.asIntN(64, c.be(8));
      if (v >= 0n) return big(v);
      return v >= -BigInt(MAX_SAFE_INT) ? Number(v) : v;
    }
    case 0xd9:
      return readStr(c, c.be(1));
    case 0xda:
      return readStr(c, c.be(2));
    case 0xdb:
      return readStr(c, c.be(4));
    case 0xdc:
      return readArray(c, c.be(2), depth, bigUints);
    case 0xdd:
      return readArray(c, c.be(4), depth, bigUints);
    case 0xde:
      return readMap(c, c.be(2), depth, bigUints);
    case 0xdf:
      return readMap(c, c.be(4), depth, bigUints);
    default: {
      // ext types: kept as {type, data}
      c.p--;
      const s = c.p;
      c.value(depth);
      return { ext: c.b.slice(s, c.p) };
    }
  }
}

function signed(v, bits, bigUints) {
  const x = v >= 2 ** (bits - 1) ? v - 2 ** bits : v;
  return x >= 0 && bigUints ? BigInt(x) : x;
}

function readStr(c, n) {
  const s = c.p;
  c.skip(n);
  try {
    return utf8Strict.decode(c.b.subarray(s, c.p));
  } catch {
    throw new EnvelopeError('invalid_utf8', 'string is not valid UTF-8');
  }
}

function readArray(c, n, depth, bigUints) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(decodeAt(c, depth + 1, bigUints));
  return out;
}

function readMap(c, n, depth, bigUints) {
  const out = {};
  for (let i = 0; i < n; i++) {
    const k = decodeAt(c, depth + 1, false);
    const v = decodeAt(c, depth + 1, bigUints);
    Object.defineProperty(out, String(k), { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

export function decode(bytes) {
  const c = new MpCursor(bytes);
  const v = decodeAt(c, 1, false);
  if (c.p !== bytes.length) throw c.fail();
  return v;
}

function toBytes(payload) {
  if (payload instanceof Uint8Array) return payload;
  if (payload instanceof ArrayBuffer) return new Uint8Array(payload);
  return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
}

/** MessagePack envelopes in WebSocket binary messages. */
export const msgpackCodec = Object.freeze({
  name: 'msgpack',
  kind: 'binary',

  isEmpty(data) {
    return data.length === 0;
  },

  byteLength(data) {
    return data.length;
  },

  checkType(data) {
    return data instanceof Uint8Array;
  },

  decodeFrame(frame, maxEnvelopes) {
    frame = toBytes(frame);
    if (frame.length === 0) throw new EnvelopeError('empty', 'empty frame');
    const c = new MpCursor(frame);
    const h = c.head();
    if (h === null || h.array === undefined) throw new EnvelopeError('not_an_envelope', 'not an event vector');
    const n = h.array;
    const mark = c.p;
    const first = c.head();
    const out = [];
    if (first === null) throw new EnvelopeError('bad_event_id', 'missing or invalid event id');
    if (first.str !== undefined) {
      c.p = mark;
      out.push(c.envelopeBody(n));
    } else {
      if (n > maxEnvelopes) {
        throw new EnvelopeError('too_many_envelopes', `more than ${maxEnvelopes} envelopes in one frame`);
      }
      out.push(c.envelopeBody(first.array));
      for (let i = 1; i < n; i++) {
        const k = c.head();
        if (k === null || k.array === undefined) throw new EnvelopeError('not_an_envelope', 'not an event vector');
        out.push(c.envelopeBody(k.array));
      }
    }
    if (c.p !== frame.length) throw c.fail();
    return out;
  },

  validateValue(data) {
    const c = new MpCursor(data);
    c.value(1);
    if (c.p !== data.length) throw c.fail();
  },

  writeEnvelope(event, data, meta) {
    const w = new Writer();
    const hasMeta = meta.id !== null || meta.rq !== null || meta.re !== null || meta.ack !== null || meta.ik !== null;
    const n = hasMeta ? 3 : data.length > 0 ? 2 : 1;
    arrayHeader(w, n);
    strBytes(w, utf8.encode(event));
    if (n >= 2) {
      if (data.length === 0) w.u8(0xc0);
      else w.bytes(data);
    }
    if (n === 3) {
      const fields = [
        ['id', meta.id],
        ['rq', meta.rq],
        ['re', meta.re],
        ['ack', meta.ack],
      ].filter(([, v]) => v !== null);
      w.u8(0x80 | (fields.length + (meta.ik !== null ? 1 : 0)));
      for (const [k, v] of fields) {
        strBytes(w, utf8.encode(k));
        uint(w, v);
      }
      if (meta.ik !== null) {
        strBytes(w, utf8.encode('ik'));
        strBytes(w, utf8.encode(meta.ik));
      }
    }
    return w.done();
  },

  joinFrame(pieces) {
    if (pieces.length === 1) return pieces[0];
    const w = new Writer();
    arrayHeader(w, pieces.length);
    for (const p of pieces) w.bytes(p);
    return w.done();
  },

  encodeProto(obj) {
    const clean = {};
    for (const [k, v] of Object.entries(obj)) if (v !== undefined) clean[k] = v;
    return encode(clean);
  },

  decodeProto(data, known) {
    if (data.length === 0) throw new EnvelopeError('bad_protocol_data', 'expected a map');
    const c = new MpCursor(data);
    const b = c.byte();
    let n;
    if (b >= 0x80 && b <= 0x8f) n = b & 0x0f;
    else if (b === 0xde) n = c.be(2);
    else if (b === 0xdf) n = c.be(4);
    else throw new EnvelopeError('bad_protocol_data', 'expected a map');
    const out = {};
    for (let i = 0; i < n; i++) {
      const k = decodeAt(c, 2, false);
      const v = decodeAt(c, 2, true);
      if (typeof k === 'string' && known.includes(k)) {
        if (Object.prototype.hasOwnProperty.call(out, k)) {
          throw new EnvelopeError('bad_protocol_data', `repeated field ${k}`);
        }
        out[k] = v;
      }
    }
    return out;
  },

  encodeValue(value) {
    if (value === undefined) return new Uint8Array(0);
    try {
      return encode(value);
    } catch (e) {
      throw new EvsockError('invalid_data', e.message);
    }
  },

  decodeValue(data) {
    return data.length === 0 ? null : decode(data);
  },
});

export default msgpackCodec;
