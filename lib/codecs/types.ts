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
   * Returns the next complete frame (what the handler gets), or `null` when more bytes are needed.
   * @throws {DecodingError} when the stream cannot be framed (e.g. `ERR_FRAME_TOO_LARGE`). The decoder
   * is then unusable, unless the error's `skipped` is true: the offending frame was skipped
   * (`onTooLong: 'discard'`) and decoding goes on with the next call.
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
   * Called after a read's frames were taken while bytes are left: copy a small remainder out of the read
   * chunk it lies in, so that what the decoder keeps alive is about {@link bufferedBytes}, which the
   * server's memory budget counts. Without it, a partial frame may pin its whole read chunk (up to 64 KiB).
   */
  compact?(): void;
  /**
   * Optional fast path for relaying frames unchanged (the server's default echo uses it when nobody
   * listens to `frame`): takes the whole frames at the front of the buffered bytes that lie in one
   * piece of memory, without a view or a copy per frame (a frame that spans chunks may be taken alone).
   * @returns their wire bytes, headers and delimiters included, and how many frames they are; `null`
   * when the next frame is incomplete or not valid (then {@link FrameDecoder.next} reports it), or spans
   * chunks and the decoder leaves it to `next()`
   */
  nextRun?(): FrameRun | null;
}

/** Whole frames exactly as they arrived, from {@link FrameDecoder.nextRun}. */
export interface FrameRun {
  /** The frames' wire bytes, headers and delimiters included. */
  readonly wire: Buffer;
  /** How many frames `wire` holds (at least 1). */
  readonly frames: number;
}

/**
 * Turns a byte stream into frames and frames into bytes. The server creates one decoder per connection;
 * `encode` is shared by all connections and must not keep state.
 */
export interface FrameCodec {
  /** Largest frame, in bytes (headers and delimiters not counted), that decoders let through and `encode` accepts. */
  readonly maxFrameLength: number;
  /**
   * `false` when a frame cannot hold every byte sequence (a delimiter ends it): `rpc` and binary message
   * codecs are then refused. Absent: it can (a length prefix).
   */
  readonly binarySafe?: boolean;
  /** A fresh decoder for one connection's inbound stream. */
  createDecoder(): FrameDecoder;
  /**
   * The bytes that carry one frame on the wire.
   * @throws {PulsarError} `ERR_FRAME_TOO_LARGE` when the payload exceeds `maxFrameLength`,
   * `ERR_MALFORMED_FRAME` when the format cannot carry it
   */
  encode(payload: Uint8Array): Buffer;
}

/**
 * A codec whose wire form of a payload is a header (its size may depend on the payload's length, as a
 * varint's does), the payload bytes unchanged, then a fixed trailer (a delimiter; empty for length
 * prefixes). The server uses these members to encode many small frames into one buffer and to write
 * large payloads without copying them; `encode` must give the same bytes. Every built-in codec is one.
 */
export interface WrappingFrameCodec extends FrameCodec {
  /**
   * Checks that `payload` can be sent and returns the size of its header.
   * @throws {PulsarError} as {@link FrameCodec.encode} does
   */
  measureHeader(payload: Uint8Array): number;
  /** Writes the header of a `payloadLength`-byte payload at `target[offset]`, after {@link measureHeader}. */
  writeHeader(payloadLength: number, target: Buffer, offset: number): void;
  /** Bytes written after every payload (empty: none). */
  readonly trailer: Buffer;
}

/** Whether `codec` offers the {@link WrappingFrameCodec} members. */
export function isWrappingCodec(codec: FrameCodec): codec is WrappingFrameCodec {
  const candidate = codec as Partial<WrappingFrameCodec>;
  return typeof candidate.measureHeader === 'function' && typeof candidate.writeHeader === 'function' && Buffer.isBuffer(candidate.trailer);
}

/** A wrapping codec's `encode`: header, payload, trailer, in one new buffer. */
export function encodeWrapped(codec: WrappingFrameCodec, payload: Uint8Array): Buffer {
  const headerLength = codec.measureHeader(payload);
  const wire = Buffer.allocUnsafe(headerLength + payload.length + codec.trailer.length);
  codec.writeHeader(payload.length, wire, 0);
  wire.set(payload, headerLength);
  codec.trailer.copy(wire, headerLength + payload.length);
  return wire;
}

/**
 * What a built-in decoder does with a frame over `maxFrameLength`: `'close'` fails the connection;
 * `'discard'` reports it (a `clientError` with `ERR_FRAME_TOO_LARGE`), skips its bytes without holding
 * them, and goes on with the next frame (Netty's discard mode).
 */
export type TooLongAction = 'close' | 'discard';

/** The options every built-in codec takes. */
export interface CodecLimitOptions {
  /**
   * Largest frame in bytes (headers and delimiters not counted). A frame announcing or reaching more is
   * rejected before anything is allocated for it.
   * @default 8 MiB (8388608), or what the format can carry if that is less
   */
  maxFrameLength?: number;
  /** @default 'close' */
  onTooLong?: TooLongAction;
}

/** Default {@link CodecLimitOptions.maxFrameLength}: 8 MiB. */
export const DEFAULT_MAX_FRAME_LENGTH = 8 * 1024 * 1024;

/** The error for a payload over a codec's limit, on the sending side. */
export function frameTooLarge(length: number, maxFrameLength: number): PulsarError {
  return new PulsarError('ERR_FRAME_TOO_LARGE', `cannot send a ${length}-byte payload: the limit is ${maxFrameLength} bytes`);
}
