import { PulsarError } from '../errors.js';

/** A request waiting for the next data frame. */
interface Waiting {
  resolve(answer: unknown): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout> | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/**
 * `request()` without `rpc`: for protocols that answer every request in order (the echo among them),
 * the next data frame answers the oldest request. Once one gives up (its timeout, its signal), nobody
 * can know which answer is whose: every request waiting fails, and `reset` makes the client reconnect,
 * so that no caller is ever handed another request's answer.
 */
export class OrderedRequests {
  readonly #waiting: Waiting[] = [];
  readonly #reset: (error: PulsarError) => void;

  /** @param reset drops the connection (and opens a new one): answers can no longer be matched */
  constructor(reset: (error: PulsarError) => void) {
    this.#reset = reset;
  }

  /** Whether a request waits: the next data frame is its answer. */
  get waiting(): boolean {
    return this.#waiting.length > 0;
  }

  /**
   * Waits for the next answer not taken, for `timeout` ms (`0`: no limit) or until `signal` aborts.
   * @param what names the request and its server, for errors
   */
  wait(timeout: number, signal: AbortSignal | undefined, what: string): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => {
      const waiting: Waiting = { resolve, reject, timer: undefined, signal, onAbort: undefined };
      if (timeout > 0) {
        waiting.timer = setTimeout(() => this.#giveUp(waiting, new PulsarError('ERR_REQUEST_TIMEOUT', `no answer to ${what} in ${timeout} ms`)), timeout);
      }
      if (signal !== undefined) {
        waiting.onAbort = () => this.#giveUp(waiting, new PulsarError('ERR_ABORTED', `${what} aborted`, { cause: signal.reason }));
        signal.addEventListener('abort', waiting.onAbort, { once: true });
      }
      this.#waiting.push(waiting);
    });
  }

  /** The next data frame (decoded, with `messages`): the oldest request's answer. */
  answer(value: unknown): void {
    const waiting = this.#waiting.shift()!;
    settle(waiting);
    waiting.resolve(value);
  }

  /** Fails every request waiting with `error()`. */
  failAll(error: () => PulsarError): void {
    for (const waiting of this.#waiting.splice(0)) {
      settle(waiting);
      waiting.reject(error());
    }
  }

  /** A request gave up: it fails with `error`, the others with `ERR_CONNECTION_CLOSED`, and the connection is reset. */
  #giveUp(gaveUp: Waiting, error: PulsarError): void {
    this.#waiting.splice(this.#waiting.indexOf(gaveUp), 1);
    settle(gaveUp);
    gaveUp.reject(error);
    this.failAll(() => new PulsarError('ERR_CONNECTION_CLOSED', `the connection was reset: an earlier request gave up (${error.code}), so answers could no longer be matched to requests`));
    this.#reset(error);
  }
}

function settle(waiting: Waiting): void {
  clearTimeout(waiting.timer);
  if (waiting.onAbort !== undefined) waiting.signal!.removeEventListener('abort', waiting.onAbort);
}
