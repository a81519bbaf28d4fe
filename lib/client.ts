import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { EventEmitter } from 'eventemitter3';
import createDebug from 'debug';
import { LengthPrefixedCodec } from './codecs/length-prefixed.js';
import type { FrameCodec, FrameDecoder } from './codecs/types.js';
import { PulsarError } from './errors.js';
import { HEARTBEAT_PAYLOAD } from './heartbeat.js';
import { hostPort, messageOf } from './format.js';
import { emitError } from './unhandled-error.js';
import { checkInteger, checkKnownOptions, checkTimerMs, CODEC_OPTION_HINTS, invalidOption } from './validate.js';

const debug = createDebug('pulsar:lifecycle:client');

/** Reconnection with capped exponential backoff and jitter. */
export interface ReconnectOptions {
  /** Delay before the first attempt, in ms. @default 100 */
  initialDelay?: number;
  /** Longest delay between attempts, in ms. @default 10000 */
  maxDelay?: number;
  /** Attempts after one loss of the connection before giving up (`close` follows). @default Infinity */
  maxAttempts?: number;
}

/** Options of {@link PulsarClient}; every one is optional. */
export interface PulsarClientOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 8080 */
  port?: number;
  /** The server's codec. @default new LengthPrefixedCodec() */
  codec?: FrameCodec;
  /** How long `connect()` may take, in ms. @default 5000 */
  connectTimeout?: number;
  /**
   * Frames equal to this payload are the server's heartbeats: emitted as `heartbeat`, not as data. `false`
   * treats every frame as data. @default the 9 ASCII bytes `HEARTBEAT`
   */
  heartbeatPayload?: Uint8Array | string | false;
  /**
   * Dead-server detection: no byte at all from the server for this many ms (heartbeats count) is an
   * `ERR_SERVER_SILENT` error and closes the connection. Set it to a few of the server's heartbeat
   * intervals. `0` is off. @default 0
   */
  silenceTimeout?: number;
  /** How long `request()` waits for its answer, in ms, unless told otherwise. @default 10000 */
  requestTimeout?: number;
  /** Reconnect after the connection is lost (not after `close()`). @default false */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Connect over TLS: Node's `tls.connect()` options (`ca` for a private certificate authority,
   * `servername`…); `host` and `port` come from the options above. @default false
   */
  tls?: ConnectionOptions | false;
}

const CLIENT_OPTIONS: Record<keyof PulsarClientOptions, true> = {
  host: true, port: true, codec: true, connectTimeout: true, heartbeatPayload: true, silenceTimeout: true,
  requestTimeout: true, reconnect: true, tls: true,
};

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
  readonly options: Readonly<Required<Omit<PulsarClientOptions, 'reconnect' | 'heartbeatPayload' | 'tls'>>> & {
    /** `tls.connect()` options, or `null` for plain TCP. */
    readonly tls: ConnectionOptions | null;
    /** The heartbeat payload to recognise, or `null` when heartbeats are delivered as frames. */
    readonly heartbeatPayload: Buffer | null;
    /** The reconnection backoff, or `null` when the client does not reconnect. */
    readonly reconnect: Readonly<Required<ReconnectOptions>> | null;
  };
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
    checkKnownOptions('PulsarClient', options, CLIENT_OPTIONS, CODEC_OPTION_HINTS);
    const reconnect = options.reconnect ?? false;
    const heartbeat = options.heartbeatPayload ?? HEARTBEAT_PAYLOAD;
    if (typeof heartbeat !== 'string' && heartbeat !== false && !(heartbeat instanceof Uint8Array)) {
      throw invalidOption('PulsarClient', 'heartbeatPayload', 'must be a string, a Uint8Array or false', heartbeat);
    }
    const backoff = typeof reconnect === 'object' ? reconnect : {};
    checkKnownOptions('PulsarClient reconnect', backoff, { initialDelay: true, maxDelay: true, maxAttempts: true });
    this.options = {
      host: options.host ?? '127.0.0.1',
      port: checkInteger('PulsarClient', 'port', options.port ?? 8080, 1, 65535),
      codec: options.codec ?? new LengthPrefixedCodec(),
      connectTimeout: checkTimerMs('PulsarClient', 'connectTimeout', options.connectTimeout ?? 5000, 1),
      heartbeatPayload: heartbeat === false ? null : Buffer.from(heartbeat),
      tls: resolveTls(options.tls ?? false),
      silenceTimeout: checkTimerMs('PulsarClient', 'silenceTimeout', options.silenceTimeout ?? 0),
      requestTimeout: checkTimerMs('PulsarClient', 'requestTimeout', options.requestTimeout ?? 10000, 1),
      reconnect: reconnect === false ? null : {
        initialDelay: checkTimerMs('PulsarClient', 'reconnect.initialDelay', backoff.initialDelay ?? 100, 1),
        maxDelay: checkTimerMs('PulsarClient', 'reconnect.maxDelay', backoff.maxDelay ?? 10000, 1),
        maxAttempts: backoff.maxAttempts === undefined || backoff.maxAttempts === Infinity
          ? Infinity
          : checkInteger('PulsarClient', 'reconnect.maxAttempts', backoff.maxAttempts, 1),
      },
    };
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

function resolveTls(option: ConnectionOptions | false): ConnectionOptions | null {
  if (option === false) return null;
  if (typeof option !== 'object' || option === null) throw invalidOption('PulsarClient', 'tls', 'must be tls.connect() options or false', option);
  return option;
}
