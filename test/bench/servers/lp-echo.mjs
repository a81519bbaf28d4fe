// A varint-framed echo built the obvious way on the npm peer, it-length-prefixed: decode the socket's
// stream into frames, encode each answer, one write per frame. For `npm run bench`.
import * as lp from 'it-length-prefixed';
import net from 'node:net';

const server = net.createServer(async (socket) => {
  socket.on('error', () => {});
  try {
    for await (const frame of lp.decode(socket)) socket.write(lp.encode.single(frame).subarray());
  } catch {
    socket.destroy();
  }
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => process.exit(0));
