/** Items queued before the client stops reading: TCP backpressure then holds the rest at the server. */
const HIGH_WATER = 1024;

/** What the inbox needs from its client. */
export interface InboxHost {
  /** Stops reading from the socket (the queue is full): replies, too, wait until items are taken. */
  pause(): void;
  /** Reads again (the queue drained to half). */
  resume(): void;
  /** True once the client is closed for good: iterators end after the queue. */
  closed(): boolean;
  /** Names the server, for the warning. */
  readonly peer: string;
}

/**
 * What reached a client and nothing consumed yet (no listener took it, or an iterator is running):
 * queued in order for async iteration, up to 1,024 items; past that the client stops reading, so the
 * server's sends wait in TCP instead of being dropped or piling up here.
 */
export class ClientInbox<T> {
  readonly #host: InboxHost;
  #queue: T[] = [];
  /** Index of the next item to yield (shifting an array per item is O(n)). */
  #head = 0;
  /** Iterators waiting for an item or the close. */
  readonly #waiters: Array<() => void> = [];
  #iterating = 0;
  /** True while reading is stopped for a full queue. */
  #full = false;
  /** Times it filled up (see {@link timesFull}). */
  #timesFull = 0;

  /** @param host the client */
  constructor(host: InboxHost) {
    this.#host = host;
  }

  /**
   * Times reading stopped because 1,024 items waited with nothing to consume them. The first time, a
   * `PulsarWarning` (`PULSAR_INBOX_FULL`) says so.
   */
  get timesFull(): number {
    return this.#timesFull;
  }

  /** True while an iterator is running: it wants every item, listeners or not. */
  get iterating(): boolean {
    return this.#iterating > 0;
  }

  /** Items queued and not yet taken. */
  get size(): number {
    return this.#queue.length - this.#head;
  }

  /** Queues an item for iteration; reading pauses when the queue is full. */
  push(item: T): void {
    this.#queue.push(item);
    if (!this.#full && this.size >= HIGH_WATER) {
      this.#full = true;
      this.#host.pause();
      if (this.#timesFull++ === 0) {
        process.emitWarning(
          `PulsarClient: 1,024 messages from ${this.#host.peer} wait with nothing consuming them (no 'message' listener, no iterator): reading stopped, so replies wait too`,
          { type: 'PulsarWarning', code: 'PULSAR_INBOX_FULL' },
        );
      }
    }
    this.wake();
  }

  /** Wakes the iterators waiting: an item came, or the client closed. */
  wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** The items as they come, from those queued already until the client closes. Concurrent iterators share them out. */
  async *iterate(): AsyncGenerator<T, void, undefined> {
    this.#iterating++;
    try {
      for (;;) {
        if (this.size > 0) {
          yield this.#take();
          continue;
        }
        if (this.#host.closed()) return;
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    } finally {
      this.#iterating--;
    }
  }

  #take(): T {
    const item = this.#queue[this.#head]!;
    this.#queue[this.#head++] = undefined as T; // let it be collected
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    }
    if (this.#full && this.size <= HIGH_WATER / 2) {
      this.#full = false;
      this.#host.resume();
    }
    return item;
  }
}
