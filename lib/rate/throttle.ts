import type { RateLimitAction, RateLimitKind, RateLimitOptions } from './read-limiter.js';
import { ReadLimiter } from './read-limiter.js';

/** What a connection's throttle acts on. */
export interface ThrottleHost {
  /** Stops reading. */
  holdBack(kind: RateLimitKind, wait: number): void;
  /** Reading may resume: the buckets are out of debt. */
  release(): void;
  /** Over the rate with `onRateLimit: 'close'`: the connection is to close, naming the limit. */
  close(kind: RateLimitKind, limit: string): void;
}

/**
 * A connection's read rate in force: charges each read chunk to its buckets and, over the rate, either
 * holds reading back until they are out of debt (one timer while held, at least 10 ms, as Netty waits) or
 * asks for the connection to close.
 */
export class ReadThrottle {
  readonly #limiter: ReadLimiter;
  readonly #options: RateLimitOptions;
  readonly #action: RateLimitAction;
  readonly #host: ThrottleHost;
  #heldBack = false;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * @param options the limits
   * @param action what to do over them
   * @param host the connection
   * @param now the time, in ms
   */
  constructor(options: RateLimitOptions, action: RateLimitAction, host: ThrottleHost, now: number) {
    this.#limiter = new ReadLimiter(options, now);
    this.#options = options;
    this.#action = action;
    this.#host = host;
  }

  /** True while reading is held back. */
  get heldBack(): boolean {
    return this.#heldBack;
  }

  /** Charges one read chunk (its bytes and the frames it completed) at `now`. */
  charge(bytes: number, frames: number, now: number): void {
    const verdict = this.#limiter.charge(bytes, frames, now);
    if (verdict === null) return;
    const { wait, kind } = verdict;
    if (this.#action === 'close') {
      this.#host.close(kind, `${this.#options[kind]} ${kind} per ${this.#options.interval ?? 1000} ms`);
      return;
    }
    clearTimeout(this.#timer);
    this.#timer = setTimeout(ReadThrottle.#refilled, Math.max(10, wait), this);
    if (this.#heldBack) return;
    this.#heldBack = true;
    this.#host.holdBack(kind, wait);
  }

  /** Stops the timer (the connection closed). */
  stop(): void {
    clearTimeout(this.#timer);
  }

  static #refilled(throttle: ReadThrottle): void {
    throttle.#heldBack = false;
    throttle.#host.release();
  }
}
