#!/usr/bin/env node
// Echo server built on the `ws` library, used as a peer for evsock's client
// role. Usage: node_server.js HOST PORT
// Text is echoed as text and binary as binary; ws answers a close frame with
// the same code. The "chat" subprotocol is selected when offered. Prints
// "ready" once listening.
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
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  handleProtocols: (offered) => (offered.has('chat') ? 'chat' : false),
});

wss.on('listening', () => console.log('ready'));
wss.on('error', (err) => {
  console.error(`node_server: ${err.message}`);
  process.exit(1);
});
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // protocol errors close the socket; nothing to do
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => wss.close(() => process.exit(0)));
}
