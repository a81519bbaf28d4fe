// Misbehaving peers against a live server over loopback. Every test also checks that a well-behaved
// client (the bystander) is still served while the fault happens, and that the fault leaves nothing behind.
import { expect } from 'chai';
import net from 'node:net';
import { IdleHeartbeat } from '../lib/index.js';
import { TestClient, clientErrors, frame, liveMemory, nextEvent, rawSockets, served, startServer, when } from './helpers.js';

describe('faults', function () {
  this.timeout(30000);

  describe('slowloris', () => {
    for (const [what, bytes] of [['half a header', '0000'], ['half a frame', '0000000a4142434445']] as const) {
      it(`reaps clients that send ${what} and stall, after heartbeats, while a talking client stays`, async () => {
        const { server, port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 60, idleTimeout: 600 }) });
        const errors = clientErrors(server);
        const bystander = await TestClient.connect(port);
        // Answers each heartbeat, so it never goes idle.
        bystander.socket.on('data', () => String(bystander.frames.at(-1)) === 'HEARTBEAT' && bystander.send('still here'));
        const stalled = await Promise.all(Array.from({ length: 20 }, () => TestClient.connect(port)));
        for (const client of stalled) client.socket.write(Buffer.from(bytes, 'hex'));
        await Promise.all(stalled.map((c) => c.waitClosed()));
        await when(server, ['disconnect'], () => server.connections.size === 1, 'the stalled clients to be gone');
        for (const client of stalled) {
          expect(client.frames.length, 'heartbeats before the reaping').to.be.at.least(2);
          expect(client.frames.every((f) => String(f) === 'HEARTBEAT')).to.equal(true);
        }
        const idle = errors.filter((e) => e.code === 'ERR_IDLE_TIMEOUT');
        expect(idle).to.have.length(20);
        expect(idle[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection \d+\): no data for \d+ ms \(idle timeout 600 ms\)$/);
        expect(errors.length, 'nothing but idle timeouts').to.equal(20);
        expect(server.connections.size).to.equal(1);
        expect(bystander.closed).to.equal(false);
        await served(bystander, 'after the reaping');
      });
    }
  });

  describe('resets and vanished peers', () => {
    it('survives peers reset in the middle of a large response, with ERR_CONNECTION_LOST', async () => {
      const { server, port } = await startServer({ highWaterMark: 256 * 1024 });
      const errors = clientErrors(server);
      const bystander = await TestClient.connect(port);
      const rude = await Promise.all(Array.from({ length: 10 }, () => TestClient.connect(port)));
      const big = frame(Buffer.alloc(256 * 1024, 1));
      for (const client of rude) {
        client.keepRaw = false;
        for (let i = 0; i < 16; i++) client.socket.write(big);
      }
      // Each has some of its answer and stops reading in the middle of it, then resets.
      await Promise.all(rude.map((c) => c.waitBytes(64 * 1024)));
      const ports = rude.map((c) => c.socket.localPort);
      for (const client of rude) client.socket.resetAndDestroy();
      await when(server, ['disconnect'], () => server.connections.size === 1, 'the reset clients to be gone', 10000);
      // The kernel reports a reset once, to whichever call meets it first: a write (ECONNRESET, EPIPE), or
      // a read, which then sees the end of the stream in the middle of a frame.
      for (const error of errors) {
        if (error.code === 'ERR_CONNECTION_LOST') expect(error.cause).to.be.oneOf(['ECONNRESET', 'EPIPE']);
        else expect(error.code).to.equal('ERR_TRUNCATED_FRAME');
      }
      expect(new Set(errors.map((e) => e.port)), 'every reset client reported').to.deep.equal(new Set(ports));
      await served(bystander);
    });

    it('drops a send() to a peer that vanished, counting it: no throw, no client error', async () => {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let sent: boolean | undefined;
      let answered!: () => void;
      const done = new Promise<void>((resolve) => (answered = resolve));
      const { server, port } = await startServer({
        handler: async (f, conn) => {
          const copy = Buffer.from(f);
          if (String(copy) === 'slow') await gate;
          sent = conn.send(copy);
          answered();
        },
      });
      const errors = clientErrors(server);
      const bystander = await TestClient.connect(port);
      const gone = await TestClient.connect(port);
      gone.send('slow');
      await when(server, ['frame'], () => [...server.connections.values()].some((c) => c.framesIn === 1), 'the slow frame');
      const [conn] = [...server.connections.values()].filter((c) => c.framesIn === 1);
      const disconnected = nextEvent(server, 'disconnect');
      gone.socket.resetAndDestroy();
      await disconnected;
      release();
      await done;
      expect(sent, 'send() to the vanished peer').to.equal(false);
      expect(conn!.framesDropped).to.equal(1);
      expect(server.stats().framesDropped).to.equal(1);
      expect(errors.map((e) => e.code)).to.not.include('ERR_HANDLER');
      await served(bystander);
    });

    it('delivers every pending echo to a peer that half-closes (FIN) and keeps reading', async () => {
      const { port } = await startServer();
      const bystander = await TestClient.connect(port);
      const client = await TestClient.connect(port, '127.0.0.1', { allowHalfOpen: true, keepRaw: false });
      const payloads = Array.from({ length: 200 }, (_, i) => Buffer.alloc(1 + ((i * 977) % 20000), i));
      client.socket.end(Buffer.concat(payloads.map(frame)));
      await client.waitClosed();
      expect(client.frames).to.have.length(payloads.length);
      client.frames.forEach((f, i) => expect(f.equals(payloads[i]!), `frame ${i}`).to.equal(true));
      await served(bystander);
    });
  });

  describe('slow and greedy peers', () => {
    it('bounds server memory while clients send without reading, serves others meanwhile, and loses nothing', async () => {
      const highWaterMark = 256 * 1024;
      const { server, port } = await startServer({ highWaterMark });
      const bystander = await TestClient.connect(port);
      const payload = Buffer.alloc(32 * 1024, 9);
      const wire = frame(payload);
      const perClient = 512; // 16 MiB offered by each of 4 clients
      const greedy = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(port)));
      const baseline = (await liveMemory()).arrayBuffers;
      const offered = greedy.map((client) => {
        client.keepRaw = false;
        client.socket.pause(); // never reads, for now
        // Writes as fast as the server takes them, never queueing more than the socket's own buffer here.
        return new Promise<void>((resolve) => {
          let sent = 0;
          const pump = (): void => {
            while (sent < perClient) {
              sent++;
              if (!client.socket.write(wire)) return void client.socket.once('drain', pump);
            }
            resolve();
          };
          pump();
        });
      });
      await when(server, ['backpressure'], () => [...server.connections.values()].filter((c) => c.paused).length === 4, 'all four greedy clients paused', 10000);
      // Buffer memory still referenced (after a full GC) while the four hold 64 MiB back, twice in a row:
      // bounded, and not growing while the stall lasts.
      const retained: number[] = [];
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 10; i++) await served(bystander, `meanwhile ${round}.${i}`);
        retained.push((await liveMemory()).arrayBuffers - baseline);
      }
      for (const conn of server.connections.values()) {
        if (conn.paused) expect(conn.bytesIn, 'read only a part of what was offered').to.be.below(8 * 1024 * 1024);
      }
      expect(retained[0], 'buffer memory held by the server for 4 stalled clients').to.be.below(4 * (highWaterMark + 1024 * 1024));
      expect(retained[1]! - retained[0]!, 'growth during the stall').to.be.below(1024 * 1024);
      for (const client of greedy) client.socket.resume();
      await Promise.all(offered);
      await Promise.all(greedy.map((c) => c.waitFrames(perClient, 20000)));
      for (const client of greedy) expect(client.frames.every((f) => f.equals(payload))).to.equal(true);
    });
  });

  describe('connection churn', () => {
    it('turns away a flood past maxConnections with ERR_MAX_CONNECTIONS and keeps exactly the limit', async () => {
      const { server, port } = await startServer({ maxConnections: 50 });
      const errors = clientErrors(server);
      const bystander = await TestClient.connect(port);
      const flood = await rawSockets(port, 299);
      const closedByServer = flood.map((s) => new Promise<boolean>((resolve) => s.on('close', () => resolve(true))));
      await when(server, ['clientError', 'connection'], () => errors.length === 250 && server.connections.size === 50, '250 refusals and 50 held', 10000);
      expect(new Set(errors.map((e) => e.code))).to.deep.equal(new Set(['ERR_MAX_CONNECTIONS']));
      await served(bystander);
      const held = [...server.connections.values()].map((c) => c.remotePort);
      const refused = flood.filter((s) => !held.includes(s.localPort!));
      expect(refused).to.have.length(250);
      await Promise.all(refused.map((s) => closedByServer[flood.indexOf(s)]));
      for (const socket of flood) socket.destroy();
      await when(server, ['disconnect'], () => server.connections.size === 1, 'only the bystander left');
      await served(bystander);
    });

    it('leaks nothing over thousands of connect/echo/disconnect cycles: registry, timers, sockets, listeners, heap', async () => {
      const { server, port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 1000 }), reportInterval: 1000 });
      const bystander = await TestClient.connect(port);
      await served(bystander);
      // Sockets, servers and timers: what a connection could leave behind (mocha's own file reads aside).
      const resources = (): string[] => process.getActiveResourcesInfo().filter((r) => /^(TCP|Timeout|Immediate)/.test(r)).sort();
      // Weak references to every connection and socket of the cycles: none may stay reachable.
      const weak: Array<WeakRef<object>> = [];
      server.on('connection', (conn) => weak.push(new WeakRef(conn), new WeakRef(conn.socket)));
      const listeners = (): number => server.eventNames().reduce((n, e) => n + server.listenerCount(e), 0);
      const before = { resources: resources(), listeners: listeners() };
      const { heapUsed: heapBefore, rss: rssBefore } = await liveMemory();
      const cycles = 3000;
      const parallel = 50;
      let echoed = 0;
      const cycle = (i: number): Promise<void> => new Promise((resolve, reject) => {
        const socket = net.connect({ port, host: '127.0.0.1' });
        socket.on('error', reject);
        socket.once('data', () => {
          echoed++;
          // Every other client leaves with a reset instead of a FIN.
          if (i % 2 === 0) socket.end();
          else socket.resetAndDestroy();
        });
        socket.on('close', () => resolve());
        socket.write(frame(`cycle ${i}`));
      });
      for (let i = 0; i < cycles; i += parallel) await Promise.all(Array.from({ length: parallel }, (_, k) => cycle(i + k)));
      expect(echoed).to.equal(cycles);
      await when(server, ['disconnect'], () => server.connections.size === 1, 'every cycle disconnected', 10000);
      await served(bystander);
      expect(await server.options.registry.snapshot()).to.have.length(1);
      expect(resources(), 'active handles and timers').to.deep.equal(before.resources);
      expect(listeners(), 'server listeners').to.equal(before.listeners);
      const after = await liveMemory();
      expect(weak).to.have.length(2 * cycles);
      expect(weak.filter((ref) => ref.deref() !== undefined).length, 'connections and sockets still reachable').to.equal(0);
      const heapGrowth = after.heapUsed - heapBefore;
      const rssGrowth = after.rss - rssBefore;
      expect(heapGrowth, `heap growth over ${cycles} cycles`).to.be.below(2 * 1024 * 1024);
      expect(rssGrowth, `RSS growth over ${cycles} cycles`).to.be.below(48 * 1024 * 1024);
    });
  });
});
