#!/usr/bin/env node
// A minimal stand-in for the Rust chat host (examples/chat), implementing
// docs/chat-demo.md with the JavaScript server Session from browser/evsock.js.
// It exists to develop and check the page and the end-to-end test without the
// Rust host; the real e2e run uses target/release/evsock-chat.
//
//   node standin-server.js --addr 127.0.0.1:8080 [--test-hooks]

import http from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer } from 'ws';
import { Session, peekHello, newSessionId, EnvelopeError, EvsockError } from '../../browser/evsock.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const staticDir = join(root, 'examples', 'chat', 'static');
const NAME_RE = /^[A-Za-z0-9_-]{1,32}$/;
const ROOM_RE = /^[a-z0-9-]{1,32}$/;

function args() {
  const a = process.argv.slice(2);
  const out = { addr: '127.0.0.1:8080', testHooks: false };
  for (let i = 0; i < a.length; i++) {
    if (a[i] === '--addr') out.addr = a[++i];
    else if (a[i] === '--test-hooks') out.testHooks = true;
    else {
      console.error(`unknown argument ${a[i]}`);
      process.exit(2);
    }
  }
  return out;
}

const sessions = new Map(); // sid -> {sid, user, s, ws, rooms: Set}
const rooms = new Map(); // room -> {nextId, members: Map(user -> count)}

const now = () => Math.floor(performance.now());

function roomOf(name) {
  let r = rooms.get(name);
  if (!r) rooms.set(name, (r = { nextId: 0, members: new Map() }));
  return r;
}

function membersOf(name) {
  return [...roomOf(name).members.keys()].sort();
}

function pushToRoom(room, event, data) {
  const json = JSON.stringify(data);
  for (const e of sessions.values()) {
    if (e.rooms.has(room)) {
      e.s.sendReliable(now(), event, json);
      pump(e);
    }
  }
}

function joinRoom(e, room) {
  if (e.rooms.has(room)) return;
  e.rooms.add(room);
  const r = roomOf(room);
  const n = r.members.get(e.user) || 0;
  r.members.set(e.user, n + 1);
  if (n === 0) pushToRoom(room, 'chat/presence', { room, user: e.user, online: true });
}

function leaveRoom(e, room) {
  if (!e.rooms.delete(room)) return;
  const r = roomOf(room);
  const n = (r.members.get(e.user) || 1) - 1;
  if (n > 0) r.members.set(e.user, n);
  else {
    r.members.delete(e.user);
    pushToRoom(room, 'chat/presence', { room, user: e.user, online: false });
  }
}

function forget(e) {
  sessions.delete(e.sid);
  for (const room of [...e.rooms]) leaveRoom(e, room);
}

function answer(e, o) {
  let d;
  try {
    d = JSON.parse(o.data || 'null') || {};
  } catch {
    d = {};
  }
  const err = (code, message) => e.s.replyError(now(), o.req, JSON.stringify({ code, message }));
  const room = d.room;
  if (typeof room !== 'string' || !ROOM_RE.test(room)) return err('bad_room', 'room names are 1 to 32 of a-z, 0-9 and -');
  switch (o.name) {
    case 'chat/join':
      joinRoom(e, room);
      return e.s.reply(now(), o.req, JSON.stringify({ room, members: membersOf(room) }));
    case 'chat/leave':
      leaveRoom(e, room);
      return e.s.reply(now(), o.req, JSON.stringify({ room }));
    case 'chat/send': {
      if (typeof d.text !== 'string' || d.text.length < 1 || [...d.text].length > 2000) return err('bad_text', 'text is 1 to 2000 characters');
      if (!e.rooms.has(room)) return err('not_member', `join ${room} first`);
      const r = roomOf(room);
      const msg = { room, id: ++r.nextId, from: e.user, text: d.text, ts: Date.now() };
      e.s.reply(now(), o.req, JSON.stringify({ room, id: msg.id, ts: msg.ts }));
      pump(e);
      return pushToRoom(room, 'chat/msg', msg);
    }
    default:
      return err('unknown', `no such request ${o.name}`);
  }
}

function pump(e) {
  let o;
  while ((o = e.s.pollOutput()) !== undefined) {
    switch (o.type) {
      case 'send':
        if (e.ws && e.ws.readyState === 1) e.ws.send(o.payload);
        break;
      case 'request':
        try {
          answer(e, o);
        } catch (x) {
          if (!(x instanceof EvsockError)) throw x;
        }
        break;
      case 'close_transport':
        if (e.ws) {
          const ws = e.ws;
          e.ws = null;
          ws.close(o.reason === 'session_closed' ? 1000 : 4000, o.reason);
        }
        break;
      case 'expired':
      case 'closed':
        forget(e);
        break;
      default:
        break;
    }
  }
}

async function serveStatic(req, res) {
  const url = new URL(req.url, 'http://x');
  let file;
  let type;
  if (url.pathname === '/') file = join(staticDir, 'index.html');
  else if (url.pathname === '/evsock.js') file = join(root, 'browser', 'evsock.js');
  else if (url.pathname.startsWith('/static/')) {
    const rel = normalize(decodeURIComponent(url.pathname.slice('/static/'.length)));
    if (rel.includes('..') || rel.startsWith(sep)) return notFound(res);
    file = join(staticDir, rel);
  } else return notFound(res);
  if (file.endsWith('.html')) type = 'text/html; charset=utf-8';
  else if (file.endsWith('.js')) type = 'text/javascript; charset=utf-8';
  else if (file.endsWith('.css')) type = 'text/css; charset=utf-8';
  else type = 'application/octet-stream';
  try {
    const body = await readFile(file);
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(body);
  } catch {
    notFound(res);
  }
}

function notFound(res) {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
}

function main() {
  const { addr, testHooks } = args();
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  const wss = new WebSocketServer({ noServer: true });
  const sockets = new Map(); // user -> Set(ws)

  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/test/drop' && testHooks) {
      const user = url.searchParams.get('user');
      const set = sockets.get(user) || new Set();
      let n = 0;
      for (const ws of set) {
        ws._socket.destroy(); // abrupt: no close frame
        n++;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`dropped ${n}`);
      return;
    }
    serveStatic(req, res);
  });

  server.on('upgrade', (req, socket, head) => {
    const url = new URL(req.url, 'http://x');
    const user = url.searchParams.get('user');
    if (url.pathname !== '/ws' || !user || !NAME_RE.test(user)) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nbad user name\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      let set = sockets.get(user);
      if (!set) sockets.set(user, (set = new Set()));
      set.add(ws);
      let e = null;
      ws.on('message', (data, isBinary) => {
        const payload = isBinary ? new Uint8Array(data) : data.toString('utf8');
        if (!e) {
          let h;
          try {
            h = peekHello(payload);
          } catch (x) {
            if (!(x instanceof EnvelopeError)) throw x;
            ws.close(4000, 'expected evs/hello');
            return;
          }
          e = h.sessionId && sessions.get(h.sessionId);
          if (!e || e.user !== user) {
            const sid = newSessionId();
            e = { sid, user, s: Session.server({}, sid), ws: null, rooms: new Set() };
            sessions.set(sid, e);
          }
          if (e.ws && e.ws !== ws) e.ws.terminate();
          e.ws = ws;
          e.s.handleConnected(now());
        }
        e.s.handleMessage(now(), payload);
        pump(e);
      });
      ws.on('close', () => {
        set.delete(ws);
        if (e && e.ws === ws) {
          e.ws = null;
          e.s.handleDisconnected(now());
          pump(e);
        }
      });
      ws.on('error', () => {});
    });
  });

  setInterval(() => {
    const t = now();
    for (const e of [...sessions.values()]) {
      const d = e.s.pollTimeout();
      if (d !== null && d <= t) {
        e.s.handleTimeout(t);
        pump(e);
      }
    }
  }, 10).unref();

  server.listen(port, host, () => {
    console.log(`chat listening on http://${host}:${server.address().port}/`);
  });
}

main();
