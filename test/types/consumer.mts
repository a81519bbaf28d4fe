// Type-checked by `npm run typecheck` against the built package (the `import` condition, dist/index.d.ts):
// what an ESM TypeScript user writes must compile.
import { IdleHeartbeat, LengthPrefixedCodec, MemoryRegistry, PulsarServer, type Connection, type Registry } from 'pulsar';

const registry: Registry = new MemoryRegistry();
const server = new PulsarServer({
  codec: new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little' }),
  heartbeat: new IdleHeartbeat({ interval: 1000, idleTimeout: 5000 }),
  registry,
  handler: async (frame: Buffer, conn: Connection) => void conn.send(frame),
});
server.on('disconnect', (conn, reason, error) => void [conn.id, reason satisfies string, error?.message]);
server.on('report', ({ count, connections }) => void [count, connections[0]?.bytesIn]);
export const ready: Promise<{ address: string; port: number; family: string }> = server.listen();

// The README's first example: a handler that returns send()'s boolean must type-check.
export const readme = new PulsarServer({ port: 9000, handler: (frame, conn) => conn.send(frame) });
