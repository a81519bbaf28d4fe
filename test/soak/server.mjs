// The server under soak (`npm run soak`): pulsar's default echo with heartbeats, an idle timeout and a
// 64 KiB frame limit, in its own process so its memory is its own. It answers the driver over IPC:
// `stats` → its counters and memory (after a full GC, so figures show what is still referenced), and
// `close` → a graceful close, its result, then exit.
import { IdleHeartbeat, LengthPrefixedCodec, PulsarServer } from 'pulsar';

const server = new PulsarServer({
  port: 0,
  codec: new LengthPrefixedCodec({ maxFrameLength: 64 * 1024 }),
  heartbeat: new IdleHeartbeat({ interval: 1000, idleTimeout: 4000 }),
  reportInterval: 5000,
  shutdownTimeout: 5000,
});

const totals = { accepted: 0, framesIn: 0, framesOut: 0, heartbeats: 0, peak: 0, reports: 0 };
const errors = {};
server.on('connection', () => {
  totals.accepted++;
  totals.peak = Math.max(totals.peak, server.connections.size);
});
server.on('disconnect', (conn) => {
  totals.framesIn += conn.framesIn;
  totals.framesOut += conn.framesOut;
});
server.on('heartbeat', () => totals.heartbeats++);
server.on('report', () => totals.reports++);
server.on('clientError', (error) => (errors[error.code] = (errors[error.code] ?? 0) + 1));
server.on('error', (error) => (errors[`server ${error.code}`] = (errors[`server ${error.code}`] ?? 0) + 1));

async function stats() {
  // Two passes a macrotask apart: V8 frees Buffer memory after a collection, not during it.
  globalThis.gc();
  await new Promise(setImmediate);
  globalThis.gc();
  let framesIn = totals.framesIn;
  let framesOut = totals.framesOut;
  for (const conn of server.connections.values()) {
    framesIn += conn.framesIn;
    framesOut += conn.framesOut;
  }
  const { rss, heapUsed, arrayBuffers } = process.memoryUsage();
  return { ...totals, framesIn, framesOut, connections: server.connections.size, errors, rss, heapUsed, arrayBuffers };
}

process.on('message', async (message) => {
  if (message === 'stats') process.send({ stats: await stats() });
  if (message === 'close') {
    const result = await server.close();
    process.send({ closed: result, stats: await stats() }, () => process.exit(0));
  }
});

const { port } = await server.listen();
process.send({ port });
