import type { Socket } from 'node:net';
import type { FrameCodec } from '../codecs/types.js';
import { FrameBatch } from './frame-batch.js';

/**
 * Frames gathered leave in parts of this many (or at the end of the tick, or of the read chunk being
 * answered): the other side starts on the first while the rest are made (pipelining), instead of both
 * taking turns with the whole batch. 16 measured best (`npm run bench -- --only rpc`).
 */
const FLUSH_FRAMES = 16;

/**
 * …or once this many bytes are gathered: large frames gain nothing from waiting (one syscall each is
 * already cheap next to their copy), and bytes held back count against the memory budget.
 */
const FLUSH_BYTES = 16 * 1024;

/** What a writer writes to, and who hears of each write. */
export interface WriterHost {
  /** The socket now, or `null` when there is none (a client between connections). */
  writerSocket(): Socket | null;
  /** A write was made: `accepted` is what the socket's last `write()` answered. */
  wrote(accepted: boolean): void;
}

/**
 * What one end sends, the same for a server's connection and a client: frames encoded back to back into
 * a {@link FrameBatch} and written once per tick, every {@link FLUSH_FRAMES} frames or 16 KiB, or when the host says
 * (the end of a read chunk's answers): a loop of `send()` costs one syscall per 16 frames, not one each,
 * as Netty's `write` and `flush` are apart. One `process.nextTick` serves every writer with frames
 * waiting, so a writer costs no closure and no timer.
 */
export class FrameWriter {
  readonly #batch: FrameBatch;
  readonly #host: WriterHost;
  #frames = 0;
  #waiting = false;
  /** While true, the host flushes itself (a read chunk's answers): no tick is scheduled. */
  #held = false;

  /**
   * @param codec the frame codec
   * @param host the socket and who hears of writes
   */
  constructor(codec: FrameCodec, host: WriterHost) {
    this.#batch = new FrameBatch(codec);
    this.#host = host;
  }

  /** Bytes gathered and not yet written. */
  get bytes(): number {
    return this.#batch.bytes;
  }

  /**
   * Encodes one payload onto the batch.
   * @returns its size on the wire
   * @throws {PulsarError} `ERR_FRAME_TOO_LARGE` (from the codec); nothing is added
   */
  add(payload: Uint8Array): number {
    const size = this.#batch.add(payload);
    this.#added();
    return size;
  }

  /** Adds one frame already encoded (shared with other writers: a broadcast), as it is. */
  addEncoded(wire: Buffer): void {
    this.#batch.addEncoded(wire);
    this.#added();
  }

  /** Adds received frames (`frames` of them) sent back as they are (see {@link FrameBatch.addReceived}). */
  addReceived(wire: Buffer, frames: number): void {
    this.#batch.addReceived(wire);
    this.#frames += frames - 1;
    this.#added();
  }

  /**
   * What `send()` answers: whether the socket, with what is gathered for it, is under its high-water mark.
   * Over it, what is gathered is written now, so that a `false` is always followed by the socket's `drain`
   * (never a `false` that no write stands behind).
   */
  hasRoom(socket: Socket): boolean {
    if (socket.writableLength + this.#batch.bytes >= socket.writableHighWaterMark) this.flush();
    return !socket.writableNeedDrain;
  }

  /** Until {@link release}, what is added leaves when 16 frames are gathered or at the release, not at the tick's end. */
  hold(): void {
    this.#held = true;
  }

  /** Writes what was gathered since {@link hold}. @returns whether a write was made */
  release(): boolean {
    this.#held = false;
    return this.flush();
  }

  /** Writes what was gathered now; dropped if the socket is gone. @returns whether a write was made */
  flush(): boolean {
    this.#frames = 0;
    if (this.#batch.bytes === 0) return false;
    const socket = this.#host.writerSocket();
    if (socket === null || socket.destroyed) {
      this.#batch.clear();
      return false;
    }
    this.#host.wrote(this.#batch.writeTo(socket));
    return true;
  }

  /** Drops what was gathered (the socket is gone). */
  clear(): void {
    this.#frames = 0;
    this.#batch.clear();
  }

  #added(): void {
    if (++this.#frames >= FLUSH_FRAMES || this.#batch.bytes >= FLUSH_BYTES) this.flush();
    else if (!this.#held && !this.#waiting) this.#waitForTick();
  }

  #waitForTick(): void {
    this.#waiting = true;
    if (FrameWriter.#atTickEnd.length === 0) process.nextTick(FrameWriter.#flushAtTickEnd);
    FrameWriter.#atTickEnd.push(this);
  }

  /** Writers with frames waiting for the end of the tick, flushed together by one `process.nextTick`. */
  static #atTickEnd: FrameWriter[] = [];

  static #flushAtTickEnd(): void {
    const writers = FrameWriter.#atTickEnd;
    FrameWriter.#atTickEnd = [];
    for (const writer of writers) {
      writer.#waiting = false;
      writer.flush();
    }
  }
}
