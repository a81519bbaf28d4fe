// PulsarClient against a real PulsarServer over loopback. Every wait is on an event or a promise, bounded.
import { expect } from 'chai';
import { IdleHeartbeat, LengthPrefixedCodec, PulsarClient, PulsarError, PulsarServer } from '../lib/index.js';
import { connectClient, nextEvent, onCleanup, rejection, startServer, when } from './helpers.js';

describe('PulsarClient', () => {
  describe('frames', () => {
    it('sends frames and gets the echo through request(), frame events and the async iterator', async () => {
      const { port } = await startServer();
      const client = await connectClient(port);
      expect(String(await client.request('ping'))).to.equal('ping');
      const [frame] = await Promise.all([nextEvent(client, 'frame'), client.send('event')]);
      expect(String(frame[0])).to.equal('event');
      const frames = client[Symbol.asyncIterator]();
      const first = frames.next(); // iteration starts here, before anything more arrives
      client.send('one');
      client.send('two');
      expect(String((await first).value)).to.equal('one');
      expect(String((await frames.next()).value)).to.equal('two');
      const ended = frames.next();
      await client.close();
      expect((await ended).done, 'the iterator ends when the client closes').to.equal(true);
    });

    it('answers concurrent requests in order, each with its own frame', async () => {
      const { port } = await startServer();
      const client = await connectClient(port);
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => client.request(`request ${i}`)));
      expect(answers.map(String)).to.deep.equal(Array.from({ length: 50 }, (_, i) => `request ${i}`));
    });

    it('uses the codec it is given, as the server does', async () => {
      const codec = () => new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little', maxFrameLength: 65535 });
      const { port } = await startServer({ codec: codec() });
      const client = await connectClient(port, { codec: codec() });
      const big = Buffer.alloc(60000, 0x42);
      expect((await client.request(big)).equals(big)).to.equal(true);
      expect(() => client.send(Buffer.alloc(65536))).to.throw(PulsarError).with.property('code', 'ERR_FRAME_TOO_LARGE');
    });
  });

  describe('heartbeats and dead servers', () => {
    it('surfaces server heartbeats as heartbeat events, not data, and not as answers to requests', async () => {
      const { port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 50 }) });
      const client = await connectClient(port);
      const frames: Buffer[] = [];
      client.on('frame', (f) => frames.push(f));
      const [beat] = await nextEvent(client, 'heartbeat');
      expect(String(beat)).to.equal('HEARTBEAT');
      expect(String(await client.request('after'))).to.equal('after');
      expect(frames).to.have.length(0);
    });

    it('treats heartbeats as data with heartbeatPayload: false', async () => {
      const { port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 50 }) });
      const client = await connectClient(port, { heartbeatPayload: false });
      const [frame] = await nextEvent(client, 'frame');
      expect(String(frame)).to.equal('HEARTBEAT');
    });

    it('reports a server silent for silenceTimeout as ERR_SERVER_SILENT and closes', async () => {
      const { port } = await startServer(); // heartbeats off: it never speaks first
      const client = await connectClient(port, { silenceTimeout: 100 });
      const [[error]] = await Promise.all([nextEvent(client, 'error'), nextEvent(client, 'close')]);
      expect(error.code).to.equal('ERR_SERVER_SILENT');
      expect(client.connected).to.equal(false);
    });

    it('keeps a server that sends heartbeats alive past silenceTimeout', async () => {
      const { port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 40 }) });
      const client = await connectClient(port, { silenceTimeout: 400 });
      let beats = 0;
      client.on('heartbeat', () => beats++);
      await when(client, ['heartbeat'], () => beats >= 15, '15 heartbeats (well past the silence timeout)');
      expect(client.connected).to.equal(true);
    });
  });

  describe('errors', () => {
    it('times a request out with ERR_REQUEST_TIMEOUT, fails the others waiting and reconnects, so that no request gets another\'s answer', async () => {
      // Answers in order, 'slow' after 200 ms: what a strictly in-order server does under a slow request.
      let answered: Promise<unknown> = Promise.resolve();
      const { port } = await startServer({
        handler: (f, conn) => {
          const copy = Buffer.from(f);
          answered = answered
            .then(() => new Promise((resolve) => setTimeout(resolve, String(copy) === 'slow' ? 200 : 0)))
            .then(() => conn.send(copy));
          return answered;
        },
      });
      const client = await connectClient(port);
      const slow = client.request('slow', { timeout: 50 });
      const queued = client.request('queued behind it', { timeout: 5000 });
      const reconnected = nextEvent(client, 'reconnect');
      expect((await rejection(slow)).code).to.equal('ERR_REQUEST_TIMEOUT');
      const reset = await rejection(queued);
      expect(reset.code).to.equal('ERR_CONNECTION_CLOSED');
      expect(reset.message).to.match(/an earlier request gave up \(ERR_REQUEST_TIMEOUT\)/);
      await reconnected; // without the reconnect option too: the reset opens a new connection at once
      expect(String(await client.request('next'))).to.equal('next');
      expect(String(await client.request('and the next'))).to.equal('and the next');
    });

    it('refuses a request equal to the heartbeat payload, whose answer could not be told from a heartbeat', async () => {
      const { port } = await startServer();
      const client = await connectClient(port);
      expect((await rejection(client.request('HEARTBEAT'))).code).to.equal('ERR_INVALID_PAYLOAD');
      expect(String(await client.request('ping'))).to.equal('ping');
    });

    it('rejects pending requests with ERR_CONNECTION_CLOSED when the connection is lost', async () => {
      const { server, port } = await startServer({ handler: () => {} }); // never answers
      const client = await connectClient(port);
      const errors: PulsarError[] = [];
      client.on('error', (error) => errors.push(error));
      const pending = client.request('unanswered');
      await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
      server.connections.get(1)!.destroy();
      expect((await rejection(pending)).code).to.equal('ERR_CONNECTION_CLOSED');
      expect(() => client.send('x')).to.throw(PulsarError).with.property('code', 'ERR_CONNECTION_CLOSED');
      // Destroyed with our request unread, the server's side may reset: the client's error, if any, says so with a code.
      for (const error of errors) expect([error.code, (error.cause as NodeJS.ErrnoException).code]).to.deep.equal(['ERR_CONNECTION_LOST', 'ECONNRESET']);
    });

    it('rejects connect() with the real error, and a second connect() with ERR_CLIENT_STATE', async () => {
      const { server, port } = await startServer();
      const client = await connectClient(port);
      expect((await rejection(client.connect())).code).to.equal('ERR_CLIENT_STATE');
      await server.close();
      const refused = new PulsarClient({ port });
      expect((await rejection(refused.connect())).code).to.equal('ECONNREFUSED');
    });

    it('rejects bad options with ERR_INVALID_OPTION', () => {
      expect(() => new PulsarClient({ port: 70000 })).to.throw(PulsarError).with.property('code', 'ERR_INVALID_OPTION');
      expect(() => new PulsarClient({ silenceTimeout: -1 })).to.throw(/silenceTimeout/);
      expect(() => new PulsarClient({ reconnect: { maxAttempts: 0 } })).to.throw(/reconnect\.maxAttempts/);
      // Node fires timers of 2^31 ms or more at once: such a timeout is refused, not turned into 1 ms.
      expect(() => new PulsarClient({ requestTimeout: 2 ** 31 })).to.throw(/requestTimeout must be an integer from 0 to 2147483647/);
      expect(() => new PulsarClient({ connectTimeout: 2 ** 31 })).to.throw(/connectTimeout/);
    });

    it('rejects a request() whose timeout a timer cannot hold, and still answers the next', async () => {
      const { port } = await startServer();
      const client = await connectClient(port, { requestTimeout: 2 ** 31 - 1 });
      expect((await rejection(client.request('x', { timeout: 2 ** 31 }))).code).to.equal('ERR_INVALID_OPTION');
      expect(String(await client.request('still here'))).to.equal('still here');
    });
  });

  describe('reconnect', () => {
    it('reconnects with backoff after the server goes away and comes back on the same port, its state telling each phase', async () => {
      const first = await startServer();
      const client = new PulsarClient({ port: first.port, reconnect: { initialDelay: 20, maxDelay: 100 } });
      onCleanup(() => client.close());
      expect(client.state).to.equal('idle');
      const connecting = client.connect();
      expect(client.state).to.equal('connecting');
      await connecting;
      expect(client.state).to.equal('open');
      const delays: number[] = [];
      client.on('reconnecting', ({ delay }) => delays.push(delay));
      await first.server.close();
      await nextEvent(client, 'reconnecting');
      expect(client.state).to.equal('reconnecting');
      const second = new PulsarServer({ port: first.port, heartbeat: false, reportInterval: false });
      onCleanup(() => second.close());
      await second.listen();
      const [{ attempt }] = await nextEvent(client, 'reconnect');
      expect(client.state).to.equal('open');
      expect(attempt).to.be.at.least(1);
      expect(delays.every((d, i) => d >= Math.min(100, 20 * 2 ** i) / 2 && d <= Math.min(100, 20 * 2 ** i))).to.equal(true);
      expect(String(await client.request('again'))).to.equal('again');
      const closing = client.close();
      expect(client.state).to.equal('closing');
      await closing;
      expect(client.state).to.equal('closed');
      expect((await rejection(client.connect())).message).to.equal('cannot connect: the client is closed');
    });

    it('gives up after maxAttempts with an error, then closes', async () => {
      const { server, port } = await startServer();
      const client = await connectClient(port, { reconnect: { initialDelay: 10, maxDelay: 20, maxAttempts: 2 } });
      let attempts = 0;
      client.on('reconnecting', () => attempts++);
      const errors: PulsarError[] = [];
      client.on('error', (e) => errors.push(e as PulsarError));
      const closed = nextEvent(client, 'close');
      await server.close();
      await closed;
      expect(attempts).to.equal(2);
      expect(errors.at(-1)!.message).to.match(/gave up reconnecting .* after 2 attempt/);
    });

    it('does not reconnect after close()', async () => {
      const { port } = await startServer();
      const client = await connectClient(port, { reconnect: { initialDelay: 10 } });
      let reconnecting = 0;
      client.on('reconnecting', () => reconnecting++);
      await client.close();
      expect(reconnecting).to.equal(0);
      expect(client.connected).to.equal(false);
    });
  });
});
