import { DecodingError, PulsarError } from './errors.js';
import { checkInteger, invalidOption } from './validate.js';

/**
 * A streaming, per-connection frame decoder. It is a pure state machine: no sockets, no timers.
 *
 * Feed it with {@link FrameDecoder.push}, then call {@link FrameDecoder.next} until it returns `null`
 * ("need more bytes", a normal outcome, not an error).
 */
export interface FrameDecoder {
  /** Appends bytes read from the stream. The chunk is kept by reference, not copied. */
  push(chunk: Buffer): void;
  /**
   * Returns the next complete frame's payload, or `null` when more bytes are needed.
   * @throws {DecodingError} when the stream cannot be framed (e.g. `ERR_FRAME_TOO_LARGE`); the decoder
   * is then unusable.
   */
  next(): Buffer | null;
  /**
   * Signals the end of the stream.
   * @throws {DecodingError} `ERR_TRUNCATED_FRAME` when a partial frame is still buffered.
   */
  end(): void;
  /** Bytes held that do not yet form a complete frame. */
  readonly bufferedBytes: number;
  /**
   * Optional fast path for relaying frames unchanged (the server's default echo uses it when nobody
   * listens to `frame`): takes the whole frames at the front of the buffered bytes that lie in one
   * piece of memory, without a view or a copy per frame.
   * @returns their wire bytes, headers included, and how many frames they are; `null` when the next
   * frame is incomplete, spans chunks, or is not valid (then {@link FrameDecoder.next} reports it)
   */
  nextRun?(): FrameRun | null;
}

/** Whole frames exactly as they arrived, from {@link FrameDecoder.nextRun}. */
export interface FrameRun {
  /** The frames' wire bytes, headers included. */
  readonly wire: Buffer;
  /** How many frames `wire` holds (at least 1). */
  readonly frames: number;
}

/**
 * Turns a byte stream into frames and frames into bytes. The server creates one decoder per connection;
 * `encode` is shared by all connections and must not keep state.
 */
export interface FrameCodec {
  /** Largest payload, in bytes, that {@link FrameCodec.encode} accepts and decoders let through. */
  readonly maxFrameLength: number;
  /** A fresh decoder for one connection's inbound stream. */
  createDecoder(): FrameDecoder;
  /**
   * The bytes that carry one payload on the wire.
   * @throws {PulsarError} `ERR_FRAME_TOO_LARGE` when the payload exceeds `maxFrameLength`.
   */
  encode(payload: Uint8Array): Buffer;
}

/**
 * A codec whose wire form of a payload is a fixed-size header followed by the payload bytes unchanged
 * (as Netty's LengthFieldPrepender writes it). The server uses the two extra members to encode many
 * small frames into one buffer and to write large payloads without copying them; `encode` must give
 * the same bytes.
 */
export interface PrefixedFrameCodec extends FrameCodec {
  /** Size of the header, in bytes. */
  readonly headerLength: number;
  /**
   * Writes the header of a `payloadLength`-byte payload at `target[offset]`. The caller has checked
   * `payloadLength` against `maxFrameLength`.
   */
  writeHeader(payloadLength: number, target: Buffer, offset: number): void;
}

/** Whether `codec` offers the {@link PrefixedFrameCodec} members. */
export function isPrefixedCodec(codec: FrameCodec): codec is PrefixedFrameCodec {
  const candidate = codec as Partial<PrefixedFrameCodec>;
  return typeof candidate.headerLength === 'number' && typeof candidate.writeHeader === 'function';
}

/** The error for a payload over a codec's limit, on the sending side. */
export function frameTooLarge(length: number, maxFrameLength: number): PulsarError {
  return new PulsarError('ERR_FRAME_TOO_LARGE', `cannot send a ${length}-byte payload: the limit is ${maxFrameLength} bytes`);
}

/** Size in bytes of a length prefix. */
export type LengthFieldLength = 1 | 2 | 4;

/** Options of {@link LengthPrefixedCodec}. */
export interface LengthPrefixedCodecOptions {
  /**
   * Largest payload in bytes (the header not counted). A header announcing more is rejected before
   * anything is allocated for it.
   * @default 8 MiB (8388608), or the largest value the length field can hold if that is smaller
   */
  maxFrameLength?: number;
  /** @default 4 */
  lengthFieldLength?: LengthFieldLength;
  /** @default 'big' */
  byteOrder?: 'big' | 'little';
}

/** Default {@link LengthPrefixedCodecOptions.maxFrameLength}: 8 MiB. */
export const DEFAULT_MAX_FRAME_LENGTH = 8 * 1024 * 1024;

type ReadLength = (buf: Buffer, offset: number) => number;
type WriteLength = (buf: Buffer, value: number, offset: number) => void;

// Composed from bytes: two to three times faster than Buffer#readUInt32BE and friends, which check
// bounds the decoder has already checked. The top byte of a 4-byte value is multiplied, not shifted,
// so that the result stays unsigned.
const READERS: Record<'big' | 'little', Record<LengthFieldLength, ReadLength>> = {
  big: {
    1: (b, o) => b[o]!,
    2: (b, o) => (b[o]! << 8) | b[o + 1]!,
    4: (b, o) => b[o]! * 0x1000000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!),
  },
  little: {
    1: (b, o) => b[o]!,
    2: (b, o) => b[o]! | (b[o + 1]! << 8),
    4: (b, o) => b[o + 3]! * 0x1000000 + ((b[o + 2]! << 16) | (b[o + 1]! << 8) | b[o]!),
  },
};

const WRITERS: Record<'big' | 'little', Record<LengthFieldLength, WriteLength>> = {
  big: {
    1: (b, v, o) => void (b[o] = v),
    2: (b, v, o) => void b.writeUInt16BE(v, o),
    4: (b, v, o) => void b.writeUInt32BE(v, o),
  },
  little: {
    1: (b, v, o) => void (b[o] = v),
    2: (b, v, o) => void b.writeUInt16LE(v, o),
    4: (b, v, o) => void b.writeUInt32LE(v, o),
  },
};

/**
 * The default codec: each frame is a length field (1, 2 or 4 bytes, big or little endian) holding the
 * payload length `N`, followed by exactly `N` payload bytes. `N = 0` is a valid, empty frame.
 *
 * @example
 * ```ts
 * new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little', maxFrameLength: 65535 });
 * ```
 */
export class LengthPrefixedCodec implements PrefixedFrameCodec {
  /** {@inheritDoc FrameCodec.maxFrameLength} */
  readonly maxFrameLength: number;
  /** Size of the length field in bytes. */
  readonly lengthFieldLength: LengthFieldLength;
  /** Byte order of the length field. */
  readonly byteOrder: 'big' | 'little';

  readonly #readLength: ReadLength;
  readonly #writeLength: WriteLength;

  /** @param options see {@link LengthPrefixedCodecOptions}; every field is optional */
  constructor(options: LengthPrefixedCodecOptions = {}) {
    const fieldLength = options.lengthFieldLength ?? 4;
    if (fieldLength !== 1 && fieldLength !== 2 && fieldLength !== 4) {
      throw invalidOption('LengthPrefixedCodec', 'lengthFieldLength', 'must be 1, 2 or 4', fieldLength);
    }
    const byteOrder = options.byteOrder ?? 'big';
    if (byteOrder !== 'big' && byteOrder !== 'little') {
      throw invalidOption('LengthPrefixedCodec', 'byteOrder', "must be 'big' or 'little'", byteOrder);
    }
    const fieldMax = 2 ** (8 * fieldLength) - 1;
    const maxFrameLength = options.maxFrameLength ?? Math.min(DEFAULT_MAX_FRAME_LENGTH, fieldMax);
    this.maxFrameLength = checkInteger('LengthPrefixedCodec', 'maxFrameLength', maxFrameLength, 0, fieldMax);
    this.lengthFieldLength = fieldLength;
    this.byteOrder = byteOrder;
    this.#readLength = READERS[byteOrder][fieldLength];
    this.#writeLength = WRITERS[byteOrder][fieldLength];
  }

  /** {@inheritDoc FrameCodec.createDecoder} */
  createDecoder(): FrameDecoder {
    return new LengthPrefixedDecoder(this.lengthFieldLength, this.maxFrameLength, this.#readLength);
  }

  /** {@inheritDoc FrameCodec.encode} */
  encode(payload: Uint8Array): Buffer {
    const length = payload.length;
    if (length > this.maxFrameLength) throw frameTooLarge(length, this.maxFrameLength);
    const wire = Buffer.allocUnsafe(this.headerLength + length);
    this.#writeLength(wire, length, 0);
    wire.set(payload, this.headerLength);
    return wire;
  }

  /** {@inheritDoc PrefixedFrameCodec.headerLength}: the length field is the whole header. */
  get headerLength(): number {
    return this.lengthFieldLength;
  }

  /** {@inheritDoc PrefixedFrameCodec.writeHeader} */
  writeHeader(payloadLength: number, target: Buffer, offset: number): void {
    this.#writeLength(target, payloadLength, offset);
  }
}

/** Payload of empty frames when nothing else is buffered: zero bytes cannot be aliased or written. */
const EMPTY = Buffer.alloc(0);

/** Chunks up to this size are coalesced rather than queued one by one once the queue holds COALESCE_AFTER. */
const COALESCE_MAX = 1024;
const COALESCE_AFTER = 8;
/** Size of a coalescing block: queue entries stay at most one per KiB of data, however it trickles in. */
const COALESCE_BLOCK = 16 * 1024;

/** Header phase marker for {@link LengthPrefixedDecoder}. */
const READING_HEADER = -1;

/**
 * Chunk-queue decoder: chunks are queued as they come and consumed once. A frame inside one chunk is a
 * zero-copy view of it; a frame spanning chunks is copied once into a buffer of exactly its size.
 */
class LengthPrefixedDecoder implements FrameDecoder {
  readonly #headerLength: number;
  readonly #maxFrameLength: number;
  readonly #readLength: ReadLength;
  readonly #chunks: Buffer[] = [];
  /** Read position inside `#chunks[0]`. */
  #offset = 0;
  #buffered = 0;
  /** Payload length of the frame being read, or READING_HEADER. */
  #frameLength = READING_HEADER;
  #failed: DecodingError | null = null;
  /** Reused for headers split across chunks. */
  #headerScratch: Buffer | null = null;
  /** Block that small chunks are coalesced into, and how much of it is filled. */
  #block: Buffer | null = null;
  #blockUsed = 0;

  constructor(headerLength: number, maxFrameLength: number, readLength: ReadLength) {
    this.#headerLength = headerLength;
    this.#maxFrameLength = maxFrameLength;
    this.#readLength = readLength;
  }

  get bufferedBytes(): number {
    return this.#buffered;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#buffered += chunk.length;
    // A frame trickling in as tiny chunks would otherwise cost one queue entry (a Buffer object, about
    // 100 bytes) per chunk: once the queue grows, small chunks are copied into a shared block instead.
    if (chunk.length <= COALESCE_MAX && this.#chunks.length >= COALESCE_AFTER) this.#append(chunk);
    else this.#chunks.push(chunk);
  }

  /** Copies a small chunk into the coalescing block at the end of the queue (a new one when full). */
  #append(chunk: Buffer): void {
    const last = this.#chunks.length - 1;
    let block = this.#block;
    if (block === null || this.#chunks[last]!.buffer !== block.buffer || this.#blockUsed + chunk.length > block.length) {
      block = this.#block = Buffer.allocUnsafeSlow(COALESCE_BLOCK);
      this.#blockUsed = 0;
      this.#chunks.push(block.subarray(0, 0));
    }
    chunk.copy(block, this.#blockUsed);
    this.#blockUsed += chunk.length;
    // Bytes already handed out as frames lie before #blockUsed and are never written again.
    this.#chunks[this.#chunks.length - 1] = block.subarray(0, this.#blockUsed);
  }

  next(): Buffer | null {
    if (this.#failed) throw this.#failed;
    if (this.#frameLength === READING_HEADER) {
      if (this.#buffered < this.#headerLength) return null;
      const length = this.#readHeader();
      if (length > this.#maxFrameLength) {
        this.#failed = new DecodingError(
          'ERR_FRAME_TOO_LARGE',
          `frame header announces ${length} bytes, over the ${this.#maxFrameLength}-byte limit`,
        );
        this.#release();
        throw this.#failed;
      }
      this.#frameLength = length;
    }
    if (this.#buffered < this.#frameLength) return null;
    const frame = this.#consume(this.#frameLength);
    this.#frameLength = READING_HEADER;
    return frame;
  }

  nextRun(): FrameRun | null {
    const chunk = this.#chunks[0];
    if (chunk === undefined || this.#failed || this.#frameLength !== READING_HEADER) return null;
    const headerLength = this.#headerLength;
    let end = this.#offset;
    let frames = 0;
    while (chunk.length - end >= headerLength) {
      const length = this.#readLength(chunk, end);
      if (length > this.#maxFrameLength || chunk.length - end - headerLength < length) break;
      end += headerLength + length;
      frames++;
    }
    if (frames === 0) return null;
    const wire = this.#offset === 0 && end === chunk.length ? chunk : chunk.subarray(this.#offset, end);
    this.#skip(end - this.#offset);
    return { wire, frames };
  }

  end(): void {
    if (this.#failed || this.#buffered === 0 && this.#frameLength === READING_HEADER) return;
    const pending = this.#frameLength === READING_HEADER
      ? `${this.#buffered} byte(s) of a ${this.#headerLength}-byte header`
      : `${this.#buffered} of ${this.#frameLength} payload byte(s)`;
    this.#failed = new DecodingError('ERR_TRUNCATED_FRAME', `stream ended inside a frame: got ${pending}`);
    this.#release();
    throw this.#failed;
  }

  #readHeader(): number {
    const first = this.#chunks[0]!;
    if (first.length - this.#offset >= this.#headerLength) {
      const length = this.#readLength(first, this.#offset);
      this.#skip(this.#headerLength);
      return length;
    }
    this.#headerScratch ??= Buffer.allocUnsafe(this.#headerLength);
    this.#copyOut(this.#headerScratch, this.#headerLength);
    return this.#readLength(this.#headerScratch, 0);
  }

  /** Takes `n` bytes off the front: a view when they sit in one chunk, else one copy. */
  #consume(n: number): Buffer {
    const first = this.#chunks[0];
    if (first === undefined) return EMPTY;
    if (first.length - this.#offset >= n) {
      const view = first.subarray(this.#offset, this.#offset + n);
      this.#skip(n);
      return view;
    }
    const frame = Buffer.allocUnsafe(n);
    this.#copyOut(frame, n);
    return frame;
  }

  /** Advances past `n` bytes that all lie in the first chunk. */
  #skip(n: number): void {
    this.#offset += n;
    this.#buffered -= n;
    if (this.#offset === this.#chunks[0]!.length) {
      this.#chunks.shift();
      this.#offset = 0;
    }
  }

  /** Copies the first `n` buffered bytes into `target` and drops them from the queue. */
  #copyOut(target: Buffer, n: number): void {
    let written = 0;
    while (written < n) {
      const chunk = this.#chunks[0]!;
      const take = Math.min(chunk.length - this.#offset, n - written);
      chunk.copy(target, written, this.#offset, this.#offset + take);
      written += take;
      this.#skip(take);
    }
  }

  #release(): void {
    this.#chunks.length = 0;
    this.#offset = 0;
    this.#buffered = 0;
  }
}
