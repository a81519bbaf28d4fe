// Sending to a connection that is gone never breaks the sender (docs/library.md, "Sending"): the most
// natural broadcast loop keeps delivering to every live reader while another connection is closed under
// it (as a slow consumer by size or by time, by the memory budget, or by its peer's reset).
import { expect } from 'chai';
import { PulsarMetrics } from '../lib/metrics/index.js';
import type { Connection, PulsarServer, PulsarServerOptions } from '../lib/index.js';
import { TestClient, clientErrors, expectNumbered, nextEvent, numbered, runCommand, startServer, when } from './helpers.js';

const FRAME = 64 * 1024;
const BURST = 20;

type Loop = 'server.connections' | "the application's own set";

/**
 * A server whose handler sends every frame to every connection, as a new user writes it: over
 * `server.connections`, or over a set the application keeps from `connection` to `disconnect` (which
 * still holds a connection after it can no longer be written, so frames are offered to it).
 */
async function broadcastServer(loop: Loop, options: PulsarServerOptions): Promise<{ server: PulsarServer; port: number; offeredAfterGone: Map<Connection, number> }> {
  const members = new Set<Connection>();
  const offeredAfterGone = new Map<Connection, number>();
  let server!: PulsarServer;
  const started = await startServer({
    ...options,
    handler: (payload) => {
      const targets = loop === 'server.connections' ? server.connections.values() : members;
      for (const c of targets) {
        if (!c.writable) offeredAfterGone.set(c, (offeredAfterGone.get(c) ?? 0) + 1);
        c.send(payload);
      }
    },
  });
  server = started.server;
  server.on('connection', (c) => members.add(c));
  server.on('disconnect', (c) => members.delete(c));
  return { ...started, offeredAfterGone };
}

interface Victim {
  /** Options that make the server close the victim. */
  options: PulsarServerOptions;
  /** The code it is closed with. */
  code: string;

  /** Sets up the victim client (it connects before the readers). */
  prepare(victim: TestClient): void;
  /** Called after each burst has reached the readers, with the burst's number. */
  afterBurst?(victim: TestClient, burst: number): void;
}

const VICTIMS: Record<string, Victim> = {
  'a non-reader closed by maxPendingOutput': {
    options: { maxPendingOutput: 1024 * 1024 },
    code: 'ERR_SLOW_CONSUMER',
    prepare: (victim) => victim.socket.pause(),
  },
  'a non-reader closed by writeTimeout': {
    options: { maxPendingOutput: 0, writeTimeout: 300 },
    code: 'ERR_SLOW_CONSUMER',
    prepare: (victim) => victim.socket.pause(),
  },
  'a non-reader evicted by the memory budget': {
    options: { maxPendingOutput: 0, writeTimeout: 0, maxBufferedBytes: 4 * 1024 * 1024 },
    code: 'ERR_MEMORY_LIMIT',
    prepare: (victim) => victim.socket.pause(),
  },
  'a reader whose peer resets mid-broadcast': {
    options: {},
    code: 'ERR_CONNECTION_LOST',
    prepare: () => {},
    afterBurst: (victim, burst) => {
      if (burst === 1) victim.socket.resetAndDestroy();
    },
  },
};

describe('sending to a connection that is gone', function () {
  this.timeout(30000);

  for (const loop of ['server.connections', "the application's own set"] as const) {
    for (const [name, victimCase] of Object.entries(VICTIMS)) {
      it(`a broadcast over ${loop} reaches every live reader while ${name} is closed`, async () => {
        const { server, port, offeredAfterGone } = await broadcastServer(loop, { heartbeat: false, ...victimCase.options });
        const errors = clientErrors(server);
        const victim = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
        victimCase.prepare(victim);
        const readers = await Promise.all([1, 2, 3].map(() => TestClient.connect(port, '127.0.0.1', { keepRaw: false })));
        const sender = readers[0]!; // the sender reads too: it is one of the connections
        await when(server, ['connection'], () => server.connections.size === 4, '4 connections');
        const victimConn = [...server.connections.values()][0]!;
        const gone = nextEvent(server, 'clientError', 20000, (e) => e.code === victimCase.code);
        let sent = 0;
        // Bursts until the victim is closed, then as many again: frames are offered to it after it is gone.
        let burstsAfter = -1;
        for (let burst = 0; burstsAfter < 3; burst++) {
          for (let i = 0; i < BURST; i++) sender.send(numbered(sent++, FRAME));
          await Promise.all(readers.map((r) => r.waitFrames(sent, 15000)));
          victimCase.afterBurst?.(victim, burst);
          if (burstsAfter >= 0) burstsAfter++;
          else if (!victimConn.writable) burstsAfter = 0;
          else if (burst > 60) throw new Error(`the victim was not closed after ${sent} frames`);
        }
        const [error] = await gone;
        expect(error.message, 'the error names the victim').to.include(victimConn.remote);
        readers.forEach((r, i) => expectNumbered(r, sent, `reader ${i}`, FRAME));
        expect(server.connections.has(victimConn.id), 'the victim left server.connections').to.equal(false);
        expect(errors.map((e) => e.code).filter((c) => c !== victimCase.code), 'no error for the sender or the readers').to.deep.equal([]);
        expect([...server.connections.values()].every((c) => c.state === 'open'), 'every reader still open').to.equal(true);
        const offered = offeredAfterGone.get(victimConn) ?? 0;
        if (loop === 'server.connections') expect(offered, 'a loop over server.connections never meets it again').to.equal(0);
        expect(victimConn.framesDropped, 'framesDropped counts exactly those').to.equal(offered);
        expect(server.stats().framesDropped).to.equal(offered);
      });
    }
  }

  for (const [name, options, code] of [
    ['maxPendingOutput', { maxPendingOutput: 256 * 1024 }, 'ERR_SLOW_CONSUMER'],
    ['the memory budget', { maxPendingOutput: 0, maxBufferedBytes: 512 * 1024 }, 'ERR_MEMORY_LIMIT'],
  ] as const) {
    it(`drops and counts the frames a loop offers right after the send that closed a connection (${name})`, async () => {
      // Sent outside a handler, so each send() writes at once and the one that passes the limit closes
      // the non-reader there and then; the loop goes on offering it frames, which must be dropped.
      const { server, port } = await startServer({ heartbeat: false, ...options });
      const errors = clientErrors(server);
      const deaf = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      deaf.socket.pause();
      const reader = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      await when(server, ['connection'], () => server.connections.size === 2, '2 connections');
      const members = [...server.connections.values()];
      const deafConn = members[0]!;
      const dropped = new Map<Connection, number>();
      let n = 0;
      let after = 0; // rounds after it was closed
      while (after < 3) {
        if (!deafConn.writable) after++;
        if (n > 4000) throw new Error('the non-reader was never closed');
        for (const c of members) {
          const gone = !c.writable;
          const written = c.send(numbered(n, FRAME));
          if (gone) dropped.set(c, (dropped.get(c) ?? 0) + 1);
          expect(gone && written, 'a dropped frame returns false').to.equal(false);
        }
        n++;
        if (n % 16 === 0) await reader.waitFrames(n, 15000);
      }
      await reader.waitFrames(n, 15000);
      expectNumbered(reader, n, 'the reader', FRAME);
      expect(errors.map((e) => e.code)).to.deep.equal([code]);
      expect(dropped.get(deafConn), 'frames offered after it was gone').to.be.above(0);
      expect(deafConn.framesDropped).to.equal(dropped.get(deafConn));
      expect(dropped.has(members[1]!), 'nothing dropped for the reader').to.equal(false);
    });
  }

  it('counts dropped frames in pulsar_frames_dropped_total', async () => {
    const { server, port } = await startServer({ heartbeat: false });
    const metrics = new PulsarMetrics(server);
    const client = await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
    const [conn] = server.connections.values();
    const disconnected = nextEvent(server, 'disconnect');
    client.socket.destroy();
    await disconnected;
    expect([conn!.send('a'), conn!.send(Buffer.from('b')), conn!.send('')]).to.deep.equal([false, false, false]);
    expect(await metrics.registry.getSingleMetricAsString('pulsar_frames_dropped_total')).to.match(/^pulsar_frames_dropped_total 3$/m);
  });

  it('is a read-only view: server.connections cannot be changed from outside', async () => {
    const { server, port } = await startServer({ heartbeat: false });
    await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
    const view = server.connections as unknown as Map<number, Connection>;
    expect(view.set, 'no set').to.equal(undefined);
    expect(view.delete, 'no delete').to.equal(undefined);
    expect(view.clear, 'no clear').to.equal(undefined);
    expect(() => Map.prototype.clear.call(view)).to.throw(TypeError);
    expect(server.connections.size).to.equal(1);
    const seen: number[] = [];
    server.connections.forEach((c, id, map) => seen.push(id, c.id, map.size));
    expect(seen).to.deep.equal([1, 1, 1]);
  });
});

describe('an error event nobody listens to', function () {
  this.timeout(15000);

  it('is written once per code to stderr as a warning, and the process keeps serving', async () => {
    // A registry whose store fails on every write: an `error` per connection, and no listener for it.
    const script = `
      import { PulsarServer, MemoryRegistry, PulsarClient } from './dist/index.js';
      class Failing extends MemoryRegistry { add() { return Promise.reject(new Error('store down')); } }
      const server = new PulsarServer({ port: 0, registry: new Failing(), heartbeat: false, reportInterval: false });
      const { port } = await server.listen();
      for (let i = 0; i < 3; i++) {
        const client = new PulsarClient({ port });
        await client.connect();
        console.log('echo ' + String(await client.request('ping ' + i)));
        await client.close();
      }
      await server.close();
      console.log('served');
    `;
    const { status, stdout, stderr } = runCommand(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
    expect(status, stderr).to.equal(0);
    expect(stdout.trim().split('\n')).to.deep.equal(['echo ping 0', 'echo ping 1', 'echo ping 2', 'served']);
    const warnings = stderr.split('\n').filter((l) => l.includes('PulsarWarning'));
    expect(warnings, stderr).to.have.length(1);
    expect(warnings[0]).to.match(/\[ERR_REGISTRY\] PulsarWarning: PulsarServer: unhandled 'error' event: registry\.add\(\) failed: store down/);
  });
});
