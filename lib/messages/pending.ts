import { PulsarError } from '../errors.js';
import { EarliestTimer } from '../util/earliest-timer.js';
import { MAX_REQUEST_ID } from './envelope.js';
import type { InboundStream } from './inbound-stream.js';
import type { OutboundStream } from './outbound-stream.js';

/** How a call sent is settled: a request's promise, or a stream's end. */
export interface Settle {
  resolve(value: unknown): void;
  reject(error: Error): void;
}

/** A request sent and not answered yet. */
interface Pending extends Settle {
  /** Epoch ms when it times out; `Infinity` for never. */
  deadline: number;
  /** Its timeout, in ms, for the error. */
  timeout: number;
  /** The caller's signal, and the listener to take off it once settled. */
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  /** A stream call's items, where they go. */
  stream: InboundStream | undefined;
  /** The call's upload, pumped under the other side's credit. */
  upload: OutboundStream | undefined;
}

/** What travels with a call besides its settling: its stream and its upload. */
export type CallParts = Pick<Pending, 'stream' | 'upload'>;

/** What the table needs from the end that sent the requests. */
export interface PendingHost {
  /**
   * Request `id` gave up (`error`: its timeout, its signal) and was rejected: with `rpc`, tell the other
   * side (a cancel); answered in order, nobody can tell which answer is whose any more (reset).
   */
  gaveUp(id: number, error: Error): void;
  /** Names the other side, for errors. */
  readonly peer: string;
}

/**
 * The requests one side has sent and waits on, for both styles of request: matched by id (`rpc`), where
 * ids are given in order, so an id below the next one that is not waited on belongs to a request that
 * gave up (its late reply is dropped and counted); or answered in order ({@link answerOldest}, a client
 * without `rpc`). Timeouts share one {@link EarliestTimer} per table (no timer per request).
 */
export class PendingRequests {
  readonly #host: PendingHost;
  readonly #waiting = new Map<number, Pending>();
  #nextId = 1;
  readonly #timer = new EarliestTimer((now) => this.#sweep(now));
  /** Replies that came after their request gave up, dropped. */
  late = 0;

  /** @param host the session */
  constructor(host: PendingHost) {
    this.#host = host;
  }

  /** The id for the next request (wrapping after {@link MAX_REQUEST_ID}, far beyond any in flight). */
  nextId(): number {
    const id = this.#nextId;
    this.#nextId = id === MAX_REQUEST_ID ? 1 : id + 1;
    return id;
  }

  /**
   * Waits for the reply to request `id`, for `timeout` ms (`0`: no limit), or until `signal` aborts.
   * @returns a promise of the reply, settled through {@link take}
   */
  wait(id: number, timeout: number, signal: AbortSignal | undefined): Promise<unknown> {
    return new Promise<unknown>((resolve, reject) => this.track(id, { resolve, reject }, timeout, signal));
  }

  /**
   * Waits on call `id` (a request, or a stream with its `parts`), settled through `settle`, for `timeout` ms
   * (`0`: no limit), or until `signal` aborts.
   */
  track(id: number, settle: Settle, timeout: number, signal: AbortSignal | undefined, parts?: CallParts): void {
    const deadline = timeout === 0 ? Infinity : Date.now() + timeout;
    const pending: Pending = { resolve: settle.resolve, reject: settle.reject, deadline, timeout, signal, onAbort: undefined, stream: parts?.stream, upload: parts?.upload };
    if (signal !== undefined) {
      pending.onAbort = () => this.#giveUp(id, new PulsarError('ERR_ABORTED', `request ${id} to ${this.#host.peer} aborted`, { cause: signal.reason }));
      signal.addEventListener('abort', pending.onAbort, { once: true });
    }
    this.#waiting.set(id, pending);
    this.#timer.arm(deadline);
  }

  /** The stream and upload of call `id` while it waits, or what {@link take} says of an id not waited on. */
  parts(id: number): CallParts | 'late' | 'unknown' {
    return this.#waiting.get(id) ?? (id >= this.#nextId ? 'unknown' : 'late');
  }

  /** Call `id` gives up with `error` (its reader left, its upload failed): rejected, and the host told. */
  giveUp(id: number, error: Error): void {
    this.#giveUp(id, error);
  }

  /**
   * The reply (or error reply) to request `id` came: what to settle, or `'late'` for a request that gave
   * up (the reply is dropped and counted), or `'unknown'` for an id never given (a broken peer).
   */
  take(id: number): Pick<Pending, 'resolve' | 'reject'> | 'late' | 'unknown' {
    const pending = this.#waiting.get(id);
    if (pending === undefined) {
      if (id >= this.#nextId) return 'unknown';
      this.late++;
      return 'late';
    }
    this.#forget(id, pending);
    return pending;
  }

  /** Whether a request waits (answered in order: the next answer is the oldest's). */
  get waiting(): boolean {
    return this.#waiting.size > 0;
  }

  /** Answered in order: settles the oldest request waiting (one must wait) with `value`. */
  answerOldest(value: unknown): void {
    const [id, pending] = this.#waiting.entries().next().value!;
    this.#forget(id, pending);
    pending.resolve(value);
  }

  /** Rejects every request waiting with `error` (the connection is gone), at once. */
  failAll(error: () => Error): void {
    for (const [id, pending] of this.#waiting) {
      this.#forget(id, pending);
      pending.reject(error());
    }
    this.#timer.clear();
  }

  /** The request gives up (timeout, abort, its reader left): rejected, and the host told. */
  #giveUp(id: number, error: Error): void {
    const pending = this.#waiting.get(id);
    if (pending === undefined) return;
    this.#forget(id, pending);
    pending.reject(error);
    this.#host.gaveUp(id, error);
  }

  #forget(id: number, pending: Pending): void {
    this.#waiting.delete(id);
    pending.upload?.stop(); // the answer came (or none will): the rest of the upload is not wanted
    if (pending.onAbort !== undefined) pending.signal!.removeEventListener('abort', pending.onAbort);
  }

  /** Times out every request past its deadline. @returns the earliest deadline left */
  #sweep(now: number): number {
    let earliest = Infinity;
    for (const [id, { deadline, timeout }] of this.#waiting) {
      if (deadline <= now) this.#giveUp(id, new PulsarError('ERR_REQUEST_TIMEOUT', `no reply to request ${id} from ${this.#host.peer} in ${timeout} ms`));
      else if (deadline < earliest) earliest = deadline;
    }
    return earliest;
  }
}
