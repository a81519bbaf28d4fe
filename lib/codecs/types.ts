import { PulsarError } from '../errors.js';

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
