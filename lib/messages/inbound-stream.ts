import { PulsarError } from '../errors.js';

/** What an {@link InboundStream} needs from the session. */
export interface InboundStreamHost {
  /** Grants the producer `count` more items (a credit frame). */
  grant(count: number): void;
  /** The reader left before the end: the producer is told (a cancel), the stream forgotten. */
  leave(): void;
}

/** Maps an item as the reader takes it (a contract's item schema); may throw or reject. */
export type ItemCheck = (item: unknown) => unknown;

/**
 * The reading end of a stream (a stream call's items, or an upload at the side answering): an
 * `AsyncIterable` whose items wait in a queue the producer can fill only as far as the credit it was
 * granted (`window` items at first, more as they are taken), so what waits here is at most `window`
 * items, whatever the reader's speed. Leaving the loop early (`break`, `return`, a throw) tells the producer.
 */
export class InboundStream<T = unknown> implements AsyncIterableIterator<T> {
  readonly #host: InboundStreamHost;
  readonly #window: number;
  readonly #check: ItemCheck | null;
  /** Items arrived and not taken yet; `#head` is the next. */
  #queue: unknown[] = [];
  #head = 0;
  /** Items the producer may still send: granted, not arrived. */
  #credit = 0;
  /** Items taken since credit was last granted. */
  #taken = 0;
  /** Set once no more items will come: `true` at the end, or the error that ended it. */
  #finished: true | Error | undefined;
  /** The reader's `next()` waiting for an item. */
  #waiter: { resolve(result: IteratorResult<T>): void; reject(error: Error): void } | undefined;
  /** Whether the reader left (`return()`): what still arrives is dropped. */
  #left = false;

  /**
   * @param host the session
   * @param window items granted at once (and again as half of them are taken)
   * @param check maps each item as it is taken, or `null`
   */
  constructor(host: InboundStreamHost, window: number, check: ItemCheck | null) {
    this.#host = host;
    this.#window = window;
    this.#check = check;
  }

  /** Grants the first window: sent right after the call. */
  open(): void {
    this.#credit = this.#window;
    this.#host.grant(this.#window);
  }

  /**
   * An item arrived (decoded).
   * @returns `false` when it is past the credit granted (a broken or hostile producer: a protocol error)
   */
  push(item: unknown): boolean {
    if (this.#finished !== undefined || this.#left) return true; // after a cancel, in flight: dropped
    if (this.#credit === 0) return false;
    this.#credit--;
    const waiter = this.#waiter;
    if (waiter !== undefined) {
      this.#waiter = undefined;
      const taken = this.#take(item);
      if (taken instanceof Promise) taken.then(waiter.resolve, waiter.reject);
      else waiter.resolve(taken);
    } else {
      this.#queue.push(item);
    }
    return true;
  }

  /** The producer ended the stream (`error` when it failed, or the call gave up). */
  finish(error?: Error): void {
    if (this.#finished !== undefined) return;
    this.#finished = error ?? true;
    const waiter = this.#waiter;
    if (waiter === undefined || this.#head < this.#queue.length) return;
    this.#waiter = undefined;
    if (error === undefined) waiter.resolve({ value: undefined, done: true });
    else waiter.reject(error);
  }

  /** The next item, once it is here; grants more credit as half the window is taken. */
  next(): Promise<IteratorResult<T>> {
    if (this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined;
      if (this.#head === this.#queue.length) {
        this.#queue.length = 0;
        this.#head = 0;
      }
      const taken = this.#take(item);
      return taken instanceof Promise ? taken : Promise.resolve(taken);
    }
    const finished = this.#finished;
    if (finished === true || this.#left) return Promise.resolve({ value: undefined, done: true });
    if (finished !== undefined) return Promise.reject(finished);
    if (this.#waiter !== undefined) return Promise.reject(new PulsarError('ERR_INVALID_OPTION', 'a stream is read by one loop: next() was called while another next() waited'));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** The reader leaves: the producer is cancelled unless the stream already ended. */
  return(): Promise<IteratorResult<T>> {
    this.#leave();
    return Promise.resolve({ value: undefined, done: true });
  }

  /** As {@link return}: the reader's loop threw. */
  throw(): Promise<IteratorResult<T>> {
    return this.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #leave(): void {
    if (this.#left) return;
    this.#left = true;
    this.#queue = [];
    this.#head = 0;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
    if (this.#finished === undefined) this.#host.leave();
  }

  /** `item` for the reader (checked); credit is granted once half the window was taken. */
  #take(item: unknown): IteratorResult<T> | Promise<IteratorResult<T>> {
    if (++this.#taken >= (this.#window + 1) >> 1 && this.#finished === undefined) {
      this.#credit += this.#taken;
      this.#host.grant(this.#taken);
      this.#taken = 0;
    }
    if (this.#check === null) return { value: item as T, done: false };
    try {
      return Promise.resolve(this.#check(item)).then((value) => ({ value: value as T, done: false }), (error: Error) => this.#refused(error));
    } catch (error) {
      return this.#refused(error as Error);
    }
  }

  /** An item the check refused: the reader's loop ends with the error, and the producer is cancelled. */
  #refused(error: Error): Promise<never> {
    this.#leave();
    return Promise.reject(error);
  }
}

/** What `open()` returns, or, when it throws, a stream whose loop ends with that error at its first step. */
export function failedStream(open: () => AsyncIterable<unknown>): AsyncIterable<unknown> {
  try {
    return open();
  } catch (error) {
    const failed = new InboundStream({ grant() {}, leave() {} }, 1, null);
    failed.finish(error as Error);
    return failed;
  }
}
