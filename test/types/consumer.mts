// Type-checked by `npm run typecheck` against the built package (the `import` condition, dist/index.d.ts):
// what an ESM TypeScript user writes must compile.
import { closeOnSignals, IdleHeartbeat, LengthPrefixedCodec, MemoryRegistry, PulsarClient, PulsarServer, type Connection, type Readiness, type Registry } from 'pulsar';
import { PulsarMetrics, serveMetrics, type MetricsEndpoint } from 'pulsar/metrics';
import { Registry as PromRegistry } from 'prom-client';

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

// The client, as the README's Client section uses it.
const client = new PulsarClient({ port: 8080, silenceTimeout: 15000, reconnect: { maxDelay: 5000 } });
client.on('reconnecting', ({ attempt, delay }) => void [attempt + delay]);
export const answer: Promise<Buffer> = client.connect().then(() => client.request('ping'));
export async function drain(): Promise<string[]> {
  const seen: string[] = [];
  for await (const frame of client) seen.push(String(frame));
  return seen;
}

// The README's Metrics section: pulsar's series in the application's own prom-client registry, and the
// clientError event typed precisely (its code is there without a cast).
const metrics = new PulsarMetrics(server, { registry: new PromRegistry() });
export const endpoint: Promise<MetricsEndpoint> = serveMetrics(() => metrics.registry.metrics(), { port: 9464 });
server.on('clientError', (error) => void [error.code satisfies string, server.bufferedBytes, server.stats().framesIn]);

// The codec family and the conformance suite, as the README's Codecs section uses them.
import { DelimiterCodec, LineCodec, VarintCodec, type FrameCodec } from 'pulsar';
import { codecConformance, type ConformanceCheck } from 'pulsar/testing';
const codecs: FrameCodec[] = [
  new VarintCodec({ maxFrameLength: 1 << 20, onTooLong: 'discard' }),
  new LineCodec(),
  new DelimiterCodec({ delimiter: '\0' }),
  new LengthPrefixedCodec({ lengthFieldOffset: 1, lengthFieldLength: 3, lengthAdjustment: -4, initialBytesToStrip: 0 }),
];
export const checks: ConformanceCheck[] = codecConformance({
  name: 'lines', codec: codecs[1]!, overhead: 2,
  reference: { frame: (body) => ({ wire: Buffer.concat([body, Buffer.from('\n')]), frame: Buffer.from(body) }), parse: () => ({ items: [], end: 'clean' }) },
});

// This round's options and surfaces, as a consumer sees their types.
const operated = new PulsarServer({ rateLimit: { frames: 1000, bytes: 1 << 20 }, onRateLimit: 'close', connectionRate: { count: 20, interval: 10_000 }, drainDelay: 5000, tls: () => ({}) });
const readiness: Readiness = operated.readiness;
const dropped: number = operated.stats().framesDropped + [...operated.connections.values()].reduce((n, c) => n + c.framesDropped, 0);
const delivered: Promise<boolean> = operated.sendTo('instance/1', 'x');
closeOnSignals(operated, { onClosed: ({ drained }) => void drained });
void [readiness, dropped, delivered];

// Messages and requests (docs/messages.md): the handler's message typed by the schema (a zod schema, as
// Standard Schema), the reply typed by the caller, conn.data typed through the handler.
import { json, RemoteError, type MessageContext } from 'pulsar';
import { msgpack } from 'pulsar/msgpack';
import { z } from 'zod';
const AddRequest = z.object({ a: z.number(), b: z.number() });
export const rpcServer = new PulsarServer({
  messages: json({ schema: AddRequest }),
  rpc: true,
  handler: async (msg, conn: Connection<{ calls?: number }>, ctx: MessageContext) => {
    conn.data.calls = (conn.data.calls ?? 0) + 1;
    ctx.signal.throwIfAborted();
    return { sum: msg.a + msg.b };
  },
});
export const packed = new PulsarServer({ messages: msgpack(), schema: AddRequest, rpc: true, handler: (msg) => msg.a * msg.b });
const rpcClient = new PulsarClient({ port: 8080, messages: json(), rpc: true, handler: (m: unknown) => ({ seen: m }) });
export const sum: Promise<number> = rpcClient.request<{ sum: number }>({ a: 1, b: 2 }, { timeout: 1000, signal: AbortSignal.timeout(2000) }).then((r) => r.sum);
export const remote = (error: unknown): string | undefined => (error instanceof RemoteError ? error.remoteCode : undefined);
// @ts-expect-error the schema has no `c`
export const wrong = new PulsarServer({ messages: json({ schema: AddRequest }), handler: (msg) => msg.c });

// Applications without glue (docs/applications.md): one contract types both sides end to end, with no
// annotation: routes' inputs and conn.data (from the hello's return), events, groups, the client's calls and
// the server's messages as events.
import { contract, message, request, type GroupAnswer } from 'pulsar';
const game = contract({
  client: {
    join: request({ input: z.object({ room: z.string() }), output: z.object({ members: z.number() }) }),
    say: message(z.object({ text: z.string() })),
  },
  server: {
    said: message(z.object({ from: z.string(), text: z.string() })),
    vote: request({ input: z.number(), output: z.boolean() }),
  },
});
export const host = new PulsarServer({
  messages: json(), contract: game,
  hello: { schema: z.object({ token: z.string() }), handler: ({ token }) => ({ user: token.toUpperCase(), since: Date.now() }) },
});
host.routes({
  join: ({ room }, conn) => ({ members: host.group(room).add(conn).size }),
  say: ({ text }, conn) => void host.group('lobby').emit('said', { from: conn.data.user, text }),
});
host.on('disconnect', (conn) => conn.data.user.toLowerCase() + conn.groups.join());
host.on('hello', (conn) => conn.data.since.toFixed());
export const users: string[] = [...host.connections.values(), ...host.group('lobby')].map((conn) => conn.data.user);
export const votes: Promise<Array<GroupAnswer>> = host.group('lobby').call('vote', 1, { timeout: 1000 }).all();
export const player = new PulsarClient({ messages: json(), contract: game, hello: () => ({ token: 't' }), routes: { vote: (round) => round > 1 } });
player.on('said', ({ from, text }) => from.length + text.length);
export const members: Promise<number> = player.call('join', { room: 'lobby' }).then(({ members: n }) => n);
// @ts-expect-error join takes { room: string }
export const badCall = player.call('join', { room: 1 });
// @ts-expect-error no request 'leave' in the contract
export const unknownCall = player.call('leave', null);
// @ts-expect-error conn.data has no `name`: the hello returned { user, since }
host.on('connection', (conn) => conn.data.name);
// @ts-expect-error a route's output must match the contract
host.routes({ join: () => ({ members: 'many' }) });
// The disconnect error says its code (a PulsarError's, or the one given to conn.destroy(error)).
host.on('disconnect', (_conn, _reason, error) => error?.code?.startsWith('ERR_'));
// What the server sends is typed by the contract too: conn.call/emit and group.call/emit.
host.on('hello', (conn) => {
  const voted: Promise<boolean> = conn.call('vote', 2);
  conn.emit('said', { from: 'server', text: 'welcome' });
  // @ts-expect-error vote takes a number
  void conn.call('vote', 'two');
  // @ts-expect-error no request 'kick' in the contract's server side
  void conn.call('kick', null);
  // @ts-expect-error said needs { from, text }
  conn.emit('said', { text: 'x' });
  const plain: Connection = conn; // a typed connection passes wherever a Connection is expected
  return [voted, plain];
});
export const tally: Promise<boolean[]> = host.group('lobby').call('vote', 3).all().then((answers) => answers.map((a) => a.output ?? false));
host.group('lobby').emit('said', { from: 'server', text: 'hi all' });
// @ts-expect-error said needs { from, text }
host.group('lobby').emit('said', 'hi');
// @ts-expect-error vote takes a number
void host.group('lobby').call('vote', 'x');
// A server with a contract passes wherever a PulsarServer is expected (metrics, signals, health).
export const metered = new PulsarMetrics(host);

// Streams (docs/streams.md): stream() entries type the route (an async generator), the caller's loop and
// uploads (streamOf) end to end; conn.stream() calls the client's.
import { stream, streamOf } from 'pulsar';
const rows = contract({
  client: {
    query: stream({ input: z.object({ sql: z.string() }), item: z.object({ id: z.number(), name: z.string() }) }),
    ingest: request({ input: streamOf(z.object({ at: z.number(), value: z.number() })), output: z.object({ count: z.number() }) }),
  },
  server: { tail: stream({ input: z.number(), item: z.string() }) },
});
export const database = new PulsarServer({
  messages: json(), contract: rows,
  routes: {
    query: async function* ({ sql }, _conn, ctx) {
      for (let id = 1; !ctx.signal.aborted; id++) yield { id, name: `${sql} ${id}` };
    },
    ingest: async (samples) => {
      let count = 0;
      for await (const { value } of samples) count += value >= 0 ? 1 : 0;
      return { count };
    },
  },
});
export const reader = new PulsarClient({
  messages: json(), contract: rows,
  routes: { tail: async function* (lines) { for (let i = 0; i < lines; i++) yield `line ${i}`; } },
});
export async function readRows(): Promise<string[]> {
  const names: string[] = [];
  for await (const row of reader.stream('query', { sql: 'select' }, { window: 32, timeout: 5000 })) names.push(row.name + row.id.toFixed());
  const { count }: { count: number } = await reader.call('ingest', [{ at: 1, value: 2 }]);
  names.push(String(count));
  return names;
}
// @ts-expect-error query takes { sql: string }
void reader.stream('query', { sql: 1 });
// @ts-expect-error an upload takes an iterable of { at, value }
void reader.call('ingest', { at: 1, value: 2 });
// @ts-expect-error a stream route yields the contract's items
database.routes({ query: async function* () { yield { id: 'one', name: 'x' }; } });
database.on('connection', async (conn) => {
  for await (const line of conn.stream('tail', 3)) line.toUpperCase();
  // @ts-expect-error tail takes a number
  void conn.stream('tail', 'three');
});
