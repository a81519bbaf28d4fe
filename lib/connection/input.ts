import type { FrameDecoder } from '../codecs/types.js';
import { aboutClient, DecodingError, PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import type { ReadThrottle } from '../rate/throttle.js';
import { isPromiseLike } from '../util/thenable.js';
import type { Connection } from './connection.js';
import type { ConnectionOutput } from './output.js';
import type { ConnectionOwner } from './owner.js';

/** What a connection's input needs from the connection itself. */
export interface InputHost {
  /** Whether the connection is still alive (not closed): the dispatch loop stops when it is not. */
  alive(): boolean;
  /** A dispatch or a handler promise finished: a connection that is closing may end now. */
  settled(): void;
  /** Closes the connection for a stream that cannot be decoded. */
  fail(error: PulsarError): void;
}

/**
 * A connection's inbound side: each read chunk is decoded and its frames handed to the handler (or echoed
 * in bulk), their answers gathered by the output to leave in one write; the handler's promises are
 * counted, so that a graceful close waits for them; and the frame clock (`frameTimeout`) is kept.
 */
export class ConnectionInput {
  readonly #conn: Connection;
  readonly #owner: ConnectionOwner;
  readonly #output: ConnectionOutput;
  readonly #host: InputHost;
  readonly #decoder: FrameDecoder;
  /** The connection's rate, or `null` without `rateLimit`. */
  readonly #throttle: ReadThrottle | null;
  #lastSeen: number;
  #framesIn = 0;
  #bytesIn = 0;
  /** Handler promises not yet settled: the connection ends only after they have. */
  #inflight = 0;
  /** Epoch ms of the first byte of the frame being assembled; 0 when none is. */
  #frameStartedAt = 0;
  #onHandlerSettled: (() => void) | undefined;
  #onHandlerRejected: ((error: unknown) => void) | undefined;

  /**
   * @param conn the connection, as handlers and events get it
   * @param owner the server's side of it
   * @param output where the answers go
   * @param host the connection's own state
   * @param throttle the connection's rate, charged per frame dispatched, or `null`
   */
  constructor(conn: Connection, owner: ConnectionOwner, output: ConnectionOutput, host: InputHost, throttle: ReadThrottle | null) {
    this.#conn = conn;
    this.#owner = owner;
    this.#output = output;
    this.#host = host;
    this.#throttle = throttle;
    this.#decoder = owner.codec.createDecoder();
    this.#lastSeen = conn.connectedAt;
  }

  /** Epoch ms of the last inbound byte (the connect time until the first). */
  get lastSeen(): number {
    return this.#lastSeen;
  }
  /** Frames decoded. */
  get framesIn(): number {
    return this.#framesIn;
  }
  /** Bytes received. */
  get bytesIn(): number {
    return this.#bytesIn;
  }
  /** Bytes of a partial frame held by the decoder. */
  get partialBytes(): number {
    return this.#decoder.bufferedBytes;
  }
  /** Epoch ms of the first byte of the frame being assembled; 0 when none is. */
  get frameStartedAt(): number {
    return this.#frameStartedAt;
  }
  /** True while handler promises are pending. */
  get answering(): boolean {
    return this.#inflight > 0;
  }

  /** Decodes a chunk and dispatches its frames. */
  receive(chunk: Buffer): void {
    const now = Date.now();
    this.#lastSeen = now;
    this.#bytesIn += chunk.length;
    const framesBefore = this.#framesIn;
    this.#decoder.push(chunk);
    this.#dispatchFrames(now);
    this.#settle(now, framesBefore);
  }

  /**
   * The connection is back under its rate: the frames read and held back are dispatched (until the rate
   * holds them again), and the time held does not count as the client's silence.
   */
  resumeAfterRate(): void {
    const now = Date.now();
    this.#lastSeen = now;
    const framesBefore = this.#framesIn;
    this.#dispatchFrames(now);
    this.#settle(now, framesBefore);
  }

  /** After a dispatch: the frame clock, and what is left kept from pinning its read chunk. */
  #settle(now: number, framesBefore: number): void {
    const decoder = this.#decoder;
    if (decoder.bufferedBytes === 0) {
      this.#frameStartedAt = 0;
      return;
    }
    // A partial frame left over started in this chunk if a frame was completed in it, else earlier.
    if (this.#frameStartedAt === 0 || this.#framesIn !== framesBefore) this.#frameStartedAt = now;
    decoder.compact?.(); // what is left must not pin its read chunk beyond what the memory budget counts
  }

  /** Reading resumed after a pause: the frame clock stood still meanwhile, so the client gets a whole frameTimeout again. */
  restartFrameClock(): void {
    if (this.#frameStartedAt > 0) this.#frameStartedAt = Date.now();
  }

  /**
   * Input has stopped (peer EOF, close or shutdown) and every complete frame was dispatched: a partial
   * frame left in the decoder will never be answered, so say so rather than drop it silently. Frames the
   * rate held back are not a truncation: they were read and deliberately left (the close says why).
   */
  end(): void {
    if (this.#throttle?.holding) return;
    try {
      this.#decoder.end();
    } catch (error) {
      this.#owner.onClientError(this.#decodingFailure(error), this.#conn);
    }
  }

  /**
   * Hands every complete frame to the handler (while the rate lets them through); the answers they send
   * leave together, in one write.
   */
  #dispatchFrames(now: number): void {
    const decoder = this.#decoder;
    const throttle = this.#throttle;
    const inBulk = throttle === null && decoder.nextRun !== undefined && this.#owner.echoInBulk();
    const handle = inBulk ? null : this.#owner.frameHandler();
    const output = this.#output;
    output.beginGathering();
    try {
      while (this.#host.alive()) {
        const run = inBulk ? decoder.nextRun!() : null;
        if (run !== null) {
          this.#framesIn += run.frames;
          output.echo(run.wire, run.frames);
          continue;
        }
        if (throttle !== null && !throttle.admit(now)) break; // held back (the rest waits in the decoder) or closing
        const before = throttle === null ? 0 : decoder.bufferedBytes;
        const frame = this.#nextFrame();
        if (frame === null) break;
        this.#framesIn++;
        throttle?.charge(before - decoder.bufferedBytes, now);
        this.#dispatch(frame, handle ?? this.#owner.frameHandler());
      }
    } catch (error) {
      this.#host.fail(this.#decodingFailure(error));
    } finally {
      output.endGathering();
    }
    this.#host.settled();
  }

  /**
   * The decoder's next frame. A frame it skipped (`onTooLong: 'discard'`) is reported and decoding goes
   * on; any other error ends the connection (thrown to the caller).
   */
  #nextFrame(): Buffer | null {
    for (;;) {
      try {
        return this.#decoder.next();
      } catch (error) {
        if (!(error instanceof DecodingError && error.skipped)) throw error;
        this.#owner.onClientError(this.#decodingFailure(error), this.#conn);
      }
    }
  }

  #dispatch(frame: Buffer, handle: (frame: Buffer, conn: Connection) => unknown): void {
    let result: unknown;
    try {
      result = handle(frame, this.#conn);
    } catch (error) {
      this.#handlerFailed(error);
      return;
    }
    if (!isPromiseLike(result)) return;
    this.#inflight++;
    // Created once per connection, and only for async handlers.
    this.#onHandlerSettled ??= () => {
      this.#inflight--;
      this.#host.settled();
    };
    this.#onHandlerRejected ??= (error: unknown) => {
      this.#handlerFailed(error);
      this.#onHandlerSettled!();
    };
    result.then(this.#onHandlerSettled, this.#onHandlerRejected);
  }

  #handlerFailed(error: unknown): void {
    this.#owner.onClientError(
      new PulsarError('ERR_HANDLER', `${this.#conn}: the handler failed on a frame: ${messageOf(error)}`, { cause: error }),
      this.#conn,
    );
  }

  /** What the decoder threw, as reported: naming this client, with a code even from a faulty custom decoder. */
  #decodingFailure(error: unknown): PulsarError {
    if (error instanceof PulsarError) return aboutClient(error, String(this.#conn));
    return new PulsarError('ERR_CODEC', `${this.#conn}: the codec's decoder failed: ${messageOf(error)}`, { cause: error });
  }
}
