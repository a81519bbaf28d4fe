// The client side of `npm run bench`'s stream cell: one connection reading a server → client stream of
// 64-byte JSON items, counting them.
//   --pulsar: for await (const item of client.stream(...)), the default window (16).
//   --grpc:   an @grpc/grpc-js client's server-streaming call, counting 'data' events.
// After `warmup` s it prints {"measuring":true}, measures `seconds` s and prints {"frames","bytes","seconds"}.
//
//   node stream-load.mjs --pulsar|--grpc --port P [--warmup 1] [--seconds 3]
import { parseArgs } from 'node:util';
import { json, PulsarClient } from 'pulsar';
import { countReceived } from './count-received.mjs';

const { values } = parseArgs({
  options: {
    pulsar: { type: 'boolean' }, grpc: { type: 'boolean' }, port: { type: 'string' }, window: { type: 'string' },
    conns: { type: 'string' }, depth: { type: 'string' }, warmup: { type: 'string', default: '1' }, seconds: { type: 'string', default: '3' },
  },
});
const BYTES = 64;
const port = Number(values.port);
let received = 0;
let stop;

if (values.grpc) {
  const grpc = await import('@grpc/grpc-js');
  const { service } = await import('./grpc-service.mjs');
  const Client = grpc.makeGenericClientConstructor(service, 'Bench');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const call = client.items({});
  call.on('data', () => received++);
  call.on('error', () => {});
  stop = () => {
    call.cancel();
    client.close();
  };
} else {
  const client = new PulsarClient({ port, messages: json(), rpc: true, silenceTimeout: 0 });
  client.on('error', () => {});
  await client.connect();
  const controller = new AbortController();
  (async () => {
    for await (const _ of client.stream({ items: true }, { signal: controller.signal, window: values.window === undefined ? undefined : Number(values.window) })) received++;
  })().catch(() => {});
  stop = () => {
    controller.abort();
    client.close().catch(() => {});
  };
}

await countReceived(() => received, { warmup: values.warmup, seconds: values.seconds, bytes: BYTES });
stop();
setTimeout(() => process.exit(0), 200).unref();
