// Messages and requests (docs/messages.md, docs/protocol.md) over real sockets: PulsarServer and
// PulsarClient with `messages` and `rpc`, a raw socket speaking the envelope byte by byte, zod and valibot
// schemas, msgpack against another MessagePack library. Every wait is on an event or a promise, bounded.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { decode as otherDecode, encode as otherEncode } from '@msgpack/msgpack';
import { expect } from 'chai';
import * as v from 'valibot';
import { z } from 'zod';
import {
  EnvelopeKind, IdleHeartbeat, InvalidMessageError, PulsarClient, PulsarError, PulsarServer, RemoteError, decodeEnvelope, encodeEnvelope, json,
  type Connection, type MessageContext,
} from '../lib/index.js';
import { msgpack } from '../lib/messages/msgpack.js';
import { clientErrors, connectClient, eventually, nextEvent, rejection, ROOT, startServer, TestClient, when } from './helpers.js';

/** A connected client, closed after the test. */
const connect = connectClient;

type Call = { op: 'add'; a: number; b: number } | { op: 'sleep'; ms: number; tag: number };

/** The RPC service of the issue: `add`, and an async `sleep` that answers after `ms`, or stops on cancel. */
async function rpcService(options: { maxInflightRequests?: number } = {}) {
  const cancelled: number[] = [];
  const cancels = new EventEmitter(); // 'cancel' when a handler saw its signal abort
  const { server, port } = await startServer({
    messages: json(),
    rpc: true,
    ...options,
    handler: async (message, _conn, ctx) => {
      const call = message as Call;
      if (call.op === 'add') return { sum: call.a + call.b };
      try {
        await sleep(call.ms, undefined, { signal: ctx.signal });
      } catch (error) {
        cancelled.push(call.tag);
        cancels.emit('cancel');
        throw error;
      }
      return { slept: call.ms, tag: call.tag };
    },
  });
  return { server, port, cancelled, cancels };
}

/** A raw socket that speaks the envelope from docs/protocol.md, not through the library's client. */
async function rawRpc(port: number) {
  const socket = await TestClient.connect(port);
  return {
    socket,
    send(kind: number, id: number, body: string | Buffer = ''): void {
      socket.send(encodeEnvelope(kind as EnvelopeKind, id, body));
    },
    async frame(index: number) {
      const frames = await socket.waitFrames(index + 1);
      return decodeEnvelope(frames[index]!);
    },
  };
}

describe('messages and requests', () => {
  describe('requests answered by id', () => {
    it('gives each of four concurrent calls its own answer, whatever order the answers come in', async () => {
      const { port } = await rpcService();
      const client = await connect(port, { messages: json(), rpc: true });
      const answers = await Promise.all([
        client.request({ op: 'sleep', ms: 300, tag: 1 }),
        client.request({ op: 'add', a: 1, b: 2 }),
        client.request({ op: 'sleep', ms: 100, tag: 3 }),
        client.request({ op: 'add', a: 40, b: 2 }),
      ]);
      expect(answers).to.deep.equal([{ slept: 300, tag: 1 }, { sum: 3 }, { slept: 100, tag: 3 }, { sum: 42 }]);
    });

    it('answers 10,000 mixed calls with random delays, up to the in-flight bound at a time, every answer its call\'s', async function () {
      this.timeout(60_000);
      const bound = 1024;
      const { port } = await rpcService({ maxInflightRequests: bound });
      const client = await connect(port, { messages: json(), rpc: true });
      let next = 0;
      let checked = 0;
      const worker = async (): Promise<void> => {
        while (next < 10_000) {
          const i = next++;
          if (i % 3 === 0) {
            const answer = await client.request({ op: 'sleep', ms: Math.floor(Math.random() * 20), tag: i });
            expect(answer).to.have.property('tag', i);
          } else {
            expect(await client.request({ op: 'add', a: i, b: 7 })).to.deep.equal({ sum: i + 7 });
          }
          checked++;
        }
      };
      await Promise.all(Array.from({ length: bound }, worker));
      expect(checked).to.equal(10_000);
    });

    it('answers a request past maxInflightRequests at once with ERR_TOO_MANY_REQUESTS, and the others in time', async () => {
      const { port } = await rpcService({ maxInflightRequests: 4 });
      const client = await connect(port, { messages: json(), rpc: true });
      let heldSettled = 0;
      const held = Array.from({ length: 4 }, (_, tag) => client.request({ op: 'sleep', ms: 1500, tag }).finally(() => heldSettled++));
      const refused = await rejection(client.request({ op: 'add', a: 1, b: 1 }));
      expect(heldSettled, 'refused at once, while the four are still being handled').to.equal(0);
      expect(refused).to.be.instanceOf(RemoteError);
      expect((refused as RemoteError).remoteCode).to.equal('ERR_TOO_MANY_REQUESTS');
      expect(await Promise.all(held)).to.have.length(4);
      expect(await client.request({ op: 'add', a: 1, b: 1 }), 'served again once under the bound').to.deep.equal({ sum: 2 });
    });

    it('sends requests from the server to the client, whose handler answers them, while the client\'s own are answered too', async () => {
      const { server, port } = await startServer({ messages: json(), rpc: true, handler: (m) => ({ echoed: m }) });
      const client = await connect(port, {
        messages: json(),
        rpc: true,
        handler: async (m: unknown) => {
          await sleep(5);
          return { version: '1.2.3', asked: m };
        },
      });
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const conn = server.connections.get(1)!;
      const [fromClient, fromServer] = await Promise.all([client.request('hello'), conn.request('version?')]);
      expect(fromClient).to.deep.equal({ echoed: 'hello' });
      expect(fromServer).to.deep.equal({ version: '1.2.3', asked: 'version?' });
    });

    it('rejects the server\'s request with ERR_NO_HANDLER from a client that answers none', async () => {
      const { server, port } = await startServer({ messages: json(), rpc: true });
      await connect(port, { messages: json(), rpc: true });
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const error = await rejection(server.connections.get(1)!.request('anyone?'));
      expect(error).to.be.instanceOf(RemoteError).with.property('remoteCode', 'ERR_NO_HANDLER');
    });
  });

  describe('timeouts, cancels and closes', () => {
    it('times a request out with ERR_REQUEST_TIMEOUT, and the cancel aborts the handler\'s ctx.signal', async () => {
      const { port, cancelled, cancels } = await rpcService();
      const client = await connect(port, { messages: json(), rpc: true });
      const error = await rejection(client.request({ op: 'sleep', ms: 5000, tag: 7 }, { timeout: 100 }));
      expect(error.code).to.equal('ERR_REQUEST_TIMEOUT');
      expect(error.message).to.match(/in 100 ms/);
      await when(cancels, ['cancel'], () => cancelled.includes(7), 'the handler to see its signal abort', 3000);
      expect(await client.request({ op: 'add', a: 2, b: 2 })).to.deep.equal({ sum: 4 });
    });

    it('gives a request up through its AbortSignal with ERR_ABORTED, and the cancel reaches ctx.signal', async () => {
      let signalled: unknown;
      let abortSeen!: () => void;
      const aborted = new Promise<void>((resolve) => (abortSeen = resolve));
      const { port } = await startServer({
        messages: json(),
        rpc: true,
        handler: (_m, _conn, ctx) => new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            signalled = ctx.signal.reason;
            abortSeen();
            reject(ctx.signal.reason);
          });
        }),
      });
      const client = await connect(port, { messages: json(), rpc: true });
      const controller = new AbortController();
      const pending = client.request('wait for me', { signal: controller.signal });
      setTimeout(() => controller.abort(new Error('user left')), 50);
      const error = await rejection(pending);
      expect(error.code).to.equal('ERR_ABORTED');
      expect((error.cause as Error).message).to.equal('user left');
      await aborted;
      expect(signalled).to.be.instanceOf(PulsarError).with.property('code', 'ERR_ABORTED');
      expect(client.lateReplies, 'the aborted handler\'s rejection is not sent: nothing comes late').to.equal(0);
      const early = new AbortController();
      early.abort();
      expect((await rejection(client.request('never sent', { signal: early.signal }))).code).to.equal('ERR_ABORTED');
    });

    it('fails 100 pending requests at once with ERR_CONNECTION_CLOSED when the connection is killed', async () => {
      const { server, port } = await startServer({ messages: json(), rpc: true, handler: () => new Promise(() => {}) });
      const client = await connect(port, { messages: json(), rpc: true });
      const pending = Array.from({ length: 100 }, (_, i) => rejection(client.request({ i })));
      await when(server, ['frame'], () => server.stats().framesIn === 100, 'the 100 requests to arrive');
      const killedAt = Date.now();
      server.connections.get(1)!.destroy();
      const errors = await Promise.all(pending);
      expect(Date.now() - killedAt, 'at once, not at the 30 s timeout').to.be.below(5000);
      expect(new Set(errors.map((e) => e.code))).to.deep.equal(new Set(['ERR_CONNECTION_CLOSED']));
      expect((await rejection(client.request('after'))).code).to.equal('ERR_CONNECTION_CLOSED');
    });

    it('fails the server\'s pending requests when the client goes, and aborts the signals of the handlers it was running', async () => {
      let handlerSignal: AbortSignal | undefined;
      let handling!: () => void;
      const reached = new Promise<void>((resolve) => (handling = resolve));
      const { server, port } = await startServer({
        messages: json(),
        rpc: true,
        handler: (_m, _conn, ctx) => {
          handlerSignal = ctx.signal;
          handling();
          return new Promise(() => {});
        },
        shutdownTimeout: 300,
      });
      const client = await connect(port, { messages: json(), rpc: true, handler: () => new Promise(() => {}) });
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const conn = server.connections.get(1)!;
      const pending = rejection(conn.request('are you there?'));
      void client.request('hang').catch(() => {});
      await reached; // the client's request is being handled
      await client.close().catch(() => {});
      client.removeAllListeners();
      expect((await pending).code).to.equal('ERR_CONNECTION_CLOSED');
      expect(handlerSignal!.aborted).to.equal(true);
    });

    it('drops a reply that comes after its request gave up, counts it, and never hands it to another request', async () => {
      // A peer that ignores cancels: it answers every request, 'slow' after 200 ms, speaking the envelope itself.
      const { port } = await startServer({
        handler: async (frame, conn) => {
          const { id, body } = decodeEnvelope(frame);
          const reply = encodeEnvelope(EnvelopeKind.reply, id, Buffer.from(body));
          if (String(body) === '"slow"') await sleep(200);
          conn.send(reply);
        },
      });
      const client = await connect(port, { messages: json(), rpc: true });
      expect((await rejection(client.request('slow', { timeout: 50 }))).code).to.equal('ERR_REQUEST_TIMEOUT');
      const answers = [await client.request('fast')];
      // No event marks a dropped reply: the count is polled until the peer's late answer came (bounded).
      await eventually(async () => client.lateReplies === 1, 'the late reply to be counted', 3000, 20);
      answers.push(await client.request('next'));
      expect(answers).to.deep.equal(['fast', 'next']);
    });

    it('counts a late reply to the server\'s request in conn.lateReplies and stats().lateReplies', async () => {
      const { server, port } = await startServer({ messages: json(), rpc: true });
      const raw = await rawRpc(port);
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const conn = server.connections.get(1)!;
      const pending = rejection(conn.request('q', { timeout: 30 }));
      const request = await raw.frame(0);
      expect((await pending).code).to.equal('ERR_REQUEST_TIMEOUT');
      const cancel = await raw.frame(1);
      expect([cancel.kind, cancel.id]).to.deep.equal([EnvelopeKind.cancel, request.id]);
      raw.send(EnvelopeKind.reply, request.id, '"late"'); // a client that answers anyway
      raw.send(EnvelopeKind.request, 1, '"ping"');
      await raw.frame(2); // the server read the late reply before this request
      expect(conn.lateReplies).to.equal(1);
      expect(server.stats().lateReplies).to.equal(1);
    });
  });

  describe('error replies', () => {
    it('answers a throw with its code and message, never its stack, as a RemoteError; ERR_HANDLER without a code, reported', async () => {
      const { server, port } = await startServer({
        messages: json(),
        rpc: true,
        handler: (m) => {
          if (m === 'coded') throw Object.assign(new Error('no such user'), { code: 'E_NOT_FOUND' });
          if (m === 'async') return Promise.reject(Object.assign(new Error('later'), { code: 'E_LATER' }));
          throw new TypeError('x is not a function');
        },
      });
      const errors = clientErrors(server);
      const client = await connect(port, { messages: json(), rpc: true });
      const coded = await rejection(client.request('coded'));
      expect(coded).to.be.instanceOf(RemoteError);
      expect(coded).to.include({ code: 'ERR_REMOTE', remoteCode: 'E_NOT_FOUND', remoteMessage: 'no such user' });
      expect((await rejection(client.request('async'))) as RemoteError).to.include({ remoteCode: 'E_LATER', remoteMessage: 'later' });
      const bug = (await rejection(client.request('bug'))) as RemoteError;
      // An error without a code is a bug: its text (paths, hosts) stays here, the peer gets a fixed message.
      expect(bug).to.include({ remoteCode: 'ERR_HANDLER', remoteMessage: 'the handler failed' });
      expect(errors.map((e) => e.code), 'only the error without a code is a bug to report').to.deep.equal(['ERR_HANDLER']);
    });

    it('sends exactly { code, message } in an error reply, as docs/protocol.md says', async () => {
      const { port } = await startServer({
        messages: json(),
        rpc: true,
        handler: () => {
          throw Object.assign(new Error('no'), { code: 'E_NO' });
        },
      });
      const raw = await rawRpc(port);
      raw.send(EnvelopeKind.request, 300, '{"a":1,"b":2}');
      const reply = await raw.frame(0);
      expect(raw.socket.frames[0]!.toString('hex').slice(0, 6)).to.equal('03ac02');
      expect(reply).to.deep.include({ kind: EnvelopeKind.error, id: 300 });
      expect(JSON.parse(String(reply.body))).to.deep.equal({ code: 'E_NO', message: 'no' });
    });
  });

  describe('bad input', () => {
    const Telemetry = z.object({ device: z.string(), temperature: z.number() });

    it('skips a malformed and an invalid message (zod), reporting each with the client and the issues, and goes on', async () => {
      const seen: unknown[] = [];
      const handled = new EventEmitter();
      const { server, port } = await startServer({
        messages: json({ schema: Telemetry }),
        handler: (m) => {
          seen.push(m.temperature);
          handled.emit('message');
        },
      });
      const errors: PulsarError[] = [];
      server.on('clientError', (error) => errors.push(error));
      const raw = await TestClient.connect(port);
      raw.send('{"device":"a","temperature":20}', '{not json', '{"device":"a","temperature":"hot"}', '{"device":"a","temperature":21}');
      await when(handled, ['message'], () => seen.length === 2, 'two good messages');
      expect(seen).to.deep.equal([20, 21]);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MALFORMED_MESSAGE', 'ERR_INVALID_MESSAGE']);
      expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection 1\): /);
      const invalid = errors[1] as InvalidMessageError;
      expect(invalid).to.be.instanceOf(InvalidMessageError);
      expect(invalid.issues).to.have.length(1);
      expect(invalid.issues[0]!.path).to.equal('temperature');
      expect(invalid.issues[0]!.message).to.be.a('string').and.not.equal('');
      expect(server.connections.size, 'the connection goes on').to.equal(1);
    });

    it('answers malformed and invalid requests (valibot) with their code at once, and the connection goes on', async () => {
      const Add = v.object({ a: v.number(), b: v.number() });
      const { server, port } = await startServer({ messages: json(), schema: Add, rpc: true, handler: (m) => ({ sum: m.a + m.b }) });
      const errors = clientErrors(server);
      const raw = await rawRpc(port);
      raw.send(EnvelopeKind.request, 1, '{"a":1,');
      raw.send(EnvelopeKind.request, 2, '{"a":1,"b":"two"}');
      raw.send(EnvelopeKind.request, 3, '{"a":1,"b":2}');
      const [first, second, third] = [await raw.frame(0), await raw.frame(1), await raw.frame(2)];
      expect([first.kind, first.id, JSON.parse(String(first.body)).code]).to.deep.equal([EnvelopeKind.error, 1, 'ERR_MALFORMED_MESSAGE']);
      const invalid = JSON.parse(String(second.body)) as { code: string; message: string };
      expect([second.kind, second.id, invalid.code]).to.deep.equal([EnvelopeKind.error, 2, 'ERR_INVALID_MESSAGE']);
      expect(invalid.message).to.match(/^invalid message: b: /);
      expect([third.kind, third.id, JSON.parse(String(third.body))]).to.deep.equal([EnvelopeKind.reply, 3, { sum: 3 }]);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MALFORMED_MESSAGE', 'ERR_INVALID_MESSAGE']);
    });

    it('validates with an async schema too', async () => {
      const Checked = z.string().refine(async (s) => s !== 'forbidden', 'forbidden word');
      const { port } = await startServer({ messages: json({ schema: Checked }), rpc: true, handler: (m) => m.toUpperCase() });
      const client = await connect(port, { messages: json(), rpc: true });
      expect(await client.request('fine')).to.equal('FINE');
      const refused = (await rejection(client.request('forbidden'))) as RemoteError;
      expect(refused.remoteCode).to.equal('ERR_INVALID_MESSAGE');
      expect(refused.remoteMessage).to.match(/forbidden word/);
    });

    it('reports broken envelopes (unknown kind, id past the frame, a reply to a request never sent) and goes on', async () => {
      const { server, port } = await startServer({ messages: json(), rpc: true });
      const errors = clientErrors(server);
      const raw = await rawRpc(port);
      raw.socket.send(Buffer.from([0x0c, 1]), Buffer.from([1, 0x80]), Buffer.alloc(0));
      raw.send(EnvelopeKind.reply, 5, '1');
      raw.send(EnvelopeKind.request, 6, '"still here"');
      const reply = await raw.frame(0);
      expect([reply.kind, reply.id, String(reply.body)]).to.deep.equal([EnvelopeKind.reply, 6, '"still here"']);
      expect(errors.map((e) => e.code)).to.deep.equal(Array(4).fill('ERR_MALFORMED_MESSAGE'));
      expect(errors.map((e) => e.cause ?? e.code).length).to.equal(4);
    });

    it('closes the connection after answering what was read with onInvalid: \'close\'', async () => {
      const { server, port } = await startServer({ messages: json(), onInvalid: 'close' });
      const raw = await TestClient.connect(port);
      const gone = nextEvent(server, 'disconnect');
      raw.send('"first"', 'nope');
      const [, reason, error] = await gone;
      expect(reason).to.equal('error');
      expect((error as PulsarError).code).to.equal('ERR_MALFORMED_MESSAGE');
      await raw.waitClosed();
      expect(raw.frames.map(String)).to.deep.equal(['"first"']);
    });

    it('refuses message options without messages, and a client handler without rpc', () => {
      expect(() => new PulsarServer({ rpc: true })).to.throw(PulsarError).with.property('option', 'rpc');
      expect(() => new PulsarClient({ schema: Telemetry })).to.throw(/schema needs messages/);
      expect(() => new PulsarClient({ messages: json(), handler: () => 1 })).to.throw(/handler .*needs rpc: true/);
      expect(() => json({ schema: {} as never })).to.throw(/schema must be a Standard Schema/);
      expect(() => new PulsarServer({ messages: { encode: 1 } as never })).to.throw(/messages must be a MessageCodec/);
    });

    it('rejects conn.request() without rpc with ERR_RPC_DISABLED, and a value json() cannot encode with ERR_INVALID_PAYLOAD', async () => {
      const { server, port } = await startServer({ messages: json() });
      const client = await connect(port, { messages: json() });
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const conn = server.connections.get(1)!;
      expect((await rejection(conn.request('q'))).code).to.equal('ERR_RPC_DISABLED');
      expect(() => conn.send(10n)).to.throw(PulsarError).with.property('code', 'ERR_INVALID_PAYLOAD');
      expect(() => client.send(undefined)).to.throw(PulsarError).with.property('code', 'ERR_INVALID_PAYLOAD');
    });
  });

  describe('messages, pushes and state', () => {
    it('keeps per-connection state in conn.data, typed through the handler', async () => {
      type Session = { user?: string; count: number };
      const { port } = await startServer({
        messages: json(),
        rpc: true,
        handler: (m: unknown, conn: Connection<Session>) => {
          conn.data.count = (conn.data.count ?? 0) + 1;
          if (typeof m === 'object' && m !== null && 'login' in m) conn.data.user = String(m.login);
          return { user: conn.data.user ?? null, count: conn.data.count };
        },
      });
      const alice = await connect(port, { messages: json(), rpc: true });
      const bob = await connect(port, { messages: json(), rpc: true });
      await alice.request({ login: 'alice' });
      expect(await alice.request('who am i')).to.deep.equal({ user: 'alice', count: 2 });
      expect(await bob.request('who am i')).to.deep.equal({ user: null, count: 1 });
    });

    it('delivers every push sent before iteration starts, pausing reading at the queue\'s bound instead of dropping', async () => {
      const total = 3000;
      const { server, port } = await startServer({ messages: json(), rpc: true });
      const client = await connect(port, { messages: json(), rpc: true });
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const conn = server.connections.get(1)!;
      const full = nextEvent<[Error & { code?: string }]>(process, 'warning', 5000, (warning) => warning.code === 'PULSAR_INBOX_FULL');
      for (let i = 0; i < total; i++) conn.send({ alert: i });
      // Nothing consumes yet: the client stops reading at 1,024 queued, and the rest waits in TCP.
      await full;
      expect(client.inboxFull, 'reading stopped once, at the bound').to.equal(1);
      const got: number[] = [];
      for await (const message of client) {
        got.push((message as { alert: number }).alert);
        if (got.length === total) break;
      }
      expect(got).to.deep.equal(Array.from({ length: total }, (_, i) => i));
    });

    it('shares one connection between requests and pushes: message events get the pushes, requests their replies', async () => {
      const { server, port } = await startServer({
        messages: json(),
        rpc: true,
        handler: (m, conn) => {
          conn.send({ alert: `before answering ${String(m)}` });
          return { answer: m };
        },
      });
      const client = await connect(port, { messages: json(), rpc: true });
      const alerts: unknown[] = [];
      client.on('message', (m) => alerts.push(m));
      const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => client.request(i)));
      expect(answers).to.deep.equal(Array.from({ length: 100 }, (_, i) => ({ answer: i })));
      await when(client, ['message'], () => alerts.length === 100, '100 alerts');
      expect(server.stats().framesOut).to.equal(200);
    });

    it('broadcasts a message to a group, encoded once, and sendTo() encodes too', async () => {
      const { server, port } = await startServer({
        messages: json(),
        rpc: true,
        handler: (_m, conn) => {
          server.group('room').add(conn);
          return 'joined';
        },
      });
      const a = await connect(port, { messages: json(), rpc: true });
      const b = await connect(port, { messages: json(), rpc: true });
      await a.request('join');
      await b.request('join');
      const got = Promise.all([a, b].map((c) => new Promise((resolve) => c.once('message', resolve))));
      expect(server.group('room').broadcast({ news: 'hello' })).to.equal(2);
      expect(await got).to.deep.equal([{ news: 'hello' }, { news: 'hello' }]);
      const direct = new Promise((resolve) => b.once('message', resolve));
      expect(await server.sendTo(`${server.instanceId}/2`, { to: 'b' })).to.equal(true);
      expect(await direct).to.deep.equal({ to: 'b' });
    });

    it('answers in order without rpc through request(), with decoded messages', async () => {
      const { port } = await startServer({ messages: json(), handler: (m, conn) => conn.send({ echo: m }) });
      const client = await connect(port, { messages: json() });
      expect(await Promise.all([client.request(1), client.request('two')])).to.deep.equal([{ echo: 1 }, { echo: 'two' }]);
    });
  });

  describe('the protocol, from docs/protocol.md alone', () => {
    it('serves a client written in Python with its standard library: pipelined requests, errors, a request back', async function () {
      this.timeout(20_000);
      const Call = z.discriminatedUnion('op', [
        z.object({ op: z.literal('add'), a: z.number(), b: z.number() }),
        z.object({ op: z.literal('sleep'), ms: z.number() }),
        z.object({ op: z.literal('fail') }),
        z.object({ op: z.literal('ask me') }),
        z.object({ op: z.literal('headers') }),
        z.object({ op: z.literal('count'), n: z.number() }),
      ]);
      const { port } = await startServer({
        messages: json({ schema: Call }),
        rpc: true,
        heartbeat: new IdleHeartbeat({ interval: 20 }), // heartbeats among the replies, as a real server sends
        handler: (call, conn, ctx) => {
          if (call.op === 'count') {
            return (async function* () {
              for (let i = 1; i <= call.n; i++) yield i;
            })();
          }
          return answer(call, conn, ctx);
        },
      });
      async function answer(call: z.infer<typeof Call>, conn: Connection, ctx: MessageContext): Promise<unknown> {
        switch (call.op) {
          case 'headers': return { ...ctx.headers };
          case 'add': return { sum: call.a + call.b };
          case 'sleep': await sleep(call.ms); return { slept: call.ms };
          case 'fail': throw Object.assign(new Error('failed on purpose'), { code: 'E_PURPOSE' });
          case 'ask me': {
            const { answer } = await conn.request<{ answer: string }>({ question: 'who are you' }, { timeout: 5000 });
            conn.send({ told: answer });
            return undefined;
          }
          default: return undefined;
        }
      }
      // Asynchronously: the server runs in this process.
      const run = await promisify(execFile)('python3', [join(ROOT, 'test', 'fixtures', 'rpc_client.py'), String(port)], { timeout: 15_000 });
      const out = JSON.parse(run.stdout) as { answers: Record<string, { kind: string; body: { code?: string; message?: string } & Record<string, unknown> }>; items: unknown[]; asked_with: unknown; told: unknown };
      expect(out.answers['1']).to.deep.equal({ kind: 'reply', body: { slept: 100 } });
      expect(out.answers['300']).to.deep.equal({ kind: 'reply', body: { sum: 42 } });
      expect(out.answers['2']).to.deep.equal({ kind: 'error', body: { code: 'E_PURPOSE', message: 'failed on purpose' } });
      expect(out.answers['3']!.kind).to.equal('error');
      expect(out.answers['3']!.body.code).to.equal('ERR_INVALID_MESSAGE');
      expect(out.answers['4']).to.deep.equal({ kind: 'reply', body: { 'x-user': 'ann', 'x-note': 'café' } });
      expect(out.items).to.deep.equal([1, 2, 3, 4, 5]);
      expect(out.asked_with).to.deep.equal({ 'pulsar-timeout': '5000' }); // the server's explicit timeout travels
      expect(out.told).to.deep.equal({ told: 'WHO ARE YOU' });
    });
  });

  describe('msgpack', () => {
    it('serves RPC in MessagePack that another MessagePack library reads and writes', async () => {
      const { port } = await startServer({ messages: msgpack(), rpc: true, handler: (m) => ({ got: m, bytes: new Uint8Array([1, 2, 3]) }) });
      const raw = await rawRpc(port);
      raw.send(EnvelopeKind.request, 1, Buffer.from(otherEncode({ a: 1, list: [true, null, 'x'], nested: { n: -5.5 } })));
      const reply = await raw.frame(0);
      expect([reply.kind, reply.id]).to.deep.equal([EnvelopeKind.reply, 1]);
      const decoded = otherDecode(reply.body) as { got: unknown; bytes: Uint8Array };
      expect(decoded.got).to.deep.equal({ a: 1, list: [true, null, 'x'], nested: { n: -5.5 } });
      expect([...decoded.bytes]).to.deep.equal([1, 2, 3]);
      const client = await connect(port, { messages: msgpack(), rpc: true });
      expect(await client.request({ a: 2 })).to.deep.include({ got: { a: 2 } });
    });

    it('reports a frame that is not MessagePack as ERR_MALFORMED_MESSAGE', async () => {
      const { server, port } = await startServer({ messages: msgpack() });
      const errors = clientErrors(server);
      const raw = await TestClient.connect(port);
      raw.send(Buffer.from([0xc1]), Buffer.from(otherEncode('ok')));
      await raw.waitFrames(1);
      expect(otherDecode(raw.frames[0]!)).to.equal('ok');
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MALFORMED_MESSAGE']);
    });
  });
});
