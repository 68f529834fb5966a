// Peer: uWebSockets.js pub/sub broadcast. Subscribers on /sub join topic "bench";
// the publisher's messages on /pub are published to that topic.
'use strict';
// The package silently falls back to a `ws` shim when its native binary does not load:
// refuse that, so the figures are always uWebSockets' own.
const uWS = require('@trufflesuite/uws-js-unofficial');

if (typeof uWS.H3App !== 'function') {
  throw new Error('the native uWebSockets.js binding is required (no ws fallback)');
}
const port = Number(process.argv[2] || 9003);
const app = uWS.App();
const behaviour = (isPub) => ({
  compression: uWS.DISABLED,
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 64 * 1024 * 1024,
  idleTimeout: 0,
  open: (ws) => { if (!isPub) ws.subscribe('bench'); },
  message: (ws, message, isBinary) => { if (isPub) app.publish('bench', message, isBinary); },
});
app.ws('/sub', behaviour(false));
app.ws('/pub', behaviour(true));
app.listen('127.0.0.1', port, (token) => {
  if (!token) { console.error(`uws: cannot listen on ${port}`); process.exit(1); }
  console.log(`node-uws listening on ${port}`);
});
