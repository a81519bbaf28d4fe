import { PulsarError } from '../errors.js';

/**
 * The server-wide budget of bytes held for clients (docs/limits.md; Redis 7's `maxmemory-clients`).
 * Holders report each change as a delta, once per read chunk or write, so keeping the total costs an
 * addition; output drained by the kernel is only seen at the next recount, so the total may run high
 * between recounts, never low. When a growth passes the limit, every holder is recounted (the cost of
 * an eviction, not of a frame) and, if the total still does not fit, the holders holding the most are
 * evicted, biggest first, until it does.
 */
export class MemoryBudget<H> {
  /** The budget in bytes; `0`: unlimited (still counted). */
  readonly limit: number;
  readonly #holders: () => Iterable<H>;
  readonly #recount: (holder: H) => number;
  readonly #evict: (holder: H, held: number) => void;
  #total = 0;

  /**
   * @param limit the budget in bytes, `0` for none
   * @param holders every holder (a connection), for recounts
   * @param recount counts the bytes a holder holds now; from then on it reports its changes as deltas from that figure
   * @param evict closes a holder holding `held` bytes; it must report the release (a negative delta)
   */
  constructor(limit: number, holders: () => Iterable<H>, recount: (holder: H) => number, evict: (holder: H, held: number) => void) {
    this.limit = limit;
    this.#holders = holders;
    this.#recount = recount;
    this.#evict = evict;
  }

  /** Bytes held by all holders, counted now. */
  get total(): number {
    return this.#recountAll().total;
  }

  /** Records that a holder now holds `delta` bytes more (or fewer); enforces the limit on growth. */
  change(delta: number): void {
    this.#total += delta;
    if (delta > 0 && this.limit > 0 && this.#total > this.limit) this.#enforce();
  }

  #enforce(): void {
    const { total, held } = this.#recountAll();
    if (total <= this.limit) return;
    held.sort((a, b) => b.bytes - a.bytes);
    for (const { holder, bytes } of held) {
      if (this.#total <= this.limit) break;
      this.#evict(holder, bytes);
    }
  }

  #recountAll(): { total: number; held: Array<{ holder: H; bytes: number }> } {
    const held: Array<{ holder: H; bytes: number }> = [];
    let total = 0;
    for (const holder of this.#holders()) {
      const bytes = this.#recount(holder);
      total += bytes;
      if (bytes > 0) held.push({ holder, bytes });
    }
    this.#total = total;
    return { total, held };
  }
}

/** Why a connection is evicted: it held `held` bytes when the server's buffers passed `limit`. */
export function memoryLimitError(held: number, limit: number): PulsarError {
  return new PulsarError('ERR_MEMORY_LIMIT', `evicted holding ${held} bytes: the server's buffers for its clients passed maxBufferedBytes (${limit} bytes)`);
}
