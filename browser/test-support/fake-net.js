// A fake network for testing EvsockClient under Node without sockets: a
// virtual clock with setTimeout/clearTimeout, a WebSocket class with the
// browser's surface (readyState, onopen/onmessage/onclose, send, close), and
// a server host that routes connections to JS server Sessions by their
// hello, as a real evsock host does.

import { Session, peekHello } from '../evsock.js';

export class FakeClock {
  constructor() {
    this.t = 1000;
    this.timers = [];
    this.seq = 0;
    this.now = () => this.t;
    this.setTimeout = (fn, ms) => {
      const id = ++this.seq;
      this.timers.push({ id, at: this.t + Math.max(0, ms | 0), fn });
      return id;
    };
    this.clearTimeout = (id) => {
      this.timers = this.timers.filter((x) => x.id !== id);
    };
    this.hooks = []; // extra deadline sources: () => number | null, and runners
  }

  nextAt() {
    let t = Infinity;
    for (const x of this.timers) t = Math.min(t, x.at);
    for (const h of this.hooks) {
      const d = h.deadline();
      if (d !== null && d !== undefined) t = Math.min(t, d);
    }
    return t;
  }

  /** Runs everything due up to `now + ms`, in time order. */
  async advance(ms) {
    const end = this.t + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      await flushMicrotasks();
      const t = this.nextAt();
      if (t > end) break;
      this.t = Math.max(this.t, t);
      const due = this.timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at || a.id - b.id);
      this.timers = this.timers.filter((x) => x.at > this.t);
      for (const x of due) x.fn();
      for (const h of this.hooks) {
        const d = h.deadline();
        if (d !== null && d !== undefined && d <= this.t) h.run(this.t);
      }
    }
    this.t = end;
    await flushMicrotasks();
  }
}

export async function flushMicrotasks() {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/** Server host over fake connections, one Session per session id. */
export class FakeServer {
  constructor(clock, { config = {}, latency = 2 } = {}) {
    this.clock = clock;
    this.config = { pingIntervalMs: null, idleTimeoutMs: null, ...config };
    this.latency = latency;
    this.sessions = new Map(); // sid -> {s, conn}
    this.conns = new Set();
    this.nextSid = 1;
    this.refuse = false; // refuse new connections (they close at once)
    this.hang = false; // accept TCP but never open (connect timeout)
    this.onRequest = (sess, o) => sess.s.reply(clock.now(), o.req, o.data);
    this.received = []; // [{sid, name, data, id}]
    this.log = [];
    clock.hooks.push({
      deadline: () => {
        let t = null;
        for (const e of this.sessions.values()) {
          const d = e.s.pollTimeout();
          if (d !== null && (t === null || d < t)) t = d;
        }
        return t;
      },
      run: (now) => {
        for (const e of [...this.sessions.values()]) {
          const d = e.s.pollTimeout();
          if (d !== null && d <= now) {
            e.s.handleTimeout(now);
            this.pump(e);
          }
        }
      },
    });
    const server = this;
    this.WebSocket = class FakeWebSocket {
      constructor(url) {
        this.url = url;
        this.readyState = 0;
        this.binaryType = 'blob';
        this.sent = [];
        server.connect(this);
      }
      send(payload) {
        if (this.readyState !== 1) throw new Error('InvalidStateError: not open');
        this.sent.push(payload);
        const conn = this._conn;
        clock.setTimeout(() => server.fromClient(conn, payload), server.latency);
      }
      close() {
        if (this.readyState >= 2) return;
        this.readyState = 3;
        const conn = this._conn;
        clock.setTimeout(() => server.clientClosed(conn), server.latency);
      }
    };
  }

  connect(ws) {
    const conn = { ws, session: null, open: false, dead: false };
    ws._conn = conn;
    this.conns.add(conn);
    if (this.hang) return;
    this.clock.setTimeout(() => {
      if (this.refuse) {
        conn.dead = true;
        ws.readyState = 3;
        ws.onclose && ws.onclose({ code: 1006 });
        return;
      }
      conn.open = true;
      ws.readyState = 1;
      ws.onopen && ws.onopen({});
    }, this.latency);
  }

  fromClient(conn, payload) {
    if (conn.dead) return;
    const now = this.clock.now();
    if (!conn.session) {
      const h = peekHello(payload);
      let e = h.sessionId && this.sessions.get(h.sessionId);
      if (!e) {
        const sid = `S${this.nextSid++}`;
        e = { sid, s: Session.server(this.config, sid, () => 0n), conn: null };
        this.sessions.set(sid, e);
      }
      if (e.conn && e.conn !== conn) this.kill(e.conn, false);
      e.conn = conn;
      conn.session = e;
      e.s.handleConnected(now);
    }
    conn.session.s.handleMessage(now, payload);
    this.pump(conn.session);
  }

  clientClosed(conn) {
    if (conn.dead) return;
    conn.dead = true;
    const e = conn.session;
    if (e && e.conn === conn) {
      e.conn = null;
      e.s.handleDisconnected(this.clock.now());
      this.pump(e);
    }
  }

  /** Closes a connection from the server side (abruptly: no bye). */
  kill(conn, notifySession = true) {
    if (conn.dead) return;
    conn.dead = true;
    const ws = conn.ws;
    this.clock.setTimeout(() => {
      if (ws.readyState === 3) return;
      ws.readyState = 3;
      ws.onclose && ws.onclose({ code: 1006 });
    }, this.latency);
    const e = conn.session;
    if (notifySession && e && e.conn === conn) {
      e.conn = null;
      e.s.handleDisconnected(this.clock.now());
      this.pump(e);
    }
  }

  /** Drops every open connection (like /test/drop). */
  dropAll() {
    for (const c of this.conns) this.kill(c);
  }

  /** Forgets every session (as after a restart or expiry). */
  forgetAll() {
    this.dropAll();
    this.sessions.clear();
  }

  session(sid) {
    return this.sessions.get(sid);
  }

  push(sid, name, value) {
    const e = this.sessions.get(sid);
    e.s.sendReliable(this.clock.now(), name, JSON.stringify(value));
    this.pump(e);
  }

  pump(e) {
    let o;
    while ((o = e.s.pollOutput()) !== undefined) {
      this.log.push({ sid: e.sid, ...o });
      if (o.type === 'send') {
        const conn = e.conn;
        if (!conn || conn.dead) continue;
        const payload = o.payload;
        this.clock.setTimeout(() => {
          // Whatever was written before a close still arrives first.
          if (conn.ws.readyState !== 1) return;
          conn.ws.onmessage && conn.ws.onmessage({ data: payload });
        }, this.latency);
      } else if (o.type === 'message') {
        this.received.push({ sid: e.sid, name: o.name, data: JSON.parse(o.data || 'null'), id: o.id });
      } else if (o.type === 'request') {
        this.onRequest(e, o);
      } else if (o.type === 'close_transport') {
        if (e.conn) {
          const c = e.conn;
          e.conn = null;
          this.kill(c, false);
        }
      }
    }
  }
}
