// rpc-service: requests answered by id (`rpc: true`), each one validated by a zod schema: `add`, and an
// async `sleep` that stops as soon as its caller gives up (ctx.signal). Concurrent calls are answered in
// whatever order they finish, each to its own caller; a bad call is answered at once with its error code.
//
// Run:  node examples/rpc-service.mjs [port]            (default 8080)
// Try:  node examples/rpc-client.mjs [port]              (four concurrent calls, a bad one, a timeout)
// Stop: Ctrl+C.
import { setTimeout as sleep } from 'node:timers/promises';
import { PulsarServer, json } from 'pulsar';
import { z } from 'zod';

const Call = z.discriminatedUnion('op', [
  z.object({ op: z.literal('add'), a: z.number(), b: z.number() }),
  z.object({ op: z.literal('sleep'), ms: z.number().int().min(0).max(60_000) }),
]);

const server = new PulsarServer({
  port: Number(process.argv[2] ?? 8080),
  messages: json({ schema: Call }),
  rpc: true,
  handler: async (call, conn, ctx) => {
    if (call.op === 'add') return { sum: call.a + call.b };
    await sleep(call.ms, undefined, { signal: ctx.signal }); // rejects when the caller cancels: no reply then
    return { slept: call.ms };
  },
});

server.on('listening', ({ address, port }) => console.log(`rpc-service listening on ${address}:${port}`));
server.on('clientError', (error) => console.log(`${error.code}: ${error.message}`));
process.once('SIGINT', () => void server.close());
process.once('SIGTERM', () => void server.close());
await server.listen();
