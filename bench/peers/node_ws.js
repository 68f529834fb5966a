// Peer: Node `ws` broadcast. Subscribers connect to /sub, the publisher to /pub;
// every publisher message is sent to every subscriber as it arrives.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 9001);
const subs = new Set();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, backlog: 4096 });
wss.on('connection', (ws, req) => {
  if (req.url === '/pub') {
    ws.on('message', (data, isBinary) => {
      for (const s of subs) s.send(data, { binary: isBinary });
    });
    return;
  }
  subs.add(ws);
  ws.on('close', () => subs.delete(ws));
});
wss.on('listening', () => console.log(`node-ws listening on ${port}`));
