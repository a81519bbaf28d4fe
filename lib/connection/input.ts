import type { FrameDecoder } from '../codecs/types.js';
import { aboutClient, DecodingError, PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import type { MessageSession } from '../messages/session.js';
import type { ReadThrottle } from '../rate/throttle.js';
import { isPromiseLike } from '../util/thenable.js';
import type { Connection } from './connection.js';
import type { ConnectionOutput } from './output.js';
import { kAnswered, kFail, kSession, type ConnectionOwner } from './owner.js';

/**
 * A connection's inbound side: each read chunk is decoded and its frames handed to the handler (or echoed
 * in bulk), their answers gathered by the output to leave in one write; the handler's promises are
 * counted, so that a graceful close waits for them; and the frame clock (`frameTimeout`) is kept.
 */
export class ConnectionInput {
  readonly #conn: Connection;
  readonly #owner: ConnectionOwner;
  readonly #output: ConnectionOutput;
  /** Made with the first bytes: an idle connection holds none. */
  #decoder: FrameDecoder | null = null;
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
   * @param throttle the connection's rate, charged per frame dispatched, or `null`
   */
  constructor(conn: Connection, owner: ConnectionOwner, output: ConnectionOutput, throttle: ReadThrottle | null) {
    this.#conn = conn;
    this.#owner = owner;
    this.#output = output;
    this.#throttle = throttle;
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
    return this.#decoder?.bufferedBytes ?? 0;
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
    (this.#decoder ??= this.#owner.settings.codec.createDecoder()).push(chunk);
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
    const decoder = this.#decoder!;
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
    if (this.#throttle?.holding || this.#decoder === null) return;
    try {
      this.#decoder.end();
    } catch (error) {
      this.#owner.clientError(this.#decodingFailure(error), this.#conn);
    }
  }

  /**
   * Hands every complete frame to the `frame` listeners and then the handler, or with `messages` straight
   * to the connection's session (while the rate lets them through); the answers they send leave together.
   */
  #dispatchFrames(now: number): void {
    const conn = this.#conn;
    const decoder = this.#decoder!;
    const throttle = this.#throttle;
    const { settings } = this.#owner;
    const listener = this.#owner.frameListener();
    const inBulk = throttle === null && listener === null && settings.echoes && decoder.nextRun !== undefined;
    const session = settings.messages === null ? null : conn[kSession]();
    const output = this.#output;
    output.hold();
    try {
      while (conn.state !== 'closed') {
        const run = inBulk ? decoder.nextRun!() : null;
        if (run !== null) {
          this.#framesIn += run.frames;
          output.echo(run.wire, run.frames, decoder.bufferedBytes === 0);
          continue;
        }
        if (throttle !== null && !throttle.admit(now)) break; // held back (the rest waits in the decoder) or closing
        const before = throttle === null ? 0 : decoder.bufferedBytes;
        const frame = this.#nextFrame();
        if (frame === null) break;
        this.#framesIn++;
        throttle?.charge(before - decoder.bufferedBytes, now);
        this.#dispatch(frame, listener, session);
      }
    } catch (error) {
      conn[kFail](this.#decodingFailure(error));
    } finally {
      output.release();
    }
    conn[kAnswered]();
  }

  /**
   * The decoder's next frame. A frame it skipped (`onTooLong: 'discard'`) is reported and decoding goes
   * on; any other error ends the connection (thrown to the caller).
   */
  #nextFrame(): Buffer | null {
    for (;;) {
      try {
        return this.#decoder!.next();
      } catch (error) {
        if (!(error instanceof DecodingError && error.skipped)) throw error;
        this.#owner.clientError(this.#decodingFailure(error), this.#conn);
      }
    }
  }

  #dispatch(frame: Buffer, listener: ((frame: Buffer, conn: Connection) => void) | null, session: MessageSession | null): void {
    const conn = this.#conn;
    let result: unknown;
    try {
      if (listener !== null) listener(frame, conn);
      result = session !== null ? session.receive(frame) : this.#owner.settings.handler(frame, conn);
    } catch (error) {
      this.#handlerFailed(error);
      return;
    }
    if (!isPromiseLike(result)) return;
    this.#inflight++;
    // Created once per connection, and only for async handlers.
    this.#onHandlerSettled ??= () => {
      this.#inflight--;
      conn[kAnswered]();
    };
    this.#onHandlerRejected ??= (error: unknown) => {
      this.#handlerFailed(error);
      this.#onHandlerSettled!();
    };
    result.then(this.#onHandlerSettled, this.#onHandlerRejected);
  }

  /** A handler threw: a pulsar error keeps its code; anything else is `ERR_HANDLER`, an application's own code named in its message. */
  #handlerFailed(error: unknown): void {
    const conn = String(this.#conn);
    const code = (error as { code?: unknown } | null)?.code;
    const failure = error instanceof PulsarError ? aboutClient(error, conn)
      : new PulsarError('ERR_HANDLER', `${conn}: the handler failed: ${typeof code === 'string' ? `[${code}] ` : ''}${messageOf(error)}`, { cause: error });
    this.#owner.clientError(failure, this.#conn);
  }

  /** What the decoder threw, as reported: naming this client, with a code even from a faulty custom decoder. */
  #decodingFailure(error: unknown): PulsarError {
    if (error instanceof PulsarError) return aboutClient(error, String(this.#conn));
    return new PulsarError('ERR_CODEC', `${this.#conn}: the codec's decoder failed: ${messageOf(error)}`, { cause: error });
  }
}
