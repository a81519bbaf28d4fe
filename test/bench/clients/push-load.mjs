// The client side of `npm run bench`'s push cells: `conns` PulsarClients with json() messages.
//   --to-client: counts the messages the server pushes, over all connections.
//   --to-server: each client pushes 64-byte JSON messages as fast as backpressure lets it (send() until
//                false, then 'drain'); the server's count is asked in-band ({ count: true }) at the start and
//                the end of the measured time, and the rate is its growth between the two answers.
// After `warmup` s it prints {"measuring":true}, measures `seconds` s and prints {"frames","bytes","seconds"}.
//
//   node push-load.mjs --to-client|--to-server --port P [--conns 1] [--warmup 1] [--seconds 3]
import { parseArgs } from 'node:util';
import { json, PulsarClient } from 'pulsar';
import { countReceived } from './count-received.mjs';

const { values } = parseArgs({
  options: {
    'to-client': { type: 'boolean' }, 'to-server': { type: 'boolean' },
    port: { type: 'string' }, conns: { type: 'string', default: '1' }, depth: { type: 'string' },
    warmup: { type: 'string', default: '1' }, seconds: { type: 'string', default: '3' },
  },
});
const MESSAGE = { device: 'sensor-17', temperature: 21.5, seq: 12345, unit: 'C' }; // 64 bytes as JSON
const BYTES = Buffer.byteLength(JSON.stringify(MESSAGE));
const port = Number(values.port);
const clients = [];
// Connected 100 at a time (a server already pushing to the first ones still accepts the rest).
for (let left = Number(values.conns); left > 0; left -= 100) {
  const batch = Array.from({ length: Math.min(100, left) }, () => {
    const client = new PulsarClient({ port, messages: json(), silenceTimeout: 0 });
    client.on('error', () => {});
    clients.push(client);
    return client.connect();
  });
  await Promise.all(batch);
}
const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
let stopped = false;

if (values['to-client']) {
  let received = 0;
  for (const client of clients) client.on('message', () => received++);
  await countReceived(() => received, { warmup: values.warmup, seconds: values.seconds, bytes: BYTES });
} else {
  // At most 1,024 in one turn of the event loop, as the server's pump (servers/push.mjs).
  const pump = (client) => {
    for (let i = 0; i < 1024; i++) {
      if (stopped) return;
      if (!client.send(MESSAGE)) {
        client.once('drain', () => pump(client));
        return;
      }
    }
    setImmediate(pump, client);
  };
  let answer = null;
  clients[0].on('message', (message) => answer?.(message.count));
  const count = () => new Promise((resolve) => {
    answer = (n) => resolve({ n, at: performance.now() });
    clients[0].send({ count: true });
  });
  for (const client of clients) pump(client);
  await delay(Number(values.warmup) * 1000);
  console.log(JSON.stringify({ measuring: true }));
  const first = await count();
  await delay(Number(values.seconds) * 1000);
  const last = await count();
  const frames = last.n - first.n;
  console.log(JSON.stringify({ frames, bytes: frames * BYTES, seconds: (last.at - first.at) / 1000 }));
}
stopped = true;
for (const client of clients) client.close().catch(() => {});
setTimeout(() => process.exit(0), 200).unref();
