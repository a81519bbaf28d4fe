// Baseline for `npm run bench`: a raw echo that does no framing at all, `s.pipe(s)`.
import net from 'node:net';

const server = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.pipe(socket);
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
