// Deterministic simulation: a JS client Session against a JS server Session
// over a link that delays messages, cuts connections (each side learns of it
// late, or never: half-open links that only the idle timeout detects), fails
// connection attempts, while both sides send reliable messages and the
// client sends requests. Every schedule is seeded; a failure names its seed.
//
// Invariants, inside the resume window:
//  * every reliable message (both directions) arrives exactly once, in send
//    order, and after healing every one has arrived;
//  * every request ends in exactly one outcome, a reply carrying the data
//    the server sent for that very request; the server applies each once;
//  * no gap, reset or protocol error is reported; at the end nothing is left
//    unacknowledged or pending.
// With a tiny server resume buffer, every push id is delivered in order
// once or reported in exactly one gap, never both.

import assert from 'node:assert/strict';
import { Session, EvsockError, peekHello } from '../evsock.js';

/** Small deterministic PRNG (mulberry32). */
export function prng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    u32: next,
    below: (n) => (n <= 0 ? 0 : next() % n),
    pct: (p) => next() % 100 < p,
    u64: () => (BigInt(next()) << 32n) | BigInt(next()),
  };
}

export class Sim {
  constructor(seed, { evictMode = false } = {}) {
    this.seed = seed;
    this.r = prng(seed);
    this.evictMode = evictMode;
    this.now = 0;
    const batch = this.r.pct(30) ? 5 : 0;
    const base = {
      ackDelayMs: 20,
      pingIntervalMs: 1000,
      idleTimeoutMs: 3000,
      handshakeTimeoutMs: 2000,
      backoffBaseMs: 100,
      backoffMaxMs: 2000,
      resumeWindowMs: 60_000,
      batchWindowMs: batch,
      ackEvery: 1 + this.r.below(40),
    };
    this.c = Session.client(base, () => this.r.u64());
    const serverCfg = evictMode ? { ...base, resumeBufferBytes: 150 } : base;
    this.s = Session.server(serverCfg, 'S1', () => this.r.u64());
    this.links = new Map();
    this.nextLink = 1;
    this.clientLink = null;
    this.serverLink = null;
    this.agenda = []; // [{at, seq, fn}]
    this.seq = 0;
    this.maxDelay = 1 + this.r.below(40);
    this.failPct = this.r.below(40);

    // Books.
    this.cSent = 0; // client reliable payloads sent (1..n)
    this.sGot = [];
    this.sSent = 0;
    this.cGot = [];
    this.gaps = [];
    this.requests = new Map(); // req id -> payload
    this.outcomes = new Map(); // req id -> [outcomes]
    this.served = new Map(); // payload -> times applied
    this.violations = [];
    this.cuts = 0;
    this.orphans = 0;
    this.resumes = 0;
  }

  fail(msg) {
    throw new Error(`seed ${this.seed} (evict=${this.evictMode}) at t=${this.now}: ${msg}`);
  }

  at(t, fn) {
    this.agenda.push({ at: t, seq: this.seq++, fn });
  }

  // --------------------------------------------------------- the link ---

  openLink() {
    const id = this.nextLink++;
    this.links.set(id, { id, attached: false, alive: true, blackhole: false, c2s: [], s2c: [], lastC2S: 0, lastS2C: 0 });
    return id;
  }

  transmit(from, payload) {
    const id = from === 'c' ? this.clientLink : this.serverLink;
    const l = id === null ? null : this.links.get(id);
    if (!l || !l.alive || l.blackhole) return;
    const key = from === 'c' ? 'lastC2S' : 'lastS2C';
    const when = Math.max(l[key], this.now + this.r.below(this.maxDelay));
    l[key] = when;
    (from === 'c' ? l.c2s : l.s2c).push({ at: when, payload });
  }

  /** The link dies; each side still attached learns it after a while. */
  cut(id, { silent = false } = {}) {
    const l = this.links.get(id);
    if (!l || !l.alive) return;
    if (silent) {
      l.blackhole = true;
      l.c2s.length = 0;
      l.s2c.length = 0;
      return;
    }
    l.alive = false;
    l.c2s.length = 0;
    l.s2c.length = 0;
    this.cuts++;
    this.at(this.now + this.r.below(60), () => {
      if (this.clientLink === id) {
        this.clientLink = null;
        this.c.handleDisconnected(this.now);
        this.drain('c');
      }
    });
    this.at(this.now + this.r.below(60), () => {
      if (this.serverLink === id) {
        this.serverLink = null;
        this.s.handleDisconnected(this.now);
        this.drain('s');
      }
    });
  }

  // ---------------------------------------------------------- hosting ---

  session(w) {
    return w === 'c' ? this.c : this.s;
  }

  drain(w) {
    let o;
    while ((o = this.session(w).pollOutput()) !== undefined) {
      if (w === 'c') this.onClient(o);
      else this.onServer(o);
    }
  }

  onClient(o) {
    switch (o.type) {
      case 'send':
        return this.transmit('c', o.payload);
      case 'established':
        if (o.resumed) this.resumes++;
        return;
      case 'message':
        if (o.name === 's/push') this.cGot.push({ n: JSON.parse(o.data), id: o.id });
        return;
      case 'reply':
      case 'request_failed': {
        const list = this.outcomes.get(o.req) || [];
        list.push(o.type === 'reply' ? { ok: true, data: JSON.parse(o.data) } : { ok: false, error: o.error });
        this.outcomes.set(o.req, list);
        return;
      }
      case 'reconnect':
        return this.connectAttempt();
      case 'close_transport':
        if (this.clientLink !== null) {
          const id = this.clientLink;
          this.clientLink = null;
          this.cutFromSide(id, 's');
        }
        return;
      case 'gap':
        this.gaps.push([o.from, o.to]);
        if (!this.evictMode) this.violations.push(`client gap ${o.from}..${o.to}`);
        return;
      case 'reset':
        return this.violations.push(`client reset ${JSON.stringify(o.unconfirmed)}`);
      case 'error':
        return this.violations.push(`client error ${o.code}: ${o.message}`);
      default:
        return this.violations.push(`client: unexpected ${o.type}`);
    }
  }

  onServer(o) {
    switch (o.type) {
      case 'send':
        return this.transmit('s', o.payload);
      case 'established':
        return;
      case 'message':
        if (o.name === 'c/msg') this.sGot.push(JSON.parse(o.data));
        return;
      case 'request': {
        const n = JSON.parse(o.data);
        this.served.set(n, (this.served.get(n) || 0) + 1);
        const asError = n % 7 === 0;
        this.at(this.now + this.r.below(80), () => {
          try {
            const data = JSON.stringify({ n, by: 'server' });
            if (asError) this.s.replyError(this.now, o.req, data);
            else this.s.reply(this.now, o.req, data);
          } catch (e) {
            if (!(e instanceof EvsockError)) throw e;
            this.violations.push(`server could not reply to ${o.req}: ${e.code}`);
          }
          this.drain('s');
        });
        return;
      }
      case 'close_transport':
        if (this.serverLink !== null) {
          const id = this.serverLink;
          this.serverLink = null;
          this.cutFromSide(id, 'c');
        }
        return;
      case 'error':
        return this.violations.push(`server error ${o.code}: ${o.message}`);
      default:
        return this.violations.push(`server: unexpected ${o.type}`);
    }
  }

  /** One side closed its socket: the link dies and the other side learns
   * it after a while. */
  cutFromSide(id, other) {
    const l = this.links.get(id);
    if (!l) return;
    l.alive = false;
    l.c2s.length = 0;
    l.s2c.length = 0;
    this.at(this.now + this.r.below(60), () => {
      if (other === 'c' && this.clientLink === id) {
        this.clientLink = null;
        this.c.handleDisconnected(this.now);
        this.drain('c');
      }
      if (other === 's' && this.serverLink === id) {
        this.serverLink = null;
        this.s.handleDisconnected(this.now);
        this.drain('s');
      }
    });
  }

  connectAttempt() {
    const delay = 1 + this.r.below(30);
    if (!this.healing && this.r.pct(this.failPct)) {
      this.at(this.now + delay, () => {
        this.c.handleDisconnected(this.now);
        this.drain('c');
      });
      return;
    }
    this.at(this.now + delay, () => {
      // The server host attaches the connection to a session when its
      // first message (the hello) arrives; see deliverToServer.
      const id = this.openLink();
      this.clientLink = id;
      this.c.handleConnected(this.now);
      this.drain('c');
    });
  }

  /** What a server host does with the first message of a connection:
   * route it by its hello. A hello without a session id after the server
   * session was established means the client never saw that welcome: a real
   * host creates a fresh session and the old one is orphaned (it expires). */
  attach(l, hello) {
    l.attached = true;
    const h = peekHello(hello);
    if (h.sessionId !== null && h.sessionId !== this.s.sessionId) this.fail(`hello for unknown session ${h.sessionId}`);
    if (h.sessionId === null && this.s.everEstablished) this.replaceServer();
    this.serverLink = l.id;
    this.s.handleConnected(this.now);
    this.drain('s');
  }

  replaceServer() {
    const old = this.s;
    this.s = Session.server(old.cfg, `S${this.nextLink}`, () => this.r.u64());
    old.close(this.now);
    old.drain();
    // The client never learned of the orphan, so it cannot have exchanged
    // anything with it; the orphan's pushes die with it.
    if (this.cGot.length || this.sGot.length || this.served.size) this.fail('orphaned session had delivered data');
    this.sSent = 0;
    this.orphans++;
  }

  // ------------------------------------------------------------ chaos ---

  chaosStep() {
    const p = this.r.below(100);
    if (this.evictMode) {
      if (p < 70) this.push();
      else if (p < 80 && this.clientLink !== null) this.cut(this.clientLink);
      else if (p < 83 && this.clientLink !== null) this.cut(this.clientLink, { silent: true });
      return;
    }
    if (p < 35) {
      this.cSent++;
      this.c.sendReliable(this.now, 'c/msg', String(this.cSent));
      this.drain('c');
    } else if (p < 50) {
      const n = this.requests.size + 1;
      const req = this.c.request(this.now, 'c/req', String(n), 30_000);
      this.requests.set(req, n);
      this.drain('c');
    } else if (p < 85) {
      this.push();
    } else if (p < 90) {
      try {
        this.c.send(this.now, 'c/typing', 'true');
      } catch (e) {
        if (!(e instanceof EvsockError) || e.code !== 'not_connected') throw e;
      }
      this.drain('c');
    } else if (p < 95) {
      const id = this.clientLink ?? this.serverLink;
      if (id !== null) this.cut(id);
    } else if (p < 97) {
      const id = this.clientLink ?? this.serverLink;
      if (id !== null) this.cut(id, { silent: true });
    }
  }

  push() {
    this.sSent++;
    this.s.sendReliable(this.now, 's/push', String(this.sSent));
    this.drain('s');
  }

  // ------------------------------------------------------------- loop ---

  nextTime() {
    let t = Infinity;
    for (const a of this.agenda) t = Math.min(t, a.at);
    for (const l of this.links.values()) {
      if (!l.alive) continue;
      if (l.c2s.length) t = Math.min(t, l.c2s[0].at);
      if (l.s2c.length) t = Math.min(t, l.s2c[0].at);
    }
    const ct = this.c.pollTimeout();
    const st = this.s.pollTimeout();
    if (ct !== null) t = Math.min(t, ct);
    if (st !== null) t = Math.min(t, st);
    return t;
  }

  step() {
    const t = this.nextTime();
    if (t === Infinity) return false;
    if (t < this.now) this.fail(`time went backwards: ${t}`);
    this.now = t;
    // Host actions first, in the order they were scheduled.
    const due = this.agenda.filter((a) => a.at <= t).sort((a, b) => a.at - b.at || a.seq - b.seq);
    this.agenda = this.agenda.filter((a) => a.at > t);
    for (const a of due) a.fn();
    // Deliveries (only to a side still attached to that link).
    for (const l of [...this.links.values()]) {
      while (l.alive && l.c2s.length && l.c2s[0].at <= t) {
        const m = l.c2s.shift();
        if (!l.attached) this.attach(l, m.payload);
        if (this.serverLink === l.id) {
          this.s.handleMessage(t, m.payload);
          this.drain('s');
        }
      }
      while (l.alive && l.s2c.length && l.s2c[0].at <= t) {
        const m = l.s2c.shift();
        if (this.clientLink === l.id) {
          this.c.handleMessage(t, m.payload);
          this.drain('c');
        }
      }
      if (!l.alive && !l.c2s.length && !l.s2c.length && l.id !== this.clientLink && l.id !== this.serverLink) {
        this.links.delete(l.id);
      }
    }
    const ct = this.c.pollTimeout();
    if (ct !== null && ct <= t) {
      this.c.handleTimeout(t);
      this.drain('c');
    }
    const st = this.s.pollTimeout();
    if (st !== null && st <= t) {
      this.s.handleTimeout(t);
      this.drain('s');
    }
    return true;
  }

  run(actions) {
    this.at(0, () => this.connectAttempt());
    let t = 0;
    for (let i = 0; i < actions; i++) {
      t += 1 + this.r.below(50);
      this.at(t, () => this.chaosStep());
    }
    while (this.agenda.length > 0) {
      if (!this.step()) break;
      if (this.violations.length) this.fail(this.violations.join('; '));
    }
    this.heal();
  }

  /** No more chaos: run until both sides are quiet, connected and have
   * nothing unacknowledged or pending (bounded). */
  heal() {
    this.healing = true;
    const limit = this.now + 40_000;
    while (this.now < limit) {
      const quiet =
        this.c.isEstablished &&
        this.s.isEstablished &&
        this.c.unackedMessages === 0 &&
        this.s.unackedMessages === 0 &&
        this.c.pendingRequests === 0 &&
        this.agenda.length === 0 &&
        [...this.links.values()].every((l) => !l.alive || (l.c2s.length === 0 && l.s2c.length === 0));
      if (quiet) return;
      if (!this.step()) break;
      if (this.violations.length) this.fail(this.violations.join('; '));
    }
    this.fail(
      `did not settle: client ${this.c.phase} unacked ${this.c.unackedMessages} pending ${this.c.pendingRequests}, ` +
        `server ${this.s.phase} unacked ${this.s.unackedMessages}`,
    );
  }

  check() {
    const seq = (n) => Array.from({ length: n }, (_, i) => i + 1);
    if (this.evictMode) {
      // Every push id: delivered once in order, or inside exactly one gap.
      const seen = new Map();
      for (const { id } of this.cGot) seen.set(id, (seen.get(id) || 0) + 1);
      for (const [a, b] of this.gaps) for (let i = a; i <= b; i++) seen.set(i, (seen.get(i) || 0) + 1);
      for (let i = 1; i <= this.sSent; i++) {
        if (seen.get(i) !== 1) this.fail(`push ${i} accounted for ${seen.get(i) || 0} times`);
      }
      const ids = this.cGot.map((x) => x.id);
      for (let i = 1; i < ids.length; i++) if (ids[i] <= ids[i - 1]) this.fail(`pushes out of order: ${ids}`);
      return;
    }
    assert.deepStrictEqual(this.sGot, seq(this.cSent), `seed ${this.seed}: client->server stream`);
    assert.deepStrictEqual(this.cGot.map((x) => x.n), seq(this.sSent), `seed ${this.seed}: server->client stream`);
    for (const [req, n] of this.requests) {
      const outs = this.outcomes.get(req) || [];
      if (outs.length !== 1) this.fail(`request ${req} ended ${outs.length} times: ${JSON.stringify(outs)}`);
      const o = outs[0];
      if (n % 7 === 0) {
        if (o.ok || o.error !== 'remote') this.fail(`request ${req} (${n}) should fail remotely: ${JSON.stringify(o)}`);
      } else if (!o.ok || o.data.n !== n) {
        this.fail(`request ${req} (${n}) got ${JSON.stringify(o)}`);
      }
      if (this.served.get(n) !== 1) this.fail(`request ${n} applied ${this.served.get(n) || 0} times`);
    }
    for (const req of this.outcomes.keys()) if (!this.requests.has(req)) this.fail(`outcome for unknown request ${req}`);
  }
}

