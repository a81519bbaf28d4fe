import { constants as bufferConstants } from 'node:buffer';
import { checkInteger, checkKnownOptions, checkOneOf } from '../util/validate.js';
import { QueuedDecoder } from './queued-decoder.js';
import {
  DEFAULT_MAX_FRAME_LENGTH, encodeWrapped, frameTooLarge,
  type CodecLimitOptions, type FrameDecoder, type FrameRun, type TooLongAction, type WrappingFrameCodec,
} from './types.js';

/** Options of {@link VarintCodec}. */
export type VarintCodecOptions = CodecLimitOptions;

const OWNER = 'VarintCodec';
/** Largest maxFrameLength: what one Buffer can hold, and what 32 bits can say. */
const LARGEST = Math.min(2 ** 32 - 1, bufferConstants.MAX_LENGTH);

/** Bytes of the unsigned LEB128 varint that holds `value`. */
export function varintLength(value: number): number {
  let bytes = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 0x80);
    bytes++;
  }
  return bytes;
}

/**
 * Each frame is its length as an unsigned LEB128 varint (protobuf's encoding: 7 bits per byte, least
 * significant first, the top bit set on every byte but the last), then that many payload bytes: the
 * framing of `it-length-prefixed` (libp2p), protobuf's `writeDelimitedTo` and Netty's
 * `ProtobufVarint32FrameDecoder`. `send()` writes the varint, then the payload.
 *
 * A varint announcing more than `maxFrameLength`, or longer than that limit can need, is a decoding
 * error as soon as it is read.
 *
 * @example
 * ```ts
 * new PulsarServer({ codec: new VarintCodec({ maxFrameLength: 4 * 1024 * 1024 }) });
 * ```
 */
export class VarintCodec implements WrappingFrameCodec {
  /** {@inheritDoc FrameCodec.maxFrameLength} */
  readonly maxFrameLength: number;
  /** What happens to a frame over {@link maxFrameLength}. */
  readonly onTooLong: TooLongAction;
  /** Nothing follows a payload. */
  readonly trailer: Buffer = Buffer.alloc(0);

  /** @param options see {@link VarintCodecOptions}; every field is optional */
  constructor(options: VarintCodecOptions = {}) {
    checkKnownOptions(OWNER, options, { maxFrameLength: true, onTooLong: true });
    this.maxFrameLength = checkInteger(OWNER, 'maxFrameLength', options.maxFrameLength ?? DEFAULT_MAX_FRAME_LENGTH, 0, LARGEST);
    this.onTooLong = checkOneOf(OWNER, 'onTooLong', options.onTooLong ?? 'close', ['close', 'discard'] as const);
  }

  /** {@inheritDoc FrameCodec.createDecoder} */
  createDecoder(): FrameDecoder {
    return new VarintDecoder(this.maxFrameLength, this.onTooLong);
  }

  /** {@inheritDoc FrameCodec.encode} */
  encode(payload: Uint8Array): Buffer {
    return encodeWrapped(this, payload);
  }

  /** {@inheritDoc WrappingFrameCodec.measureHeader} */
  measureHeader(payload: Uint8Array): number {
    if (payload.length > this.maxFrameLength) throw frameTooLarge(payload.length, this.maxFrameLength);
    return varintLength(payload.length);
  }

  /** {@inheritDoc WrappingFrameCodec.writeHeader} */
  writeHeader(payloadLength: number, target: Buffer, offset: number): void {
    let value = payloadLength;
    while (value >= 0x80) {
      target[offset++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 0x80);
    }
    target[offset] = value;
  }
}

/** Header phase marker for {@link VarintDecoder}. */
const READING_HEADER = -1;
/** The varint is not complete yet. */
const INCOMPLETE = -1;
/** The varint runs longer than the limit allows. */
const TOO_LONG = -2;

/** The varint codec's decoder, on a {@link ByteQueue} (views within a chunk, one copy across chunks). */
class VarintDecoder extends QueuedDecoder {
  readonly #maxFrameLength: number;
  readonly #onTooLong: TooLongAction;
  /** The most bytes a varint of at most maxFrameLength takes. */
  readonly #maxHeaderLength: number;
  /** Payload length of the frame being read (its header already dropped), or READING_HEADER. */
  #frameLength = READING_HEADER;
  /** Size of the varint just parsed by #parseHeader. */
  #headerLength = 0;

  constructor(maxFrameLength: number, onTooLong: TooLongAction) {
    super();
    this.#maxFrameLength = maxFrameLength;
    this.#onTooLong = onTooLong;
    this.#maxHeaderLength = varintLength(maxFrameLength);
  }

  next(): Buffer | null {
    if (!this.resumable()) return null;
    const failures = this.failures;
    const queue = this.queue;
    if (this.#frameLength === READING_HEADER) {
      const length = this.#parseHeader();
      if (length === INCOMPLETE) return null;
      if (length === TOO_LONG) failures.fail('ERR_MALFORMED_FRAME', `varint length runs past ${this.#maxHeaderLength} bytes, longer than the ${this.#maxFrameLength}-byte limit needs`);
      if (length > this.#maxFrameLength) {
        failures.tooLong(this.#onTooLong, this.#headerLength + length, `varint header announces ${length} bytes, over the ${this.#maxFrameLength}-byte limit`);
      }
      queue.skip(this.#headerLength);
      this.#frameLength = length;
    }
    if (queue.length < this.#frameLength) return null;
    const frame = queue.take(this.#frameLength);
    this.#frameLength = READING_HEADER;
    return frame;
  }

  nextRun(): FrameRun | null {
    const queue = this.queue;
    const chunk = queue.head;
    if (chunk === undefined || this.failures.busy || this.#frameLength !== READING_HEADER) return null;
    const max = this.#maxFrameLength;
    const maxHeader = this.#maxHeaderLength;
    const start = queue.headOffset;
    let end = start;
    let frames = 0;
    for (;;) {
      let at = end;
      let length = 0;
      let scale = 1;
      let byte = 0x80;
      while (byte >= 0x80 && at < chunk.length && at - end < maxHeader) {
        byte = chunk[at++]!;
        length += (byte & 0x7f) * scale;
        scale *= 0x80;
      }
      if (byte >= 0x80 || length > max || chunk.length - at < length) break;
      end = at + length;
      frames++;
    }
    return this.takeRun(end, frames);
  }

  end(): void {
    const buffered = this.queue.length;
    if (this.failures.busy || (buffered === 0 && this.#frameLength === READING_HEADER)) return;
    const pending = this.#frameLength === READING_HEADER
      ? `${buffered} byte(s) of an unfinished varint header`
      : `${buffered} of ${this.#frameLength} payload byte(s)`;
    this.failures.fail('ERR_TRUNCATED_FRAME', `stream ended inside a frame: got ${pending}`);
  }

  /** Reads the varint at the front without dropping it: its value (size in #headerLength), INCOMPLETE or TOO_LONG. */
  #parseHeader(): number {
    const queue = this.queue;
    const available = Math.min(queue.length, this.#maxHeaderLength);
    const inPlace = queue.contiguous(available);
    const head = queue.head!;
    const offset = queue.headOffset;
    let length = 0;
    let scale = 1;
    for (let i = 0; i < available; i++) {
      const byte = inPlace ? head[offset + i]! : queue.at(i);
      length += (byte & 0x7f) * scale;
      if (byte < 0x80) {
        this.#headerLength = i + 1;
        return length;
      }
      scale *= 0x80;
    }
    return available === this.#maxHeaderLength ? TOO_LONG : INCOMPLETE;
  }
}
