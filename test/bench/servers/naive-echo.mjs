// Baseline for `npm run bench`: a framed echo written the usual way, `Buffer.concat` per chunk and one
// `write` per frame.
import net from 'node:net';

const server = net.createServer((socket) => {
  let pending = Buffer.alloc(0);
  socket.on('error', () => {});
  socket.on('data', (chunk) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const length = pending.readUInt32BE(0);
      if (pending.length < 4 + length) break;
      const payload = pending.subarray(4, 4 + length);
      const header = Buffer.alloc(4);
      header.writeUInt32BE(length);
      socket.write(Buffer.concat([header, payload]));
      pending = pending.subarray(4 + length);
    }
  });
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
