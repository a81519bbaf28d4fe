// The memory budget and the deadline sweep against fake connections and a fake clock: no sockets, no
// real time. The same rules over real sockets are in limits.test.ts.
import { expect } from 'chai';
import { DeadlineSweep, type DeadlinePeer } from '../lib/server/deadlines.js';
import type { PulsarError } from '../lib/index.js';
import { MemoryBudget } from '../lib/server/memory-budget.js';

/** A holder whose bytes the test sets; like a Connection, it reports changes as deltas. */
class FakeHolder {
  held = 0;
  accounted = 0;
  evicted = false;
  constructor(readonly name: string, readonly budget: () => MemoryBudget<FakeHolder>) {}
  /** Holds `bytes` now, and says so to the budget. */
  hold(bytes: number): void {
    const delta = bytes - this.accounted;
    this.held = this.accounted = bytes;
    this.budget().change(delta);
  }
  /** Holds `bytes` now without saying so (output the kernel took, seen only at a recount). */
  drainSilently(bytes: number): void {
    this.held = bytes;
  }
  recount(): number {
    this.accounted = this.held;
    return this.held;
  }
}

function budgetOf(limit: number, names: string[]) {
  const evictions: string[] = [];
  const holders: FakeHolder[] = [];
  const budget: MemoryBudget<FakeHolder> = new MemoryBudget(limit, () => holders.filter((h) => !h.evicted), (h) => h.recount(), (holder, held) => {
    evictions.push(`${holder.name}:${held}`);
    holder.evicted = true;
    holder.hold(0); // as Connection#destroy does: the release is reported
  });
  for (const name of names) holders.push(new FakeHolder(name, () => budget));
  return { budget, evictions, holders };
}

describe('MemoryBudget', () => {
  it('evicts the biggest holders first, only until the total fits', () => {
    const { budget, evictions, holders: [small, big, bigger, medium] } = budgetOf(100, ['small', 'big', 'bigger', 'medium']);
    small!.hold(5);
    big!.hold(40);
    medium!.hold(20);
    expect(evictions).to.deep.equal([]);
    bigger!.hold(60); // 125 > 100: evicting bigger (60) is enough
    expect(evictions).to.deep.equal(['bigger:60']);
    expect(budget.total).to.equal(65);
    big!.hold(90); // 115 > 100: big itself is the biggest
    expect(evictions).to.deep.equal(['bigger:60', 'big:90']);
    expect(budget.total).to.equal(25);
  });

  it('recounts before evicting, so output the kernel took since is not held against anyone', () => {
    const { evictions, holders: [a, b] } = budgetOf(100, ['a', 'b']);
    a!.hold(80);
    a!.drainSilently(10); // drained, not yet reported
    b!.hold(50); // 130 counted, 60 in truth
    expect(evictions).to.deep.equal([]);
    b!.hold(95); // 105 in truth
    expect(evictions).to.deep.equal(['b:95']);
  });

  it('counts but never evicts with limit 0, and never evicts on a shrink', () => {
    const { budget, evictions, holders: [a] } = budgetOf(0, ['a']);
    a!.hold(10 ** 9);
    expect(budget.total).to.equal(10 ** 9);
    const limited = budgetOf(100, ['a']);
    limited.holders[0]!.hold(100);
    limited.holders[0]!.hold(50);
    expect([...evictions, ...limited.evictions]).to.deep.equal([]);
  });
});

interface FakePeer extends DeadlinePeer {
  name: string;
  frameStartedAt: number;
  pendingBytes: number;
  flushedBytes: number;
}

describe('DeadlineSweep', () => {
  const peer = (name: string, over: Partial<FakePeer> = {}): FakePeer => ({ name, frameStartedAt: 0, pendingBytes: 0, flushedBytes: 0, ...over });

  function sweepOf(limits: { frameTimeout: number; writeTimeout: number }, peers: FakePeer[]) {
    const clock = { now: 1000 };
    const expired: string[] = [];
    const sweep = new DeadlineSweep(limits, () => peers, (p, error: PulsarError) => {
      expired.push(`${p.name}@${clock.now}:${error.code}`);
      peers.splice(peers.indexOf(p), 1);
    }, () => clock.now);
    const runUntil = (to: number): void => {
      while (clock.now < to) {
        clock.now += 10;
        sweep.sweep();
      }
    };
    return { sweep, clock, expired, runUntil };
  }

  it('expires a frame not complete within frameTimeout of its first byte, and only that one', () => {
    const trickling = peer('trickling', { frameStartedAt: 1000 });
    const between = peer('between');
    const { expired, runUntil, clock } = sweepOf({ frameTimeout: 300, writeTimeout: 0 }, [trickling, between]);
    runUntil(1290);
    expect(expired).to.deep.equal([]);
    runUntil(1300);
    expect(expired).to.deep.equal(['trickling@1300:ERR_FRAME_TIMEOUT']);
    between.frameStartedAt = clock.now; // a new frame begins: its own full timeout
    runUntil(1590);
    expect(expired).to.have.length(1);
  });

  it('expires output that makes no progress for writeTimeout, and never output that moves, however slowly', () => {
    const stuck = peer('stuck', { pendingBytes: 5000, flushedBytes: 100 });
    const slow = peer('slow', { pendingBytes: 5000, flushedBytes: 100 });
    const { expired, runUntil, clock } = sweepOf({ frameTimeout: 0, writeTimeout: 200 }, [stuck, slow]);
    for (let t = 1100; t <= 3000; t += 100) {
      runUntil(t);
      slow.flushedBytes += 1; // one byte every 100 ms still counts as progress
    }
    expect(expired).to.deep.equal(['stuck@1210:ERR_SLOW_CONSUMER']);
    slow.pendingBytes = 0; // drained: its clock restarts when output is pending again
    runUntil(clock.now + 500);
    slow.pendingBytes = 10;
    runUntil(clock.now + 190);
    expect(expired).to.have.length(1);
  });

  it('starts no timer when both limits are off', () => {
    const { sweep } = sweepOf({ frameTimeout: 0, writeTimeout: 0 }, []);
    const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    sweep.start();
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).to.equal(before);
    sweep.stop();
  });
});
