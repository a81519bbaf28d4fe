// chat: every client joins the "lobby" group; a frame is broadcast to everyone else in it, encoded once.
// A frame "@<id> text" goes to one client only, by the id the server announced to it ("you are <id>").
// With --redis, several instances share the lobby and the ids through Redis (pulsar/redis): run one per
// port, and clients of different instances talk to each other.
//
// Run:  node examples/chat.mjs [port] [--redis redis://127.0.0.1:6379]     (default port 8080)
// Try:  in two terminals, `nc 127.0.0.1 8080 | xxd`; in a third, send a frame from one of them:
//       printf '\x00\x00\x00\x02hi' | nc -N 127.0.0.1 8080    -> both watchers print 00000002 6869
// Stop: Ctrl+C.
import { parseArgs } from 'node:util';
import { PulsarServer } from 'pulsar';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { redis: { type: 'string' } } });
const fleet = values.redis === undefined ? {} : (await import('pulsar/redis')).redisFleet({ url: values.redis, ttl: 1500 });

const server = new PulsarServer({
  port: Number(positionals[0] ?? 8080),
  heartbeat: false,
  ...fleet, // with --redis: the shared registry and the relay
  handler: async (frame, from) => {
    const text = frame.toString();
    const direct = /^@(\S+) ([\s\S]*)$/.exec(text);
    if (direct === null) return void lobby.broadcast(frame, { except: from });
    await server.sendTo(direct[1], `from ${from.globalId}: ${direct[2]}`).catch((error) => from.send(`${error.code}: ${error.message}`));
  },
});
const lobby = server.group('lobby');

server.on('listening', ({ address, port }) => console.log(`chat ${server.instanceId} listening on ${address}:${port}`));
server.on('connection', (conn) => {
  lobby.add(conn);
  conn.send(`you are ${conn.globalId}`);
  console.log(`${conn.remote} joined as ${conn.globalId} (${lobby.size} in the lobby here)`);
});
server.on('disconnect', (conn) => console.log(`${conn.remote} left (${lobby.size} in the lobby here)`));
server.on('error', (error) => console.log(`server error ${error.code}: ${error.message}`));
server.on('report', ({ count, fleet }) => fleet && console.log(`${count} here, ${fleet.connections} across ${fleet.instances} instance(s)`));

process.once('SIGINT', () => void server.close());
process.once('SIGTERM', () => void server.close());
await server.listen();
