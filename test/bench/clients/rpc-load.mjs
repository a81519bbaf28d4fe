// The client side of `npm run bench`'s rpc cell: one connection keeping `depth` requests { a, b } in
// flight, each answer checked ({ sum: a + b }) and replaced by a new request. After `warmup` s it prints
// {"measuring":true}, counts for `seconds` s and prints {"frames","bytes","seconds","p50_us","p99_us"}
// (frames: requests answered; bytes: 0, not measured). Exit status 1 on a wrong answer.
//
//   node rpc-load.mjs --json|--msgpack|--contract|--by-hand|--socket.io --port P [--depth 64] [--warmup 1] [--seconds 3]
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean' }, msgpack: { type: 'boolean' }, 'by-hand': { type: 'boolean' }, 'socket.io': { type: 'boolean' }, contract: { type: 'boolean' },
    port: { type: 'string' }, depth: { type: 'string', default: '64' }, warmup: { type: 'string', default: '1' }, seconds: { type: 'string', default: '3' },
  },
});
const port = Number(values.port);
const depth = Number(values.depth);

/** Sends one request and resolves with its answer, for each system. */
async function connect() {
  if (values['socket.io']) {
    const { io } = await import('socket.io-client');
    const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'] });
    await new Promise((resolve) => socket.once('connect', resolve));
    return (m) => socket.emitWithAck('add', m);
  }
  const { PulsarClient, json } = await import('pulsar');
  if (values['by-hand']) {
    // What an application writes on raw frames: its own ids, its own table of pending calls.
    const client = new PulsarClient({ port, requestTimeout: 0 });
    await client.connect();
    const pending = new Map();
    let nextId = 0;
    client.on('frame', (frame) => {
      const id = frame.readUInt32BE(0);
      const resolve = pending.get(id);
      pending.delete(id);
      resolve(JSON.parse(frame.toString('utf8', 4)));
    });
    return (m) => new Promise((resolve) => {
      const id = nextId++ >>> 0;
      const body = Buffer.from(JSON.stringify(m));
      const frame = Buffer.allocUnsafe(4 + body.length);
      frame.writeUInt32BE(id, 0);
      body.copy(frame, 4);
      pending.set(id, resolve);
      client.send(frame);
    });
  }
  if (values.contract) {
    const { calculator } = await import('../contract.mjs');
    const client = new PulsarClient({ port, messages: json(), contract: calculator, hello: {} });
    await client.connect();
    return (m) => client.call('add', m);
  }
  const messages = values.msgpack ? (await import('pulsar/msgpack')).msgpack() : json();
  const client = new PulsarClient({ port, messages, rpc: true });
  await client.connect();
  return (m) => client.request(m);
}

const call = await connect();
let measuring = false;
let answered = 0;
const latencies = [];
let stop = false;
async function lane(lane) {
  for (let i = 0; !stop; i++) {
    const a = lane * 1_000_000 + i;
    const started = measuring ? performance.now() : 0;
    const answer = await call({ a, b: 7 });
    if (answer?.sum !== a + 7) {
      console.error(`rpc-load: wrong answer ${JSON.stringify(answer)} to { a: ${a}, b: 7 }`);
      process.exit(1);
    }
    if (measuring && started > 0) {
      answered++;
      if (latencies.length < 1_000_000) latencies.push(performance.now() - started);
    }
  }
}
const lanes = Array.from({ length: depth }, (_, i) => lane(i));
setTimeout(() => {
  measuring = true;
  console.log(JSON.stringify({ measuring: true }));
  const from = performance.now();
  setTimeout(() => {
    measuring = false;
    const seconds = (performance.now() - from) / 1000;
    latencies.sort((x, y) => x - y);
    const at = (q) => Math.round(latencies[Math.floor(q * (latencies.length - 1))] * 1000);
    console.log(JSON.stringify({ frames: answered, bytes: 0, seconds, p50_us: at(0.5), p99_us: at(0.99) }));
    stop = true;
    Promise.allSettled(lanes).finally(() => process.exit(0));
  }, Number(values.seconds) * 1000);
}, Number(values.warmup) * 1000);
