import { PulsarError } from '../errors.js';
import { checkInteger, checkKnownOptions, checkOneOf, invalidOption } from '../util/validate.js';
import { skippedFrame } from './failures.js';
import { QueuedDecoder } from './queued-decoder.js';
import {
  DEFAULT_MAX_FRAME_LENGTH, encodeWrapped, frameTooLarge,
  type CodecLimitOptions, type FrameDecoder, type FrameRun, type TooLongAction, type WrappingFrameCodec,
} from './types.js';

/** Options of {@link DelimiterCodec}. */
export interface DelimiterCodecOptions extends CodecLimitOptions {
  /** The bytes that end every frame: a string (UTF-8) or bytes, at least one byte. */
  delimiter: string | Uint8Array;
}

const CR = 0x0d;

/**
 * Frames end with a delimiter, any byte sequence (Netty's `DelimiterBasedFrameDecoder`, tokio's
 * `AnyDelimiterCodec`). The handler gets each frame without its delimiter; `send()` writes the payload,
 * then the delimiter, and refuses a payload that contains the delimiter (`ERR_MALFORMED_FRAME`), which
 * the peer would read as two frames.
 *
 * A frame longer than `maxFrameLength` is found while scanning, as soon as that many bytes have arrived
 * without a delimiter, never by buffering without bound.
 *
 * @example
 * ```ts
 * new DelimiterCodec({ delimiter: '\0', maxFrameLength: 64 * 1024 });
 * ```
 */
export class DelimiterCodec implements WrappingFrameCodec {
  /** {@inheritDoc FrameCodec.maxFrameLength} */
  readonly maxFrameLength: number;
  /** What happens to a frame over {@link maxFrameLength}. */
  readonly onTooLong: TooLongAction;
  /** The delimiter, written after every payload. */
  readonly trailer: Buffer;
  /** A payload holding the delimiter would end its frame early: `rpc` and binary message codecs are refused. */
  readonly binarySafe = false;

  /** @param options the delimiter, and the limits of {@link CodecLimitOptions} */
  constructor(options: DelimiterCodecOptions) {
    const owner = new.target.name;
    checkKnownOptions(owner, options, { delimiter: true, maxFrameLength: true, onTooLong: true });
    const { delimiter } = options;
    if (typeof delimiter !== 'string' && !(delimiter instanceof Uint8Array)) throw invalidOption(owner, 'delimiter', 'must be a string or a Uint8Array', delimiter);
    const trailer = Buffer.from(delimiter);
    if (trailer.length === 0) throw invalidOption(owner, 'delimiter', 'must hold at least one byte', delimiter);
    this.trailer = trailer;
    this.maxFrameLength = checkInteger(owner, 'maxFrameLength', options.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH, 0, 2 ** 31 - 1);
    this.onTooLong = checkOneOf(owner, 'onTooLong', options.onTooLong ?? 'close', ['close', 'discard'] as const);
  }

  /** {@inheritDoc FrameCodec.createDecoder} */
  createDecoder(): FrameDecoder {
    return new DelimiterDecoder(this.trailer, this.maxFrameLength, this.onTooLong, this.stripsCarriageReturn);
  }

  /** {@inheritDoc FrameCodec.encode} */
  encode(payload: Uint8Array): Buffer {
    return encodeWrapped(this, payload);
  }

  /**
   * Checks that `payload` can be sent: within the limit, without the delimiter (and, for lines, not
   * ending with `\r`). There is no header, only the delimiter after the payload.
   * @returns 0
   * @throws {PulsarError} `ERR_FRAME_TOO_LARGE`, `ERR_MALFORMED_FRAME`
   */
  measureHeader(payload: Uint8Array): number {
    if (payload.length > this.maxFrameLength) throw frameTooLarge(payload.length, this.maxFrameLength);
    const bytes = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
    const at = bytes.indexOf(this.trailer);
    if (at !== -1) throw new PulsarError('ERR_MALFORMED_FRAME', `cannot send a payload holding the delimiter (at byte ${at}): the peer would read two frames`);
    if (this.stripsCarriageReturn && bytes[bytes.length - 1] === CR) {
      throw new PulsarError('ERR_MALFORMED_FRAME', 'cannot send a line ending with \\r: the peer would read it as part of the line ending');
    }
    return 0;
  }

  /** Writes nothing: delimited frames have no header. */
  writeHeader(): void {}

  /** Whether a `\r` just before the delimiter belongs to it (lines ending `\r\n`). */
  protected get stripsCarriageReturn(): boolean {
    return false;
  }
}

/**
 * The delimiter codecs' decoder, on a {@link ByteQueue}: remembers how far it has scanned, so a long
 * frame trickling in is scanned once, not once per chunk.
 */
class DelimiterDecoder extends QueuedDecoder {
  readonly #delimiter: Buffer;
  /** The delimiter as a byte when it is one (a faster search). */
  readonly #needle: number | Buffer;
  readonly #maxFrameLength: number;
  readonly #onTooLong: TooLongAction;
  readonly #stripsCarriageReturn: boolean;
  /** Bytes that, held without a delimiter, prove the frame too long. */
  readonly #proofOfTooLong: number;
  /** Bytes at the front already searched without finding a delimiter. */
  #scanned = 0;
  /** Dropping bytes up to the next delimiter (a frame over the limit, in discard mode). */
  #discarding = false;

  constructor(delimiter: Buffer, maxFrameLength: number, onTooLong: TooLongAction, stripsCarriageReturn: boolean) {
    super();
    this.#delimiter = delimiter;
    this.#needle = delimiter.length === 1 ? delimiter[0]! : delimiter;
    this.#maxFrameLength = maxFrameLength;
    this.#onTooLong = onTooLong;
    this.#stripsCarriageReturn = stripsCarriageReturn;
    this.#proofOfTooLong = maxFrameLength + delimiter.length + (stripsCarriageReturn ? 1 : 0);
  }

  next(): Buffer | null {
    this.failures.check();
    const queue = this.queue;
    if (this.#discarding && !this.#skipToDelimiter()) return null;
    const at = queue.indexOf(this.#needle, this.#scanned);
    if (at === -1) {
      if (queue.length >= this.#proofOfTooLong) this.#tooLong(`${queue.length} bytes arrived without a delimiter, over the ${this.#maxFrameLength}-byte limit`);
      this.#scanned = Math.max(0, queue.length - this.#delimiter.length + 1);
      return null;
    }
    this.#scanned = 0;
    const carriageReturn = this.#stripsCarriageReturn && at > 0 && this.#byteAt(at - 1) === CR ? 1 : 0;
    const length = at - carriageReturn;
    if (length > this.#maxFrameLength) {
      if (this.#onTooLong === 'close') this.failures.fail('ERR_FRAME_TOO_LARGE', `a ${length}-byte frame, over the ${this.#maxFrameLength}-byte limit`);
      queue.skip(at + this.#delimiter.length);
      throw skippedFrame(`a ${length}-byte frame, over the ${this.#maxFrameLength}-byte limit`);
    }
    const frame = queue.take(length);
    queue.skip(carriageReturn + this.#delimiter.length);
    return frame;
  }

  nextRun(): FrameRun | null {
    const queue = this.queue;
    const chunk = queue.head;
    if (chunk === undefined || this.#scanned > 0 || this.#discarding || this.failures.busy) return null;
    const needle = this.#needle;
    const delimiterLength = this.#delimiter.length;
    const max = this.#maxFrameLength;
    const start = queue.headOffset;
    let end = start;
    let frames = 0;
    for (;;) {
      const at = chunk.indexOf(needle, end);
      if (at === -1) break;
      const length = this.#stripsCarriageReturn && at > end && chunk[at - 1] === CR ? at - end - 1 : at - end;
      if (length > max) break;
      end = at + delimiterLength;
      frames++;
    }
    return this.takeRun(end, frames);
  }

  end(): void {
    const buffered = this.queue.length;
    if (this.#discarding || this.failures.busy || buffered === 0) return;
    this.failures.fail('ERR_TRUNCATED_FRAME', `stream ended inside a frame: got ${buffered} byte(s) and no delimiter`);
  }

  /** A frame is over the limit before its delimiter arrived: fail, or drop bytes until the delimiter. */
  #tooLong(message: string): never {
    if (this.#onTooLong === 'close') this.failures.fail('ERR_FRAME_TOO_LARGE', message);
    this.#discarding = true;
    this.#skipToDelimiter();
    throw skippedFrame(message);
  }

  /** Drops bytes through the next delimiter; false if it has not arrived (its possible start is kept). */
  #skipToDelimiter(): boolean {
    const queue = this.queue;
    const at = queue.indexOf(this.#needle);
    if (at === -1) {
      queue.skip(Math.max(0, queue.length - this.#delimiter.length + 1));
      return false;
    }
    queue.skip(at + this.#delimiter.length);
    this.#discarding = false;
    this.#scanned = 0;
    return true;
  }

  #byteAt(index: number): number {
    const queue = this.queue;
    return queue.contiguous(index + 1) ? queue.head![queue.headOffset + index]! : queue.at(index);
  }
}
