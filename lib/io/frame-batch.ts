import type { Socket } from 'node:net';
import { isWrappingCodec, type FrameCodec, type WrappingFrameCodec } from '../codecs/types.js';

/** Size of a shared block that small frames are encoded into. */
const BLOCK_SIZE = 16 * 1024;
/** Payloads up to this size are copied into the block; larger ones are written as they are, uncopied. */
const COPY_MAX = 1024;
/** Encoded frames up to this size are copied to join a pending region rather than written as a part of their own. */
const JOIN_MAX = 4 * 1024;

let sharedBlock = Buffer.allocUnsafeSlow(BLOCK_SIZE);
let sharedUsed = 0;

/**
 * A connection's outgoing frames, gathered so that the answers to one read chunk leave in one socket
 * write: small frames are encoded back to back into a shared block; a large payload is queued by
 * reference between its header and trailer (as Netty's LengthFieldPrepender does); frames already
 * encoded (an echoed run of received frames) are queued as they are.
 *
 * Blocks are shared by every connection, as Node's own `Buffer` pool is: a connection's pending region
 * grows in place while it stays at the end of the shared block, else it starts anew there. Bytes before
 * the end belong to writes already queued and are never written again. A batch holds no block between
 * writes, so an idle connection keeps none alive.
 */
export class FrameBatch {
  readonly #codec: FrameCodec;
  /** The codec again when it is a {@link WrappingFrameCodec} (checked once, not per frame). */
  readonly #wrapping: WrappingFrameCodec | null;
  /** Finished pieces, in wire order, waiting for {@link writeTo}. */
  readonly #parts: Buffer[] = [];
  /** The shared block holding the pending region (`null` when there is none), its start and end. */
  #block: Buffer | null = null;
  #start = 0;
  #used = 0;
  #bytes = 0;

  constructor(codec: FrameCodec) {
    this.#codec = codec;
    this.#wrapping = isWrappingCodec(codec) ? codec : null;
  }

  /** Bytes gathered and not yet written. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Encodes one payload onto the batch.
   * @returns its size on the wire
   * @throws {PulsarError} `ERR_FRAME_TOO_LARGE` (from the codec) for a payload over its limit; nothing is added
   */
  add(payload: Uint8Array): number {
    const wrapping = this.#wrapping;
    let size: number;
    if (wrapping !== null) {
      size = this.#addWrapped(payload, wrapping);
    } else {
      const wire = this.#codec.encode(payload);
      size = wire.length;
      this.#put(wire, size <= COPY_MAX);
    }
    this.#bytes += size;
    return size;
  }

  /** Queues bytes that are already frames on the wire (shared with other batches: a broadcast), as they are. */
  addEncoded(wire: Buffer): void {
    this.#put(wire, false);
    this.#bytes += wire.length;
  }

  /**
   * Adds received frames sent back as they are: copied into the block when small, or when they can join
   * what is pending there (an echoed frame that spanned reads, then the run after it, leave as one buffer:
   * a copy of a few KiB costs less than a corked write of two), else queued by reference.
   */
  addReceived(wire: Buffer): void {
    const size = wire.length;
    this.#put(wire, size <= COPY_MAX || (size <= JOIN_MAX && this.#pendingAtBlockEnd()));
    this.#bytes += size;
  }

  /** Copies encoded bytes to the end of the pending region of the block, or queues them by reference. */
  #put(wire: Buffer, copy: boolean): void {
    if (copy) {
      const offset = this.#reserve(wire.length);
      wire.copy(this.#block!, offset);
    } else {
      this.#closeRegion();
      this.#parts.push(wire);
    }
  }

  /**
   * Writes everything gathered: one `socket.write()` when it is one piece, else one corked batch.
   * @returns what the socket's last `write()` returned (`false`: over its high-water mark), `true` if nothing was gathered
   */
  writeTo(socket: Socket): boolean {
    this.#closeRegion();
    this.#block = null;
    const parts = this.#parts;
    this.#bytes = 0;
    if (parts.length === 0) return true;
    if (parts.length === 1) return socket.write(parts.pop()!);
    let accepted = true;
    socket.cork();
    for (const part of parts) accepted = socket.write(part);
    socket.uncork();
    parts.length = 0;
    return accepted;
  }

  /** Drops what was gathered and not written (the socket is gone). */
  clear(): void {
    this.#parts.length = 0;
    this.#block = null;
    this.#start = this.#used;
    this.#bytes = 0;
  }

  /** Small payloads are copied between their header and trailer; large ones are queued by reference. */
  #addWrapped(payload: Uint8Array, codec: WrappingFrameCodec): number {
    const headerLength = codec.measureHeader(payload);
    const trailer = codec.trailer;
    const length = payload.length;
    if (length <= COPY_MAX) {
      const offset = this.#reserve(headerLength + length + trailer.length);
      const block = this.#block!;
      codec.writeHeader(length, block, offset);
      block.set(payload, offset + headerLength);
      copyTrailer(trailer, block, offset + headerLength + length);
    } else {
      if (headerLength > 0) {
        const offset = this.#reserve(headerLength);
        codec.writeHeader(length, this.#block!, offset);
      }
      this.#closeRegion();
      this.#parts.push(toBuffer(payload));
      if (trailer.length > 0) {
        const offset = this.#reserve(trailer.length);
        copyTrailer(trailer, this.#block!, offset);
      }
    }
    return headerLength + length + trailer.length;
  }

  /** Makes room for `n` bytes at the end of the pending region and returns where they start. */
  #reserve(n: number): number {
    if (this.#block !== sharedBlock || this.#used !== sharedUsed || sharedUsed + n > sharedBlock.length) {
      this.#closeRegion();
      if (sharedUsed + n > sharedBlock.length) {
        sharedBlock = Buffer.allocUnsafeSlow(Math.max(BLOCK_SIZE, n));
        sharedUsed = 0;
      }
      this.#block = sharedBlock;
      this.#start = this.#used = sharedUsed;
    }
    const offset = this.#used;
    this.#used = sharedUsed = offset + n;
    return offset;
  }

  /** Whether the pending region is open at the end of the shared block, where more can be appended. */
  #pendingAtBlockEnd(): boolean {
    return this.#used > this.#start && this.#block === sharedBlock && this.#used === sharedUsed;
  }

  /** Moves the pending region of the block to the parts. */
  #closeRegion(): void {
    if (this.#used === this.#start) return;
    this.#parts.push(this.#block!.subarray(this.#start, this.#used));
    this.#start = this.#used;
  }
}

/** A delimiter is a byte or two: set in place rather than through `Buffer#copy`. */
function copyTrailer(trailer: Buffer, target: Buffer, offset: number): void {
  for (let i = 0; i < trailer.length; i++) target[offset + i] = trailer[i]!;
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}
