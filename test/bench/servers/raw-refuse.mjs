// Baseline for the refusal cell of `npm run bench`: a raw `net` server that destroys every socket it accepts.
import net from 'node:net';

const server = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.destroy();
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
