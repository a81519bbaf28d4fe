import { ByteQueue } from './byte-queue.js';
import { FrameFailures } from './failures.js';
import type { FrameDecoder, FrameRun } from './types.js';

/**
 * What the built-in decoders share: the bytes received in a {@link ByteQueue}, how they fail or discard
 * ({@link FrameFailures}), and how a run of whole frames is taken off the head chunk.
 */
export abstract class QueuedDecoder implements FrameDecoder {
  protected readonly queue = new ByteQueue();
  protected readonly failures = new FrameFailures(this.queue);

  get bufferedBytes(): number {
    return this.queue.length;
  }

  push(chunk: Buffer): void {
    this.queue.push(chunk);
  }

  compact(): void {
    this.queue.compact();
  }

  abstract next(): Buffer | null;
  abstract end(): void;

  /**
   * Whether decoding can go on: throws the error the decoder failed with, and drops what has arrived of
   * a discarded frame (false while more of it is to come).
   */
  protected resumable(): boolean {
    const failures = this.failures;
    if (!failures.busy) return true;
    failures.check();
    return failures.skipDiscarded();
  }

  /** The head chunk's bytes up to `end` (an index in it) as a run of `frames` whole frames, dropped from the queue. */
  protected takeRun(end: number, frames: number): FrameRun | null {
    if (frames === 0) return null;
    const queue = this.queue;
    const chunk = queue.head!;
    const start = queue.headOffset;
    const wire = start === 0 && end === chunk.length ? chunk : chunk.subarray(start, end);
    queue.skip(end - start);
    return { wire, frames };
  }
}
