// A long stream to a slow consumer (SPEC section 18): what the producer holds, measured. A producer process
// streams `--mib` MiB (1 GiB by default) of JSON items of `--item` bytes (64 KiB) from an endless async
// generator; this process reads them at `--rate` bytes/s (1 MiB/s), one item at a time, and samples the
// producer every second: the memory it still holds after a full garbage collection (V8 heap + buffers), its
// RSS, and the bytes its connection holds (pendingBytes + bufferedBytes).
// The bound to hold: window × item size in the producer's own buffers, whatever the consumer's speed; the
// kernel's socket buffers come on top (they are not in the process).
//
//   npm run bench:stream-memory [-- --mib 1024 --rate 1048576 --item 65536 --window 16]
//
// At the defaults this runs for 1,024 s; EVERY_SECOND=1 prints every sample, not one a minute. Linux only (/proc).
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { json, PulsarClient, PulsarServer } from 'pulsar';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '1024' }, rate: { type: 'string', default: String(1024 * 1024) },
    item: { type: 'string', default: String(64 * 1024) }, window: { type: 'string', default: '16' }, producer: { type: 'boolean' },
  },
});
const ITEM = Number(values.item);

if (values.producer) {
  // The producer: the same item object each time (its encoding is what is held), as fast as credit allows.
  const item = { pad: 'x'.repeat(ITEM - 12) };
  let conn;
  const server = new PulsarServer({
    port: 0, host: '127.0.0.1', messages: json(), rpc: true, heartbeat: false, reportInterval: false,
    handler: async function* () {
      for (;;) yield item;
    },
  });
  server.on('connection', (c) => (conn = c));
  const { port } = await server.listen();
  process.send({ port });
  process.on('message', () => {
    const held = conn ? conn.pendingBytes + conn.bufferedBytes : 0; // before the collection: what the connection has now
    globalThis.gc(); // what is live, not what is garbage yet
    const memory = process.memoryUsage();
    process.send({ live: memory.heapUsed + memory.external, rss: memory.rss, heap: memory.heapUsed, external: memory.external, held });
  });
} else {
  const total = Number(values.mib) * 1024 * 1024;
  const rate = Number(values.rate);
  const window = Number(values.window);
  const child = fork(fileURLToPath(import.meta.url), ['--producer', '--item', String(ITEM)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--expose-gc'] });
  const { port } = await new Promise((resolve) => child.once('message', resolve));
  const sample = () => new Promise((resolve) => {
    child.once('message', resolve);
    child.send('sample');
  });
  const client = new PulsarClient({ port, messages: json(), rpc: true, silenceTimeout: 0 });
  await client.connect();
  await client.request('warm up').catch(() => {}); // the connection made and used once: its own cost is not the stream's
  const before = await sample();
  const peak = { live: 0, rss: 0, heap: 0, external: 0, held: 0 };
  const started = performance.now();
  let read = 0;
  let nextSample = started + 1000;
  console.log(`streaming ${values.mib} MiB in items of ${ITEM} B at ${rate} B/s, window ${window}: about ${Math.round(total / rate)} s`);
  for await (const item of client.stream(null, { window })) {
    read += ITEM;
    if (read >= total) break;
    // Read at `rate`: the next item when its time has come.
    const due = started + (read / rate) * 1000;
    const now = performance.now();
    if (now < due) await new Promise((resolve) => setTimeout(resolve, due - now));
    if (performance.now() >= nextSample) {
      nextSample += 1000;
      const s = await sample();
      for (const key of Object.keys(peak)) peak[key] = Math.max(peak[key], s[key]);
      if (process.env.EVERY_SECOND || Math.round((performance.now() - started) / 1000) % 60 === 0) console.log(`${(read / 1048576).toFixed(0)} MiB read, producer live ${((s.live - before.live) / 1048576).toFixed(2)} MiB over its start, RSS ${(s.rss / 1048576).toFixed(1)} MiB, connection held ${s.held} B`);
    }
    if (item.pad.length !== ITEM - 12) throw new Error('a broken item');
  }
  const seconds = (performance.now() - started) / 1000;
  const mib = (n) => `${(n / 1048576).toFixed(2)} MiB`;
  console.log(JSON.stringify({ read, seconds, before, peak }));
  console.log(`read ${mib(read)} in ${seconds.toFixed(0)} s (${mib(read / seconds)}/s)`);
  console.log(`producer: live memory (heap + buffers, after GC) ${mib(before.live)} before, peak ${mib(peak.live)}: +${mib(peak.live - before.live)} held for the stream`);
  console.log(`producer: RSS ${mib(before.rss)} before, peak ${mib(peak.rss)} (+${mib(peak.rss - before.rss)}, garbage and allocator slack included)`);
  console.log(`producer's connection held at most ${peak.held} B (pendingBytes + bufferedBytes); window × item size = ${window * ITEM} B`);
  await client.close();
  child.kill();
}
