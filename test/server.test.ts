// PulsarServer over real loopback sockets. Every wait is on an event or on state, bounded in time.
import { expect } from 'chai';
import net from 'node:net';
import {
  DecodingError,
  IdleHeartbeat,
  LengthPrefixedCodec,
  PulsarError,
  PulsarServer,
  type Connection,
} from '../lib/index.js';
import { TestClient, clientErrors, frame, nextEvent, onCleanup, record, startServer, when } from './helpers.js';

describe('PulsarServer', () => {
  describe('echo', () => {
    it('echoes a frame back unchanged, byte for byte', async () => {
      const { port } = await startServer();
      const client = await TestClient.connect(port);
      client.socket.write(Buffer.from('0000000548454c4c4f', 'hex'));
      await client.waitFrames(1);
      expect(client.received.toString('hex')).to.equal('0000000548454c4c4f');
    });

    it('echoes empty frames, every byte value and a frame split across many writes', async () => {
      const { port } = await startServer();
      const client = await TestClient.connect(port);
      const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const big = Buffer.alloc(3 * 1024 * 1024, 0xab);
      client.send(Buffer.alloc(0), binary);
      const wire = frame(big);
      for (let i = 0; i < wire.length; i += 65536 + 7) client.socket.write(wire.subarray(i, i + 65536 + 7));
      const frames = await client.waitFrames(3);
      expect(frames[0]!.length).to.equal(0);
      expect(frames[1]).to.deep.equal(binary);
      expect(frames[2]!.equals(big)).to.equal(true);
    });

    it('keeps order when frames arrive one byte at a time', async () => {
      const { port } = await startServer();
      const client = await TestClient.connect(port);
      const payloads = ['one', 'two', '', 'three'];
      const wire = Buffer.concat(payloads.map(frame));
      for (const byte of wire) client.socket.write(Buffer.from([byte]));
      const frames = await client.waitFrames(4);
      expect(frames.map(String)).to.deep.equal(payloads);
    });

    it('serves many concurrent clients, each in order, none mixed up', async () => {
      const { server, port } = await startServer();
      const clients = await Promise.all(Array.from({ length: 50 }, () => TestClient.connect(port)));
      await when(server, ['connection'], () => server.connections.size === 50, '50 connections');
      clients.forEach((client, c) => client.send(...Array.from({ length: 40 }, (_, i) => `client ${c} frame ${i}`)));
      await Promise.all(clients.map((client) => client.waitFrames(40)));
      clients.forEach((client, c) => {
        expect(client.frames.map(String)).to.deep.equal(Array.from({ length: 40 }, (_, i) => `client ${c} frame ${i}`));
      });
    });

    it('echoes pipelined frames in bulk, counting each one', async () => {
      const { server, port } = await startServer();
      const client = await TestClient.connect(port);
      const payloads = Array.from({ length: 200 }, (_, i) => `frame ${i} `.repeat(i % 7));
      const wire = Buffer.concat(payloads.map(frame));
      // Cut inside a header and inside a payload, so runs and single frames alternate.
      client.socket.write(wire.subarray(0, 1001));
      client.socket.write(wire.subarray(1001, 1002));
      client.socket.write(wire.subarray(1002));
      await client.waitFrames(200);
      expect(client.received.equals(wire)).to.equal(true);
      const conn = server.connections.get(1)!;
      expect([conn.framesIn, conn.framesOut, conn.bytesIn, conn.bytesOut]).to.deep.equal([200, 200, wire.length, wire.length]);
    });

    it('echoes a frame cut by a read together with the frames after it, in one write', async () => {
      const { server, port } = await startServer();
      const connected = nextEvent(server, 'connection');
      const client = await TestClient.connect(port);
      const [conn] = await connected;
      const writes: number[] = [];
      const write = conn.socket.write.bind(conn.socket) as (chunk: Buffer) => boolean;
      conn.socket.write = ((chunk: Buffer) => (writes.push(chunk.length), write(chunk))) as typeof conn.socket.write;
      const payloads = Array.from({ length: 20 }, (_, i) => `frame ${i} `.repeat(9)); // 20 frames of 76-78 bytes
      const wire = Buffer.concat(payloads.map(frame));
      client.socket.write(wire.subarray(0, 40)); // half of the first frame
      await when(conn.socket, ['data'], () => conn.bytesIn === 40, 'the first half read');
      client.socket.write(wire.subarray(40)); // its other half and 19 more frames: one chunk
      await client.waitFrames(20);
      expect(client.received.equals(wire)).to.equal(true);
      expect(writes, 'one write of the whole frames').to.deep.equal([wire.length]);
    });

    it('emits a frame event for every inbound frame', async () => {
      const { server, port } = await startServer();
      const seen: string[] = [];
      server.on('frame', (f, conn) => seen.push(`${conn.id}:${f}`));
      const client = await TestClient.connect(port);
      client.send('a', 'b');
      await client.waitFrames(2);
      expect(seen).to.deep.equal(['1:a', '1:b']);
    });

    it('serves IPv6 loopback', async function () {
      const server = new PulsarServer({ host: '::1', port: 0, heartbeat: false, reportInterval: false });
      onCleanup(() => server.close());
      let address;
      try {
        address = await server.listen();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') this.skip(); // no IPv6 on this host
        throw error;
      }
      expect(address.family).to.equal('IPv6');
      const client = await TestClient.connect(address.port, '::1');
      client.send('v6');
      expect(String((await client.waitFrames(1))[0])).to.equal('v6');
      expect([...server.connections.values()][0]!.remote).to.match(/^\[::1\]:\d+$/);
    });
  });

  describe('connection lifecycle', () => {
    it('names the closing phases: closing while answering, lingering until the peer\'s FIN, then closed', async () => {
      let answer = (): void => {};
      const { server, port } = await startServer({
        heartbeat: false,
        handler: (frame, conn) => new Promise<void>((resolve) => (answer = () => (conn.send(frame), resolve()))),
      });
      const client = await TestClient.connect(port, '127.0.0.1', { allowHalfOpen: true });
      let gotFin = false;
      client.socket.once('end', () => (gotFin = true));
      const framed = nextEvent(server, 'frame');
      client.send('slow');
      const [, conn] = await framed;
      expect(conn.state).to.equal('open');
      conn.close();
      expect([conn.state, conn.writable], 'answering what was read').to.deep.equal(['closing', true]);
      answer();
      await when(client.socket, ['end'], () => gotFin, "the server's FIN");
      expect([conn.state, conn.writable], 'our FIN sent, waiting for the peer').to.deep.equal(['lingering', false]);
      expect(conn.send('late'), 'dropped, not thrown').to.equal(false);
      expect([conn.framesDropped, server.connections.has(conn.id)], 'counted, and gone from connections at once').to.deep.equal([1, false]);
      expect(() => conn.send(Buffer.alloc(9 * 1024 * 1024))).to.throw().with.property('code', 'ERR_FRAME_TOO_LARGE');
      expect(() => conn.send(42 as unknown as string)).to.throw().with.property('code', 'ERR_INVALID_PAYLOAD');
      expect(String(client.frames[0])).to.equal('slow');
      const gone = nextEvent(server, 'disconnect');
      client.socket.end();
      await gone;
      expect(conn.state).to.equal('closed');
    });
  });

  describe('handler', () => {
    it('replaces the echo with a custom handler', async () => {
      const { port } = await startServer({ handler: (f, conn) => void conn.send(Buffer.from(String(f).toUpperCase())) });
      const client = await TestClient.connect(port);
      client.send('shout');
      expect(String((await client.waitFrames(1))[0])).to.equal('SHOUT');
    });

    it('supports async handlers', async () => {
      const { port } = await startServer({
        handler: async (f, conn) => {
          const copy = Buffer.from(f);
          await new Promise((resolve) => setImmediate(resolve));
          conn.send(Buffer.concat([copy, Buffer.from('!')]));
        },
      });
      const client = await TestClient.connect(port);
      client.send('a', 'b');
      expect((await client.waitFrames(2)).map(String)).to.deep.equal(['a!', 'b!']);
    });

    it('reports a throwing or rejecting handler as ERR_HANDLER and keeps serving that client', async () => {
      const { server, port } = await startServer({
        handler: async (f, conn) => {
          if (String(f) === 'throw') throw new Error('boom');
          conn.send(f);
        },
      });
      const errors: PulsarError[] = [];
      server.on('clientError', (error) => errors.push(error as PulsarError));
      const client = await TestClient.connect(port);
      client.send('throw', 'after');
      expect(String((await client.waitFrames(1))[0])).to.equal('after');
      expect(errors).to.have.length(1);
      expect(errors[0]!.code).to.equal('ERR_HANDLER');
      expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection 1\): the handler failed: boom$/);
      expect((errors[0]!.cause as Error).message).to.equal('boom');
    });

    it('reports a synchronous throw as ERR_HANDLER too', async () => {
      const { server, port } = await startServer({ handler: () => { throw new Error('sync boom'); } });
      const client = await TestClient.connect(port);
      const [error] = await Promise.all([nextEvent(server, 'clientError').then(([e]) => e), client.send('x')]);
      expect((error as PulsarError).code).to.equal('ERR_HANDLER');
      expect(client.closed).to.equal(false);
    });

    it('sends every answer to one read in order, small ones batched and large ones uncopied', async () => {
      const large = Buffer.alloc(5000, 0x6c);
      const { port } = await startServer({
        handler: (f, conn) => {
          conn.send(f);
          conn.send(large);
          conn.send(`${f}:done`);
        },
      });
      const client = await TestClient.connect(port);
      client.send('a', 'b', 'c');
      const frames = await client.waitFrames(9);
      expect(frames.map((f) => (f.length === 5000 ? (f.equals(large) ? 'large' : 'corrupt') : String(f)))).to.deep.equal(
        ['a', 'large', 'a:done', 'b', 'large', 'b:done', 'c', 'large', 'c:done'],
      );
    });

    it('sends through a codec that offers only encode() and createDecoder()', async () => {
      const inner = new LengthPrefixedCodec();
      const codec = { maxFrameLength: inner.maxFrameLength, createDecoder: () => inner.createDecoder(), encode: (p: Uint8Array) => inner.encode(p) };
      const { server, port } = await startServer({ codec });
      const client = await TestClient.connect(port);
      const payloads = ['small', 'x'.repeat(4000), ''];
      client.send(...payloads);
      expect((await client.waitFrames(3)).map(String)).to.deep.equal(payloads);
      expect(server.connections.get(1)!.bytesOut).to.equal(payloads.reduce((n, p) => n + 4 + p.length, 0));
    });

    it('answers frames sent from one connection\'s handler to another at once', async () => {
      const { server, port } = await startServer({
        handler: (f, conn) => {
          for (const other of server.connections.values()) if (other !== conn) other.send(f);
        },
      });
      const [alice, bob] = [await TestClient.connect(port), await TestClient.connect(port)];
      await when(server, ['connection'], () => server.connections.size === 2, '2 connections');
      alice.send('hi bob', 'twice');
      expect((await bob.waitFrames(2)).map(String)).to.deep.equal(['hi bob', 'twice']);
      expect(alice.frames).to.have.length(0);
    });

    it('throws ERR_FRAME_TOO_LARGE from send() for an oversized payload', async () => {
      const { server, port } = await startServer({ codec: new LengthPrefixedCodec({ maxFrameLength: 16 }) });
      const client = await TestClient.connect(port);
      client.send('x');
      await client.waitFrames(1);
      const conn = server.connections.get(1)!;
      expect(() => conn.send(Buffer.alloc(17))).to.throw(PulsarError).with.property('code', 'ERR_FRAME_TOO_LARGE');
      expect(conn.send(Buffer.alloc(16))).to.equal(true);
      await client.waitFrames(2);
      expect(client.frames[1]!.length).to.equal(16);
    });
  });

  describe('bad input', () => {
    it('closes only the client whose header announces an oversized frame, and never waits for its payload', async () => {
      const { server, port } = await startServer({ codec: new LengthPrefixedCodec({ maxFrameLength: 1024 }) });
      const { clientErrors, disconnects } = record(server);
      const good = await TestClient.connect(port);
      const bad = await TestClient.connect(port);
      const badPort = bad.socket.localPort;
      const gone = nextEvent(server, 'disconnect');
      bad.socket.write(Buffer.from('00000401', 'hex')); // 1025 bytes announced, none sent
      await Promise.all([bad.waitClosed(), gone]);
      expect(clientErrors).to.have.length(1);
      expect(clientErrors[0]!.code).to.equal('ERR_FRAME_TOO_LARGE');
      expect(clientErrors[0]!.remote).to.equal(`127.0.0.1:${badPort}`);
      expect(disconnects[0]).to.include({ reason: 'error', code: 'ERR_FRAME_TOO_LARGE' });
      good.send('still here', Buffer.alloc(1024, 1));
      const frames = await good.waitFrames(2);
      expect(String(frames[0])).to.equal('still here');
      expect(frames[1]!.length).to.equal(1024);
    });

    it('rejects a 4 GiB header with the default codec', async () => {
      const { server, port } = await startServer();
      const bad = await TestClient.connect(port);
      const [[error]] = await Promise.all([nextEvent(server, 'clientError'), bad.socket.write(Buffer.from('ffffffff', 'hex'))]);
      expect(error).to.be.instanceOf(DecodingError);
      expect((error as DecodingError).code).to.equal('ERR_FRAME_TOO_LARGE');
      await bad.waitClosed();
    });

    it('answers the complete frames before a truncated one, then reports ERR_TRUNCATED_FRAME', async () => {
      const { server, port } = await startServer();
      const { clientErrors } = record(server);
      const client = await TestClient.connect(port);
      client.socket.end(Buffer.concat([frame('whole'), Buffer.from('0000000a4142', 'hex')]));
      await client.waitClosed();
      expect(client.frames.map(String)).to.deep.equal(['whole']);
      expect(clientErrors.map((e) => e.code)).to.deep.equal(['ERR_TRUNCATED_FRAME']);
    });

    it('survives a client reset mid-frame, reporting it, while others are served', async () => {
      const { server, port } = await startServer();
      const { disconnects } = record(server);
      const errors = clientErrors(server);
      const good = await TestClient.connect(port);
      const rude = await TestClient.connect(port);
      rude.socket.write(Buffer.from('00000010414243', 'hex'));
      await when(server, ['connection'], () => server.connections.size === 2, 'two connections');
      const rudeConn = [...server.connections.values()].find((c) => c.remotePort === rude.socket.localPort)!;
      // Reset once the server has read the partial frame (its own 'data' listener runs first).
      await when(rudeConn.socket, ['data'], () => rudeConn.bytesIn === 7, 'the partial frame to be read');
      const gone = nextEvent(server, 'disconnect');
      rude.socket.resetAndDestroy();
      const [, reason, error] = await gone;
      // A reset is not an end: the peer never said it was done, and the partial frame is lost with it.
      expect(reason).to.equal('error');
      expect([(error as PulsarError).code, ((error as PulsarError).cause as NodeJS.ErrnoException).code]).to.deep.equal(['ERR_CONNECTION_LOST', 'ECONNRESET']);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_CONNECTION_LOST']);
      expect(disconnects).to.have.length(1);
      good.send('fine');
      expect(String((await good.waitFrames(1))[0])).to.equal('fine');
      expect(server.connections.size).to.equal(1);
    });
  });

  describe('graceful close', () => {
    it('answers every frame read before close, even to a client that reads only afterwards, then ends', async () => {
      const { server, port } = await startServer();
      const client = await TestClient.connect(port);
      client.socket.pause();
      const n = 200;
      client.send(...Array.from({ length: n }, (_, i) => `frame ${i}`));
      await when(server, ['frame'], () => [...server.connections.values()][0]?.framesIn === n, 'all frames read');
      const closeEvents: unknown[] = [];
      server.on('close', (r) => closeEvents.push(r));
      const closing = server.close();
      expect(server.close()).to.equal(closing);
      client.socket.resume();
      const result = await closing;
      await client.waitClosed();
      expect(client.frames.map(String)).to.deep.equal(Array.from({ length: n }, (_, i) => `frame ${i}`));
      expect(result).to.deep.equal({ drained: 1, forced: 0 });
      expect(closeEvents).to.deep.equal([{ drained: 1, forced: 0 }]);
    });

    it('reports a frame cut short by the shutdown instead of dropping it silently', async () => {
      const { server, port } = await startServer();
      const { clientErrors } = record(server);
      const client = await TestClient.connect(port);
      client.socket.write(Buffer.concat([frame('whole'), Buffer.from('0000000a41', 'hex')])); // one write: one chunk
      await client.waitFrames(1);
      expect(server.connections.get(1)!.bytesIn, 'the partial frame was read with the whole one').to.equal(14);
      expect(await server.close()).to.deep.equal({ drained: 1, forced: 0 });
      expect(client.frames.map(String)).to.deep.equal(['whole']);
      expect(clientErrors.map((e) => e.code)).to.deep.equal(['ERR_TRUNCATED_FRAME']);
    });

    it('waits for pending async handlers before ending a connection', async () => {
      let finish!: () => void;
      const held = new Promise<void>((resolve) => (finish = resolve));
      const { server, port } = await startServer({
        handler: async (f, conn) => { const copy = Buffer.from(f); await held; conn.send(copy); },
      });
      const client = await TestClient.connect(port);
      client.send('late');
      await nextEvent(server, 'frame');
      const closing = server.close();
      setImmediate(finish);
      expect(await closing).to.deep.equal({ drained: 1, forced: 0 });
      await client.waitClosed();
      expect(client.frames.map(String)).to.deep.equal(['late']);
    });

    it('stops accepting at once', async () => {
      const { server, port } = await startServer();
      await server.close();
      const refused = await new Promise<string>((resolve) => {
        const s = net.connect(port, '127.0.0.1');
        s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
        s.on('connect', () => { s.destroy(); resolve('connected'); });
      });
      expect(refused).to.equal('ECONNREFUSED');
    });

    it('destroys what is still open at the shutdown timeout and counts it as forced', async () => {
      const big = Buffer.alloc(8 * 1024 * 1024);
      const { server, port } = await startServer({ shutdownTimeout: 300, handler: (_f, conn) => { for (let i = 0; i < 3; i++) conn.send(big); } });
      const client = await TestClient.connect(port);
      client.keepRaw = false;
      client.socket.pause(); // never reads: 24 MiB cannot flush
      client.send('go');
      await nextEvent(server, 'frame');
      const { disconnects } = record(server);
      const started = Date.now();
      const result = await server.close();
      expect(Date.now() - started).to.be.within(250, 3000);
      expect(result).to.deep.equal({ drained: 0, forced: 1 });
      expect(disconnects).to.deep.equal([{ id: 1, reason: 'timeout', code: 'ERR_CLOSE_TIMEOUT' }]);
      expect(server.connections.size).to.equal(0);
    });

    it('delivers pending answers to a peer that half-closes and keeps reading', async () => {
      const { port } = await startServer({
        handler: async (f, conn) => {
          const copy = Buffer.from(f);
          await new Promise((resolve) => setTimeout(resolve, 20));
          conn.send(copy);
        },
      });
      const client = await TestClient.connect(port, '127.0.0.1', { allowHalfOpen: true });
      client.socket.end(Buffer.concat(['x', 'y', 'z'].map(frame)));
      await client.waitFrames(3);
      expect(client.frames.map(String)).to.deep.equal(['x', 'y', 'z']);
      await client.waitClosed();
    });

    it('closes one connection gracefully with conn.close()', async () => {
      const { server, port } = await startServer({
        handler: (f, conn) => { conn.send(f); if (String(f) === 'bye') conn.close(); },
      });
      const { disconnects } = record(server);
      const client = await TestClient.connect(port);
      const gone = nextEvent(server, 'disconnect');
      client.send('a', 'bye');
      await Promise.all([client.waitClosed(), gone]);
      expect(client.frames.map(String)).to.deep.equal(['a', 'bye']);
      expect(disconnects).to.deep.equal([{ id: 1, reason: 'close', code: undefined }]);
      expect(server.connections.size).to.equal(0);
    });

    it('resolves at once when nothing is connected, and emits close once, asynchronously', async () => {
      const server = new PulsarServer({ port: 0, heartbeat: false, reportInterval: false });
      await server.listen();
      let closes = 0;
      const closing = server.close();
      server.on('close', () => closes++);
      expect(await closing).to.deep.equal({ drained: 0, forced: 0 });
      await server.close();
      expect(closes).to.equal(1);
      await server.listen().then(
        () => expect.fail('listen after close must reject'),
        (error: PulsarError) => expect(error.code).to.equal('ERR_SERVER_STATE'),
      );
    });

    it('leaves no timers or handles behind', async () => {
      await new Promise(setImmediate); // mocha arms its own test timer once the test is under way
      const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      const server = new PulsarServer({ port: 0, heartbeat: new IdleHeartbeat({ interval: 50, idleTimeout: 1000 }), reportInterval: 50 });
      const { port } = await server.listen();
      const client = await TestClient.connect(port);
      client.send('x');
      await client.waitFrames(1);
      await server.close();
      await client.waitClosed();
      expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).to.be.at.most(before);
      expect(server.address()).to.equal(null);
    });
  });

  describe('listen and options', () => {
    it('rejects listen() with the real error when the port is taken', async () => {
      const { port } = await startServer();
      const second = new PulsarServer({ port, heartbeat: false, reportInterval: false });
      onCleanup(() => second.close());
      const error = await second.listen().then(() => null, (e: NodeJS.ErrnoException) => e);
      expect(error?.code).to.equal('EADDRINUSE');
    });

    it('resolves listen() with the real address and port', async () => {
      const server = new PulsarServer({ port: 0, heartbeat: false, reportInterval: false });
      onCleanup(() => server.close());
      const seen = nextEvent(server, 'listening');
      const address = await server.listen();
      expect(address.address).to.equal('127.0.0.1');
      expect(address.family).to.equal('IPv4');
      expect(address.port).to.be.above(0);
      expect((await seen)[0]).to.deep.equal(address);
      expect(server.address()).to.deep.equal(address);
    });

    it('rejects a listen() still in progress when close() comes first', async () => {
      const server = new PulsarServer({ port: 0, heartbeat: false, reportInterval: false });
      const listening = server.listen();
      const closing = server.close();
      const error = await listening.then(() => null, (e: PulsarError) => e);
      expect(error?.code).to.equal('ERR_SERVER_STATE');
      expect(await closing).to.deep.equal({ drained: 0, forced: 0 });
      expect(server.address()).to.equal(null);
    });

    it('rejects bad options with ERR_INVALID_OPTION naming the option and value', () => {
      const cases: Array<[object, RegExp]> = [
        [{ port: 70000 }, /port must be an integer from 0 to 65535, got 70000 \(number\)/],
        [{ port: '80' }, /port must be an integer from 0 to 65535, got '80' \(string\)/],
        [{ host: '' }, /host must be a non-empty string/],
        [{ maxConnections: 0 }, /maxConnections must be an integer >= 1/],
        [{ reportInterval: 0 }, /reportInterval/],
        [{ shutdownTimeout: -5 }, /shutdownTimeout/],
        [{ handler: 'echo' }, /handler must be a function/],
        [{ codec: {} }, /codec must implement createDecoder, encode/],
        [{ registry: { add() {} } }, /registry must implement add, remove, snapshot \(missing remove, snapshot\)/],
        [{ heartbeat: true }, /heartbeat must implement start, stop/],
      ];
      for (const [options, message] of cases) {
        expect(() => new PulsarServer(options as never), JSON.stringify(options))
          .to.throw(PulsarError, message).with.property('code', 'ERR_INVALID_OPTION');
      }
    });

    it('exposes the live connections with their figures', async () => {
      const { server, port } = await startServer();
      const client = await TestClient.connect(port);
      const sent = Date.now();
      client.send('abc');
      await client.waitFrames(1);
      const answered = Date.now();
      const conn: Connection = server.connections.get(1)!;
      expect(conn).to.include({ id: 1, remoteAddress: '127.0.0.1', remotePort: client.socket.localPort, framesIn: 1, framesOut: 1, bytesIn: 7, bytesOut: 7, state: 'open' });
      expect(conn.lastSeen, 'the time of the last inbound byte').to.be.within(sent, answered);
    });
  });
});
