import net from 'node:net';
import tls from 'node:tls';
import { EventEmitter } from 'eventemitter3';
import createDebug from 'debug';
import { resolveClientOptions, type PulsarClientOptions, type ResolvedClientOptions } from './client-options.js';
import type { FrameDecoder } from './codecs/types.js';
import { PulsarError } from './errors.js';
import { hostPort, messageOf } from './format.js';
import { emitError } from './unhandled-error.js';
import { checkTimerMs } from './validate.js';

const debug = createDebug('pulsar:lifecycle:client');

/** Events of {@link PulsarClient}. */
export interface PulsarClientEvents {
  /** Connected (first time and after each reconnection). */
  connect: [];
  /** A data frame that no `request()` was waiting for. A view: copy it to keep it long. */
  frame: [payload: Buffer];
  /** A server heartbeat. */
  heartbeat: [payload: Buffer];
  /** Writes may go on after `send()` returned `false`. */
  drain: [];
  /** The connection was lost; another attempt follows in `delay` ms. */
  reconnecting: [info: {
    /** Which attempt comes next, from 1. */
    attempt: number;
    /** Ms before it. */
    delay: number;
    /** What ended the connection, if it failed. */
    error: Error | undefined;
  }];
  /** Connected again after a loss. */
  reconnect: [info: {
    /** The attempt that succeeded. */
    attempt: number;
  }];
  /**
   * A problem with the connection, with its code: a bad frame (`ERR_FRAME_TOO_LARGE`…), silence
   * (`ERR_SERVER_SILENT`), a reset (`ERR_CONNECTION_LOST`, Node's error as `cause`), giving up
   * reconnecting (`ERR_CONNECTION_CLOSED`). With no listener, each code is written once to stderr as a
   * process warning.
   */
  error: [error: PulsarError];
  /** Closed for good: by `close()`, or lost without (more) reconnection. */
  close: [];
}

/**
 * A request waiting for the next data frame. One that timed out stays queued (already rejected), so that
 * its late answer is taken by it and dropped rather than handed to the next request.
 */
interface PendingRequest {
  resolve(frame: Buffer): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** How long `close()` waits for the server to close its side before destroying the socket. */
const CLOSE_TIMEOUT_MS = 5000;

/** Frames queued for an async iterator before the socket is paused. */
const ITERATOR_HIGH_WATER = 1024;

/**
 * A client's lifecycle: `idle` (made, not connected yet) → `connecting` → `open`; when the connection is
 * lost, `reconnecting` (with `reconnect`, between attempts and during one) → `open` again; `closing`
 * (`close()` called: our side ended, waiting for the server's) → `closed` (for good: also after giving up
 * reconnecting, or when the connection is lost without `reconnect`). A failed first `connect()` goes
 * back to `idle`.
 */
export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

/**
 * The other end of a pulsar server: connects, frames what it sends with the same {@link FrameCodec},
 * decodes what comes back, tells heartbeats apart, and can reconnect.
 *
 * @example
 * ```ts
 * const client = new PulsarClient({ port: 8080 });
 * await client.connect();
 * const answer = await client.request('ping'); // echo server: 'ping'
 * for await (const frame of client) console.log(String(frame));
 * ```
 */
export class PulsarClient extends EventEmitter<PulsarClientEvents> {
  /** Where the client is in its lifecycle; see {@link ClientState}. */
  get state(): ClientState {
    return this.#state;
  }

  /** The options in force, defaults applied. */
  readonly options: ResolvedClientOptions;
  #socket: net.Socket | null = null;
  #decoder: FrameDecoder | null = null;
  #state: ClientState = 'idle';
  #attempt = 0;
  #lastError: Error | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #silenceTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #pending: PendingRequest[] = [];
  readonly #queue: Buffer[] = [];
  /** Iterators waiting for a frame or the close. */
  readonly #waiters: Array<() => void> = [];
  #iterating = 0;

  /** @param options see {@link PulsarClientOptions} */
  constructor(options: PulsarClientOptions = {}) {
    super();
    this.options = resolveClientOptions(options);
  }

  /** True while a connection is established. */
  get connected(): boolean {
    return this.#socket !== null && !this.#socket.connecting && !this.#socket.destroyed;
  }

  /**
   * Connects. Rejects with Node's error (`ECONNREFUSED`…) or `ERR_CONNECT_TIMEOUT`; reconnection, if
   * enabled, applies only to connections lost after this first one succeeded.
   */
  async connect(): Promise<void> {
    const state = this.#state;
    if (state === 'closing' || state === 'closed') throw new PulsarError('ERR_CLIENT_STATE', 'cannot connect: the client is closed');
    if (state !== 'idle') throw new PulsarError('ERR_CLIENT_STATE', `cannot connect: the client is ${state}`);
    this.#state = 'connecting';
    try {
      await this.#open();
    } catch (error) {
      if (this.#state === 'connecting') this.#state = 'idle'; // the first connection failed: connect() may be called again
      throw error;
    }
  }

  /**
   * Encodes and writes one frame.
   * @returns `false` when the socket's buffer is full: wait for `drain` before sending much more
   * @throws {PulsarError} `ERR_CONNECTION_CLOSED` when not connected, `ERR_FRAME_TOO_LARGE` over the codec's limit
   */
  send(payload: Uint8Array | string): boolean {
    const socket = this.#socket;
    if (socket === null || socket.destroyed || this.#state === 'closing') {
      throw new PulsarError('ERR_CONNECTION_CLOSED', `cannot send to ${this.#target()}: not connected`);
    }
    return socket.write(this.options.codec.encode(typeof payload === 'string' ? Buffer.from(payload) : payload));
  }

  /**
   * Sends `payload` and resolves with the next data frame, for protocols that answer every request in
   * order (the echo among them). Heartbeats are not answers.
   * @throws {PulsarError} `ERR_REQUEST_TIMEOUT` after `timeout` ms (the late answer is then dropped, so
   * later requests still get their own); `ERR_CONNECTION_CLOSED` if the connection is lost first;
   * `ERR_INVALID_OPTION` for a timeout that is not an integer from 1 to 2^31 − 1 ms
   */
  request(payload: Uint8Array | string, options: { timeout?: number } = {}): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      // Node fires a timer of 2^31 ms or more at once: a timeout that long is refused (a throw here rejects).
      const timeout = checkTimerMs('PulsarClient', 'request() timeout', options.timeout ?? this.options.requestTimeout, 1);
      this.send(payload);
      const timer = setTimeout(() => {
        reject(new PulsarError('ERR_REQUEST_TIMEOUT', `no answer from ${this.#target()} in ${timeout} ms`));
      }, timeout);
      this.#pending.push({ resolve, reject, timer });
    });
  }

  /** Closes gracefully: ends our side, waits for the server to close its own. Resolves once closed. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closing';
    clearTimeout(this.#retryTimer);
    const socket = this.#socket;
    if (socket === null || socket.destroyed) {
      this.#finish();
      return;
    }
    await new Promise<void>((resolve) => {
      this.once('close', resolve);
      socket.end();
      // The server answers our FIN with its own once it has flushed; do not wait forever for it.
      this.#closeTimer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS);
    });
  }

  /**
   * Data frames that no request took, as they arrive, from the first `next()` until the client closes.
   * Reading pauses while 1,024 frames wait unread. Concurrent iterators share the frames out, each once.
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<Buffer, void, undefined> {
    this.#iterating++;
    try {
      for (;;) {
        const frame = this.#queue.shift();
        if (frame !== undefined) {
          if (this.#queue.length < ITERATOR_HIGH_WATER / 2) this.#socket?.resume();
          yield frame;
          continue;
        }
        if (this.#state === 'closed') return;
        await new Promise<void>((resolve) => this.#waiters.push(resolve));
      }
    } finally {
      this.#iterating--;
    }
  }

  #error(error: PulsarError): void {
    emitError(this, 'PulsarClient', error);
  }

  /** What the decoder threw, with a code even from a faulty custom decoder. */
  #decodingFailure(error: unknown): PulsarError {
    if (error instanceof PulsarError) return error;
    return new PulsarError('ERR_CODEC', `the codec's decoder failed on data from ${this.#target()}: ${messageOf(error)}`, { cause: error });
  }

  #target(): string {
    return hostPort(this.options.host, this.options.port);
  }

  #open(): Promise<void> {
    const { host, port, connectTimeout, codec, tls: tlsOptions } = this.options;
    const socket = tlsOptions ? tls.connect({ ...tlsOptions, host, port }) : net.connect({ host, port });
    socket.setNoDelay(true);
    this.#socket = socket;
    this.#decoder = codec.createDecoder();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy(new PulsarError('ERR_CONNECT_TIMEOUT', `could not connect to ${this.#target()} in ${connectTimeout} ms`));
      }, connectTimeout);
      const failed = (error: Error): void => {
        clearTimeout(timer);
        this.#socket = null;
        reject(error);
      };
      socket.once('error', failed);
      socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        socket.off('error', failed);
        this.#attach(socket);
        if (this.#state === 'connecting' || this.#state === 'reconnecting') this.#state = 'open';
        debug('connected to %s', this.#target());
        this.emit('connect');
        resolve();
      });
    });
  }

  #attach(socket: net.Socket): void {
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (error) => {
      this.#lastError = error;
      this.#error(error instanceof PulsarError ? error : new PulsarError('ERR_CONNECTION_LOST', `connection to ${this.#target()} lost: ${error.message}`, { cause: error }));
    });
    socket.on('close', () => this.#lost());
    this.#armSilenceTimer();
  }

  #receive(chunk: Buffer): void {
    this.#armSilenceTimer();
    const decoder = this.#decoder!;
    decoder.push(chunk);
    try {
      for (let frame = decoder.next(); frame !== null; frame = decoder.next()) this.#deliver(frame);
    } catch (error) {
      this.#socket?.destroy(this.#decodingFailure(error));
    }
  }

  /** A frame goes to a heartbeat listener, the oldest waiting request, or `frame` listeners and iterators. */
  #deliver(frame: Buffer): void {
    const heartbeat = this.options.heartbeatPayload;
    if (heartbeat !== null && frame.equals(heartbeat)) {
      this.emit('heartbeat', frame);
      return;
    }
    const request = this.#pending.shift();
    if (request !== undefined) {
      clearTimeout(request.timer);
      request.resolve(Buffer.from(frame)); // a no-op for a request that timed out: its late answer is dropped
      return;
    }
    this.emit('frame', frame);
    if (this.#iterating === 0) return;
    this.#queue.push(Buffer.from(frame));
    if (this.#queue.length >= ITERATOR_HIGH_WATER) this.#socket?.pause();
    this.#wakeIterators();
  }

  #wakeIterators(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Restarts the dead-server countdown (one timer per client, refreshed, not recreated, per chunk). */
  #armSilenceTimer(): void {
    const ms = this.options.silenceTimeout;
    if (ms === 0) return;
    if (this.#silenceTimer !== undefined) {
      this.#silenceTimer.refresh();
      return;
    }
    this.#silenceTimer = setTimeout(() => {
      this.#socket?.destroy(new PulsarError('ERR_SERVER_SILENT', `no data from ${this.#target()} for ${ms} ms`));
    }, ms);
  }

  /** The socket closed: settle what waited on it, then reconnect or finish. */
  #lost(): void {
    clearTimeout(this.#silenceTimer);
    this.#silenceTimer = undefined;
    clearTimeout(this.#closeTimer);
    this.#socket = null;
    try {
      this.#decoder?.end();
    } catch (error) {
      this.#error(this.#decodingFailure(error));
    }
    for (const request of this.#pending.splice(0)) {
      clearTimeout(request.timer);
      request.reject(new PulsarError('ERR_CONNECTION_CLOSED', `connection to ${this.#target()} lost before the answer`));
    }
    if (this.#state === 'closing' || this.options.reconnect === null) {
      this.#finish();
    } else {
      this.#state = 'reconnecting';
      this.#retry();
    }
  }

  /** Schedules the next connection attempt: capped exponential backoff, half of it random ("equal jitter"). */
  #retry(): void {
    const { initialDelay, maxDelay, maxAttempts } = this.options.reconnect!;
    this.#attempt++;
    if (this.#attempt > maxAttempts) {
      this.#error(new PulsarError('ERR_CONNECTION_CLOSED', `gave up reconnecting to ${this.#target()} after ${maxAttempts} attempt(s)`));
      this.#finish();
      return;
    }
    const ceiling = Math.min(maxDelay, initialDelay * 2 ** (this.#attempt - 1));
    const delay = Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
    const attempt = this.#attempt;
    debug('reconnecting to %s: attempt %d in %d ms', this.#target(), attempt, delay);
    this.emit('reconnecting', { attempt, delay, error: this.#lastError });
    this.#retryTimer = setTimeout(() => {
      this.#open().then(
        () => {
          this.#attempt = 0;
          this.emit('reconnect', { attempt });
          if (this.#state === 'closing') this.#socket?.end(); // close() came while this attempt was under way
        },
        (error: Error) => {
          this.#lastError = error;
          if (this.#state === 'closing') this.#finish();
          else this.#retry();
        },
      );
    }, delay);
  }

  #finish(): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#wakeIterators();
    this.emit('close');
  }
}
