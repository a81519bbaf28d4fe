import type { Socket } from 'node:net';
import type { FrameCodec } from '../codecs/types.js';
import { OutboundBatch } from './frame-batch.js';

/**
 * Frames sent in one tick leave in parts of this many (or at the tick's end): the server starts on the
 * first requests while the client makes the rest, instead of both sides taking turns with the whole batch.
 */
const FLUSH_FRAMES = 16;

/**
 * What a client sends: frames encoded back to back (small ones copied into a shared block, as the
 * server's connections do) and written once per tick, or once 16 are gathered.
 */
export class ClientOutput {
  readonly #batch: OutboundBatch;
  /** The socket writes go to now (`null` between connections). */
  readonly #socket: () => Socket | null;
  #scheduled = false;
  #gathered = 0;

  /**
   * @param codec the client's frame codec
   * @param socket the socket of the connection now
   */
  constructor(codec: FrameCodec, socket: () => Socket | null) {
    this.#batch = new OutboundBatch(codec);
    this.#socket = socket;
  }

  /**
   * Encodes one frame onto the batch.
   * @returns `false` when the socket's buffer is over its high-water mark (wait for `drain`)
   * @throws {PulsarError} `ERR_FRAME_TOO_LARGE` (from the codec); nothing is added
   */
  write(socket: Socket, payload: Uint8Array): boolean {
    this.#batch.add(payload);
    if (++this.#gathered >= FLUSH_FRAMES) {
      this.flush();
      return !socket.writableNeedDrain;
    }
    if (!this.#scheduled) {
      this.#scheduled = true;
      process.nextTick(() => this.flush());
    }
    return !socket.writableNeedDrain && socket.writableLength + this.#batch.bytes < socket.writableHighWaterMark;
  }

  /** Writes what was gathered now (before our FIN, say); dropped if the connection is gone. */
  flush(): void {
    this.#scheduled = false;
    this.#gathered = 0;
    const socket = this.#socket();
    if (socket === null || socket.destroyed) this.#batch.clear();
    else this.#batch.writeTo(socket);
  }
}
