// Rate limits (docs/limits.md, "Rates"): a connection's frames and bytes per interval (pause or close), and
// new connections per address at accept. Over real sockets; the bucket arithmetic on a fake clock.
import { expect } from 'chai';
import { ConnectionRate } from '../lib/admission/connection-rate.js';
import { channels, IdleHeartbeat, type PulsarServerOptions, type RateLimitedMessage } from '../lib/index.js';
import { PulsarMetrics } from '../lib/metrics/index.js';
import { TokenBucket } from '../lib/rate/token-bucket.js';
import { Cli } from './cli-process.js';
import { TestClient, clientErrors, expectNumbered, frame, nextEvent, numberedFrames, startServer, when } from './helpers.js';

/** Resolves with the time `client` has received `n` frames. */
async function timeOfFrame(client: TestClient, n: number, ms = 15000): Promise<number> {
  await client.waitFrames(n, ms);
  return performance.now();
}

/** Round trips of a well-behaved client, one after the other: their times in ms. */
async function roundTrips(client: TestClient, n: number): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const before = client.frames.length;
    client.send(`ping ${i}`);
    await client.waitFrames(before + 1);
    times.push(performance.now() - started);
  }
  return times;
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

describe('rate limits', function () {
  this.timeout(20000);

  describe('token bucket (fake clock)', () => {
    it('holds `rate` per interval, refilled continuously, and says how long a debt lasts', () => {
      const bucket = new TokenBucket(1000, 1000, 1000, 0);
      expect(bucket.take(1000, 0), 'the burst is free').to.equal(0);
      expect(bucket.take(100, 0), '100 in debt: 100 ms at 1 per ms').to.equal(100);
      expect(bucket.tokens(100)).to.equal(0);
      expect(bucket.take(50, 150)).to.equal(0);
      expect(bucket.tokens(10_000), 'never more than its capacity').to.equal(1000);
    });

    it('connectionRate: count per interval per address group, an IPv6 /64 as one, the table bounded oldest first', () => {
      const rate = new ConnectionRate({ count: 2, interval: 1000, maxAddresses: 4 }); // two generations of 2
      expect([rate.over('10.0.0.1', 0), rate.over('10.0.0.1', 0), rate.over('10.0.0.1', 0)]).to.deep.equal([null, null, '10.0.0.1']);
      expect(rate.over('10.0.0.1', 499), 'half a token back').to.equal('10.0.0.1');
      expect(rate.over('10.0.0.1', 500 + 499), 'one token back after 500 ms').to.equal(null);
      expect([rate.over('2001:db8::1', 0), rate.over('2001:db8::2', 0), rate.over('2001:db8::ffff', 0)]).to.deep.equal([null, null, '2001:db8:0:0::/64']);
      expect(rate.over('2001:db8:0:1::1', 0), 'another /64').to.equal(null);
      expect(rate.size).to.equal(3);
      expect(rate.over('10.0.0.1', 999), 'remembered (seen again: young), still in debt').to.equal('10.0.0.1');
      rate.over('10.0.0.9', 999); // the young generation is full: the old one (2001:db8::/64, seen longest ago) is forgotten
      expect(rate.size).to.equal(3);
      expect(rate.over('10.0.0.1', 999), 'kept').to.equal('10.0.0.1');
      expect([rate.over('2001:db8::1', 999), rate.over('2001:db8::1', 999)], 'forgotten: it starts afresh, with its full count').to.deep.equal([null, null]);
      for (let i = 0; i < 1000; i++) rate.over(`10.1.${i >> 8}.${i & 255}`, 999);
      expect(rate.size, 'never more than maxAddresses').to.be.at.most(4);
    });
  });

  describe('rateLimit, over real sockets', () => {
    it('holds a flooding client to 1,000 frames/s, answers every frame in order, and a well-behaved client keeps its round trip', async () => {
      const { server, port } = await startServer({ rateLimit: { frames: 1000 } });
      const metrics = new PulsarMetrics(server, { defaultMetrics: false });
      const errors = clientErrors(server);
      const polite = await TestClient.connect(port);
      const alone = median(await roundTrips(polite, 20));
      const flooder = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      flooder.socket.write(numberedFrames(4000, 1024)); // 4 MiB at once: the kernel's buffers hold what the server does not read
      // Waits for the next hold-back as it happens (it comes again and again while the flood lasts), rather
      // than polling a state that flips back each time the bucket refills.
      const heldBack = new Promise<string | undefined>((resolve) => {
        const seen = (message: unknown): void => {
          const { connection, action } = message as RateLimitedMessage;
          if (action !== 'pause' || connection === undefined) return;
          channels.rateLimited.unsubscribe(seen);
          resolve(connection.snapshot().pausedBy);
        };
        channels.rateLimited.subscribe(seen);
      });
      const afterBurst = await timeOfFrame(flooder, 1000);
      expect(await heldBack, 'its snapshot says why it is not read').to.equal('rate');
      const duringFlood = median(await roundTrips(polite, 20));
      const end = await timeOfFrame(flooder, 4000);
      const rate = (3000 / (end - afterBurst)) * 1000;
      // Charged per frame dispatched: never faster than the rate (a 10 % margin for timer rounding); a loaded
      // machine may be slower.
      expect(rate, `${Math.round(rate)} frames/s after the burst`).to.be.within(400, 1100);
      expectNumbered(flooder, 4000);
      expect(duringFlood, `the polite client's median round trip (${alone.toFixed(2)} ms alone)`).to.be.below(Math.max(20, alone * 20));
      expect(errors, 'pausing is not an error').to.deep.equal([]);
      expect(await metrics.registry.getSingleMetricAsString('pulsar_rate_limited_total')).to.match(/^pulsar_rate_limited_total\{kind="frames",action="pause"\} [1-9]\d*$/m);
    });

    it("closes a flooder with ERR_RATE_LIMITED in 'close' mode, after answering the frames its rate let through", async () => {
      const { server, port } = await startServer({ rateLimit: { frames: 100 }, onRateLimit: 'close' });
      const errors = clientErrors(server);
      const bystander = await TestClient.connect(port);
      const flooder = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      const flooderPort = flooder.socket.localPort; // read now: a closed socket has none
      const gone = nextEvent(server, 'disconnect', 5000, (conn) => conn.remotePort === flooderPort);
      flooder.socket.write(numberedFrames(3000, 64));
      const [conn, reason, error] = await gone;
      await flooder.waitClosed();
      expect([reason, (error as { code?: string }).code]).to.deep.equal(['error', 'ERR_RATE_LIMITED']);
      // Charged per frame: its burst of 100, and what the bucket refilled (1 per 10 ms) while it lived.
      const allowance = 100 + Math.ceil((Date.now() - conn.connectedAt) / 10);
      expect(conn.framesIn, 'its burst and no more than its rate').to.be.within(100, allowance);
      expectNumbered(flooder, conn.framesIn);
      // The frames left unanswered are the rate's doing, said once: not reported as a truncated frame.
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_RATE_LIMITED']);
      expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection \d+\): over its rate limit \(100 frames per 1000 ms\): closed after answering the frames it let through$/);
      bystander.send('still served');
      expect(String((await bystander.waitFrames(1))[0])).to.equal('still served');
    });

    it('holds a client to a byte rate on large frames', async () => {
      const { port } = await startServer({ rateLimit: { bytes: 256 * 1024 } });
      const client = await TestClient.connect(port, '127.0.0.1', { keepRaw: false });
      const frameSize = 16 * 1024;
      client.socket.write(numberedFrames(64, frameSize)); // 1 MiB and its headers
      const afterBurst = await timeOfFrame(client, 16);
      const end = await timeOfFrame(client, 64);
      const rate = ((48 * (frameSize + 4)) / (end - afterBurst)) * 1000;
      expect(rate / 1024, `${Math.round(rate / 1024)} KiB/s after the burst`).to.be.within(256 * 0.5, 256 * 1.25);
      expectNumbered(client, 64);
    });

    it('never counts time held back against the client: no idle timeout, no heartbeat, no frame timeout', async () => {
      const options: PulsarServerOptions = { rateLimit: { frames: 50 }, heartbeat: new IdleHeartbeat({ interval: 100, idleTimeout: 300 }), frameTimeout: 300 };
      const { server, port } = await startServer(options);
      const errors = clientErrors(server);
      const client = await TestClient.connect(port);
      let beats = 0;
      server.on('heartbeat', () => beats++);
      client.socket.write(numberedFrames(200, 1024)); // 4 s of its rate, most of it held back
      await client.waitFrames(200, 15000);
      expectNumbered(client, 200);
      expect(errors, 'not reaped while held back').to.deep.equal([]);
      expect(beats, 'no heartbeat while held back').to.equal(0);
    });
  });

  describe('connectionRate, over real sockets', () => {
    /** Connects `n` clients from `localAddress` at once; resolves with those still open once each is served or closed. */
    async function burst(port: number, localAddress: string, n: number): Promise<{ served: TestClient[]; refused: TestClient[] }> {
      const clients = await Promise.all(Array.from({ length: n }, () => TestClient.connect(port, '127.0.0.1', { localAddress })));
      await Promise.all(clients.map(async (c, i) => {
        c.send(`hello ${i}`);
        await when(c.socket, ['data', 'close'], () => c.frames.length > 0 || c.closed, 'an echo or a close');
      }));
      return { served: clients.filter((c) => !c.closed), refused: clients.filter((c) => c.closed) };
    }

    it('refuses connections beyond count per interval from one address at accept, others unaffected', async () => {
      const { server, port } = await startServer({ connectionRate: { count: 20, interval: 10_000 } });
      const metrics = new PulsarMetrics(server, { defaultMetrics: false });
      const errors = clientErrors(server);
      const { served, refused } = await burst(port, '127.0.0.2', 50);
      expect([served.length, refused.length]).to.deep.equal([20, 30]);
      expect(refused.every((c) => c.frames.length === 0), 'nothing read from the refused').to.equal(true);
      expect(errors.map((e) => e.code)).to.deep.equal(Array(30).fill('ERR_RATE_LIMITED'));
      expect(errors[0]!.message).to.match(/^127\.0\.0\.2:\d+: refused, 127\.0\.0\.2 opened more than 20 connections within 10000 ms \(connectionRate\)$/);
      const other = await burst(port, '127.0.0.3', 5);
      expect(other.served.length, 'another address is unaffected').to.equal(5);
      const text = await metrics.registry.getSingleMetricAsString('pulsar_rate_limited_total');
      expect(text).to.match(/^pulsar_rate_limited_total\{kind="connections",action="refuse"\} 30$/m);
    });

    it('serves an address again once its bucket has refilled, not before', async () => {
      const { port } = await startServer({ connectionRate: { count: 1, interval: 300 } });
      const before = performance.now(); // the one token is taken after this
      expect((await burst(port, '127.0.0.2', 2)).served.length).to.equal(1);
      let servedAfter: number | undefined;
      while (servedAfter === undefined && performance.now() - before < 5000) {
        if ((await burst(port, '127.0.0.2', 1)).served.length === 1) servedAfter = performance.now() - before;
      }
      expect(servedAfter, 'ms until served again').to.be.within(290, 3000);
    });

    it('judges the PROXY source, and counts an IPv6 /64 as one address', async () => {
      const { server, port } = await startServer({ proxyProtocol: true, connectionRate: { count: 2, interval: 60_000 } });
      const errors = clientErrors(server);
      const claims = ['2001:db8::1', '2001:db8::2', '2001:db8::3', '2001:db8:0:1::1', '203.0.113.7'];
      const clients: TestClient[] = [];
      for (const [i, source] of claims.entries()) {
        const client = await TestClient.connect(port);
        const family = source.includes(':') ? 'TCP6' : 'TCP4';
        const destination = source.includes(':') ? '2001:db8::ff' : '198.51.100.1';
        client.socket.write(Buffer.concat([Buffer.from(`PROXY ${family} ${source} ${destination} ${40000 + i} 8080\r\n`), frame(`from ${source}`)]));
        await when(client.socket, ['data', 'close'], () => client.frames.length > 0 || client.closed, `an echo or a close for ${source}`);
        clients.push(client);
      }
      expect(clients.map((c) => c.closed)).to.deep.equal([false, false, true, false, false]);
      expect(errors.map((e) => e.message)).to.have.length(1);
      expect(errors[0]!.message).to.match(/^\[2001:db8::3\]:40002: refused, 2001:db8:0:0::\/64 opened more than 2 connections/);
    });

    it('--connection-rate 20/10s from the CLI: 20 of a burst of 50 served, 30 refused, logged with the address and summed up past 5 a second', async () => {
      const cli = new Cli(['--port', '0', '--connection-rate', '20/10s', '--heartbeat', '0']);
      const port = await cli.port();
      const { served, refused } = await burst(port, '127.0.0.2', 50);
      expect([served.length, refused.length]).to.deep.equal([20, 30]);
      const other = await burst(port, '127.0.0.3', 3);
      expect(other.served.length).to.equal(3);
      await cli.line(/127\.0\.0\.2:\d+: refused, 127\.0\.0\.2 opened more than 20 connections within 10000 ms \(connectionRate\) \[ERR_RATE_LIMITED\]/);
      await cli.line(/… and 25 more client error\(s\) \[ERR_RATE_LIMITED\] in the last second$/);
      expect(cli.stderr.filter((l) => l.includes('refused, 127.0.0.2'))).to.have.length(5);
    });

    it('--rate-limit from the CLI holds a flooder back; bad rates exit 2 with the reason', async () => {
      const cli = new Cli(['--port', '0', '--rate-limit', '500/s', '--rate-limit-bytes', '1m/s', '--heartbeat', '0']);
      const client = await TestClient.connect(await cli.port(), '127.0.0.1', { keepRaw: false });
      client.socket.write(numberedFrames(1000, 1024));
      const afterBurst = await timeOfFrame(client, 500);
      const end = await timeOfFrame(client, 1000);
      // A ceiling (the limit holds) with a loose floor (it is the limit that holds it back, not a stall).
      expect((500 / (end - afterBurst)) * 1000, 'frames/s after the burst').to.be.within(250, 600);
      for (const [flag, value, reason] of [
        ['--rate-limit', 'fast', "must be N/DURATION (a count, a slash, a duration such as s, 10s, 500ms, 1m or 1h), got 'fast'"],
        ['--rate-limit', '0/s', 'must be a number above 0, got 0 (number)'],
        ['--rate-limit', '10/0s', "needs a duration above 0, got '10/0s'"],
        ['--connection-rate', '20/10x', "must be N/DURATION (a count, a slash, a duration such as s, 10s, 500ms, 1m or 1h), got '20/10x'"],
        ['--on-rate-limit', 'drop', "must be 'pause' or 'close', got 'drop' (string)"],
      ] as const) {
        const bad = new Cli(flag === '--on-rate-limit' ? ['--rate-limit', '5/s', flag, value] : [flag, value]);
        expect((await bad.exit()).code).to.equal(2);
        expect(bad.stderr[0]).to.equal(`pulsar: ${flag} ${reason}`);
      }
    });
  });
});
