// Promises that hold against a hostile peer (docs/security.md, SECURITY.md's threat table): one attack per
// rule, each the cheapest input that broke the rule before, over real sockets, with its numbers.
import { expect } from 'chai';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { AcceptPath } from '../lib/accept/handshakes.js';
import { resolveServerOptions } from '../lib/server/options.js';
import {
  ConnectionGroup, Connection, DelimiterCodec, encodeEnvelope, EnvelopeKind, IdleHeartbeat, json, LengthPrefixedCodec, LineCodec, PulsarClient,
  PulsarServer, RemoteError, serveHealth, type MessageContext, type PulsarError,
} from '../lib/index.js';
import { msgpack } from '../lib/messages/msgpack.js';
import { Cli } from './cli-process.js';
import {
  TestClient, clientErrors, connectClient, frame, liveMemory, nextEvent, onCleanup, rawSockets, rejection, selfSigned, served, startServer, when,
} from './helpers.js';

/** A raw rpc frame (the envelope, then a JSON body), length-prefixed: what a peer writing by hand sends. */
function rpcFrame(kind: EnvelopeKind, id: number, body: unknown = null): Buffer {
  return frame(encodeEnvelope(kind, id, kind === EnvelopeKind.cancel ? '' : JSON.stringify(body)));
}

/** The envelope of a frame a raw client received: kind, id and the JSON body. */
function envelopeOf(payload: Buffer): { kind: number; id: number; body: unknown } {
  const kind = payload[0]!;
  let id = 0;
  let scale = 1;
  let offset = 1;
  for (;;) {
    const byte = payload[offset++]!;
    id += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) break;
    scale *= 128;
  }
  return { kind, id, body: JSON.parse(payload.subarray(offset).toString()) };
}

/** Unhandled rejections and uncaught exceptions while `during` runs, and for `settle` ms after. */
async function crashesDuring(during: () => Promise<void>): Promise<unknown[]> {
  const seen: unknown[] = [];
  const record = (reason: unknown): void => void seen.push(reason);
  process.on('unhandledRejection', record);
  process.on('uncaughtException', record);
  try {
    await during();
    // Two macrotasks: a rejection left unhandled is reported after the microtasks of the job it settled in.
    await new Promise(setImmediate);
    await new Promise(setImmediate);
  } finally {
    process.off('unhandledRejection', record);
    process.off('uncaughtException', record);
  }
  return seen;
}

describe('a hostile peer', function () {
  this.timeout(30000);

  describe('exactly one answer per request', () => {
    it('answers a reply over the frame limit with ERR_FRAME_TOO_LARGE and one that cannot be encoded with ERR_INVALID_PAYLOAD, never silence', async () => {
      const { server, port } = await startServer({
        codec: new LengthPrefixedCodec({ maxFrameLength: 1024 }),
        messages: json(),
        rpc: true,
        handler: (m) => (m === 'big' ? 'x'.repeat(4096) : m === 'bigint' ? 10n : m),
      });
      const errors = clientErrors(server);
      const raw = await TestClient.connect(port);
      raw.socket.write(Buffer.concat([rpcFrame(EnvelopeKind.request, 1, 'big'), rpcFrame(EnvelopeKind.request, 2, 'bigint'), rpcFrame(EnvelopeKind.request, 3, 'ok')]));
      const answers = (await raw.waitFrames(3)).map(envelopeOf);
      expect(answers).to.deep.equal([
        { kind: EnvelopeKind.error, id: 1, body: { code: 'ERR_FRAME_TOO_LARGE', message: 'the reply is over the frame limit' } },
        { kind: EnvelopeKind.error, id: 2, body: { code: 'ERR_INVALID_PAYLOAD', message: 'the reply could not be encoded' } },
        { kind: EnvelopeKind.reply, id: 3, body: 'ok' },
      ]);
      expect(errors.map((e) => e.code), 'the causes stay on the server').to.deep.equal(['ERR_FRAME_TOO_LARGE', 'ERR_INVALID_PAYLOAD']);
    });

    it('closes the connection when not even the error reply fits a frame (the one answer left)', async () => {
      const { server, port } = await startServer({ codec: new LengthPrefixedCodec({ maxFrameLength: 8 }), messages: json(), rpc: true, handler: () => 'a reply longer than eight bytes' });
      const errors = clientErrors(server);
      const raw = await TestClient.connect(port);
      raw.socket.write(rpcFrame(EnvelopeKind.request, 1, 1));
      await raw.waitClosed();
      expect(raw.frames, 'no partial answer').to.have.length(0);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_FRAME_TOO_LARGE', 'ERR_FRAME_TOO_LARGE']);
    });
  });

  describe('request ids', () => {
    it('200,000 requests all with id 1 run one handler, close the connection with ERR_DUPLICATE_REQUEST and abort the first handler', async () => {
      let started = 0;
      const aborted: unknown[] = [];
      const { server, port } = await startServer({
        messages: json(),
        rpc: true,
        maxInflightRequests: 16,
        handler: (_m: unknown, _conn: Connection, ctx: MessageContext) => {
          started++;
          return new Promise((resolve) => ctx.signal.addEventListener('abort', () => resolve(aborted.push((ctx.signal.reason as PulsarError).code))));
        },
      });
      const errors = clientErrors(server);
      const heapBefore = (await liveMemory()).heapUsed;
      const raw = await TestClient.connect(port);
      const one = rpcFrame(EnvelopeKind.request, 1, 1);
      raw.socket.write(Buffer.concat(Array.from({ length: 200_000 }, () => one))); // 1.4 MB in one write
      await raw.waitClosed(10000);
      await when(server, ['disconnect'], () => server.connections.size === 0 && aborted.length === 1, 'the first handler aborted');
      const heapGrowth = ((await liveMemory()).heapUsed - heapBefore) / 2 ** 20;
      console.log(`      200,000 requests with id 1: ${started} handler run, heap ${heapGrowth.toFixed(1)} MB after (was 380 MB before the fix)`);
      expect(started, 'the duplicates never ran').to.equal(1);
      expect(aborted, 'the first handler learns its peer is gone').to.deep.equal(['ERR_CONNECTION_CLOSED']);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_DUPLICATE_REQUEST']);
      expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection \d+\): request id 1 reused while that request is still in flight$/);
      expect(raw.frames, 'no answer: the connection closed').to.have.length(0);
      expect(heapGrowth, 'nothing kept after the close').to.be.below(20);
    });

    it('counts every running handler against maxInflightRequests, validation included', async () => {
      let running = 0;
      let most = 0;
      const { port } = await startServer({
        messages: json(),
        rpc: true,
        maxInflightRequests: 16,
        handler: async () => {
          most = Math.max(most, ++running);
          await new Promise(setImmediate);
          running--;
          return 'done';
        },
      });
      const raw = await TestClient.connect(port);
      raw.socket.write(Buffer.concat(Array.from({ length: 1000 }, (_, i) => rpcFrame(EnvelopeKind.request, i + 1, i))));
      const answers = (await raw.waitFrames(1000)).map(envelopeOf);
      const refused = answers.filter((a) => a.kind === EnvelopeKind.error);
      expect(most, 'never more than the bound at once').to.equal(16);
      expect(answers.length - refused.length).to.equal(16);
      expect(new Set(refused.map((a) => (a.body as { code: string }).code))).to.deep.equal(new Set(['ERR_TOO_MANY_REQUESTS']));
      expect(new Set(answers.map((a) => a.id)).size, 'one answer per id').to.equal(1000);
    });
  });

  describe('nothing pending after a failed send', () => {
    it('a conn.request() forwarding a payload the codec refuses throws to its caller and leaves no rejection for later', async () => {
      const thrown: string[] = [];
      const crashes = await crashesDuring(async () => {
        const { server, port } = await startServer({
          codec: new LengthPrefixedCodec({ maxFrameLength: 128 }),
          messages: json(),
          rpc: true,
          requestTimeout: 50,
          handler: async (m: unknown, conn: Connection) => {
            try {
              await conn.request([m, m]); // the client's 104 bytes, twice: over the limit
            } catch (error) {
              thrown.push((error as PulsarError).code);
            }
            return 'forwarded';
          },
        });
        const client = await connectClient(port, { codec: new LengthPrefixedCodec({ maxFrameLength: 128 }), messages: json(), rpc: true, handler: (m) => m });
        expect(await client.request('y'.repeat(100))).to.equal('forwarded');
        // The client side too: a request over the limit throws, and nothing waits for its timeout.
        expect((await rejection(client.request('z'.repeat(200), { timeout: 50 }))).code).to.equal('ERR_FRAME_TOO_LARGE');
        await new Promise((resolve) => setTimeout(resolve, 150)); // three request timeouts: none may fire
        expect(server.connections.size).to.equal(1);
      });
      expect(thrown).to.deep.equal(['ERR_FRAME_TOO_LARGE']);
      expect(crashes, 'no unhandled rejection, no uncaught exception').to.deep.equal([]);
    });
  });

  describe('the peer gone', () => {
    for (const how of ['FIN', 'reset'] as const) {
      it(`with rpc, a client's ${how} aborts its running requests at once; their answers are not sent`, async () => {
        let abortedAfter = -1;
        let reached: () => void = () => {};
        const handled = new Promise<void>((resolve) => (reached = resolve));
        const { server, port } = await startServer({
          messages: json(),
          rpc: true,
          handler: (_m: unknown, _conn: Connection, ctx: MessageContext) => {
            const started = performance.now();
            reached();
            return new Promise((resolve, reject) => {
              const work = setTimeout(() => resolve('4 s of work'), 4000);
              ctx.signal.addEventListener('abort', () => {
                abortedAfter = performance.now() - started;
                clearTimeout(work);
                reject(ctx.signal.reason as Error);
              });
            });
          },
        });
        const raw = await TestClient.connect(port);
        raw.socket.write(rpcFrame(EnvelopeKind.request, 1, 'work'));
        await handled;
        const gone = nextEvent(server, 'disconnect');
        if (how === 'FIN') raw.socket.end();
        else raw.socket.resetAndDestroy();
        await gone;
        console.log(`      handler aborted ${abortedAfter.toFixed(0)} ms after it started (its work: 4,000 ms)`);
        expect(abortedAfter, 'aborted, long before its 4 s of work').to.be.within(0, 2000);
        expect(raw.frames, 'no answer sent').to.have.length(0);
      });
    }

    it('answerAfterEnd: true answers a client that half-closes and waits', async () => {
      const { port } = await startServer({ messages: json(), rpc: true, answerAfterEnd: true, handler: async (m) => { await new Promise((resolve) => setTimeout(resolve, 50)); return m; } });
      const raw = await TestClient.connect(port, '127.0.0.1', { allowHalfOpen: true });
      raw.socket.end(rpcFrame(EnvelopeKind.request, 7, 'after my FIN'));
      expect((await raw.waitFrames(1)).map(envelopeOf)).to.deep.equal([{ kind: EnvelopeKind.reply, id: 7, body: 'after my FIN' }]);
    });
  });

  describe('error replies speak only for coded errors', () => {
    it('sends a coded error as it is, and anything else (a bug, a system error, a throwing schema) with a code and no internals', async () => {
      const throwingSchema = { '~standard': { version: 1 as const, vendor: 'test', validate: (value: unknown) => {
        if (value === 'schema') throw new Error('schema bug at /srv/app/schema.js');
        return { value };
      } } };
      const { server, port } = await startServer({
        messages: json(),
        schema: throwingSchema,
        rpc: true,
        handler: (m) => {
          if (m === 'coded') throw Object.assign(new Error('no such user'), { code: 'E_NOT_FOUND' });
          if (m === 'system') throw Object.assign(new Error("ENOENT: no such file or directory, open '/etc/app/secret.json'"), { code: 'ENOENT', errno: -2, syscall: 'open' });
          throw new Error('cannot reach db-primary.internal:5432');
        },
      });
      const errors = clientErrors(server);
      const client = await connectClient(port, { messages: json(), rpc: true });
      const answer = async (m: string): Promise<[string, string]> => {
        const error = (await rejection(client.request(m))) as RemoteError;
        return [error.remoteCode, error.remoteMessage];
      };
      expect(await answer('coded')).to.deep.equal(['E_NOT_FOUND', 'no such user']);
      expect(await answer('system'), 'a system error is a bug here').to.deep.equal(['ERR_HANDLER', 'the handler failed']);
      expect(await answer('bug')).to.deep.equal(['ERR_HANDLER', 'the handler failed']);
      const [code, message] = await answer('schema');
      expect(code, 'never an undefined code').to.equal('ERR_INVALID_MESSAGE');
      expect(message).to.match(/the schema failed/);
      expect(errors.filter((e) => e.code === 'ERR_HANDLER').map((e) => e.message.replace(/^.*request \d+: /, ''))).to.deep.equal([
        "ENOENT: no such file or directory, open '/etc/app/secret.json'",
        'cannot reach db-primary.internal:5432',
      ]);
    });
  });

  describe('framings that cannot carry bytes', () => {
    it('refuses rpc or msgpack() over LineCodec and DelimiterCodec at construction, on the server, the client and the CLI', async () => {
      const attempts: Array<[string, () => unknown, string]> = [
        ['server rpc over LineCodec', () => new PulsarServer({ codec: new LineCodec(), messages: json(), rpc: true }), 'rpc'],
        ['server msgpack over DelimiterCodec', () => new PulsarServer({ codec: new DelimiterCodec({ delimiter: '\0' }), messages: msgpack() }), 'messages'],
        ['client rpc over LineCodec', () => new PulsarClient({ codec: new LineCodec(), messages: json(), rpc: true }), 'rpc'],
        ['client msgpack over LineCodec', () => new PulsarClient({ codec: new LineCodec(), messages: msgpack() }), 'messages'],
      ];
      for (const [what, attempt, option] of attempts) {
        let error: PulsarError | undefined;
        try {
          attempt();
        } catch (caught) {
          error = caught as PulsarError;
        }
        expect(error?.code, what).to.equal('ERR_INVALID_OPTION');
        expect(error?.option, what).to.equal(option);
        expect(error?.message, what).to.match(/cannot travel over (Line|Delimiter)Codec/);
      }
      expect(() => new PulsarServer({ codec: new LineCodec(), messages: json() }), 'JSON text travels in lines').not.to.throw();
      const cli = new Cli(['--port', '0', '--codec', 'lines', '--rpc']);
      expect((await cli.exit()).code).to.equal(2);
      expect(cli.stderr.join('\n')).to.match(/rpc cannot travel over LineCodec/);
    });
  });

  describe('msgpack() is standard MessagePack', () => {
    it('refuses an 8 MiB BigInt extension and a stray byte in linear time (31 s before), and every msgpackr extension', async () => {
      const codec = msgpack();
      const big = Buffer.alloc(6 + 8 * 2 ** 20 + 1, 0x7f);
      big[0] = 0xc9; // ext 32
      big.writeUInt32BE(8 * 2 ** 20, 1);
      big[5] = 0x42; // msgpackr's BigInt
      const started = performance.now();
      expect(() => codec.decode(big)).to.throw(/extension type/);
      const ms = performance.now() - started;
      console.log(`      8 MiB BigInt extension + 1 byte refused in ${ms.toFixed(2)} ms`);
      expect(ms).to.be.below(500);
      // msgpackr's own: Error (0x65), RegExp (0x78), Set (0x73), typed arrays (0x74), records (0x72), cycles (0x70).
      for (const type of [0x65, 0x78, 0x73, 0x74, 0x72, 0x70, 0x42]) {
        expect(() => codec.decode(Buffer.from([0xd4, type, 0]))).to.throw(/only standard MessagePack/);
      }
      expect(() => codec.decode(Buffer.from([0xc1]))).to.throw(/0xc1/);
      expect(() => codec.decode(Buffer.from([0x01, 0x02]))).to.throw(/1 byte\(s\) after the value/);
      // A nesting a million deep costs a count, not the stack.
      expect(() => codec.decode(Buffer.alloc(1_000_000, 0x91))).to.throw(/value\(s\) announced|past the end/);
      // The timestamp is the spec's own extension, and decodes.
      expect(codec.decode(Buffer.from([0xd6, 0xff, 0, 0, 0, 1]))).to.deep.equal(new Date(1000));
    });

    it('decodes bin values as copies: a kept value never pins its read chunk', () => {
      const frameBytes = Buffer.from(msgpack().encode({ blob: Buffer.alloc(16, 7) }) as Uint8Array);
      const { blob } = msgpack().decode(frameBytes) as { blob: Uint8Array };
      expect(Buffer.from(blob)).to.deep.equal(Buffer.alloc(16, 7));
      expect(blob.buffer, 'its own memory').not.to.equal(frameBytes.buffer);
      expect(blob.buffer.byteLength).to.equal(16);
    });
  });

  describe('JSON prototype keys', () => {
    it("refuses __proto__ and constructor.prototype keys by default (fastify's rule); 'remove' drops them", async () => {
      const received: unknown[] = [];
      let last: () => void = () => {};
      const lastCame = new Promise<void>((resolve) => (last = resolve));
      const { server, port } = await startServer({ messages: json(), handler: (m: unknown, conn: Connection) => {
        received.push(Object.assign(conn.data, m));
        last();
      } });
      const errors = clientErrors(server);
      const raw = await TestClient.connect(port);
      raw.send('{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}', '{"name":"ok"}');
      await lastCame; // frames are handled in order: the two before it were refused by then
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MALFORMED_MESSAGE', 'ERR_MALFORMED_MESSAGE']);
      expect((received[0] as { admin?: boolean }).admin, 'no prototype replaced').to.equal(undefined);
      expect(({} as { admin?: boolean }).admin).to.equal(undefined);
      const removing = json({ protoAction: 'remove' });
      const cleaned = removing.decode(Buffer.from('{"a":1,"__proto__":{"admin":true}}')) as Record<string, unknown>;
      expect(Object.getPrototypeOf(cleaned)).to.equal(Object.prototype);
      expect(cleaned).to.deep.equal({ a: 1 });
      expect(() => json({ protoAction: 'strip' as never })).to.throw(/protoAction/);
    });
  });

  describe('the memory budget counts what is kept alive', () => {
    it('1,500 connections each holding one byte past a whole 64 KiB frame grow buffers by a few MB, not 96 MB', async () => {
      const budget = 16 * 2 ** 20;
      const { server, port } = await startServer({ heartbeat: false, maxBufferedBytes: budget, frameTimeout: 0 });
      const before = (await liveMemory()).arrayBuffers;
      const wire = Buffer.concat([frame(Buffer.alloc(65527, 0x61)), Buffer.from([0])]); // a whole frame and the first byte of the next header
      let echoed = 0;
      let evicted = 0;
      // In waves of 100: each connection has its frame answered (or is evicted), then holds its one byte.
      for (let wave = 0; wave < 15; wave++) {
        const sockets = await rawSockets(port, 100);
        await Promise.all(sockets.map((socket) => new Promise<void>((resolve) => {
          let got = 0;
          socket.on('data', (chunk: Buffer) => {
            got += chunk.length;
            if (got === 65531) {
              echoed++;
              resolve();
            }
          });
          socket.on('close', () => {
            evicted++;
            resolve();
          });
          socket.write(wire);
        })));
      }
      await when(server, ['disconnect'], () => server.bufferedBytes === server.connections.size, 'one byte held per connection');
      const grown = ((await liveMemory()).arrayBuffers - before) / 2 ** 20;
      console.log(`      1,500 × (64 KiB frame + 1 byte): ${echoed} answered, ${evicted} evicted; buffers grew ${grown.toFixed(1)} MB for ${server.bufferedBytes} bytes counted`);
      expect(grown, 'each tail copied out of its read chunk').to.be.below(40);
      expect(server.connections.size, 'those answered hold their byte, counted').to.equal(echoed);
      expect(echoed, 'a budget that counts what is held does not evict them').to.be.above(1400);
    });
  });

  describe('rates per frame', () => {
    it('rateLimit 100/s answers about 100 + what refills of 13,000 one-byte frames sent in one write (13,107 before)', async () => {
      const { server, port } = await startServer({ heartbeat: false, rateLimit: { frames: 100 } });
      const raw = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      const sentAt = Date.now();
      raw.socket.write(Buffer.concat(Array.from({ length: 13_000 }, () => frame('x'))));
      await raw.waitFrames(150, 10000);
      const elapsed = Date.now() - sentAt;
      const answered = raw.frames.length;
      const [conn] = server.connections.values();
      console.log(`      ${answered} of 13,000 answered in the first ${elapsed} ms; ${conn!.bufferedBytes} bytes waiting, counted`);
      expect(answered, 'the burst and the refill, no more').to.be.at.most(100 + Math.ceil(elapsed / 10) + 1);
      expect(conn!.bufferedBytes, 'the frames past the allowance wait in the budget').to.be.above(5 * (13_000 - answered - 200));
    });
  });

  describe('handshakes count', () => {
    it("1,100 sockets stuck in 'PROXY TCP4 ' hold at most maxConnections (100) descriptors, the rest refused at once", async () => {
      const { server, port } = await startServer({ heartbeat: false, proxyProtocol: { timeout: 10000 }, maxConnections: 100 });
      const errors = clientErrors(server);
      const sockets = await rawSockets(port, 1100);
      // Refused at accept, many are closed before this line runs: counted as they are, the rest as they close.
      let closed = sockets.filter((socket) => socket.closed).length;
      const thousandClosed = new Promise<void>((resolve) => {
        if (closed >= 1000) resolve();
        for (const socket of sockets) {
          socket.on('error', () => {});
          if (socket.closed) continue;
          socket.on('close', () => ++closed >= 1000 && resolve());
          socket.write('PROXY TCP4 ');
        }
      });
      await thousandClosed;
      await new Promise((resolve) => setTimeout(resolve, 100)); // room for a wrong 1,001st close to show
      console.log(`      1,100 stalled handshakes: ${errors.length} refused at accept, ${1100 - closed} held`);
      expect(errors.length).to.equal(1000);
      expect(new Set(errors.map((e) => e.code))).to.deep.equal(new Set(['ERR_MAX_CONNECTIONS']));
      expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+: refused, 100 connections are already open or in their handshake \(maxConnections\)$/);
      expect(1100 - closed, 'sockets the server still holds, waiting for their header').to.equal(100);
    });
  });

  describe('places given back', () => {
    it('TLS clients that leave mid-handshake give their per-address place back: 5 gone, then 2 served under a cap of 2', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'pulsar-hostile-'));
      onCleanup(() => rmSync(dir, { recursive: true, force: true }));
      const { cert, key } = selfSigned(dir);
      const { port } = await startServer({ heartbeat: false, tls: { cert, key, handshakeTimeout: 10000 }, maxConnectionsPerAddress: 2 });
      for (let i = 0; i < 5; i++) {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        await once(socket, 'connect');
        socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, then gone
        socket.destroy();
        await once(socket, 'close');
      }
      // The server sees each one leave a moment after it left: a client may be refused until then, never
      // until the 10 s handshake timeout (a place held by a socket that is gone).
      const deadline = Date.now() + 4000;
      const welcome = async (): Promise<tls.TLSSocket> => {
        for (;;) {
          const socket = tls.connect({ port, host: '127.0.0.1', ca: cert, servername: 'localhost' });
          onCleanup(() => void socket.destroy());
          const outcome = await new Promise<string>((resolve) => {
            socket.once('secureConnect', () => resolve('served'));
            socket.once('error', () => resolve('refused'));
          });
          if (outcome === 'served') return socket;
          if (Date.now() > deadline) throw new Error('still refused 4 s after the half-done handshakes left: their places leaked');
        }
      };
      const clients = [await welcome(), await welcome()];
      for (const socket of clients) {
        socket.write(frame('still welcome'));
        const [data] = (await once(socket, 'data')) as [Buffer];
        expect(data.subarray(4).toString()).to.equal('still welcome');
      }
    });
  });

  describe('descriptors run out', () => {
    it('a burst of 1,000 EMFILE accept errors is one ERR_ACCEPT report a second, counting the rest', () => {
      const path = new AcceptPath(resolveServerOptions({}), { accepting: () => true, admit: () => {}, refuse: () => {}, screen: () => false, full: () => false, gone: () => {} });
      const emfile = (): NodeJS.ErrnoException => Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' });
      const reports = Array.from({ length: 1000 }, () => path.failed(emfile())).filter((r) => r !== null) as PulsarError[];
      expect(reports.map((r) => [r.code, r.message])).to.deep.equal([['ERR_ACCEPT', 'accepting a connection failed: EMFILE']]);
      const now = Date.now;
      Date.now = () => now() + 1500; // a second and a half later
      try {
        expect(path.failed(emfile())?.message).to.equal('accepting a connection failed: EMFILE (and 999 more since the last report)');
      } finally {
        Date.now = now;
      }
      const listenError = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE', syscall: 'listen' });
      expect(path.failed(listenError), 'other listener errors pass as they are').to.equal(listenError);
    });

    it('300 sockets against a CLI limited to 64 descriptors: accepting does not spin, and the server serves once they are gone', async function () {
      const { spawn } = await import('node:child_process');
      const cli = spawn('bash', ['-c', `ulimit -n 64 && exec "${process.execPath}" dist/cli.js --port 0 --heartbeat 0`], { stdio: ['ignore', 'ignore', 'pipe'] });
      onCleanup(() => void cli.kill('SIGKILL'));
      let err = '';
      const port = await new Promise<number>((resolve) => cli.stderr.on('data', (d: Buffer) => {
        err += d;
        const match = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
        if (match) resolve(Number(match[1]));
      }));
      const ticks = (): number => {
        const stat = readFileSync(`/proc/${cli.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
        return Number(stat[11]) + Number(stat[12]); // utime + stime, in clock ticks (1/100 s)
      };
      const flood = Array.from({ length: 300 }, () => {
        const socket = net.connect(port, '127.0.0.1');
        socket.on('error', () => {});
        onCleanup(() => void socket.destroy());
        return socket;
      });
      await new Promise((resolve) => setTimeout(resolve, 300)); // the flood lands
      const before = ticks();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const spent = ticks() - before;
      console.log(`      out of descriptors: ${spent} clock ticks of CPU in 1 s (100 = a whole core)`);
      expect(spent, 'not spinning on accept').to.be.below(30);
      for (const socket of flood) socket.destroy();
      await new Promise((resolve) => setTimeout(resolve, 300));
      const client = await TestClient.connect(port);
      await served(client);
    });
  });

  describe('one identity per address', () => {
    it('four spellings of one IPv4 client in PROXY headers are one address under maxConnectionsPerAddress 2; a zone id is malformed', async () => {
      const { server, port } = await startServer({ heartbeat: false, proxyProtocol: true, maxConnectionsPerAddress: 2 });
      const errors = clientErrors(server);
      const headers = ['PROXY TCP4 7.7.7.7 10.0.0.1 1000 80\r\n', 'PROXY TCP6 ::ffff:7.7.7.7 ::1 1001 80\r\n', 'PROXY TCP6 ::FFFF:707:707 ::1 1002 80\r\n', 'PROXY TCP6 0:0:0:0:0:ffff:0707:0707 ::1 1003 80\r\n'];
      const served: string[] = [];
      server.on('connection', (conn) => served.push(conn.remoteAddress));
      for (const header of headers) {
        const client = await TestClient.connect(port);
        client.socket.write(header);
        await when(server, ['connection', 'clientError'], () => served.length + errors.length >= headers.indexOf(header) + 1, 'a verdict');
      }
      expect(served).to.deep.equal(['7.7.7.7', '7.7.7.7']);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MAX_CONNECTIONS', 'ERR_MAX_CONNECTIONS']);
      const zoned = await TestClient.connect(port);
      zoned.socket.write('PROXY TCP6 fe80::1%eth0 ::1 1004 80\r\n');
      await when(server, ['clientError'], () => errors.length === 3, 'the zone id refused');
      expect(errors[2]).to.include({ code: 'ERR_PROXY_PROTOCOL' });
      expect(errors[2]!.message).to.match(/zone id/);
    });
  });

  describe('refusal is cheap', () => {
    it('a denied socket is destroyed before any connection object is served: no connection event, no id used', async () => {
      const { server, port } = await startServer({ heartbeat: false, deny: ['127.0.0.2/32'] });
      const errors = clientErrors(server);
      let connections = 0;
      server.on('connection', () => connections++);
      for (let i = 0; i < 200; i++) {
        const socket = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
        socket.on('error', () => {});
        onCleanup(() => void socket.destroy());
      }
      await when(server, ['clientError'], () => errors.length === 200, '200 refusals');
      const welcome = await TestClient.connect(port);
      await served(welcome);
      const [conn] = server.connections.values();
      expect(connections, 'only the welcome client').to.equal(1);
      expect(conn!.id, 'refusals used no id').to.equal(1);
      expect(server.stats().accepted).to.equal(1);
      expect(errors[0]!.message).to.match(/^127\.0\.0\.2:\d+: refused, 127\.0\.0\.2 is not allowed to connect/);
    });
  });

  describe('logs', () => {
    it('escapes control characters a client sends into the text log, one line per event, and sums up a flood', async () => {
      const cli = new Cli(['--port', '0', '--proxy-protocol', '--heartbeat', '0']);
      const port = await cli.port();
      const forged = await TestClient.connect(port);
      forged.socket.write('PROXY TCP4 1.2.3.4\n2026-12-06T00:00:00.000Z pulsar:server \x1b[31mforged line\x7f 5.6.7.8 1 2\r\n');
      const [line] = await cli.line(/malformed PROXY v1 line/);
      expect(line, 'no raw control character').not.to.match(/[\x00-\x1f\x7f]/);
      expect(cli.stderr.some((l) => l.startsWith('2026-12-06T00:00:00.000Z')), 'no forged line').to.equal(false);
      const flood = await rawSockets(port, 60);
      for (const socket of flood) socket.write('GET / HTTP/1.1\r\n\r\n');
      await cli.line(/… and \d+ more client error\(s\) \[ERR_PROXY_PROTOCOL\] in the last second$/);
      const lines = cli.stderr.filter((l) => l.includes('[ERR_PROXY_PROTOCOL]'));
      console.log(`      61 bad headers logged as ${lines.length} lines`);
      expect(lines.length, 'a few lines a second, then a count').to.be.at.most(12);
    });
  });

  describe('tools fail loudly', () => {
    it('pulsar bench exits 1 with a hint against an rpc server; pulsar send exits 1 on no reply and holds --count with --rpc', async () => {
      const server = new Cli(['--port', '0', '--messages', 'json', '--rpc', '--heartbeat', '0']);
      const port = String(await server.port());
      const bench = new Cli(['bench', port, '--duration', '1', '--warmup', '0', '--connections', '1']);
      expect((await bench.exit(15000)).code).to.equal(1);
      expect(bench.stderr.join('\n')).to.match(/pulsar bench: no answers in \d+\.\d+ s.*--rpc/);
      const send = new Cli(['send', port, '--json', '{"a":1}', '--wait', '300']);
      expect((await send.exit()).code).to.equal(1);
      expect(send.stderr.join('\n')).to.match(/no reply within 300 ms to 1 message\(s\).*--rpc/);
      const counted = new Cli(['send', port, '--rpc', '--count', '1', '{"n":1}', '{"n":2}']);
      expect((await counted.exit()).code).to.equal(0);
      expect(counted.stdout.filter((l) => l.startsWith('{'))).to.have.length(1);
    });
  });

  describe('lifetimes', () => {
    it('serveHealth closes with the server; client.close() twice resolves and leaves no timer; a throwing listener is ERR_LISTENER', async () => {
      const { server, port } = await startServer({ heartbeat: false });
      const endpoint = await serveHealth(server, { port: 0 });
      const client = new PulsarClient({ port });
      await client.connect();
      const errors: string[] = [];
      client.on('error', (error) => errors.push((error as PulsarError).code));
      client.on('frame', () => {
        throw new Error('a bug in the application');
      });
      client.send('one');
      client.send('two');
      await when(client, ['error'], () => errors.length === 2, 'two listener errors');
      expect(errors).to.deep.equal(['ERR_LISTENER', 'ERR_LISTENER']);
      expect(client.connected, 'the connection goes on').to.equal(true);
      const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      await Promise.all([client.close(), client.close()]);
      await client.close();
      expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length, 'no close timer left').to.be.at.most(timersBefore);
      await server.close();
      const after = await new Promise<string>((resolve) => {
        const probe = net.connect(endpoint.port, '127.0.0.1', () => resolve('open'));
        probe.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      });
      expect(after, 'the health endpoint closed with its server').to.equal('ECONNREFUSED');
    });

    it('a request-only client whose pushes nobody takes says so once, and counts it', async () => {
      const { server, port } = await startServer({ heartbeat: false, messages: json(), rpc: true });
      const warnings: string[] = [];
      const onWarning = (warning: Error & { code?: string }): void => void warnings.push(warning.code ?? '');
      process.on('warning', onWarning);
      onCleanup(() => void process.off('warning', onWarning));
      const client = await connectClient(port, { messages: json(), rpc: true });
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const [conn] = server.connections.values();
      const warned = new Promise<void>((resolve) => process.once('warning', () => resolve()));
      for (let i = 0; i < 1100; i++) conn!.send({ push: i });
      await warned;
      expect(client.inboxFull).to.equal(1);
      expect(warnings.filter((w) => w === 'PULSAR_INBOX_FULL')).to.have.length(1);
    });
  });

  describe('internals unreachable', () => {
    it('group delivery, the constructors and the running heartbeat are out of reach', async () => {
      const { server } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 50 }) });
      const group = server.group('room');
      expect((group as unknown as Record<string, unknown>).deliver, 'no unframed delivery').to.equal(undefined);
      expect(() => new (Connection as unknown as new () => unknown)()).to.throw(TypeError, /not constructible/);
      expect(() => new (ConnectionGroup as unknown as new (name: string) => unknown)('x')).to.throw(TypeError, /not constructible/);
      const heartbeat = server.options.heartbeat as IdleHeartbeat;
      expect(heartbeat.interval, 'its settings can be read').to.equal(50);
      expect(() => heartbeat.stop()).to.throw(/server runs its heartbeat/);
      expect(Object.isFrozen(server.options)).to.equal(true);
      const client = await TestClient.connect(server.address()!.port);
      await client.waitFrames(1, 3000); // heartbeats still run
      expect(String(client.frames[0])).to.equal('HEARTBEAT');
    });
  });
});
