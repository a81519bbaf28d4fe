import { constants as bufferConstants } from 'node:buffer';
import { checkInteger, checkKnownOptions, checkOneOf, invalidOption } from '../util/validate.js';
import { PulsarError } from '../errors.js';
import { QueuedDecoder } from './queued-decoder.js';
import {
  DEFAULT_MAX_FRAME_LENGTH, encodeWrapped, frameTooLarge,
  type CodecLimitOptions, type FrameDecoder, type FrameRun, type TooLongAction, type WrappingFrameCodec,
} from './types.js';

/** Size in bytes of a length field. */
export type LengthFieldLength = 1 | 2 | 3 | 4 | 8;

/**
 * Options of {@link LengthPrefixedCodec}, with the meaning of Netty's `LengthFieldBasedFrameDecoder`: a
 * frame is `lengthFieldOffset` bytes, the length field holding `L`, then `L + lengthAdjustment` bytes.
 */
export interface LengthPrefixedCodecOptions extends CodecLimitOptions {
  /** Bytes before the length field. @default 0 */
  lengthFieldOffset?: number;
  /** Size of the length field: 1, 2, 3, 4 or 8 bytes. @default 4 */
  lengthFieldLength?: LengthFieldLength;
  /** @default 'big' */
  byteOrder?: 'big' | 'little';
  /**
   * Added to the length field's value to get the number of bytes that follow the field: `0` when it
   * counts them exactly, `-(lengthFieldOffset + lengthFieldLength)` when it counts the whole frame.
   * @default 0
   */
  lengthAdjustment?: number;
  /**
   * Bytes removed from the front of each frame before the handler gets it: the header's size (the
   * default: the handler gets what follows the length field) or `0` (the whole frame, header included).
   * @default lengthFieldOffset + lengthFieldLength
   */
  initialBytesToStrip?: number;
}

type ReadLength = (buf: Buffer, offset: number) => number;
type WriteLength = (buf: Buffer, value: number, offset: number) => void;

const TWO_32 = 2 ** 32;

// Composed from bytes: two to three times faster than Buffer#readUInt32BE and friends, which check
// bounds the decoder has already checked. The top byte of a 4-byte value is multiplied, not shifted,
// so that the result stays unsigned. An 8-byte value past 2^53 cannot be a number: NaN, malformed.
const READERS: Record<'big' | 'little', Record<LengthFieldLength, ReadLength>> = {
  big: {
    1: (b, o) => b[o]!,
    2: (b, o) => (b[o]! << 8) | b[o + 1]!,
    3: (b, o) => (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!,
    4: (b, o) => b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!),
    8: (b, o) => wide(b.readUInt32BE(o), b.readUInt32BE(o + 4)),
  },
  little: {
    1: (b, o) => b[o]!,
    2: (b, o) => b[o]! | (b[o + 1]! << 8),
    3: (b, o) => b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16),
    4: (b, o) => b[o + 3]! * 0x1000000 + ((b[o + 2]! << 16) | (b[o + 1]! << 8) | b[o]!),
    8: (b, o) => wide(b.readUInt32LE(o + 4), b.readUInt32LE(o)),
  },
};

function wide(high: number, low: number): number {
  return high < 0x200000 ? high * TWO_32 + low : Number.NaN;
}

// Byte stores, not Buffer#writeUInt32BE and friends: the value was checked by measureHeader().
const WRITERS: Record<'big' | 'little', Record<LengthFieldLength, WriteLength>> = {
  big: {
    1: (b, v, o) => void (b[o] = v),
    2: (b, v, o) => void ((b[o] = v >>> 8), (b[o + 1] = v)),
    3: (b, v, o) => void ((b[o] = v >>> 16), (b[o + 1] = v >>> 8), (b[o + 2] = v)),
    4: (b, v, o) => void ((b[o] = v >>> 24), (b[o + 1] = v >>> 16), (b[o + 2] = v >>> 8), (b[o + 3] = v)),
    8: (b, v, o) => void (b.writeUInt32BE(Math.floor(v / TWO_32), o), b.writeUInt32BE(v >>> 0, o + 4)),
  },
  little: {
    1: (b, v, o) => void (b[o] = v),
    2: (b, v, o) => void ((b[o] = v), (b[o + 1] = v >>> 8)),
    3: (b, v, o) => void ((b[o] = v), (b[o + 1] = v >>> 8), (b[o + 2] = v >>> 16)),
    4: (b, v, o) => void ((b[o] = v), (b[o + 1] = v >>> 8), (b[o + 2] = v >>> 16), (b[o + 3] = v >>> 24)),
    8: (b, v, o) => void (b.writeUInt32LE(v >>> 0, o), b.writeUInt32LE(Math.floor(v / TWO_32), o + 4)),
  },
};

const OWNER = 'LengthPrefixedCodec';

/**
 * The default codec, and the whole family of length-field framings (Netty's `LengthFieldBasedFrameDecoder`
 * and `LengthFieldPrepender`, tokio's `LengthDelimitedCodec`). By default each frame is a 4-byte
 * big-endian length `N` followed by exactly `N` payload bytes; `N = 0` is a valid, empty frame.
 *
 * What `send()` writes: with the default `initialBytesToStrip` (the handler gets what follows the
 * header), `lengthFieldOffset` zero bytes, the length field holding `payload.length - lengthAdjustment`,
 * then the payload. With `initialBytesToStrip: 0` (the handler gets whole frames, header included), the
 * payload is the whole frame and is written unchanged, after checking that its length field matches its
 * size (`ERR_MALFORMED_FRAME` if not): what a handler received can be sent back as it is.
 *
 * @example
 * ```ts
 * new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little', maxFrameLength: 65535 });
 * // a 2-byte length that counts itself too, handler gets the whole frame (Netty's example 3)
 * new LengthPrefixedCodec({ lengthFieldLength: 2, lengthAdjustment: -2, initialBytesToStrip: 0 });
 * ```
 */
export class LengthPrefixedCodec implements WrappingFrameCodec {
  /** Largest number of bytes after the header (`field + lengthAdjustment`) a frame may have. */
  readonly maxFrameLength: number;
  /** Bytes before the length field. */
  readonly lengthFieldOffset: number;
  /** Size of the length field in bytes. */
  readonly lengthFieldLength: LengthFieldLength;
  /** Byte order of the length field. */
  readonly byteOrder: 'big' | 'little';
  /** Added to the length field's value to get the bytes after the header. */
  readonly lengthAdjustment: number;
  /** Bytes removed from the front of each frame before the handler gets it. */
  readonly initialBytesToStrip: number;
  /** What happens to a frame over {@link maxFrameLength}. */
  readonly onTooLong: TooLongAction;
  /** Nothing follows a payload. */
  readonly trailer: Buffer = Buffer.alloc(0);

  readonly #headerLength: number;
  readonly #fieldMax: number;
  readonly #readLength: ReadLength;
  readonly #writeLength: WriteLength;

  /** @param options see {@link LengthPrefixedCodecOptions}; every field is optional */
  constructor(options: LengthPrefixedCodecOptions = {}) {
    checkKnownOptions(OWNER, options, {
      maxFrameLength: true, onTooLong: true, lengthFieldOffset: true, lengthFieldLength: true, byteOrder: true,
      lengthAdjustment: true, initialBytesToStrip: true,
    });
    const fieldLength = checkOneOf(OWNER, 'lengthFieldLength', options.lengthFieldLength ?? 4, [1, 2, 3, 4, 8] as const);
    const byteOrder = checkOneOf(OWNER, 'byteOrder', options.byteOrder ?? 'big', ['big', 'little'] as const);
    this.onTooLong = checkOneOf(OWNER, 'onTooLong', options.onTooLong ?? 'close', ['close', 'discard'] as const);
    this.lengthFieldOffset = checkInteger(OWNER, 'lengthFieldOffset', options.lengthFieldOffset ?? 0, 0, 1024);
    const headerLength = this.lengthFieldOffset + fieldLength;
    this.lengthAdjustment = checkInteger(OWNER, 'lengthAdjustment', options.lengthAdjustment ?? 0, -headerLength, 1024 * 1024);
    const strip = options.initialBytesToStrip ?? headerLength;
    if (strip !== 0 && strip !== headerLength) {
      throw invalidOption(OWNER, 'initialBytesToStrip', `must be 0 (the handler gets whole frames) or ${headerLength}, the header's size (it gets what follows the length field): a codec must be able to send what it decodes`, strip);
    }
    this.initialBytesToStrip = strip;
    this.#fieldMax = fieldLength === 8 ? Number.MAX_SAFE_INTEGER : 2 ** (8 * fieldLength) - 1;
    const carried = Math.min(this.#fieldMax + this.lengthAdjustment, bufferConstants.MAX_LENGTH - headerLength);
    const maxFrameLength = options.maxFrameLength ?? Math.min(DEFAULT_MAX_FRAME_LENGTH, carried);
    this.maxFrameLength = checkInteger(OWNER, 'maxFrameLength', maxFrameLength, 0, carried);
    this.lengthFieldLength = fieldLength;
    this.byteOrder = byteOrder;
    this.#headerLength = headerLength;
    this.#readLength = READERS[byteOrder][fieldLength];
    this.#writeLength = WRITERS[byteOrder][fieldLength];
  }

  /** {@inheritDoc FrameCodec.createDecoder} */
  createDecoder(): FrameDecoder {
    return new LengthPrefixedDecoder(this, this.#headerLength, this.#readLength);
  }

  /** {@inheritDoc FrameCodec.encode} */
  encode(payload: Uint8Array): Buffer {
    return encodeWrapped(this, payload);
  }

  /** {@inheritDoc WrappingFrameCodec.measureHeader} */
  measureHeader(payload: Uint8Array): number {
    if (this.initialBytesToStrip === 0) {
      this.#checkWholeFrame(payload);
      return 0;
    }
    const length = payload.length;
    if (length > this.maxFrameLength) throw frameTooLarge(length, this.maxFrameLength);
    const field = length - this.lengthAdjustment;
    if (field < 0 || field > this.#fieldMax) {
      throw new PulsarError('ERR_MALFORMED_FRAME', `cannot send a ${length}-byte payload: its length field would hold ${field}, outside 0…${this.#fieldMax}`);
    }
    return this.#headerLength;
  }

  /** {@inheritDoc WrappingFrameCodec.writeHeader} */
  writeHeader(payloadLength: number, target: Buffer, offset: number): void {
    if (this.initialBytesToStrip === 0) return;
    if (this.lengthFieldOffset > 0) target.fill(0, offset, offset + this.lengthFieldOffset);
    this.#writeLength(target, payloadLength - this.lengthAdjustment, offset + this.lengthFieldOffset);
  }

  /** A payload that is a whole frame must say its own size truthfully. */
  #checkWholeFrame(frame: Uint8Array): void {
    const headerLength = this.#headerLength;
    if (frame.length < headerLength) {
      throw new PulsarError('ERR_MALFORMED_FRAME', `cannot send ${frame.length} byte(s) as a frame: the header alone is ${headerLength} bytes`);
    }
    const bytes = Buffer.isBuffer(frame) ? frame : Buffer.from(frame.buffer, frame.byteOffset, frame.length);
    const after = this.#readLength(bytes, this.lengthFieldOffset) + this.lengthAdjustment;
    const actual = frame.length - headerLength;
    if (actual > this.maxFrameLength) throw frameTooLarge(actual, this.maxFrameLength);
    if (after !== actual) {
      throw new PulsarError('ERR_MALFORMED_FRAME', `cannot send a ${frame.length}-byte frame whose length field announces ${String(after)} byte(s) after the header instead of ${actual}`);
    }
  }
}

/** Header phase marker for {@link LengthPrefixedDecoder}. */
const READING_HEADER = -1;

/**
 * The length codec's decoder, on a {@link ByteQueue}: a frame inside one chunk is a zero-copy view of it;
 * a frame spanning chunks is copied once into a buffer of exactly its size.
 */
class LengthPrefixedDecoder extends QueuedDecoder {
  readonly #codec: LengthPrefixedCodec;
  readonly #headerLength: number;
  readonly #fieldOffset: number;
  readonly #adjustment: number;
  readonly #strip: number;
  readonly #maxFrameLength: number;
  readonly #readLength: ReadLength;
  /** Bytes after the header of the frame being read, or READING_HEADER. */
  #bodyLength = READING_HEADER;
  /** Reused for headers split across chunks. */
  #headerScratch: Buffer | null = null;

  constructor(codec: LengthPrefixedCodec, headerLength: number, readLength: ReadLength) {
    super();
    this.#codec = codec;
    this.#headerLength = headerLength;
    this.#fieldOffset = codec.lengthFieldOffset;
    this.#adjustment = codec.lengthAdjustment;
    this.#strip = codec.initialBytesToStrip;
    this.#maxFrameLength = codec.maxFrameLength;
    this.#readLength = readLength;
  }

  next(): Buffer | null {
    if (!this.resumable()) return null;
    const failures = this.failures;
    const queue = this.queue;
    const headerLength = this.#headerLength;
    if (this.#bodyLength === READING_HEADER) {
      if (queue.length < headerLength) return null;
      const field = this.#peekLength();
      const body = field + this.#adjustment;
      if (!(body >= 0)) {
        failures.fail('ERR_MALFORMED_FRAME', `frame length field holds ${String(field)}: with lengthAdjustment ${this.#adjustment}, not a valid length`);
      }
      if (body > this.#maxFrameLength) {
        failures.tooLong(this.#codec.onTooLong, headerLength + body, `frame header announces ${body} bytes, over the ${this.#maxFrameLength}-byte limit`);
      }
      this.#bodyLength = body;
    }
    if (queue.length < headerLength + this.#bodyLength) return null;
    queue.skip(this.#strip);
    const frame = queue.take(headerLength - this.#strip + this.#bodyLength);
    this.#bodyLength = READING_HEADER;
    return frame;
  }

  nextRun(): FrameRun | null {
    const queue = this.queue;
    const chunk = queue.head;
    if (chunk === undefined || this.failures.busy) return null;
    if (this.#bodyLength !== READING_HEADER || !queue.contiguous(this.#headerLength)) return this.#spanningRun();
    const headerLength = this.#headerLength;
    const fieldOffset = this.#fieldOffset;
    const adjustment = this.#adjustment;
    const max = this.#maxFrameLength;
    const start = queue.headOffset;
    let end = start;
    let frames = 0;
    while (chunk.length - end >= headerLength) {
      const body = this.#readLength(chunk, end + fieldOffset) + adjustment;
      if (!(body >= 0 && body <= max) || chunk.length - end - headerLength < body) break;
      end += headerLength + body;
      frames++;
    }
    return frames > 0 ? this.takeRun(end, frames) : this.#spanningRun();
  }

  /**
   * The frame at the front as a run of one, when it is whole but spans chunks (a read ended inside it) or
   * its header was read by {@link next}: copied once if it spans, header included, so that relaying it
   * costs no handler or encoding either.
   * `null` when it is incomplete or not valid (then {@link next} reports it).
   */
  #spanningRun(): FrameRun | null {
    const queue = this.queue;
    const headerLength = this.#headerLength;
    let body = this.#bodyLength;
    if (body === READING_HEADER) {
      if (queue.length < headerLength) return null;
      body = this.#peekLength() + this.#adjustment;
      if (!(body >= 0 && body <= this.#maxFrameLength)) return null;
    }
    const size = headerLength + body;
    if (queue.length < size) return null;
    this.#bodyLength = READING_HEADER;
    return { wire: queue.take(size), frames: 1 }; // a view if it lies in one chunk after all
  }

  end(): void {
    const buffered = this.queue.length;
    if (this.failures.busy || buffered === 0) return;
    const pending = this.#bodyLength === READING_HEADER
      ? `${buffered} byte(s) of a ${this.#headerLength}-byte header`
      : `${buffered - this.#headerLength} of ${this.#bodyLength} byte(s) after the header`;
    this.failures.fail('ERR_TRUNCATED_FRAME', `stream ended inside a frame: got ${pending}`);
  }

  /** The length field of the frame at the front, read in place (or from a copy when it spans chunks). */
  #peekLength(): number {
    const queue = this.queue;
    if (queue.contiguous(this.#headerLength)) return this.#readLength(queue.head!, queue.headOffset + this.#fieldOffset);
    this.#headerScratch ??= Buffer.allocUnsafe(this.#headerLength);
    queue.peek(this.#headerScratch, this.#headerLength);
    return this.#readLength(this.#headerScratch, this.#fieldOffset);
  }
}
