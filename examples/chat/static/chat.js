// The evsock chat page (contract: docs/chat-demo.md). All traffic goes
// through EvsockClient: joins, leaves and sends are requests; chat/msg and
// chat/presence arrive as reliable pushes, replayed exactly once after a
// reconnect, so the page keeps no history of its own beyond what it saw.

import { EvsockClient } from '/evsock.js';

const NAME_RE = /^[A-Za-z0-9_-]{1,32}$/;
const ROOM_RE = /^[a-z0-9-]{1,32}$/;
const MAX_TEXT = 2000;
const REQUEST_TIMEOUT_MS = 30_000;

const $ = (id) => document.getElementById(id);

/** Everything the page knows; exposed for tests as window.evsockChat.state. */
const state = {
  user: null,
  status: 'connecting',
  statusHistory: ['connecting'],
  rooms: new Map(), // name -> {name, joined, members: Set, messages: [], ids: Set, unread}
  current: null,
  // Anomalies the session layer should make impossible; counted, never shown twice.
  duplicates: 0,
  outOfOrder: 0,
  gaps: [],
  resets: 0,
  sessions: [], // every handshake: {sessionId, resumed}
};
const chat = { client: null, state };
window.evsockChat = chat;

// ------------------------------------------------------------- helpers ---

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'dataset') Object.assign(e.dataset, v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

let noticeTimer = null;
function notice(text, ms = 6000) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (n.hidden = true), ms);
}

function describeError(e) {
  if (e && e.code === 'remote' && e.data && typeof e.data === 'object') {
    return e.data.message || e.data.code || 'the server refused';
  }
  if (e && e.code === 'timeout') return 'no answer from the server in time';
  if (e && e.code === 'resume_failed') return 'the connection was reset before the server answered';
  if (e && e.code === 'session_closed') return 'the connection is closed';
  return (e && e.message) || String(e);
}

function timeOf(ts) {
  const d = new Date(ts);
  return Number.isFinite(d.getTime()) ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
}

function isoOf(ts) {
  const d = new Date(ts);
  return Number.isFinite(d.getTime()) ? d.toISOString() : '';
}

// --------------------------------------------------------------- rooms ---

function ensureRoom(name) {
  let r = state.rooms.get(name);
  if (!r) {
    r = { name, joined: false, members: new Set(), messages: [], ids: new Set(), unread: 0, pending: [] };
    state.rooms.set(name, r);
  }
  return r;
}

function selectRoom(name) {
  state.current = name;
  const r = state.rooms.get(name);
  if (r) r.unread = 0;
  renderRooms();
  renderRoom();
}

async function joinRoom(name) {
  if (!ROOM_RE.test(name)) {
    notice(`"${name}" is not a room name: use 1 to 32 of a-z, 0-9 and -`);
    return;
  }
  const existed = state.rooms.has(name) && state.rooms.get(name).joined;
  const r = ensureRoom(name);
  selectRoom(name);
  try {
    const reply = await chat.client.request('chat/join', { room: name }, { timeoutMs: REQUEST_TIMEOUT_MS });
    r.joined = true;
    r.members = new Set(Array.isArray(reply && reply.members) ? reply.members : [state.user]);
    renderRooms();
    if (state.current === name) renderMembers();
  } catch (e) {
    notice(`Could not join #${name}: ${describeError(e)}`);
    if (!existed && !r.joined) {
      state.rooms.delete(name);
      if (state.current === name) state.current = firstJoined();
      renderRooms();
      renderRoom();
    }
  }
}

function firstJoined() {
  for (const r of state.rooms.values()) if (r.joined) return r.name;
  return null;
}

async function leaveRoom() {
  const name = state.current;
  if (!name) return;
  state.rooms.delete(name);
  state.current = firstJoined();
  renderRooms();
  renderRoom();
  try {
    await chat.client.request('chat/leave', { room: name }, { timeoutMs: REQUEST_TIMEOUT_MS });
  } catch (e) {
    notice(`Could not leave #${name}: ${describeError(e)}`);
  }
}

async function sendText(text) {
  const room = state.current;
  if (!room) {
    notice('Join a room first.');
    return false;
  }
  if (text.length === 0 || text.length > MAX_TEXT) {
    notice(`A message is 1 to ${MAX_TEXT} characters.`);
    return false;
  }
  // Shown as "sending" until the server confirms; the message itself then
  // arrives like everyone else's, as a chat/msg push.
  const r = state.rooms.get(room);
  const p = { text, el: null };
  if (r) {
    r.pending.push(p);
    if (state.current === room) showPending(p);
  }
  const done = () => {
    if (r) r.pending = r.pending.filter((x) => x !== p);
    if (p.el) p.el.remove();
  };
  try {
    await chat.client.request('chat/send', { room, text }, { timeoutMs: REQUEST_TIMEOUT_MS });
    done();
    return true;
  } catch (e) {
    done();
    notice(`Not sent: ${describeError(e)}`);
    return false;
  }
}

// ------------------------------------------------------------- pushes ---

function onMsg(m) {
  if (!m || typeof m.room !== 'string' || !Number.isSafeInteger(m.id)) return;
  const r = ensureRoom(m.room);
  if (r.ids.has(m.id)) {
    state.duplicates++;
    return;
  }
  r.ids.add(m.id);
  const last = r.messages.length ? r.messages[r.messages.length - 1].id : -Infinity;
  if (m.id < last) {
    state.outOfOrder++;
    const at = r.messages.findIndex((x) => x.id > m.id);
    r.messages.splice(at, 0, m);
    if (state.current === m.room) renderRoom();
    return;
  }
  r.messages.push(m);
  if (state.current === m.room) appendMessage(m);
  else {
    r.unread++;
    renderRooms();
  }
}

function onPresence(p) {
  if (!p || typeof p.room !== 'string' || typeof p.user !== 'string') return;
  const r = state.rooms.get(p.room);
  if (!r) return;
  if (p.online) r.members.add(p.user);
  else r.members.delete(p.user);
  if (state.current === p.room) renderMembers();
}

/** After the server lost our session (or evicted pushes for us): join the
 * rooms again so membership and the member lists are right. */
function rejoinAll() {
  for (const r of state.rooms.values()) {
    if (r.joined) joinRoom(r.name);
  }
  if (state.current) selectRoom(state.current);
}

// ------------------------------------------------------------ rendering ---

const BANNERS = {
  reconnecting: 'Connection lost, reconnecting… Messages you send meanwhile go out as soon as it is back.',
  offline: 'Disconnected. Reload the page to chat again.',
};

function setStatus(s) {
  state.status = s;
  state.statusHistory.push(s);
  const e = $('status');
  e.textContent = s;
  e.className = `status status-${s}`;
  $('send').disabled = s === 'offline';
  document.body.dataset.status = s;
  const b = $('banner');
  b.textContent = BANNERS[s] || '';
  b.hidden = !BANNERS[s];
  b.className = `banner banner-${s}`;
}

function renderRooms() {
  const ul = $('rooms');
  ul.replaceChildren(
    ...[...state.rooms.values()].map((r) =>
      el(
        'li',
        { class: r.name === state.current ? 'current' : '' },
        el(
          'button',
          { type: 'button', onclick: () => selectRoom(r.name), title: r.joined ? `#${r.name}` : `joining #${r.name}…` },
          el('span', {}, `#${r.name}`),
          r.unread > 0 ? el('span', { class: 'unread' }, String(r.unread)) : null,
        ),
      ),
    ),
  );
}

function renderMembers() {
  const r = state.current && state.rooms.get(state.current);
  $('members-room').textContent = r ? `#${r.name}` : '';
  const names = r ? [...r.members].sort() : [];
  $('members').replaceChildren(
    ...names.map((n) => el('li', { class: n === state.user ? 'me-member' : '' }, n === state.user ? `${n} (you)` : n)),
  );
}

/** Whether `m` continues `prev` (same author within two minutes): then
 * its name and time are not repeated. */
function continues(prev, m) {
  return !!prev && prev.from === m.from && Math.abs(m.ts - prev.ts) < 120_000;
}

function messageElement(m, prev) {
  const mine = m.from === state.user;
  const cls = ['msg', mine ? 'mine' : '', continues(prev, m) ? 'cont' : ''].filter(Boolean).join(' ');
  return el(
    'li',
    { class: cls, dataset: { id: String(m.id), room: m.room } },
    el(
      'div',
      { class: 'meta' },
      el('span', { class: 'from' }, String(m.from)),
      el('time', { datetime: isoOf(m.ts) }, timeOf(m.ts)),
    ),
    el('div', { class: 'bubble' }, String(m.text)),
  );
}

function nearBottom(list) {
  return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
}

function pendingElement(p) {
  return el('li', { class: 'pending mine', title: 'sending…' }, el('div', { class: 'meta' }, el('span', {}, 'sending…')), el('div', { class: 'bubble' }, p.text));
}

function showPending(p) {
  const list = $('messages');
  p.el = pendingElement(p);
  list.append(p.el);
  $('empty').hidden = true;
  list.scrollTop = list.scrollHeight;
}

function appendMessage(m) {
  const list = $('messages');
  const stick = nearBottom(list);
  const r = state.rooms.get(m.room);
  const prev = r && r.messages.length > 1 ? r.messages[r.messages.length - 2] : null;
  // New messages go above the ones still "sending".
  const firstPending = list.querySelector('.pending');
  list.insertBefore(messageElement(m, prev), firstPending);
  $('empty').hidden = true;
  if (stick) list.scrollTop = list.scrollHeight;
}

function renderRoom() {
  const r = state.current && state.rooms.get(state.current);
  $('room-title').textContent = r ? `#${r.name}` : 'No room';
  $('leave').hidden = !r;
  $('text').disabled = !r;
  const list = $('messages');
  list.replaceChildren(...(r ? r.messages.map((m, i) => messageElement(m, r.messages[i - 1])) : []));
  if (r) for (const p of r.pending) list.append((p.el = pendingElement(p)));
  $('empty').hidden = !!(r && (r.messages.length || r.pending.length));
  $('empty').textContent = r ? 'No messages yet. Say hello!' : 'Join a room to start chatting.';
  list.scrollTop = list.scrollHeight;
  renderMembers();
}

// ---------------------------------------------------------------- start ---

function showLogin(error) {
  $('login').hidden = false;
  $('app').hidden = true;
  const err = $('login-error');
  err.hidden = !error;
  err.textContent = error || '';
  $('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = $('login-name').value.trim();
    if (!NAME_RE.test(name)) {
      err.hidden = false;
      err.textContent = 'Use 1 to 32 letters, digits, _ or -.';
      return;
    }
    const params = new URLSearchParams(location.search);
    params.set('user', name);
    location.search = params.toString();
  });
}

function start(user) {
  state.user = user;
  $('login').hidden = true;
  $('app').hidden = false;
  $('me').hidden = false;
  $('conn').hidden = false;
  $('me-name').textContent = user;
  document.title = `${user} · evsock chat`;

  const client = new EvsockClient(`/ws?user=${encodeURIComponent(user)}`, {
    onState: (s) => setStatus(s),
    onEstablished: (info) => state.sessions.push(info),
    onGap: ({ from, to }) => {
      state.gaps.push([from, to]);
      notice(`${to - from + 1} update(s) could not be kept for you while you were away.`);
      rejoinAll();
    },
    onReset: () => {
      state.resets++;
      notice('The server no longer knew this connection; rejoining your rooms. Messages sent meanwhile may be missing.');
      rejoinAll();
    },
    onError: (e) => console.warn('evsock:', e.message),
  });
  chat.client = client;
  client.on('chat/msg', onMsg);
  client.on('chat/presence', onPresence);

  $('composer').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('text');
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    const ok = await sendText(text);
    if (!ok && input.value === '') input.value = text;
  });
  $('join-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = $('join-room');
    const name = input.value.trim().toLowerCase().replace(/^#/, '');
    if (!name) return;
    input.value = '';
    joinRoom(name);
  });
  $('leave').addEventListener('click', leaveRoom);
  // Leaving the page ends the session for good (the server frees it at
  // once instead of after the resume window); a page restored from the
  // back/forward cache starts over.
  window.addEventListener('pagehide', () => client.close());
  window.addEventListener('pageshow', (ev) => {
    if (ev.persisted) location.reload();
  });

  const room = new URLSearchParams(location.search).get('room') || 'lobby';
  renderRoom();
  joinRoom(ROOM_RE.test(room) ? room : 'lobby');
  $('text').focus();
}

const user = new URLSearchParams(location.search).get('user');
if (user && NAME_RE.test(user)) start(user);
else showLogin(user ? `"${user}" is not a valid name: use 1 to 32 letters, digits, _ or -.` : '');
