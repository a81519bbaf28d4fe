// The server under soak (`npm run soak`): an echo with heartbeats, an idle timeout, a 64 KiB frame limit,
// tight memory limits and a broadcast feed, in its own process so its memory is its own. It answers the driver over IPC:
// `stats` → its counters and memory (after a full GC, so figures show what is still referenced), and
// `close` → a graceful close, its result, then exit.
import { IdleHeartbeat, LengthPrefixedCodec, PulsarServer } from 'pulsar';

// A frame `SUBSCRIBE` joins the feed: a numbered 16 KiB frame broadcast to every subscriber every 10 ms.
const SUBSCRIBE = Buffer.from('SUBSCRIBE');
const FEED_BYTES = 16 * 1024;
const subscribers = new Set();

const server = new PulsarServer({
  port: 0,
  codec: new LengthPrefixedCodec({ maxFrameLength: 64 * 1024 }),
  heartbeat: new IdleHeartbeat({ interval: 1000, idleTimeout: 4000 }),
  reportInterval: 5000,
  shutdownTimeout: 5000,
  // Tight limits, so that every attacker meets one within seconds.
  maxBufferedBytes: 64 * 1024 * 1024,
  frameTimeout: 2000,
  maxPendingOutput: 2 * 1024 * 1024,
  writeTimeout: 1000,
  handler: (frame, conn) => {
    if (frame.equals(SUBSCRIBE)) subscribers.add(conn);
    conn.send(frame);
  },
});

const totals = { accepted: 0, framesIn: 0, framesOut: 0, heartbeats: 0, feed: 0, peak: 0, reports: 0 };
let feedSeq = 0;
const feed = setInterval(() => {
  const payload = Buffer.alloc(FEED_BYTES, feedSeq & 0xff);
  payload.write('FEED', 0);
  payload.writeUInt32BE(feedSeq++, 4);
  for (const conn of subscribers) {
    if (conn.state !== 'open') continue;
    conn.send(payload);
    totals.feed++;
  }
}, 10);
server.on('disconnect', (conn) => subscribers.delete(conn));

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
  const peakRss = process.resourceUsage().maxRSS * 1024;
  return { ...totals, framesIn, framesOut, connections: server.connections.size, errors, rss, heapUsed, arrayBuffers, peakRss, bufferedBytes: server.bufferedBytes };
}

process.on('message', async (message) => {
  if (message === 'stats') process.send({ stats: await stats() });
  if (message === 'close') {
    clearInterval(feed);
    const result = await server.close();
    process.send({ closed: result, stats: await stats() }, () => process.exit(0));
  }
});

const { port } = await server.listen();
process.send({ port });
