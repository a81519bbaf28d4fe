import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { z } from 'zod';
import {
  EnvelopeKind, PulsarClient, contract, decodeEnvelope, encodeEnvelope, json, request, stream, streamOf,
  type Contract, type MessageContext, type PulsarServerOptions, type RemoteError,
} from '../lib/index.js';
import { clientErrors, connectClient, eventually, nextEvent, onCleanup, rawSockets, rejection, startServer, TestClient } from './helpers.js';

/** A producer that counts how far it was pulled, and whether its `finally` ran. */
function counter(limit = Infinity, size = 0) {
  const state = { pulled: 0, finished: false, aborted: undefined as unknown };
  const pad = 'x'.repeat(size);
  return {
    state,
    async *items(ctx: MessageContext): AsyncGenerator<{ n: number; pad: string }> {
      try {
        while (state.pulled < limit) yield { n: state.pulled++, pad };
      } finally {
        state.finished = true;
        state.aborted = ctx.signal.aborted ? (ctx.signal.reason as { code?: string }).code : false;
      }
    },
  };
}

async function rpcPair(options: PulsarServerOptions<unknown> = {}, client: ConstructorParameters<typeof PulsarClient<unknown>>[0] = {}) {
  const { server, port } = await startServer<unknown>({ messages: json(), rpc: true, ...options });
  const conn = nextEvent(server, 'connection');
  const c = await connectClient<unknown>(port, { messages: json(), rpc: true, ...client });
  return { server, port, client: c, conn: (await conn)[0] };
}

/** A client of `api` on `port`, connected (closed after the test). */
async function contractClient<C extends Contract>(port: number, api: C): Promise<PulsarClient<unknown, never, C>> {
  const client = new PulsarClient({ port, messages: json(), contract: api });
  onCleanup(() => client.close());
  await client.connect();
  return client;
}

/** A round trip on the connection: whatever the server had to do before answering it is done. */
async function roundTrip(client: PulsarClient<unknown>): Promise<void> {
  await client.request('ping');
}

describe('streams (SPEC section 18)', () => {
  describe('server → client', () => {
    it('answers a stream call from an async generator: every item in order, then the end', async () => {
      const { client } = await rpcPair({ handler: async function* (msg) { for (let i = 0; i < (msg as { n: number }).n; i++) yield i; } });
      const items: unknown[] = [];
      for await (const item of client.stream({ n: 1000 })) items.push(item);
      expect(items).to.deep.equal(Array.from({ length: 1000 }, (_, i) => i));
    });

    it('takes any AsyncIterable, and a promise of one', async () => {
      const { client } = await rpcPair({
        handler: async () => ({ async *[Symbol.asyncIterator]() { yield 'a'; yield 'b'; } }),
      });
      const items: unknown[] = [];
      for await (const item of client.stream(null)) items.push(item);
      expect(items).to.deep.equal(['a', 'b']);
    });

    it('cancels on break: the producer\'s generator returns (its finally runs) and its ctx.signal aborts', async () => {
      const produced = counter();
      const { client } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : produced.items(ctx)) });
      let taken = 0;
      for await (const item of client.stream(null)) {
        expect(item).to.have.property('n', taken);
        if (++taken === 50) break;
      }
      await eventually(async () => produced.state.finished, 'the producer\'s finally');
      expect(produced.state.aborted).to.equal('ERR_ABORTED');
      expect(produced.state.pulled).to.be.at.most(50 + 16); // never past the credit granted
    });

    it('cancels on the caller\'s AbortSignal, ending the loop with ERR_ABORTED', async () => {
      const produced = counter();
      const { client } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : produced.items(ctx)) });
      const controller = new AbortController();
      const error = await rejection((async () => {
        for await (const item of client.stream(null, { signal: controller.signal })) {
          if ((item as { n: number }).n === 10) controller.abort();
        }
      })());
      expect(error.code).to.equal('ERR_ABORTED');
      await eventually(async () => produced.state.finished, 'the producer\'s finally');
    });

    it('ends the consumer\'s loop with a RemoteError carrying the producer\'s code, after the items before it', async () => {
      const { client } = await rpcPair({
        handler: async function* () {
          yield 1;
          yield 2;
          throw Object.assign(new Error('the disk is gone'), { code: 'E_DISK' });
        },
      });
      const items: unknown[] = [];
      const error = (await rejection((async () => {
        for await (const item of client.stream(null)) items.push(item);
      })())) as RemoteError;
      expect(items).to.deep.equal([1, 2]);
      expect([error.code, error.remoteCode, error.remoteMessage]).to.deep.equal(['ERR_REMOTE', 'E_DISK', 'the disk is gone']);
    });

    it('refuses a stream call to a plain handler, a request to a generator, and a one-way message to one, each with ERR_STREAM_MISMATCH', async () => {
      let finallies = 0;
      const { server, client } = await rpcPair({
        handler: (msg) => {
          if (msg === 'plain' || msg === 'ping') return 'once';
          return (async function* () {
            try {
              yield 1;
            } finally {
              finallies++;
            }
          })();
        },
      });
      const errors = clientErrors(server as never);
      const fromStream = (await rejection((async () => {
        for await (const _ of client.stream('plain')) expect.fail('no item');
      })())) as RemoteError;
      expect(fromStream.remoteCode).to.equal('ERR_STREAM_MISMATCH');
      const fromRequest = (await rejection(client.request('generator'))) as RemoteError;
      expect(fromRequest.remoteCode).to.equal('ERR_STREAM_MISMATCH');
      client.send('generator');
      await roundTrip(client);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_STREAM_MISMATCH', 'ERR_STREAM_MISMATCH', 'ERR_STREAM_MISMATCH']);
      expect(finallies).to.equal(0); // never started: a generator's finally runs only once it did
    });
  });

  describe('flow control', () => {
    it('pulls the producer only as far as the credit: 16 items ahead by default, more as the loop takes them', async () => {
      const produced = counter();
      const { client } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : produced.items(ctx)) });
      const iterator = client.stream(null)[Symbol.asyncIterator]();
      await eventually(async () => produced.state.pulled === 16, '16 items pulled');
      await roundTrip(client);
      await roundTrip(client);
      expect(produced.state.pulled).to.equal(16);
      for (let i = 0; i < 8; i++) expect((await iterator.next()).value).to.have.property('n', i);
      await eventually(async () => produced.state.pulled === 24, 'credit for 8 more');
      await roundTrip(client);
      expect(produced.state.pulled).to.equal(24);
      await iterator.return!();
    });

    it('takes its window from the call or the streamWindow option', async () => {
      const produced = counter();
      const { client } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : produced.items(ctx)) }, { streamWindow: 4 });
      const first = client.stream(null)[Symbol.asyncIterator]();
      await eventually(async () => produced.state.pulled === 4, '4 pulled');
      await first.return!();
      await eventually(async () => produced.state.finished, 'the first stream ended');
      const second = counter();
      const { client: other } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : second.items(ctx)) });
      const iterator = other.stream(null, { window: 100 })[Symbol.asyncIterator]();
      await eventually(async () => second.state.pulled === 100, '100 pulled');
      await iterator.return!();
    });

    it('keeps a stalled stream from being a slow consumer, and from stalling requests on the connection', async () => {
      const produced = counter(Infinity, 4096);
      const { server, client, conn } = await rpcPair({
        writeTimeout: 200, maxPendingOutput: 128 * 1024,
        handler: (msg, _c, ctx) => (msg === 'stream' ? produced.items(ctx) : 'answered'),
      });
      const errors = clientErrors(server as never);
      const iterator = client.stream('stream')[Symbol.asyncIterator]();
      await iterator.next();
      await eventually(async () => produced.state.pulled === 16, 'the first window pulled');
      for (let i = 0; i < 20; i++) expect(await client.request('other')).to.equal('answered');
      await sleep(600); // three write timeouts: what must not happen has had its time
      expect(conn.state).to.equal('open');
      expect(errors).to.deep.equal([]);
      expect(conn.pendingBytes).to.equal(0);
      expect(produced.state.pulled).to.equal(16); // one taken: credit goes back by half windows
      await iterator.return!();
    });

    it('holds what a producer sends to window × item size, whatever the consumer\'s speed (items of 64 KiB)', async () => {
      const produced = counter(Infinity, 64 * 1024);
      const { server, client, conn } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : produced.items(ctx)) });
      const errors = clientErrors(server as never);
      let peakPending = 0;
      let taken = 0;
      for await (const _ of client.stream(null)) {
        peakPending = Math.max(peakPending, conn.pendingBytes + conn.bufferedBytes);
        if (++taken === 200) break;
        if (taken % 20 === 0) await roundTrip(client); // a slower reader, now and then
      }
      expect(produced.state.pulled - taken).to.be.at.most(16);
      expect(peakPending).to.be.at.most(16 * (64 * 1024 + 64));
      expect(errors).to.deep.equal([]);
    });

    it('ends the connection with ERR_FLOW_CONTROL when a producer sends past its credit', async () => {
      const { server, port } = await startServer<unknown>({ messages: json(), rpc: true });
      const errors = clientErrors(server as never);
      const connected = nextEvent(server, 'connection');
      const raw = await TestClient.connect(port);
      const conn = (await connected)[0];
      const items = conn.stream(null, { window: 2 });
      const reading = rejection((async () => {
        for await (const _ of items) { /* the items within the credit */ }
      })());
      const [call, credit] = (await raw.waitFrames(2)).map((f) => decodeEnvelope(f));
      expect([call!.kind, credit!.kind, credit!.body[0]]).to.deep.equal([EnvelopeKind.stream, EnvelopeKind.credit, 2]);
      for (let i = 0; i < 10; i++) raw.send(encodeEnvelope(EnvelopeKind.item, call!.id, String(i))); // 2 granted, 1 more per item taken
      expect((await reading).code).to.equal('ERR_CONNECTION_CLOSED');
      await raw.waitClosed();
      expect(errors.map((e) => e.code)).to.include('ERR_FLOW_CONTROL');
    });
  });

  describe('a hostile consumer', () => {
    it('is held by write()\'s answer when it grants credit it never reads, then closed as a slow consumer; the producer returned', async () => {
      const produced = counter(Infinity, 4096);
      const { server, port } = await startServer<unknown>({ messages: json(), rpc: true, writeTimeout: 300, handler: (_m, _c, ctx) => produced.items(ctx) });
      const errors = clientErrors(server as never);
      const connected = nextEvent(server, 'connection');
      const [socket] = await rawSockets(port, 1);
      const highWaterMark = (await connected)[0].socket.writableHighWaterMark; // 16 KiB on Node 20, 64 KiB from 22
      const frame = (payload: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, payload.length]), payload]);
      // A stream call, then credit for 2^42 items; and never a byte read.
      socket!.write(Buffer.concat([frame(encodeEnvelope(EnvelopeKind.stream, 1, 'null')), frame(Buffer.from([EnvelopeKind.credit, 1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01]))]));
      socket!.pause();
      const slow = await eventually(async () => errors.find((e) => e.code === 'ERR_SLOW_CONSUMER'), 'ERR_SLOW_CONSUMER');
      await eventually(async () => produced.state.finished, 'the producer\'s finally');
      expect(produced.state.aborted).to.equal('ERR_CONNECTION_CLOSED');
      // The producer stopped at the socket's high-water mark, not at maxPendingOutput (64 MiB): what it wrote is
      // that and the item that crossed it, and what the kernel's buffers took.
      const pending = Number(/(\d+) bytes of output made no progress/.exec(slow.message)![1]);
      expect(pending).to.be.at.most(highWaterMark + 4096 + 64);
      expect(produced.state.pulled * 4096).to.be.below(32 * 1024 * 1024);
    });
  });

  describe('client → server: conn.stream() and uploads', () => {
    it('lets the server call a stream of the client\'s handler', async () => {
      const { conn } = await rpcPair({}, { handler: async function* (msg) { for (let i = 0; i < (msg as number); i++) yield `line ${i}`; } });
      const lines: unknown[] = [];
      for await (const line of conn.stream(3)) lines.push(line);
      expect(lines).to.deep.equal(['line 0', 'line 1', 'line 2']);
    });

    it('uploads an AsyncIterable under the route\'s credit: a slow route holds the caller\'s generator', async () => {
      const Api = contract({
        client: {
          sum: request({ input: streamOf(z.number()), output: z.number() }),
          squares: stream({ input: streamOf(z.number()), item: z.number() }),
        },
      });
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      const { port } = await startServer({
        messages: json(), contract: Api,
        routes: {
          sum: async (numbers) => {
            let total = 0;
            for await (const n of numbers) {
              if (total === 0) await gate;
              total += n;
            }
            return total;
          },
          squares: async function* (numbers) {
            for await (const n of numbers) yield n * n;
          },
        },
      });
      const client = await contractClient(port, Api);
      let pulled = 0;
      async function* numbers(count: number) {
        for (let i = 1; i <= count; i++) {
          pulled++;
          yield i;
        }
      }
      const total = client.call('sum', numbers(1000));
      await eventually(async () => pulled === 16, 'the first window pulled');
      for await (const square of client.stream('squares', [2])) expect(square).to.equal(4); // a round trip meanwhile
      expect(pulled).to.equal(16);
      release();
      expect(await total).to.equal(500_500);
      const squares: number[] = [];
      for await (const square of client.stream('squares', [1, 2, 3])) squares.push(square);
      expect(squares).to.deep.equal([1, 4, 9]);
    });

    it('gives the call up with the upload\'s error when the caller\'s iterable throws, and the route\'s loop ends', async () => {
      const Api = contract({ client: { sum: request({ input: streamOf(z.number()), output: z.number() }) } });
      let routeError: unknown;
      const { port } = await startServer({
        messages: json(), contract: Api,
        routes: {
          sum: async (numbers) => {
            try {
              for await (const _ of numbers) { /* reads until the caller gives up */ }
            } catch (error) {
              routeError = error;
            }
            return 0;
          },
        },
      });
      const client = await contractClient(port, Api);
      const failing = (async function* () {
        yield 1;
        throw Object.assign(new Error('sensor unplugged'), { code: 'E_SENSOR' });
      })();
      const error = await rejection(client.call('sum', failing));
      expect(error.code).to.equal('E_SENSOR');
      await eventually(async () => (routeError as { code?: string } | undefined)?.code, 'the route\'s loop ended');
      expect((routeError as { code: string }).code).to.equal('ERR_ABORTED');
    });
  });

  describe('contracts', () => {
    it('types and validates stream items end to end, and refuses an item the contract does not allow', async () => {
      const Row = z.object({ id: z.number(), name: z.string() });
      const Api = contract({ client: { rows: stream({ input: z.object({ limit: z.number() }), item: Row }) } });
      const { port } = await startServer({
        messages: json(), contract: Api, validateOutgoing: false,
        routes: {
          rows: async function* ({ limit }) {
            for (let id = 1; id <= limit; id++) yield { id, name: `row ${id}` };
            yield { id: 'broken', name: 1 } as never;
          },
        },
      });
      const client = await contractClient(port, Api);
      const names: string[] = [];
      const error = await rejection((async () => {
        for await (const row of client.stream('rows', { limit: 3 })) names.push(row.name);
      })());
      expect(names).to.deep.equal(['row 1', 'row 2', 'row 3']);
      expect(error.code).to.equal('ERR_INVALID_MESSAGE');
      expect(error.message).to.match(/an item of 'rows'/);
      const unknown = await rejection((async () => {
        for await (const _ of client.stream('nope' as 'rows', { limit: 1 })) expect.fail('no item');
      })());
      expect(unknown.code).to.equal('ERR_UNKNOWN_ROUTE');
    });
  });

  describe('headers and deadlines', () => {
    it('carries headers on requests, streams and messages to ctx.headers', async () => {
      const seen: Array<Record<string, string>> = [];
      const { client } = await rpcPair({
        handler: (msg, _conn, ctx) => {
          seen.push({ ...ctx.headers });
          return msg === 'stream' ? (async function* () { yield 'x'; })() : 'ok';
        },
      });
      await client.request('request', { headers: { 'x-user': 'ann' } });
      for await (const _ of client.stream('stream', { headers: { 'x-trace': 'é' } })) { /* one item */ }
      client.send('message', { headers: { 'x-kind': 'push' } });
      await roundTrip(client);
      expect(seen.slice(0, 3)).to.deep.equal([{ 'x-user': 'ann' }, { 'x-trace': 'é' }, { 'x-kind': 'push' }]);
      expect(() => client.send('bad', { headers: { 'X-Upper': '1' } })).to.throw(/lowercase ASCII/);
    });

    it('refuses a duplicate key, an oversized block and a key that is not lowercase ASCII as ERR_MALFORMED_MESSAGE', async () => {
      const { server, port } = await startServer<unknown>({ messages: json(), rpc: true, headerLimits: { count: 4, bytes: 64 }, handler: () => 'ok' });
      const errors = clientErrors(server as never);
      const raw = await TestClient.connect(port);
      const block = (...pairs: Array<[string, string]>) => {
        const content = Buffer.concat(pairs.map(([k, v]) => Buffer.concat([Buffer.from([k.length]), Buffer.from(k), Buffer.from([Buffer.byteLength(v)]), Buffer.from(v)])));
        return Buffer.concat([Buffer.from([content.length]), content]);
      };
      const withBlock = (id: number, headers: Buffer) => Buffer.concat([Buffer.from([EnvelopeKind.request | 0x80, id]), headers, Buffer.from('"q"')]);
      raw.send(withBlock(1, block(['a', '1'], ['a', '2'])));
      raw.send(withBlock(2, block(['a', 'x'.repeat(70)])));
      raw.send(withBlock(3, block(['Ab', '1'])));
      raw.send(encodeEnvelope(EnvelopeKind.request, 4, '"fine"', { 'x-ok': '1' }));
      const [reply] = (await raw.waitFrames(1)).map((f) => decodeEnvelope(f));
      expect([reply!.kind, reply!.id]).to.deep.equal([EnvelopeKind.reply, 4]);
      expect(errors.map((e) => e.code)).to.deep.equal(Array(3).fill('ERR_MALFORMED_MESSAGE'));
      expect(errors.map((e) => e.message).join('\n')).to.match(/twice[\s\S]*64[\s\S]*lowercase/);
    });

    it('aborts the handler\'s ctx.signal at the caller\'s deadline with ERR_REQUEST_TIMEOUT, and sends no answer then', async () => {
      let deadline = 0;
      let reason: { code?: string } | undefined;
      const { server, port } = await startServer<unknown>({
        messages: json(), rpc: true,
        handler: async (msg, _conn, ctx) => {
          deadline = ctx.deadline;
          if (msg === 'next') return 'next';
          reason = await new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(ctx.signal.reason as { code?: string }), { once: true }));
          return 'too late';
        },
      });
      const errors = clientErrors(server as never);
      // A caller that never cancels (raw frames), so that only the deadline can abort the handler.
      const raw = await TestClient.connect(port);
      const sent = Date.now();
      raw.send(encodeEnvelope(EnvelopeKind.request, 1, '"slow"', { 'pulsar-timeout': '200' }));
      await eventually(async () => reason, 'the handler\'s signal aborted', 5000, 20);
      expect(reason!.code).to.equal('ERR_REQUEST_TIMEOUT');
      expect(deadline - sent).to.be.within(150, 2000); // its clock plus 200 ms, whatever the load
      raw.send(encodeEnvelope(EnvelopeKind.request, 2, '"next"', { 'pulsar-timeout': 'soon' })); // not digits: no deadline
      const [answer] = (await raw.waitFrames(1)).map((f) => decodeEnvelope(f));
      expect([answer!.kind, answer!.id, deadline]).to.deep.equal([EnvelopeKind.reply, 2, Infinity]); // call 1 was never answered
      expect(errors).to.deep.equal([]);
    });

    it('passes what is left of the deadline on with { parent: ctx }, and the caller gives up at its timeout', async () => {
      let innerHeaders: Record<string, string> = {};
      const { client } = await rpcPair(
        { handler: async (msg, conn, ctx) => (msg === 'outer' ? conn.request('inner', { parent: ctx }) : new Promise((resolve) => ctx.signal.addEventListener('abort', resolve))) },
        { handler: (_msg, ctx) => ((innerHeaders = { ...ctx.headers }), 'inner answer') },
      );
      expect(await client.request('outer', { timeout: 5000 })).to.equal('inner answer');
      expect(Number(innerHeaders['pulsar-timeout'])).to.be.within(1, 5000);
      const error = await rejection(client.request('hang', { timeout: 100 }));
      expect(error.code).to.equal('ERR_REQUEST_TIMEOUT');
    });

    it('sends no deadline without an explicit timeout, and refuses a call whose parent\'s deadline has passed', async () => {
      const seen: Array<Record<string, string>> = [];
      const { client } = await rpcPair({ handler: (_m, _c, ctx) => (seen.push({ ...ctx.headers }), ctx.deadline) });
      expect(await client.request('plain')).to.equal(null); // Infinity is no JSON: null
      expect(seen[0]).to.deep.equal({});
      const parent = { deadline: Date.now() - 1, signal: new AbortController().signal } as MessageContext;
      expect((await rejection(client.request('late', { parent }))).code).to.equal('ERR_REQUEST_TIMEOUT');
    });
  });

  describe('closing', () => {
    it('cancels the streams a server produces when it closes: their signals abort, their consumers\' loops end', async () => {
      const produced = counter();
      const { server, client } = await rpcPair({ handler: (m, _c, ctx) => (m === 'ping' ? 'pong' : produced.items(ctx)) });
      const iterator = client.stream(null)[Symbol.asyncIterator]();
      await iterator.next();
      const closing = server.close();
      const error = await rejection((async () => {
        for (;;) if ((await iterator.next()).done) return;
      })());
      expect(['ERR_REMOTE', 'ERR_CONNECTION_CLOSED']).to.include(error.code);
      const result = await closing;
      await eventually(async () => produced.state.finished, 'the producer\'s finally');
      expect(produced.state.aborted).to.equal('ERR_CONNECTION_CLOSED');
      expect(result.forced).to.equal(0);
    });
  });
});

