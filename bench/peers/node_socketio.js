// Peer: Node socket.io broadcast over the websocket transport. Every "pub" event is
// re-emitted as "msg" to every other connected client.
'use strict';
const { Server } = require('socket.io');

const port = Number(process.argv[2] || 9002);
const io = new Server({ transports: ['websocket'], perMessageDeflate: false, serveClient: false });
io.on('connection', (socket) => {
  socket.on('pub', (data) => socket.broadcast.emit('msg', data));
});
io.listen(port);
console.log(`node-socketio listening on ${port}`);
