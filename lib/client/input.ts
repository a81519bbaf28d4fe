import type { Socket } from 'node:net';
import type { FrameDecoder } from '../codecs/types.js';
import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';

/**
 * What a client reads on one connection: each chunk decoded and its frames handed to `deliver`, the
 * dead-server countdown (`silenceTimeout`: one timer, refreshed per chunk, not recreated), and at the end
 * a frame left half-read reported. A stream that cannot be decoded destroys the socket with why.
 */
export class ClientInput {
  readonly #socket: Socket;
  readonly #decoder: FrameDecoder;
  readonly #silenceTimeout: number;
  readonly #target: string;
  readonly #deliver: (frame: Buffer) => void;
  #silenceTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param socket the connection's socket
   * @param decoder the codec's decoder for it
   * @param silenceTimeout ms without data after which the server is taken for dead (`0`: never)
   * @param target names the server, for errors
   * @param deliver takes each frame
   */
  constructor(socket: Socket, decoder: FrameDecoder, silenceTimeout: number, target: string, deliver: (frame: Buffer) => void) {
    this.#socket = socket;
    this.#decoder = decoder;
    this.#silenceTimeout = silenceTimeout;
    this.#target = target;
    this.#deliver = deliver;
    this.#armSilenceTimer();
  }

  /** Decodes a chunk and delivers its frames. */
  receive(chunk: Buffer): void {
    this.#armSilenceTimer();
    const decoder = this.#decoder;
    decoder.push(chunk);
    try {
      for (let frame = decoder.next(); frame !== null; frame = decoder.next()) this.#deliver(frame);
      if (decoder.bufferedBytes > 0) decoder.compact?.();
    } catch (error) {
      this.#socket.destroy(this.#decodingFailure(error));
    }
  }

  /** The connection is gone: the countdown stops. @returns a frame left half-read, as an error, or `null` */
  end(): PulsarError | null {
    clearTimeout(this.#silenceTimer);
    try {
      this.#decoder.end();
      return null;
    } catch (error) {
      return this.#decodingFailure(error);
    }
  }

  #armSilenceTimer(): void {
    const ms = this.#silenceTimeout;
    if (ms === 0) return;
    if (this.#silenceTimer !== undefined) {
      this.#silenceTimer.refresh();
      return;
    }
    this.#silenceTimer = setTimeout(() => {
      this.#socket.destroy(new PulsarError('ERR_SERVER_SILENT', `no data from ${this.#target} for ${ms} ms`));
    }, ms);
  }

  /** What the decoder threw, with a code even from a faulty custom decoder. */
  #decodingFailure(error: unknown): PulsarError {
    if (error instanceof PulsarError) return error;
    return new PulsarError('ERR_CODEC', `the codec's decoder failed on data from ${this.#target}: ${messageOf(error)}`, { cause: error });
  }
}
