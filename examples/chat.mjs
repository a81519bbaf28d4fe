// chat: a custom handler that relays each frame to every other connection, found through the registry.
//
// Run:  node examples/chat.mjs [port]            (default 8080)
// Try:  in two terminals, `nc 127.0.0.1 8080 | xxd`; in a third, send a frame from one of them:
//       printf '\x00\x00\x00\x02hi' | nc -N 127.0.0.1 8080    -> both watchers print 00000002 6869
// Stop: Ctrl+C.
import { MemoryRegistry, PulsarServer } from 'pulsar';

const registry = new MemoryRegistry();
const server = new PulsarServer({
  port: Number(process.argv[2] ?? 8080),
  registry,
  handler: (frame, from) => {
    for (const conn of registry) {
      if (conn !== from && conn.state === 'open') conn.send(frame);
    }
  },
});

server.on('listening', ({ address, port }) => console.log(`chat listening on ${address}:${port}`));
server.on('connection', (conn) => console.log(`${conn.remote} joined (${registry.size} in the room)`));
server.on('disconnect', (conn) => console.log(`${conn.remote} left (${registry.size} in the room)`));
server.on('frame', (frame, conn) => console.log(`${conn.remote} says ${frame.length} byte(s) to ${registry.size - 1} other(s)`));

process.once('SIGINT', () => void server.close());
await server.listen();
