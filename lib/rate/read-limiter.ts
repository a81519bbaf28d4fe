import { TokenBucket } from './token-bucket.js';

/** How fast one connection may send: frames and/or bytes per `interval`. */
export interface RateLimitOptions {
  /** Frames per `interval`. @default no limit */
  frames?: number;
  /** Bytes per `interval` (frame headers included: what crosses the wire). @default no limit */
  bytes?: number;
  /** ms. @default 1000 */
  interval?: number;
  /**
   * How much a connection may save up and spend at once, in intervals' worth of its rate: the buckets
   * hold `frames × burst` frames and `bytes × burst` bytes. @default 1
   */
  burst?: number;
}

/** Which limit a connection ran into. */
export type RateLimitKind = 'frames' | 'bytes';

/** What happens to a connection over its rate: reading pauses until it is back under (Netty's traffic shaping), or it is closed (Discord's gateway). */
export type RateLimitAction = 'pause' | 'close';

/** Over the rate: how long until it is back under, and which limit said so. */
export interface RateVerdict {
  /** ms until the connection is back under its rate. */
  readonly wait: number;
  /** The limit it is over (the longer wait when both are). */
  readonly kind: RateLimitKind;
}

/**
 * A connection's read rate: a token bucket for frames and one for bytes, charged frame by frame as frames
 * are dispatched (Netty's per-message shaping, nginx's `limit_req`): a frame is let through while both
 * buckets hold a token, and may take them into debt (a frame larger than the byte bucket still passes,
 * then waits its debt off). Charging per read instead would let thousands of tiny frames in one read
 * through at once.
 */
export class ReadLimiter {
  readonly #frames: TokenBucket | null;
  readonly #bytes: TokenBucket | null;

  /**
   * @param options the limits, checked by the caller (see `resolveServerOptions`)
   * @param now the time, in ms
   */
  constructor({ frames, bytes, interval = 1000, burst = 1 }: RateLimitOptions, now: number) {
    this.#frames = frames === undefined ? null : new TokenBucket(frames, interval, frames * burst, now);
    this.#bytes = bytes === undefined ? null : new TokenBucket(bytes, interval, bytes * burst, now);
  }

  /**
   * Whether the next frame must wait.
   * @returns `null` while it may pass, else how long until it may and which limit holds it
   */
  verdict(now: number): RateVerdict | null {
    const frameWait = this.#frames === null ? 0 : this.#frames.waitFor(now);
    const byteWait = this.#bytes === null ? 0 : this.#bytes.waitFor(now);
    if (frameWait === 0 && byteWait === 0) return null;
    return frameWait >= byteWait ? { wait: frameWait, kind: 'frames' } : { wait: byteWait, kind: 'bytes' };
  }

  /** Charges one frame dispatched, of `bytes` on the wire. */
  charge(bytes: number, now: number): void {
    this.#frames?.take(1, now);
    this.#bytes?.take(bytes, now);
  }
}
