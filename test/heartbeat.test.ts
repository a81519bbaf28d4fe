// IdleHeartbeat against a fake host and a fake clock: sweep() is driven by hand, so no real time passes.
import { expect } from 'chai';
import { IdleHeartbeat, PulsarError, type HeartbeatHost, type HeartbeatPeer } from '../lib/index.js';

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
