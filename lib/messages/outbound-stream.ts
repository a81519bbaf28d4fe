/** What an {@link OutboundStream} writes through. */
export interface OutboundStreamHost {
  /**
   * Writes one item: `false` when the socket's buffer is full (the next item waits for {@link drained});
   * throws when it cannot be sent (the stream then fails with that error).
   */
  item(value: unknown): boolean;
  /** Resolves when the socket's buffer has drained. */
  drained(): Promise<void>;
  /** Writes the end: the iterator is done (its `return` value is not sent). */
  end(): void;
  /** The iterator (or writing an item) failed: the stream ends with `error`. */
  failed(error: unknown): void;
}

/**
 * The producing end of a stream: pulls its iterator only as far as the credit the reader granted, and
 * no further while the socket's buffer is full, so that a slow reader holds the producer (its generator
 * waits at `yield`) instead of filling memory or the socket. Stopping it (a cancel, a deadline, the connection gone) returns the iterator: a generator's
 * `finally` runs.
 */
export class OutboundStream {
  readonly #iterator: AsyncIterator<unknown>;
  readonly #host: OutboundStreamHost;
  /** Items the reader may take: granted, not sent. */
  #credit = 0;
  /** A pull loop is running. */
  #pumping = false;
  /** A `next()` of the iterator is pending. */
  #pulling = false;
  /** It ended, failed or was stopped: nothing more is pulled. */
  #stopped = false;

  /**
   * @param iterable what is streamed
   * @param host where items go
   */
  constructor(iterable: AsyncIterable<unknown>, host: OutboundStreamHost) {
    this.#iterator = iterable[Symbol.asyncIterator]();
    this.#host = host;
  }

  /** The reader grants `count` more items. */
  grant(count: number): void {
    this.#credit += count;
    if (!this.#pumping && !this.#stopped) void this.#pump();
  }

  /** Stops pulling and returns the iterator (at once, or after the `next()` pending). Idempotent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (!this.#pulling) this.#close();
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#credit > 0) {
        this.#pulling = true;
        const result = await this.#iterator.next();
        this.#pulling = false;
        if (this.#stopped) {
          this.#close();
          return;
        }
        if (result.done === true) {
          this.#stopped = true;
          this.#host.end();
          return;
        }
        this.#credit--;
        // Credit bounds what an honest reader holds; write()'s answer bounds what a reader that grants more
        // than it reads can make us buffer.
        if (!this.#host.item(result.value)) await this.#host.drained();
      }
    } catch (error) {
      this.#pulling = false;
      if (this.#stopped) return;
      this.#stopped = true;
      this.#close(); // the item could not be written: the generator still waits at its yield
      this.#host.failed(error);
    } finally {
      this.#pumping = false;
    }
  }

  #close(): void {
    returnIterator(this.#iterator);
  }
}

/** Returns `iterator` (a generator's `finally` runs); what it throws on the way out is its own (nobody waits for it). */
export function returnIterator(iterator: AsyncIterator<unknown>): void {
  try {
    const closing = iterator.return?.();
    if (closing instanceof Promise) closing.catch(() => {});
  } catch {
    // a return() that throws: the stream is over either way
  }
}
