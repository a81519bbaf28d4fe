/**
 * One unref'd timer for a table of deadlines (requests sent, calls answered): set for the earliest, and on
 * firing the table's sweep settles what is due and says when the next one is. No timer per entry: the
 * socket keeps the process alive while answers can come, not the timer.
 */
export class EarliestTimer {
  readonly #sweep: (now: number) => number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When it fires; `Infinity` when it is not set. */
  #at = Infinity;

  /** @param sweep settles the entries due at `now`; returns the earliest deadline left (`Infinity`: none) */
  constructor(sweep: (now: number) => number) {
    this.#sweep = sweep;
  }

  /** Makes sure the sweep runs by `at` (epoch ms; `Infinity` asks nothing). */
  arm(at: number): void {
    if (at < this.#at) this.#set(at);
  }

  /** Stops it (the table is empty for good). */
  clear(): void {
    clearTimeout(this.#timer);
    this.#at = Infinity;
  }

  #set(at: number): void {
    clearTimeout(this.#timer);
    this.#at = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - Date.now()));
    this.#timer.unref();
  }

  #fire(): void {
    this.#at = Infinity;
    const next = this.#sweep(Date.now());
    if (next !== Infinity) this.#set(next);
  }
}
