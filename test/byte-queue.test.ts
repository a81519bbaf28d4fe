// ByteQueue against the obvious model (one concatenated Buffer), with fast-check: any chunking, any mix of
// operations, the same bytes out; and its memory rules (a view inside a chunk, one copy across chunks).
import { expect } from 'chai';
import fc from 'fast-check';
import { ByteQueue } from '../lib/index.js';

type Op =
  | { kind: 'push'; bytes: Uint8Array }
  | { kind: 'take'; n: number }
  | { kind: 'skip'; n: number }
  | { kind: 'find'; needle: Uint8Array; from: number };

const bytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });
// Few distinct byte values, so that delimiters occur often, also across chunk boundaries.
const smallAlphabet = (max: number): fc.Arbitrary<Uint8Array> => fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: max }).map((a) => Uint8Array.from(a));

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.oneof(bytes(40), smallAlphabet(2000), smallAlphabet(3)).map((b) => ({ kind: 'push' as const, bytes: b })) },
  { weight: 2, arbitrary: fc.nat(300).map((n) => ({ kind: 'take' as const, n })) },
  { weight: 1, arbitrary: fc.nat(300).map((n) => ({ kind: 'skip' as const, n })) },
  { weight: 2, arbitrary: fc.record({ needle: smallAlphabet(3).filter((b) => b.length > 0), from: fc.nat(50) }).map((r) => ({ kind: 'find' as const, ...r })) },
);

describe('ByteQueue', () => {
  it('gives the same bytes as one concatenated buffer, under any chunking and any mix of operations', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
      const queue = new ByteQueue();
      let model = Buffer.alloc(0);
      for (const o of ops) {
        if (o.kind === 'push') {
          queue.push(Buffer.from(o.bytes)); // pushed by reference: the model keeps its own copy
          model = Buffer.concat([model, o.bytes]);
        } else if (o.kind === 'take' || o.kind === 'skip') {
          const n = Math.min(o.n, model.length);
          if (o.kind === 'take') expect(queue.take(n).equals(model.subarray(0, n))).to.equal(true);
          else queue.skip(n);
          model = model.subarray(n);
        } else {
          const from = Math.min(o.from, model.length);
          expect(queue.indexOf(Buffer.from(o.needle), from), `indexOf ${Buffer.from(o.needle).toString('hex')} from ${from}`).to.equal(model.indexOf(Buffer.from(o.needle), from));
          expect(queue.indexOf(o.needle[0]!, from)).to.equal(model.indexOf(o.needle[0]!, from));
        }
        expect(queue.length).to.equal(model.length);
        if (model.length > 0) expect(queue.at(model.length - 1)).to.equal(model[model.length - 1]);
      }
    }), { numRuns: 400 });
  });

  it('takes a view when the bytes lie in one chunk, and one exact copy when they span chunks', () => {
    const queue = new ByteQueue();
    const first = Buffer.from('hello, world');
    queue.push(first);
    queue.push(Buffer.from('!!'));
    const view = queue.take(5);
    expect(queue.contiguous(7)).to.equal(true);
    expect(queue.contiguous(8)).to.equal(false);
    const spanning = queue.take(9);
    expect(String(spanning)).to.equal(', world!!');
    first.fill(0x2a); // what aliases the chunk shows it, what was copied does not
    expect(String(view)).to.equal('*****');
    expect(String(spanning)).to.equal(', world!!');
    expect(spanning.length).to.equal(9);
    expect(queue.length).to.equal(0);
    expect(queue.take(0).length).to.equal(0);
  });

  it('holds one entry per 16 KiB, not per chunk, when bytes trickle in one at a time', () => {
    const queue = new ByteQueue();
    for (let i = 0; i < 100_000; i++) queue.push(Buffer.from([i & 0xff]));
    expect(queue.length).to.equal(100_000);
    let entries = 0;
    while (queue.length > 0) {
      entries++;
      const head = queue.head!;
      queue.skip(head.length - queue.headOffset);
    }
    expect(entries).to.be.at.most(8 + Math.ceil(100_000 / (16 * 1024)));
  });
});
