/**
 * A token bucket refilled continuously: `rate` tokens per `interval` ms, holding at most `capacity`.
 * Taking more than it holds leaves it in debt; the answer is how long until the debt is repaid (the
 * wait that keeps the long-run rate, as Netty's traffic shaping computes it from the bytes read).
 * No timer of its own: the caller passes the time.
 */
export class TokenBucket {
  readonly #capacity: number;
  /** Tokens added per ms. */
  readonly #perMs: number;
  #tokens: number;
  #at: number;

  /**
   * @param rate tokens per `interval`
   * @param interval ms
   * @param capacity most tokens it holds (a full bucket at first)
   * @param now the time, in ms
   */
  constructor(rate: number, interval: number, capacity: number, now: number) {
    this.#capacity = capacity;
    this.#perMs = rate / interval;
    this.#tokens = capacity;
    this.#at = now;
  }

  /** Tokens held at `now` (negative: in debt). */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /**
   * Takes `n` tokens at `now`, even into debt.
   * @returns ms until the bucket is out of debt: `0` when it never went in
   */
  take(n: number, now: number): number {
    this.#refill(now);
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens / this.#perMs);
  }

  /** ms from `now` until the bucket holds a token again: `0` while it does. */
  waitFor(now: number): number {
    this.#refill(now);
    return this.#tokens > 0 ? 0 : Math.floor(-this.#tokens / this.#perMs) + 1;
  }

  #refill(now: number): void {
    if (now <= this.#at) return;
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#at) * this.#perMs);
    this.#at = now;
  }
}
