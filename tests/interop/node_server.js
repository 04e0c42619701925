#!/usr/bin/env node
// Echo server built on the `ws` library, used as a peer for evsock's client
// role. Usage: node_server.js HOST PORT
// Text is echoed as text and binary as binary; ws answers a close frame with
// the same code. The "chat" subprotocol is selected when offered. Prints
// "ready" once listening. With INTEROP_DEFLATE=1 it accepts
// permessage-deflate (threshold 0: every message compressed) and closes any
// connection that did not negotiate it with code 4000.
'use strict';
const { WebSocketServer } = require('ws');

const [host, port] = process.argv.slice(2);
if (!host || !port) {
  console.error('usage: node_server.js HOST PORT');
  process.exit(2);
}

const wss = new WebSocketServer({
  host,
  port: Number(port),
  perMessageDeflate: process.env.INTEROP_DEFLATE === '1' ? { threshold: 0 } : false,
  maxPayload: 64 * 1024 * 1024,
  handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false),
});

wss.on('listening', () => console.log('ready'));
wss.on('error', (err) => {
  console.error(`node_server: ${err.message}`);
  process.exit(1);
});
wss.on('connection', (ws) => {
  if (process.env.INTEROP_DEFLATE === '1' && !(ws.extensions || '').startsWith('permessage-deflate')) {
    ws.close(4000, 'permessage-deflate was not negotiated');
    return;
  }
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // protocol errors close the socket; nothing to do
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => wss.close(() => process.exit(0)));
}
