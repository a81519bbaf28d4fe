// Resource limits (docs/limits.md) over real sockets: memory bounded whatever clients do. Every test keeps a well-behaved
// client served while the attack goes on.
import { expect } from 'chai';
import net from 'node:net';
import { Cli } from './cli-process.js';
import type { Connection, PulsarServer } from '../lib/index.js';
import { DeadlineSweep } from '../lib/server/deadlines.js';
import { TestClient, clientErrors, frame, memoryOf, nextEvent, onCleanup, record, served, startServer, when } from './helpers.js';

const MiB = 1024 * 1024;

/** A process's resident memory now and at its peak (Linux: /proc/PID/status), in bytes. */
/** A client that sends `wire` once; `settled` once it is all sent or the server closed the connection. */
function attacker(port: number, wire: Buffer): { socket: net.Socket; closed: () => boolean; settled: Promise<void> } {
  const socket = net.connect({ port, host: '127.0.0.1' });
  onCleanup(() => void socket.destroy());
  socket.on('error', () => {}); // evicted: a reset is expected
  let closed = false;
  const settled = new Promise<void>((resolve) => {
    socket.on('close', () => {
      closed = true;
      resolve();
    });
    socket.on('connect', () => socket.write(wire, () => resolve()));
  });
  return { socket, closed: () => closed, settled };
}

/** A handler that sends every frame to every open connection, as a chat room or a game server would. */
function broadcastTo(getServer: () => PulsarServer) {
  return (payload: Buffer): void => {
    for (const conn of getServer().connections.values()) if (conn.state === 'open') conn.send(payload);
  };
}

describe('resource limits', function () {
  this.timeout(60000);

  describe('maxBufferedBytes', () => {
    it('evicts the biggest holders of partial frames with ERR_MEMORY_LIMIT and bounds RSS, while a small-frame client gets every echo', async () => {
      const cli = new Cli(['--port', '0', '--log', 'json', '--max-buffered', '64m', '--report', '100', '--heartbeat', '0']);
      const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
      const bystander = await TestClient.connect(Number(port));
      await served(bystander);
      const base = memoryOf(cli.child.pid!);
      // Each announces an 8 MiB frame and sends all of it but the last byte: 3.2 GB offered in all.
      const frameLength = 8 * MiB;
      const wire = Buffer.alloc(4 + frameLength - 1, 0x61);
      wire.writeUInt32BE(frameLength, 0);
      const attackers = Array.from({ length: 400 }, () => attacker(Number(port), wire));
      for (let i = 0; i < 50; i++) await served(bystander, `during the attack ${i}`);
      await Promise.all(attackers.map((a) => a.settled));

      // Settled: the server's view matches the clients' (every evicted one closed, the rest fully read).
      const open = (): number => attackers.filter((a) => !a.closed()).length;
      const lastReport = (): Record<string, unknown> | undefined => cli.records().filter((r) => r.event === 'report').at(-1);
      await when(cli.child.stdout!, ['data'], () => {
        const report = lastReport();
        return report?.count === 1 + open() && report.bufferedBytes === open() * wire.length; // the header and all but one payload byte
      }, 'a report agreeing with the clients', 20000).catch((error: Error) => {
        throw new Error(`${error.message}: ${open()} open; last report ${JSON.stringify({ ...lastReport(), connections: undefined })}`);
      });
      const { peak } = memoryOf(cli.child.pid!);
      const evicted = cli.records().filter((r) => r.event === 'clientError' && (r.err as { code: string }).code === 'ERR_MEMORY_LIMIT');
      // A flood of one code is logged as 5 lines a second and a line that counts the rest.
      const summed = (): number => cli.records().filter((r) => r.event === 'clientErrors' && r.code === 'ERR_MEMORY_LIMIT').reduce((n, r) => n + (r.more as number), 0);
      await when(cli.child.stdout!, ['data'], () => evicted.length + summed() >= 400 - open(), 'the evictions logged or summed up');
      const growth = (peak - base.rss) / MiB;
      console.log(`      peak RSS ${(peak / MiB).toFixed(0)} MB: ${growth.toFixed(0)} MB over the ${(base.rss / MiB).toFixed(0)} MB before the attack; ${evicted.length + summed()} evicted, ${open()} held`);

      expect(open(), 'at most 64 MiB of partial 8 MiB frames held').to.be.at.most(8);
      expect(evicted.length + summed(), 'one ERR_MEMORY_LIMIT per evicted client, logged or counted').to.equal(400 - open());
      // At most 5 lines in each second the evictions spanned (a loaded machine spreads them over more seconds).
      const times = evicted.map((r) => r.time as number);
      const seconds = Math.ceil((Math.max(...times) - Math.min(...times)) / 1000) + 1;
      expect(evicted.length, `a flood is summed up: a few lines a second (${seconds} s)`).to.be.at.most(5 * seconds);
      for (const record of evicted) {
        expect((record.err as { message: string }).message).to.match(/^127\.0\.0\.1:\d+ \(connection \d+\): evicted holding \d+ bytes: .*maxBufferedBytes \(67108864 bytes\)/);
        expect(record.remotePort).to.be.a('number');
      }
      // Live: the 64 MiB budget. On top, garbage: the evicted clients' read buffers, which V8 frees only
      // at its next collection (triggered after tens of MB of new external memory, finished later when the
      // GC thread is starved of CPU). Measured 170–350 MB of growth in all over 20 runs with both cores busy; without
      // the budget this attack would hold 3,200 MB (400 × 8 MiB).
      expect(growth, 'peak RSS growth in MB').to.be.below(64 + 320);
      await served(bystander, 'after the attack');
      expect(bystander.closed).to.equal(false);
    });

    it('shows the total held in server.bufferedBytes and in reports', async () => {
      const { server, port } = await startServer({ reportInterval: 50 });
      const partial = await TestClient.connect(port);
      partial.socket.write(frame(Buffer.alloc(1000)).subarray(0, 600)); // the header and 596 payload bytes of 1000
      let reported = -1;
      server.on('report', (report) => (reported = report.bufferedBytes));
      await when(server, ['report'], () => reported === 600, 'a report of the 600 bytes held');
      expect(server.bufferedBytes).to.equal(600);
      partial.socket.write(frame(Buffer.alloc(1000)).subarray(600));
      await partial.waitFrames(1);
      expect(server.bufferedBytes).to.equal(0);
    });
  });

  describe('frameTimeout', () => {
    it('closes a client that stops mid-frame or mid-header with ERR_FRAME_TIMEOUT, within the timeout\'s bounds', async () => {
      const { server, port } = await startServer({ frameTimeout: 300 });
      const errors = clientErrors(server);
      const bystander = await TestClient.connect(port);
      const midPayload = await TestClient.connect(port);
      const midHeader = await TestClient.connect(port);
      const ports = [midPayload.socket.localPort, midHeader.socket.localPort];
      const started = Date.now();
      midPayload.socket.write(frame(Buffer.alloc(1000, 7)).subarray(0, 504));
      midHeader.socket.write(Buffer.from([0, 0]));
      await served(bystander);
      await Promise.all([midPayload.waitClosed(5000), midHeader.waitClosed(5000)]);
      expect(Date.now() - started).to.be.within(290, 300 + 2000);
      const timedOut = errors.filter((e) => e.code === 'ERR_FRAME_TIMEOUT').map((e) => e.port).sort();
      expect(timedOut).to.deep.equal([...ports].sort());
      expect(errors.find((e) => e.port === ports[0])!.message).to.match(/^127\.0\.0\.1:\d+ \(connection \d+\): frame not complete \d+ ms after its first byte \(frameTimeout 300 ms\)$/);
      await served(bystander);
    });

    it('never cuts complete frames however slowly they come: no frame is in progress between them', async () => {
      // The rule, not the timer: between complete frames the connection has no frame clock running, so a
      // deadline sweep at any later time (a fake clock, 10 s on) finds nothing to expire.
      const { server, port } = await startServer({ frameTimeout: 300 });
      const errors = clientErrors(server);
      const client = await TestClient.connect(port);
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      const [conn] = server.connections.values();
      const expired: string[] = [];
      let now = Date.now();
      const sweep = new DeadlineSweep({ frameTimeout: 300, writeTimeout: 0 }, () => [conn!], (_, error) => void expired.push(error.code), () => now);
      for (let i = 0; i < 3; i++) {
        client.send(`frame ${i}`);
        await client.waitFrames(i + 1);
        expect(conn!.frameStartedAt, `no frame in progress after frame ${i}`).to.equal(0);
        now += 10_000;
        sweep.sweep();
      }
      client.socket.write(frame('half').subarray(0, 6)); // a frame begun: now its clock runs
      // The server's own socket listener runs first: once 'data' is seen here, the chunk was read.
      await when(conn!.socket, ['data'], () => conn!.frameStartedAt > 0, 'the partial frame to be read');
      now = conn!.frameStartedAt + 299;
      sweep.sweep();
      expect(expired, 'not yet at 299 ms').to.deep.equal([]);
      now += 1;
      sweep.sweep();
      expect(expired, 'at 300 ms').to.deep.equal(['ERR_FRAME_TIMEOUT']);
      expect(client.frames.map(String)).to.deep.equal(['frame 0', 'frame 1', 'frame 2']);
      expect(errors).to.deep.equal([]);
    });
  });

  describe('slow consumers', () => {
    /**
     * One sender and one reader that read everything, two clients that never read, and a broadcasting
     * handler; the sender sends numbered 32 KiB frames until both non-readers are closed (bounded).
     */
    async function fanOut(limits: { maxPendingOutput: number; writeTimeout: number }) {
      let server: PulsarServer | undefined;
      const started = await startServer({ ...limits, handler: broadcastTo(() => server!) });
      server = started.server;
      const errors = clientErrors(server);
      let peakBuffered = 0;
      server.on('frame', () => (peakBuffered = Math.max(peakBuffered, server!.bufferedBytes)));
      const sender = await TestClient.connect(started.port, '127.0.0.1', { keepRaw: false });
      const reader = await TestClient.connect(started.port, '127.0.0.1', { keepRaw: false });
      const deaf = await Promise.all([0, 1].map(() => TestClient.connect(started.port, '127.0.0.1', { keepRaw: false })));
      for (const client of deaf) client.socket.pause();
      await when(server, ['connection'], () => server!.connections.size === 4, 'four connections');
      const numbered = (n: number): Buffer => Buffer.alloc(32 * 1024, n % 251);
      let sent = 0;
      while (!deaf.every((c) => c.closed) && sent < 4096) {
        sender.send(numbered(sent++));
        if (sent % 32 === 0) await sender.waitFrames(sent, 10000); // paced by its own echoes
      }
      await Promise.all([sender.waitFrames(sent, 10000), reader.waitFrames(sent, 10000)]);
      for (const client of [sender, reader]) {
        expect(client.frames.length, 'readers miss nothing').to.equal(sent);
        client.frames.forEach((f, n) => {
          if (!f.equals(numbered(n))) expect.fail(`frame ${n} differs`);
        });
      }
      return { errors, deaf, peakBuffered, sent, server };
    }

    it('closes a client whose pending output passes maxPendingOutput with ERR_SLOW_CONSUMER; readers miss nothing', async () => {
      const maxPendingOutput = 2 * MiB;
      const { errors, deaf, peakBuffered, server } = await fanOut({ maxPendingOutput, writeTimeout: 0 });
      const slow = errors.filter((e) => e.code === 'ERR_SLOW_CONSUMER');
      expect(slow.map((e) => e.port).sort()).to.deep.equal(deaf.map((c) => c.socket.localPort).sort());
      for (const e of slow) expect(e.message).to.match(/slow consumer: \d+ bytes of output pending, over maxPendingOutput \(2097152 bytes\)$/);
      // Each of the four connections holds at most its limit plus one frame.
      expect(peakBuffered, 'peak bytes held by the server').to.be.below(4 * (maxPendingOutput + 40 * 1024));
      expect(server.connections.size).to.equal(2);
    });

    it('closes a client whose pending output makes no progress for writeTimeout with ERR_SLOW_CONSUMER; readers miss nothing', async () => {
      const { errors, deaf } = await fanOut({ maxPendingOutput: 0, writeTimeout: 300 });
      const slow = errors.filter((e) => e.code === 'ERR_SLOW_CONSUMER');
      expect(slow.map((e) => e.port).sort()).to.deep.equal(deaf.map((c) => c.socket.localPort).sort());
      for (const e of slow) expect(e.message).to.match(/slow consumer: \d+ bytes of output made no progress for \d+ ms \(writeTimeout 300 ms\)$/);
    });
  });

  describe('honest shutdown counts', () => {
    it('forces a client that never reads and keeps sending, with ERR_CLOSE_TIMEOUT; readers get every answer and are drained', async () => {
      const { server, port } = await startServer({ shutdownTimeout: 500 });
      const errors = clientErrors(server);
      const readers = await Promise.all([0, 1].map(() => TestClient.connect(port)));
      const greedy = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      const greedyPort = greedy.socket.localPort;
      greedy.socket.pause();
      const wire = frame(Buffer.alloc(16 * 1024, 3));
      const pump = (): void => {
        while (greedy.socket.writable) if (!greedy.socket.write(wire)) return void greedy.socket.once('drain', pump);
      };
      pump();
      await when(server, ['backpressure'], () => [...server.connections.values()].some((c: Connection) => c.paused), 'the greedy client paused');
      for (const [i, reader] of readers.entries()) reader.send(`a${i}`, `b${i}`);
      await Promise.all(readers.map((r) => r.waitFrames(2)));
      const { disconnects, result } = await closeRecording(server);
      expect(result).to.deep.equal({ drained: 2, forced: 1 });
      expect(disconnects.find((d) => d.port === greedyPort)).to.deep.include({ reason: 'timeout', code: 'ERR_CLOSE_TIMEOUT' });
      expect(errors.filter((e) => e.code === 'ERR_CLOSE_TIMEOUT').map((e) => e.port)).to.deep.equal([greedyPort]);
      readers.forEach((r, i) => expect(r.frames.map(String)).to.deep.equal([`a${i}`, `b${i}`]));
    });

    it('forces a connection whose answers all left but whose peer never closed its side', async () => {
      const { server, port } = await startServer({ shutdownTimeout: 300 });
      const halfOpen = await TestClient.connect(port, '127.0.0.1', { allowHalfOpen: true }); // ignores our FIN
      const halfOpenPort = halfOpen.socket.localPort;
      halfOpen.send('x');
      await halfOpen.waitFrames(1);
      const { disconnects, result } = await closeRecording(server);
      expect(result).to.deep.equal({ drained: 0, forced: 1 });
      expect(disconnects).to.deep.equal([{ port: halfOpenPort, reason: 'timeout', code: 'ERR_CLOSE_TIMEOUT' }]);
    });
  });
});

/** Closes `server`, recording each disconnect with its reason and error code. */
async function closeRecording(server: PulsarServer) {
  const disconnects: Array<{ port: number; reason: string; code: string | undefined }> = [];
  server.on('disconnect', (conn, reason, error) => disconnects.push({ port: conn.remotePort, reason, code: (error as { code?: string } | undefined)?.code }));
  const result = await server.close();
  return { disconnects, result };
}

describe('maxConnections and backpressure', () => {
  it('closes connections beyond maxConnections at once, with ERR_MAX_CONNECTIONS', async () => {
    const { server, port } = await startServer({ maxConnections: 2 });
    const { clientErrors } = record(server);
    const a = await TestClient.connect(port);
    const b = await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 2, 'two connections');
    const refused = nextEvent(server, 'clientError');
    const c = await TestClient.connect(port);
    const cPort = c.socket.localPort;
    await Promise.all([c.waitClosed(), refused]);
    expect(clientErrors).to.deep.equal([{ code: 'ERR_MAX_CONNECTIONS', remote: `127.0.0.1:${cPort}` }]);
    a.send('a');
    b.send('b');
    await Promise.all([a.waitFrames(1), b.waitFrames(1)]);
    expect(server.connections.size).to.equal(2);
  });

  it('stops reading from a client that never reads, bounding server memory, and loses nothing once it does', async function () {
    this.timeout(20000);
    const highWaterMark = 256 * 1024;
    const { server, port } = await startServer({ highWaterMark });
    const events: string[] = [];
    server.on('backpressure', () => events.push('backpressure'));
    server.on('drain', () => events.push('drain'));
    const client = await TestClient.connect(port);
    client.keepRaw = false;
    client.socket.pause(); // never reads
    const payload = Buffer.alloc(64 * 1024, 7);
    const wire = frame(payload);
    const total = 1024; // 64 MiB offered
    for (let i = 0; i < total; i++) client.socket.write(wire);
    await nextEvent(server, 'backpressure');
    const conn = server.connections.get(1)!;
    let framesWhilePaused = 0;
    server.on('frame', () => { if (conn.paused) framesWhilePaused++; });
    expect(conn.paused).to.equal(true);
    expect(conn.pendingBytes).to.be.at.least(highWaterMark);
    // Past the mark by at most the frame that crossed it and the rest of its read chunk.
    expect(conn.pendingBytes, 'pending output stays near the mark').to.be.below(highWaterMark + 4 * wire.length);
    expect(conn.bytesIn, 'the server read a small part of what was offered').to.be.below(24 * 1024 * 1024);
    client.socket.resume();
    await client.waitFrames(total, 15000);
    expect(client.frames.every((f) => f.equals(payload))).to.equal(true);
    expect(events[0]).to.equal('backpressure');
    expect(events).to.include('drain');
    expect(events.filter((e) => e === 'backpressure').length).to.equal(events.filter((e) => e === 'drain').length);
    expect(framesWhilePaused, 'no frame is read while paused').to.equal(0);
    expect(conn.framesIn).to.equal(total);
  });
});
