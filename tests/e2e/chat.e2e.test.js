// End-to-end: the chat demo in headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core) against the Rust host, per docs/chat-demo.md.
//
// alice and bob join lobby and talk; bob's TCP connection is cut with
// /test/drop (no close frame) and, while his page cannot reconnect, alice
// sends more; bob's client reconnects by itself (backoff with jitter),
// resumes the same session, and must show every message exactly once, in
// order, with #status having gone reconnecting -> online.
//
// EVSOCK_E2E_SERVER=rust (default) builds and runs target/release/evsock-chat;
// EVSOCK_E2E_SERVER=standin runs the JavaScript stand-in next to this file.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const shots = join(here, 'screenshots');
const which = process.env.EVSOCK_E2E_SERVER || 'rust';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT = 20_000;

let server = null;
let serverOutput = '';
let browser = null;
let base = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startServer(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    server = child;
    const timer = setTimeout(() => reject(new Error(`${cmd} did not print "chat listening on" within 20 s:\n${serverOutput}`)), 20_000);
    const onData = (chunk) => {
      serverOutput += chunk;
      const m = /chat listening on (http:\/\/\S+)/.exec(serverOutput);
      if (m) {
        clearTimeout(timer);
        resolve(m[1].replace(/\/?$/, ''));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (c) => (serverOutput += c));
    child.once('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${cmd} exited early (code ${code}, signal ${sig}):\n${serverOutput}`));
    });
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function stopServer() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const gone = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const t = setTimeout(() => server.kill('SIGKILL'), 3000);
  await gone;
  clearTimeout(t);
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium (scripts/test-browser.sh does it)`);
  const port = await freePort();
  if (which === 'standin') {
    base = await startServer(process.execPath, [join(here, 'standin-server.js'), '--addr', `127.0.0.1:${port}`, '--test-hooks']);
  } else {
    const build = spawnSync('cargo', ['build', '--release', '-p', 'evsock-chat'], { cwd: root, encoding: 'utf8' });
    assert.equal(build.status, 0, `cargo build --release -p evsock-chat failed:\n${(build.stderr || '').slice(-4000)}`);
    const targetDir = process.env.CARGO_TARGET_DIR || join(root, 'target');
    base = await startServer(join(targetDir, 'release', 'evsock-chat'), ['--addr', `127.0.0.1:${port}`, '--test-hooks']);
  }
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  await stopServer();
});

/** Records every text #status shows, from the first paint on, and counts
 * WebSocket connection attempts. */
const RECORD_STATUS = () => {
  window.__statusLog = [];
  window.__wsAttempts = 0;
  const Native = window.WebSocket;
  window.WebSocket = new Proxy(Native, {
    construct(target, args) {
      window.__wsAttempts++;
      window.__lastWs = Reflect.construct(target, args);
      return window.__lastWs;
    },
  });
  const hook = () => {
    const el = document.getElementById('status');
    if (!el) return;
    window.__statusLog.push(el.textContent);
    new MutationObserver(() => window.__statusLog.push(el.textContent)).observe(el, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  };
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', hook);
  else hook();
};

async function openChat(user) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  await page.addInitScript(RECORD_STATUS);
  await page.goto(`${base}/?user=${user}`);
  await page.waitForFunction(() => document.getElementById('status').textContent === 'online', null, { timeout: WAIT });
  await page.waitForFunction(
    () => {
      const r = window.evsockChat && window.evsockChat.state.rooms.get('lobby');
      return r && r.joined;
    },
    null,
    { timeout: WAIT },
  );
  return { page, context, problems };
}

async function say(page, text) {
  await page.fill('#text', text);
  await page.press('#text', 'Enter');
}

/** The lobby messages the page shows, in DOM order. */
function shown(page) {
  return page.$$eval('#messages .msg[data-room="lobby"]', (els) =>
    els.map((e) => ({ id: Number(e.dataset.id), from: e.querySelector('.from').textContent, text: e.querySelector('.bubble').textContent })),
  );
}

async function waitForCount(page, n) {
  await page.waitForFunction((n) => document.querySelectorAll('#messages .msg[data-room="lobby"]').length >= n, n, { timeout: WAIT });
}

test(`chat end to end in Chromium against the ${which} host`, { timeout: 180_000 }, async () => {
  const alice = await openChat('alice');
  const bob = await openChat('bob');
  const tag = `run-${Date.now().toString(36)}`;

  // Both see each other online in the lobby.
  await alice.page.waitForFunction(() => window.evsockChat.state.rooms.get('lobby').members.has('bob'), null, { timeout: WAIT });

  // A short conversation, typed into the page.
  const before = (await shown(bob.page)).length;
  await say(alice.page, `${tag} hello bob`);
  await waitForCount(bob.page, before + 1);
  await say(bob.page, `${tag} hi alice`);
  await waitForCount(alice.page, before + 2);
  await say(alice.page, `${tag} how are you?`);
  await waitForCount(bob.page, before + 3);

  // Chromium offers permessage-deflate on every connection and the Rust host
  // accepts it; a message above the compression threshold (256 bytes) then
  // crosses compressed both ways and must arrive intact.
  const extra = which === 'rust' ? 1 : 0;
  let long = '';
  if (extra) {
    for (const p of [alice.page, bob.page]) {
      const ext = await p.evaluate(() => window.__lastWs.extensions);
      assert.match(ext, /^permessage-deflate/, `negotiated extensions: '${ext}'`);
    }
    long = `${tag} ` + Array.from({ length: 120 }, (_, i) => `wörd${i} 🙂`).join(' ');
    await say(alice.page, long);
    await waitForCount(bob.page, before + 4);
    const last = (await shown(bob.page)).at(-1);
    assert.equal(last.text, long, 'the long compressed message arrived intact');
  }

  // Cut bob's TCP connection, and keep his page off the network so that
  // alice's next messages surely happen while he is away.
  const bobSession = await bob.page.evaluate(() => window.evsockChat.client.sessionId);
  await bob.context.setOffline(true);
  const drop = await fetch(`${base}/test/drop?user=bob`);
  assert.equal(drop.status, 200);
  const dropped = await drop.text();
  assert.match(dropped, /^dropped [1-9]\d*/, `the drop hook closed bob's connection: ${dropped}`);
  await bob.page.waitForFunction(() => document.getElementById('status').textContent === 'reconnecting', null, { timeout: WAIT });
  const attemptsAtDrop = await bob.page.evaluate(() => window.__wsAttempts);

  const away = [];
  for (let i = 1; i <= 6; i++) away.push(`${tag} while you were away ${i}`);
  const ids = await alice.page.evaluate(async (texts) => {
    const c = window.evsockChat.client;
    const out = [];
    for (const text of texts) out.push((await c.request('chat/send', { room: 'lobby', text })).id);
    return out;
  }, away);
  assert.equal(ids.length, 6);
  assert.equal(await bob.page.evaluate(() => window.evsockChat.state.status), 'reconnecting', 'bob was away while alice sent');

  // Bob's client keeps retrying with backoff while offline (attempts fail).
  await bob.page.waitForFunction((n) => window.__wsAttempts >= n + 2, attemptsAtDrop, { timeout: WAIT });
  // Let bob back on the network; his client reconnects by itself.
  await bob.context.setOffline(false);
  await bob.page.waitForFunction(() => document.getElementById('status').textContent === 'online', null, { timeout: 45_000 });
  await waitForCount(bob.page, before + 3 + extra + away.length);
  // Give any duplicate a chance to show up before counting.
  await bob.page.waitForTimeout(500);

  // And bob can talk again.
  await say(bob.page, `${tag} back again`);
  await waitForCount(alice.page, before + 3 + extra + away.length + 1);
  await waitForCount(bob.page, before + 3 + extra + away.length + 1);

  const a = await shown(alice.page);
  const b = await shown(bob.page);
  const expected = [
    ['alice', `${tag} hello bob`],
    ['bob', `${tag} hi alice`],
    ['alice', `${tag} how are you?`],
    ...(extra ? [['alice', long]] : []),
    ...away.map((t) => ['alice', t]),
    ['bob', `${tag} back again`],
  ];
  for (const [who, list] of [
    ['alice', a],
    ['bob', b],
  ]) {
    const mine = list.filter((m) => m.text.startsWith(tag));
    assert.deepEqual(
      mine.map((m) => [m.from, m.text]),
      expected,
      `${who}'s page shows every message exactly once, in order`,
    );
    const idsShown = list.map((m) => m.id);
    assert.equal(new Set(idsShown).size, idsShown.length, `${who}: no message id twice`);
    assert.deepEqual([...idsShown].sort((x, y) => x - y), idsShown, `${who}: ids in increasing order`);
  }
  assert.deepEqual(b.map((m) => m.id), a.map((m) => m.id), 'both pages show the same messages');
  for (const id of ids) assert.ok(b.some((m) => m.id === id), `bob shows message ${id}`);

  const bobState = await bob.page.evaluate(() => {
    const s = window.evsockChat.state;
    return { duplicates: s.duplicates, outOfOrder: s.outOfOrder, gaps: s.gaps, resets: s.resets, sessions: s.sessions, sid: window.evsockChat.client.sessionId, log: window.__statusLog };
  });
  assert.equal(bobState.duplicates, 0, 'no duplicate delivered to bob');
  assert.equal(bobState.outOfOrder, 0, 'nothing delivered out of order');
  assert.deepEqual(bobState.gaps, [], 'no gap');
  assert.equal(bobState.resets, 0, 'no reset');
  assert.equal(bobState.sid, bobSession, 'bob kept his session');
  assert.deepEqual(bobState.sessions.at(-1), { sessionId: bobSession, resumed: true }, 'the last handshake resumed');
  const log = bobState.log;
  const firstOnline = log.indexOf('online');
  const rec = log.indexOf('reconnecting', firstOnline);
  assert.ok(firstOnline >= 0 && rec > firstOnline, `#status went online then reconnecting: ${log}`);
  assert.ok(log.indexOf('online', rec) > rec, `#status came back online: ${log}`);
  assert.equal(log.at(-1), 'online');
  assert.ok(!log.includes('offline'), `never offline: ${log}`);

  mkdirSync(shots, { recursive: true });
  await bob.page.screenshot({ path: join(shots, 'bob.png') });
  await alice.page.screenshot({ path: join(shots, 'alice.png') });
  assert.deepEqual(alice.problems, [], 'no errors in alice\'s page');
  assert.deepEqual(
    bob.problems.filter((p) => !/WebSocket|ERR_INTERNET_DISCONNECTED|net::/.test(p)),
    [],
    'no errors in bob\'s page (besides the failed reconnects while offline)',
  );
  await alice.context.close();
  await bob.context.close();
});
