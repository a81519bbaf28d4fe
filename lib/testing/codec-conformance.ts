import { deepStrictEqual, ok, strictEqual, throws } from 'node:assert';
import fc from 'fast-check';
import type { FrameCodec, FrameDecoder } from '../codecs/types.js';
import { DecodingError, PulsarError } from '../errors.js';

/** How a stream ends: cleanly, or with the error code a decoder must fail with. */
export type StreamOutcome = 'clean' | 'ERR_TRUNCATED_FRAME' | 'ERR_FRAME_TOO_LARGE' | 'ERR_MALFORMED_FRAME';

/** What a stream decodes to: frames (as handlers get them) and `'skipped'` for each frame discarded, then how it ends. */
export interface ReferenceParse {
  /** The frames in order, `'skipped'` for each frame over the limit in discard mode. */
  readonly items: ReadonlyArray<Buffer | 'skipped'>;
  /** How the stream ends. */
  readonly end: StreamOutcome;
}

/**
 * The wire format, written independently of the codec under test (from its specification, as simply
 * as possible): the suite checks the codec against it.
 */
export interface ReferenceFormat {
  /**
   * One frame whose size as the limit counts it is `body.length`, whatever the limit: its wire bytes,
   * and the frame a decoder hands out for them (which `encode` must turn back into `wire`).
   */
  frame(body: Uint8Array): ReferenceFrame;
  /** Splits a whole stream as the format says, reporting frames over the codec's limit as it should. */
  parse(stream: Buffer): ReferenceParse;
}

/** One frame as {@link ReferenceFormat.frame} gives it. */
export interface ReferenceFrame {
  /** Its bytes on the wire. */
  readonly wire: Buffer;
  /** What a decoder hands out for them, and what `encode` turns back into `wire`. */
  readonly frame: Buffer;
}

/** A codec to check, with its reference. */
export interface ConformanceSubject {
  /** Names the checks. */
  readonly name: string;
  /** The codec under test. Keep `maxFrameLength` small (hundreds of bytes): limits are checked at it. */
  readonly codec: FrameCodec;
  /** The format, written from its specification. */
  readonly reference: ReferenceFormat;
  /** The bytes frame bodies may hold (e.g. not the delimiter's first byte). @default any byte */
  readonly bodyBytes?: fc.Arbitrary<number>;
  /**
   * Wire bytes a frame has beyond its body (header, delimiter): after each drain a decoder must hold
   * fewer than `maxFrameLength + overhead` bytes.
   */
  readonly overhead: number;
}

/** One named check; `run()` throws (an `AssertionError`, or fast-check's report) when the codec fails it. */
export interface ConformanceCheck {
  /** What it checks, prefixed with the subject's name. */
  readonly name: string;
  /** Runs it; throws when the codec fails it. */
  run(): void;
}

/** Options of {@link codecConformance}. */
export interface ConformanceOptions {
  /** Cases per randomized check. @default 100 */
  numRuns?: number;
  /** fast-check seed, to replay a failure. */
  seed?: number;
}

/**
 * The conformance suite pulsar runs against every built-in codec, for any {@link FrameCodec}: round
 * trips cut at every point, hostile and random bytes against the reference, bytes held bounded, limits
 * exact, discard mode resynchronising (if the reference says so). Needs `fast-check` (a peer dependency
 * of this entry point).
 *
 * @example
 * ```ts
 * import { codecConformance } from 'pulsar/testing';
 * for (const check of codecConformance({ name: 'my codec', codec, reference, overhead: 2 })) it(check.name, () => check.run());
 * ```
 */
export function codecConformance(subject: ConformanceSubject, options: ConformanceOptions = {}): ConformanceCheck[] {
  const settings = { numRuns: options.numRuns ?? 100, ...(options.seed === undefined ? {} : { seed: options.seed }) };
  const max = subject.codec.maxFrameLength;
  const body = bodiesOf(subject.bodyBytes ?? fc.integer({ min: 0, max: 255 }));
  const fitting = fc.oneof(body(0, max), body(max, max), body(0, 0));
  const named = (name: string, run: () => void): ConformanceCheck => ({ name: `${subject.name}: ${name}`, run });
  return [
    named('frames encoded, cut anywhere and drained either way decode to themselves; encode writes the format', () => {
      fc.assert(fc.property(fc.array(fitting, { maxLength: 20 }), cuts, drains, (list, cutAt, useRun) => {
        const frames = list.map((body) => subject.reference.frame(body));
        for (const { wire, frame } of frames) ok(subject.codec.encode(frame).equals(wire), 'encode() writes what the format says');
        const stream = Buffer.concat(frames.map((f) => f.wire));
        expectDecoding(subject, cut(stream, cutAt), useRun, { items: frames.map((f) => f.frame), end: 'clean' });
      }), settings);
    }),
    named('a stream cut at every single point, and fed byte by byte, decodes the same', () => {
      const sample = fc.sample(body(0, Math.min(max, 48)), { numRuns: 4, seed: 7 });
      const frames = sample.map((body) => subject.reference.frame(body));
      const stream = Buffer.concat(frames.map((f) => f.wire));
      const expected: ReferenceParse = { items: frames.map((f) => f.frame), end: 'clean' };
      for (let at = 0; at <= stream.length; at++) expectDecoding(subject, [stream.subarray(0, at), stream.subarray(at)], [false, true], expected);
      expectDecoding(subject, Array.from(stream, (byte) => Buffer.from([byte])), [false], expected);
    }),
    named('hostile streams decode to what the reference says, or fail with its code', () => {
      fc.assert(fc.property(hostile(subject, body), cuts, drains, (stream, cutAt, useRun) => {
        expectDecoding(subject, cut(stream, cutAt), useRun, subject.reference.parse(stream));
      }), settings);
    }),
    named('random bytes decode to what the reference says, or fail with its code', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), cuts, drains, (bytes, cutAt, useRun) => {
        const stream = Buffer.from(bytes);
        expectDecoding(subject, cut(stream, cutAt), useRun, subject.reference.parse(stream));
      }), settings);
    }),
    named('the limit is exact: a frame of maxFrameLength passes, one byte more is ERR_FRAME_TOO_LARGE both ways', () => {
      const [atLimit, overLimit] = [max, max + 1].map((n) => fc.sample(body(n, n), { numRuns: 1, seed: 3 })[0]!);
      const fits = subject.reference.frame(atLimit!);
      ok(subject.codec.encode(fits.frame).equals(fits.wire), 'a frame of exactly maxFrameLength is sent');
      expectDecoding(subject, [fits.wire], [false], { items: [fits.frame], end: 'clean' });
      const over = subject.reference.frame(overLimit!);
      throws(() => subject.codec.encode(over.frame), (error: unknown) => error instanceof PulsarError && error.code === 'ERR_FRAME_TOO_LARGE');
      const oneByOne = Array.from(over.wire, (byte) => Buffer.from([byte]));
      expectDecoding(subject, oneByOne, [false], subject.reference.parse(over.wire));
    }),
  ];
}

const cuts = fc.array(fc.nat(), { maxLength: 40 });
const drains = fc.array(fc.boolean(), { minLength: 1, maxLength: 8 });

type Bodies = (minLength: number, maxLength: number) => fc.Arbitrary<Uint8Array>;

/** Frame bodies of a length in a range, made of the allowed bytes. */
function bodiesOf(bytes: fc.Arbitrary<number>): Bodies {
  return (minLength, maxLength) => fc.array(bytes, { minLength, maxLength }).map((list) => Uint8Array.from(list));
}

/** Valid frames, frames around the limit (over it too), and raw bytes, in any order. */
function hostile(subject: ConformanceSubject, body: Bodies): fc.Arbitrary<Buffer> {
  const max = subject.codec.maxFrameLength;
  const segment = fc.oneof(
    body(0, max).map((b) => subject.reference.frame(b).wire),
    body(Math.max(0, max - 2), max + 2).map((b) => subject.reference.frame(b).wire),
    fc.uint8Array({ maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
  );
  return fc.array(segment, { maxLength: 12 }).map((segments) => Buffer.concat(segments));
}

/** Cuts `stream` at the given positions (taken modulo its length, sorted; duplicates make empty chunks). */
function cut(stream: Buffer, cutAt: readonly number[]): Buffer[] {
  const points = cutAt.map((c) => c % (stream.length + 1)).sort((a, b) => a - b);
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
 * Feeds the chunks to a fresh decoder, draining it after each with `next()` or, as `useRun` says,
 * `nextRun()`, checking the bytes held after every drain, and compares what came out with `expected`.
 */
function expectDecoding(subject: ConformanceSubject, chunks: Buffer[], useRun: readonly boolean[], expected: ReferenceParse): void {
  const decoder = subject.codec.createDecoder();
  const items: Array<Buffer | 'skipped'> = [];
  let end: StreamOutcome = 'clean';
  let call = 0;
  const bound = subject.codec.maxFrameLength + subject.overhead;
  try {
    for (const chunk of chunks) {
      decoder.push(chunk);
      drain(subject, decoder, items, () => useRun[call++ % useRun.length]!);
      ok(decoder.bufferedBytes < bound, `holds ${decoder.bufferedBytes} bytes after a drain, not below maxFrameLength + overhead (${bound})`);
    }
    decoder.end();
  } catch (error) {
    if (!(error instanceof DecodingError)) throw error;
    end = error.code as StreamOutcome;
  }
  strictEqual(end, expected.end, 'how the stream ends');
  deepStrictEqual(items.map(show), expected.items.map(show), 'the frames, in order');
}

/** Takes every frame the decoder has, recording skipped frames; a run must be whole, valid frames. */
function drain(subject: ConformanceSubject, decoder: FrameDecoder, items: Array<Buffer | 'skipped'>, runNext: () => boolean): void {
  for (;;) {
    const run = runNext() && decoder.nextRun ? decoder.nextRun() : null;
    if (run !== null) {
      const inRun = subject.reference.parse(run.wire);
      strictEqual(inRun.end, 'clean', 'a run holds whole frames only');
      strictEqual(inRun.items.length, run.frames, 'a run counts its frames');
      ok(inRun.items.every((item) => item !== 'skipped'), 'a run holds no frame over the limit');
      items.push(...inRun.items);
      continue;
    }
    let frame: Buffer | null;
    try {
      frame = decoder.next();
    } catch (error) {
      if (!(error instanceof DecodingError && error.skipped)) throw error;
      strictEqual(error.code, 'ERR_FRAME_TOO_LARGE', 'only a frame over the limit is skipped');
      items.push('skipped');
      continue;
    }
    if (frame === null) return;
    items.push(Buffer.from(frame));
  }
}

function show(item: Buffer | 'skipped'): string {
  return item === 'skipped' ? item : item.toString('hex');
}
