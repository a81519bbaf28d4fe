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
 * A connection's read rate in force, frame by frame: {@link admit} says whether the next frame may be
 * dispatched; when it may not, reading is held back until the buckets hold tokens again (one timer while
 * held, at least 10 ms, as Netty waits), the frames already read waiting in the decoder, or the connection
 * is asked to close (the frames already let through are answered, the rest are not).
 */
export class ReadThrottle {
  readonly #limiter: ReadLimiter;
  readonly #options: RateLimitOptions;
  readonly #action: RateLimitAction;
  readonly #host: ThrottleHost;
  #heldBack = false;
  /** True once over the rate with `close`: nothing more is dispatched. */
  #stopped = false;
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

  /** True while frames read are not dispatched: held back, or stopped for good (`close`). */
  get holding(): boolean {
    return this.#heldBack || this.#stopped;
  }

  /**
   * Whether one more frame may be dispatched at `now`; when not, the throttle has acted (held reading
   * back, or asked for the close) and the caller stops dispatching.
   */
  admit(now: number): boolean {
    if (this.#heldBack || this.#stopped) return false;
    const verdict = this.#limiter.verdict(now);
    if (verdict === null) return true;
    const { wait, kind } = verdict;
    if (this.#action === 'close') {
      this.#stopped = true;
      this.#host.close(kind, `${this.#options[kind]} ${kind} per ${this.#options.interval ?? 1000} ms`);
      return false;
    }
    this.#heldBack = true;
    this.#timer = setTimeout(ReadThrottle.#refilled, Math.max(10, wait), this);
    this.#host.holdBack(kind, wait);
    return false;
  }

  /** Charges one frame dispatched, of `bytes` on the wire, at `now`. */
  charge(bytes: number, now: number): void {
    this.#limiter.charge(bytes, now);
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
