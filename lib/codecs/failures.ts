import { DecodingError, type PulsarErrorCode } from '../errors.js';
import type { ByteQueue } from './byte-queue.js';
import type { TooLongAction } from './types.js';

/**
 * How a built-in decoder fails: for good (the error is kept and thrown again on every call, the bytes
 * held are released), or, for a frame over the limit in discard mode, by skipping that frame's bytes
 * as they arrive, never holding them, and throwing a `skipped` error once.
 */
export class FrameFailures {
  readonly #queue: ByteQueue;
  #failed: DecodingError | null = null;
  /** Bytes of a discarded frame still to drop. */
  #discarding = 0;

  constructor(queue: ByteQueue) {
    this.#queue = queue;
  }

  /** True once failed for good, or while a discarded frame's bytes are still arriving. */
  get busy(): boolean {
    return this.#failed !== null || this.#discarding > 0;
  }

  /** Throws the error the decoder failed with, if it has. */
  check(): void {
    if (this.#failed !== null) throw this.#failed;
  }

  /** Fails for good: releases what is buffered and throws (and {@link check} throws it again). */
  fail(code: PulsarErrorCode, message: string): never {
    this.#failed = new DecodingError(code, message);
    this.#queue.clear();
    throw this.#failed;
  }

  /**
   * A frame of `frameBytes` wire bytes is over the limit: fails for good (`'close'`), or starts dropping
   * its bytes and throws a `skipped` error (`'discard'`).
   */
  tooLong(action: TooLongAction, frameBytes: number, message: string): never {
    if (action === 'close') this.fail('ERR_FRAME_TOO_LARGE', message);
    this.#discarding = frameBytes;
    this.skipDiscarded();
    throw skippedFrame(message);
  }

  /** Drops what has arrived of a discarded frame; false while more of it is still to come. */
  skipDiscarded(): boolean {
    if (this.#discarding === 0) return true;
    const n = Math.min(this.#discarding, this.#queue.length);
    this.#queue.skip(n);
    this.#discarding -= n;
    return this.#discarding === 0;
  }
}

/** The error reporting a frame over the limit that was skipped (`onTooLong: 'discard'`). */
export function skippedFrame(message: string): DecodingError {
  return new DecodingError('ERR_FRAME_TOO_LARGE', `${message}: skipped`, { skipped: true });
}
