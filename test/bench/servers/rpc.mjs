// The server side of `npm run bench`'s rpc cell: one request type, { a, b } answered with { sum }.
//   --json       pulsar: messages: json(), rpc: true, the handler's return value is the reply
//   --msgpack    the same with msgpack() from pulsar/msgpack
//   --contract   json() with a contract (zod input and output schemas, validated both ways) and a hello:
//                the client's call('add', …) against the same load
//   --by-hand    the same load hand-rolled on pulsar's raw frames: a 4-byte request id, then JSON
//   --socket.io  socket.io 4, websocket transport only: socket.on('add', (m, ack) => ack({ sum }))
import { createServer } from 'node:http';

const kind = process.argv[2];
const add = (m) => ({ sum: m.a + m.b });
let port;
if (kind === '--socket.io') {
  const { Server } = await import('socket.io');
  const http = createServer();
  const io = new Server(http, { transports: ['websocket'], serveClient: false });
  io.on('connection', (socket) => socket.on('add', (m, ack) => ack(add(m))));
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve));
  port = http.address().port;
} else {
  const { PulsarServer, json } = await import('pulsar');
  const options = kind === '--by-hand'
    ? {
      handler: (frame, conn) => {
        const reply = Buffer.from(JSON.stringify(add(JSON.parse(frame.toString('utf8', 4)))));
        const out = Buffer.allocUnsafe(4 + reply.length);
        frame.copy(out, 0, 0, 4);
        reply.copy(out, 4);
        conn.send(out);
      },
    }
    : kind === '--contract'
      ? { messages: json(), contract: (await import('../contract.mjs')).calculator, routes: { add }, hello: { handler: () => ({ ok: true }) } }
      : { messages: kind === '--msgpack' ? (await import('pulsar/msgpack')).msgpack() : json(), rpc: true, handler: add };
  const server = new PulsarServer({ port: 0, ...options });
  server.on('clientError', () => {});
  port = (await server.listen()).port;
}
console.log(JSON.stringify({ port }));
