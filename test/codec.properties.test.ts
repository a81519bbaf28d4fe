// Property-based tests of the default decoder (fast-check), for every length-field size and byte order.
// Expected results come from a reference parser written here from the wire format, not from the codec.
import { expect } from 'chai';
import fc from 'fast-check';
import { DecodingError, LengthPrefixedCodec, type FrameDecoder, type LengthFieldLength } from '../lib/index.js';

const FIELD_SIZES: LengthFieldLength[] = [1, 2, 4];
const ORDERS = ['big', 'little'] as const;
type ByteOrder = (typeof ORDERS)[number];
const RUNS = { numRuns: 150 };

interface Format {
  headerLength: LengthFieldLength;
  byteOrder: ByteOrder;
  maxFrameLength: number;
}

function header(format: Format, length: number): Buffer {
  const bytes = Buffer.alloc(format.headerLength);
  if (format.byteOrder === 'big') bytes.writeUIntBE(length, 0, format.headerLength);
  else bytes.writeUIntLE(length, 0, format.headerLength);
  return bytes;
}

function readHeader(format: Format, bytes: Buffer, offset: number): number {
  return format.byteOrder === 'big'
    ? bytes.readUIntBE(offset, format.headerLength)
    : bytes.readUIntLE(offset, format.headerLength);
}

type Outcome = 'clean' | 'ERR_FRAME_TOO_LARGE' | 'ERR_TRUNCATED_FRAME';

/** What the wire format says a whole stream decodes to: its frames, then how it ends. */
function reference(format: Format, stream: Buffer): { frames: Buffer[]; outcome: Outcome } {
  const frames: Buffer[] = [];
  let at = 0;
  while (at < stream.length) {
    if (stream.length - at < format.headerLength) return { frames, outcome: 'ERR_TRUNCATED_FRAME' };
    const length = readHeader(format, stream, at);
    if (length > format.maxFrameLength) return { frames, outcome: 'ERR_FRAME_TOO_LARGE' };
    if (stream.length - at - format.headerLength < length) return { frames, outcome: 'ERR_TRUNCATED_FRAME' };
    frames.push(stream.subarray(at + format.headerLength, at + format.headerLength + length));
    at += format.headerLength + length;
  }
  return { frames, outcome: 'clean' };
}

/** Cuts `stream` at the given positions (taken modulo its length, sorted, duplicates making empty chunks). */
function cut(stream: Buffer, cuts: number[]): Buffer[] {
  const points = cuts.map((c) => (stream.length === 0 ? 0 : c % (stream.length + 1))).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of points) {
    chunks.push(stream.subarray(from, point));
    from = point;
  }
  chunks.push(stream.subarray(from));
  return chunks;
}

/**
 * Feeds chunks to the decoder, draining it after each one with `next()` or, as `useRun` says, `nextRun()`,
 * and checks after every drain that it holds less than one frame's worth of bytes.
 */
function decode(format: Format, decoder: FrameDecoder, chunks: Buffer[], useRun: boolean[]): { frames: Buffer[]; outcome: Outcome } {
  const frames: Buffer[] = [];
  let call = 0;
  try {
    for (const chunk of chunks) {
      decoder.push(chunk);
      for (;;) {
        const run = useRun[call++ % useRun.length] ? decoder.nextRun!() : null;
        if (run !== null) {
          const inRun = reference(format, run.wire);
          expect(inRun.outcome, 'a run holds whole frames only').to.equal('clean');
          expect(inRun.frames.length, 'a run counts its frames').to.equal(run.frames);
          frames.push(...inRun.frames.map((f) => Buffer.from(f)));
          continue;
        }
        const frame = decoder.next();
        if (frame === null) break;
        frames.push(Buffer.from(frame));
      }
      expect(decoder.bufferedBytes, 'bytes held after a drain').to.be.below(format.headerLength + format.maxFrameLength);
    }
    decoder.end();
    return { frames, outcome: 'clean' };
  } catch (error) {
    if (!(error instanceof DecodingError)) throw error;
    expect(error.code).to.be.oneOf(['ERR_FRAME_TOO_LARGE', 'ERR_TRUNCATED_FRAME']);
    expect(decoder.bufferedBytes, 'a failed decoder lets go of its input').to.equal(0);
    expect(() => decoder.next(), 'a failed decoder stays failed').to.throw(DecodingError);
    return { frames, outcome: error.code as Outcome };
  }
}

const cuts = fc.array(fc.nat(), { maxLength: 40 });
const drainModes = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 });

function formats(headerLength: LengthFieldLength, byteOrder: ByteOrder): fc.Arbitrary<Format> {
  const fieldMax = 2 ** (8 * headerLength) - 1;
  return fc.integer({ min: 0, max: Math.min(fieldMax, 600) }).map((maxFrameLength) => ({ headerLength, byteOrder, maxFrameLength }));
}

/** Payloads from empty to exactly the limit, the limit itself often. */
function payloads(max: number): fc.Arbitrary<Uint8Array[]> {
  const payload = fc.oneof(
    fc.uint8Array({ maxLength: max }),
    fc.uint8Array({ minLength: max, maxLength: max }),
    fc.constant(new Uint8Array(0)),
  );
  return fc.array(payload, { maxLength: 20 });
}

/** A byte stream made of valid frames, headers announcing anything (near the limit often) and raw bytes. */
function hostileStream(format: Format): fc.Arbitrary<Buffer> {
  const fieldMax = 2 ** (8 * format.headerLength) - 1;
  const nearMax = fc.integer({ min: Math.max(0, format.maxFrameLength - 2), max: Math.min(fieldMax, format.maxFrameLength + 2) });
  const segment = fc.oneof(
    fc.uint8Array({ maxLength: format.maxFrameLength }).map((p) => Buffer.concat([header(format, p.length), p])),
    fc.tuple(fc.oneof(nearMax, fc.integer({ min: 0, max: fieldMax })), fc.uint8Array({ maxLength: 64 }))
      .map(([length, body]) => Buffer.concat([header(format, length), body])),
    fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  );
  return fc.array(segment, { maxLength: 12 }).map((segments) => Buffer.concat(segments));
}

describe('LengthPrefixedCodec properties (fast-check)', () => {
  for (const headerLength of FIELD_SIZES) {
    for (const byteOrder of ORDERS) {
      const name = `${headerLength}-byte ${byteOrder}-endian`;
      const codecFor = (f: Format) => new LengthPrefixedCodec({ lengthFieldLength: headerLength, byteOrder, maxFrameLength: f.maxFrameLength });

      it(`${name}: any payloads, encoded and cut anywhere, decode to the same payloads`, () => {
        const cases = formats(headerLength, byteOrder).chain((format) => fc.tuple(fc.constant(format), payloads(format.maxFrameLength), cuts, drainModes));
        fc.assert(
          fc.property(cases, ([format, list, cutAt, useRun]) => {
            const codec = codecFor(format);
            const wire = list.map((p) => codec.encode(p));
            wire.forEach((w, i) => expect(w.equals(Buffer.concat([header(format, list[i]!.length), list[i]!])), 'encode matches the wire format').to.equal(true));
            const result = decode(format, codec.createDecoder(), cut(Buffer.concat(wire), cutAt), useRun);
            expect(result.outcome).to.equal('clean');
            expect(result.frames.map((f) => f.toString('hex'))).to.deep.equal(list.map((p) => Buffer.from(p).toString('hex')));
          }),
          RUNS,
        );
      });

      it(`${name}: any bytes decode to the frames the format defines, or fail with a DecodingError code, never otherwise`, () => {
        const cases = formats(headerLength, byteOrder).chain((format) => fc.tuple(fc.constant(format), hostileStream(format), cuts, drainModes));
        fc.assert(
          fc.property(cases, ([format, stream, cutAt, useRun]) => {
            const expected = reference(format, stream);
            const result = decode(format, codecFor(format).createDecoder(), cut(stream, cutAt), useRun);
            expect(result.outcome).to.equal(expected.outcome);
            expect(result.frames.map((f) => f.toString('hex'))).to.deep.equal(expected.frames.map((f) => f.toString('hex')));
          }),
          RUNS,
        );
      });

      if (headerLength > 1) {
        it(`${name}: large frames trickling in as small chunks (coalesced into blocks) decode intact`, () => {
          const fieldMax = 2 ** (8 * headerLength) - 1;
          const cases = fc.record({
            maxFrameLength: fc.integer({ min: 20_000, max: Math.min(fieldMax, 50_000) }),
            lengths: fc.array(fc.integer({ min: 0, max: 50_000 }), { minLength: 1, maxLength: 3 }),
            sizes: fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 30 }),
            seed: fc.nat(255),
          });
          fc.assert(
            fc.property(cases, ({ maxFrameLength, lengths, sizes, seed }) => {
              const format: Format = { headerLength, byteOrder, maxFrameLength };
              const list = lengths.map((n, i) => Buffer.from(Array.from({ length: Math.min(n, maxFrameLength) }, (_, b) => (b * 31 + i + seed) & 0xff)));
              const stream = Buffer.concat(list.map((p) => Buffer.concat([header(format, p.length), p])));
              const chunks: Buffer[] = [];
              for (let at = 0, k = 0; at < stream.length; at += sizes[k++ % sizes.length]!) chunks.push(stream.subarray(at, at + sizes[k % sizes.length]!));
              const result = decode(format, codecFor(format).createDecoder(), chunks, [false]);
              expect(result.outcome).to.equal('clean');
              expect(result.frames.length).to.equal(list.length);
              result.frames.forEach((f, i) => expect(f.equals(list[i]!), `frame ${i}`).to.equal(true));
            }),
            { numRuns: 40 },
          );
        });
      }

      it(`${name}: fully random bytes never throw anything but a DecodingError`, () => {
        const cases = formats(headerLength, byteOrder).chain((format) => fc.tuple(fc.constant(format), fc.uint8Array({ maxLength: 2048 }), cuts, drainModes));
        fc.assert(
          fc.property(cases, ([format, bytes, cutAt, useRun]) => {
            const stream = Buffer.from(bytes);
            expect(decode(format, codecFor(format).createDecoder(), cut(stream, cutAt), useRun).outcome).to.equal(reference(format, stream).outcome);
          }),
          RUNS,
        );
      });
    }
  }
});
