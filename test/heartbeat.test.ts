// IdleHeartbeat against a fake host and a fake clock: sweep() is driven by hand, so no real time passes.
import { expect } from 'chai';
import { IdleHeartbeat, PulsarError, type HeartbeatHost, type HeartbeatPeer, type HeartbeatPolicy } from '../lib/index.js';
import { TestClient, nextEvent, record, startServer, when } from './helpers.js';

interface FakePeer extends HeartbeatPeer {
  lastSeen: number;
  pendingBytes: number;
  flushedBytes: number;
  name: string;
}

function fakeHost(peers: FakePeer[]) {
  const clock = { now: 0 };
  const pings: string[] = [];
  const kills: Array<{ name: string; code: string }> = [];
  const host: HeartbeatHost<FakePeer> = {
    connections: () => peers,
    now: () => clock.now,
    ping: (peer, payload) => void pings.push(`${peer.name}@${clock.now}:${Buffer.from(payload).toString()}`),
    kill: (peer, error: PulsarError) => {
      kills.push({ name: peer.name, code: error.code });
      peers.splice(peers.indexOf(peer), 1); // as the server does: a killed peer is gone
    },
  };
  return { host: host as unknown as HeartbeatHost, clock, pings, kills };
}

const peer = (name: string, over: Partial<FakePeer> = {}): FakePeer => ({ name, lastSeen: 0, pendingBytes: 0, flushedBytes: 0, ...over });

/** Advances the fake clock in sweep-sized steps up to `to`, sweeping at each. */
function runUntil(policy: IdleHeartbeat, clock: { now: number }, to: number, step = 10): void {
  while (clock.now < to) {
    clock.now = Math.min(to, clock.now + step);
    policy.sweep();
  }
}

describe('IdleHeartbeat', () => {
  let policy: IdleHeartbeat;
  afterEach(() => policy?.stop());

  it('pings a silent peer after the interval, then every interval, with HEARTBEAT by default', () => {
    policy = new IdleHeartbeat({ interval: 100 });
    const { host, clock, pings } = fakeHost([peer('a')]);
    policy.start(host);
    runUntil(policy, clock, 90);
    expect(pings).to.deep.equal([]);
    runUntil(policy, clock, 350);
    expect(pings).to.deep.equal(['a@100:HEARTBEAT', 'a@200:HEARTBEAT', 'a@300:HEARTBEAT']);
  });

  it('counts from the last inbound byte: activity postpones the heartbeat', () => {
    policy = new IdleHeartbeat({ interval: 100 });
    const a = peer('a');
    const { host, clock, pings } = fakeHost([a]);
    policy.start(host);
    runUntil(policy, clock, 80);
    a.lastSeen = 80;
    runUntil(policy, clock, 170);
    expect(pings).to.deep.equal([]);
    runUntil(policy, clock, 180);
    expect(pings).to.deep.equal(['a@180:HEARTBEAT']);
  });

  it('does not ping while the peer has output pending (it already has data coming)', () => {
    policy = new IdleHeartbeat({ interval: 100 });
    const { host, clock, pings } = fakeHost([peer('busy', { pendingBytes: 10 })]);
    policy.start(host);
    runUntil(policy, clock, 500);
    expect(pings).to.deep.equal([]);
  });

  it('reaps a peer silent for the idle timeout with ERR_IDLE_TIMEOUT, heartbeats notwithstanding', () => {
    policy = new IdleHeartbeat({ interval: 50, idleTimeout: 200 });
    const { host, clock, pings, kills } = fakeHost([peer('dead'), peer('alive')]);
    const alive = (host.connections() as FakePeer[])[1]!;
    policy.start(host);
    for (let t = 10; t <= 200; t += 10) {
      clock.now = t;
      alive.lastSeen = t;
      policy.sweep();
    }
    expect(kills).to.deep.equal([{ name: 'dead', code: 'ERR_IDLE_TIMEOUT' }]);
    expect(pings.filter((p) => p.startsWith('dead')).length).to.equal(3); // at 50, 100, 150: they kept it no longer alive
  });

  it('does not reap a slow reader while its pending output is moving, and does once it stalls', () => {
    policy = new IdleHeartbeat({ interval: 0, idleTimeout: 100 });
    const slow = peer('slow', { pendingBytes: 1000 });
    const { host, clock, kills } = fakeHost([slow]);
    policy.start(host);
    for (let t = 10; t <= 500; t += 10) {
      clock.now = t;
      slow.flushedBytes += 100; // draining
      policy.sweep();
    }
    expect(kills).to.deep.equal([]);
    runUntil(policy, clock, 590); // stalled: nothing more flushed
    expect(kills).to.deep.equal([]);
    runUntil(policy, clock, 610);
    expect(kills).to.deep.equal([{ name: 'slow', code: 'ERR_IDLE_TIMEOUT' }]);
  });

  it('carries a custom payload', () => {
    policy = new IdleHeartbeat({ interval: 10, payload: 'PING' });
    const { host, clock, pings } = fakeHost([peer('a')]);
    policy.start(host);
    runUntil(policy, clock, 10);
    expect(pings).to.deep.equal(['a@10:PING']);
  });

  it('runs one unref\'d timer, restarts cleanly and stops cleanly', () => {
    const live = new Set<NodeJS.Timeout>();
    const { setInterval: realSet, clearInterval: realClear } = globalThis;
    globalThis.setInterval = ((fn: () => void, ms: number) => {
      const timer = realSet(fn, ms);
      live.add(timer);
      return timer;
    }) as typeof setInterval;
    globalThis.clearInterval = ((timer: NodeJS.Timeout) => {
      live.delete(timer);
      realClear(timer);
    }) as typeof clearInterval;
    try {
      policy = new IdleHeartbeat({ interval: 1000 });
      const { host } = fakeHost([]);
      policy.start(host);
      policy.start(host);
      expect(live.size).to.equal(1);
      expect([...live][0]!.hasRef()).to.equal(false);
      policy.stop();
      policy.stop();
      expect(live.size).to.equal(0);
    } finally {
      globalThis.setInterval = realSet;
      globalThis.clearInterval = realClear;
    }
  });

  it('rejects bad options with ERR_INVALID_OPTION', () => {
    expect(() => new IdleHeartbeat({ interval: -1 })).to.throw(/IdleHeartbeat: interval must be an integer >= 0, got -1/)
      .with.property('code', 'ERR_INVALID_OPTION');
    expect(() => new IdleHeartbeat({ idleTimeout: Number.NaN })).to.throw(/idleTimeout/);
    expect(() => new IdleHeartbeat({ payload: 5 as never })).to.throw(/payload must be a string or a Uint8Array/);
  });
});

describe('heartbeats over sockets', () => {
  it('sends HEARTBEAT to a silent client after the interval, and again while it stays silent', async () => {
    const { server, port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 100 }) });
    let beats = 0;
    server.on('heartbeat', () => beats++);
    const started = Date.now();
    const client = await TestClient.connect(port);
    await client.waitFrames(2, 3000);
    const elapsed = Date.now() - started;
    expect(client.frames.map(String)).to.deep.equal(['HEARTBEAT', 'HEARTBEAT']);
    expect(client.received.subarray(0, 13).toString('hex')).to.equal('00000009484541525442454154');
    expect(elapsed).to.be.at.least(190);
    expect(beats).to.equal(2);
  });

  it('sends what a custom policy pings with, even when it reuses and rewrites one buffer', async () => {
    const payload = Buffer.from('beat-1');
    let host: HeartbeatHost | undefined;
    const policy: HeartbeatPolicy = { start: (h) => void (host = h), stop: () => {} };
    const { server, port } = await startServer({ heartbeat: policy });
    const client = await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 1, '1 connection');
    const pingAll = () => { for (const peer of host!.connections()) host!.ping(peer, payload); };
    pingAll();
    payload.write('beat-2');
    pingAll();
    expect((await client.waitFrames(2)).map(String)).to.deep.equal(['beat-1', 'beat-2']);
  });

  it('sends none to a client that keeps talking', async () => {
    const { server, port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 300 }) });
    let beats = 0;
    server.on('heartbeat', () => beats++);
    const client = await TestClient.connect(port);
    // Talk in lockstep for three intervals: each echo triggers the next frame.
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < 900) {
      client.send(`m${sent++}`);
      await client.waitFrames(sent);
    }
    expect(beats).to.equal(0);
    expect(client.frames.map(String)).to.deep.equal(Array.from({ length: sent }, (_, i) => `m${i}`));
  });

  it('closes a client silent for the idle timeout with ERR_IDLE_TIMEOUT, after heartbeats', async () => {
    const { server, port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 60, idleTimeout: 300 }) });
    const { clientErrors, disconnects } = record(server);
    const started = Date.now();
    const gone = nextEvent(server, 'disconnect');
    const client = await TestClient.connect(port);
    await Promise.all([client.waitClosed(5000), gone]);
    expect(Date.now() - started).to.be.at.least(290);
    expect(client.frames.length).to.be.at.least(2);
    expect(clientErrors.map((e) => e.code)).to.deep.equal(['ERR_IDLE_TIMEOUT']);
    expect(disconnects).to.deep.equal([{ id: 1, reason: 'error', code: 'ERR_IDLE_TIMEOUT' }]);
  });

  it('does not reap a slow reader while its response is still draining, by idle or by write timeout', async function () {
    this.timeout(30000);
    const chunk = Buffer.alloc(8 * 1024 * 1024, 0x5a);
    const { server, port } = await startServer({
      // 1 s: the kernel's socket buffer holds the last few MiB where Node sees no progress, and a reader
      // on a loaded machine can take several hundred ms to drain it (see README "Reliability").
      heartbeat: new IdleHeartbeat({ interval: 0, idleTimeout: 1000 }),
      writeTimeout: 1000,
      handler: (_f, conn) => { for (let i = 0; i < 3; i++) conn.send(chunk); },
    });
    const { clientErrors } = record(server);
    const client = await TestClient.connect(port);
    client.keepRaw = false;
    client.send('go');
    // Read slowly: one chunk, then pause a little, so draining 24 MiB takes well over the idle timeout.
    const started = Date.now();
    client.socket.on('data', () => {
      client.socket.pause();
      setTimeout(() => client.socket.resume(), 8);
    });
    await client.waitFrames(3, 25000);
    const elapsed = Date.now() - started;
    expect(elapsed, 'the drain must outlast the idle timeout for this test to mean anything').to.be.greaterThan(2000);
    expect(clientErrors).to.deep.equal([]);
    expect(client.frames.every((f) => f.equals(chunk))).to.equal(true);
  });
});
