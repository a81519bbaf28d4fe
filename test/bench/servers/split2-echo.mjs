// A line echo built the obvious way on the npm peer, split2: pipe the socket through it and write each
// line back with its newline. For `npm run bench`.
import net from 'node:net';
import split2 from 'split2';

const server = net.createServer((socket) => {
  socket.on('error', () => {});
  socket.pipe(split2()).on('data', (line) => socket.write(`${line}\n`));
});
server.listen(0, '127.0.0.1', () => console.log(JSON.stringify({ port: server.address().port })));
process.on('SIGTERM', () => process.exit(0));
