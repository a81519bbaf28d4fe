import { PulsarError } from '../errors.js';
import { noteWriteProgress, type WriteProgress } from '../io/write-progress.js';
import { sweepPeriod } from '../util/sweep.js';

/** What the deadline sweep reads of a connection. `Connection` satisfies it; tests can fake it. */
export interface DeadlinePeer {
  /** Epoch ms when the frame being assembled got its first byte; `0` when none is, or while reading is paused. */
  readonly frameStartedAt: number;
  /** Output bytes not yet handed to the kernel. */
  readonly pendingBytes: number;
  /** Output bytes handed to the kernel so far (grows while a slow reader drains). */
  readonly flushedBytes: number;
}

/** The limits the sweep enforces, in ms; `0` turns one off. */
export interface DeadlineLimits {
  /** A frame begun must be complete within this long (`ERR_FRAME_TIMEOUT`). */
  readonly frameTimeout: number;
  /** Pending output must make progress within this long (`ERR_SLOW_CONSUMER`). */
  readonly writeTimeout: number;
}

/**
 * Enforces the frame and write timeouts of every connection with one unref'd timer per server, as
 * Node's `http` server checks `headersTimeout` and `requestTimeout`: no timer is created or reset per
 * frame or per write. A deadline is noticed at most a tenth of its length late (5–500 ms).
 */
export class DeadlineSweep<P extends DeadlinePeer> {
  readonly #limits: DeadlineLimits;
  readonly #peers: () => Iterable<P>;
  readonly #expire: (peer: P, error: PulsarError) => void;
  readonly #now: () => number;
  #progress = new WeakMap<P, WriteProgress>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param limits the timeouts to enforce
   * @param peers the connections to check, at the time of each sweep
   * @param expire closes a connection that missed a deadline, reporting `error`
   * @param now the clock, in epoch ms
   */
  constructor(limits: DeadlineLimits, peers: () => Iterable<P>, expire: (peer: P, error: PulsarError) => void, now: () => number = Date.now) {
    this.#limits = limits;
    this.#peers = peers;
    this.#expire = expire;
    this.#now = now;
  }

  /** Starts sweeping; does nothing when both limits are off. Calling it again restarts. */
  start(): void {
    this.stop();
    const { frameTimeout, writeTimeout } = this.#limits;
    if (frameTimeout === 0 && writeTimeout === 0) return;
    this.#timer = setInterval(() => this.sweep(), sweepPeriod(frameTimeout, writeTimeout));
    this.#timer.unref();
  }

  /** Stops the timer. Safe to call more than once. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#progress = new WeakMap();
  }

  /** Checks every connection once. The timer calls it. */
  sweep(): void {
    const now = this.#now();
    const { frameTimeout, writeTimeout } = this.#limits;
    for (const peer of this.#peers()) {
      if (frameTimeout > 0 && peer.frameStartedAt > 0 && now - peer.frameStartedAt >= frameTimeout) {
        this.#expire(peer, new PulsarError('ERR_FRAME_TIMEOUT', `frame not complete ${now - peer.frameStartedAt} ms after its first byte (frameTimeout ${frameTimeout} ms)`));
      } else if (writeTimeout > 0) {
        const stalledFor = this.#stalledFor(peer, now);
        if (stalledFor >= writeTimeout) {
          this.#expire(peer, new PulsarError('ERR_SLOW_CONSUMER', `slow consumer: ${peer.pendingBytes} bytes of output made no progress for ${stalledFor} ms (writeTimeout ${writeTimeout} ms)`));
        }
      }
    }
  }

  /** Ms since `peer`'s pending output last moved; `0` when it has none pending. */
  #stalledFor(peer: P, now: number): number {
    let progress = this.#progress.get(peer);
    if (peer.pendingBytes === 0) {
      if (progress) progress.movedAt = now;
      return 0;
    }
    if (!progress) {
      progress = { flushed: peer.flushedBytes, movedAt: now };
      this.#progress.set(peer, progress);
    } else {
      noteWriteProgress(progress, peer, now);
    }
    return now - progress.movedAt;
  }
}
