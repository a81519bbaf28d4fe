import type net from 'node:net';
import { EventEmitter } from 'eventemitter3';
import createDebug from 'debug';
import { ClientApplication } from '../contract/client-application.js';
import type { CallInput, CallOutput, Contract, ContractEventNames, MessageValue, RequestNames, StreamInput, StreamItem, StreamNames } from '../contract/contract.js';
import { ClientInbox } from './inbox.js';
import { ClientDelivery, type DeliveryHost } from './delivery.js';
import { resolveClientOptions, type PulsarClientOptions, type ResolvedClientOptions } from './options.js';
import { FrameWriter } from '../io/frame-writer.js';
import { ClientInput } from './input.js';
import { backoffDelay, dial } from './dial.js';
import { PendingRequests } from '../messages/pending.js';
import { PulsarError } from '../errors.js';
import { hostPort } from '../util/format.js';
import { sendPayload, type MessageSession } from '../messages/session.js';
import type { SendOptions } from '../messages/encoding.js';
import { clientSession } from './session.js';
import type { RequestOptions, StreamOptions } from '../messages/settings.js';
import { failedStream } from '../messages/inbound-stream.js';
import { emitError } from '../util/unhandled-error.js';
import { promised } from '../util/thenable.js';
import type { ClientState, Inbound, PulsarClientEvents } from './types.js';

const debug = createDebug('pulsar:client:trace');

/** How long `close()` waits for the server to close its side before destroying the socket. */
const CLOSE_TIMEOUT_MS = 5000;

/** Reconnection without the `reconnect` option: one attempt, after a reset (see `request()`). */
const RESET_ONLY = { initialDelay: 0, maxDelay: 0, maxAttempts: 1 } as const;

/**
 * The other end of a pulsar server: connects, frames what it sends with the same {@link FrameCodec},
 * decodes what comes back, tells heartbeats apart, and can reconnect. With `messages` it sends and
 * yields messages; with `rpc`, requests go both ways, answered by id.
 *
 * @example
 * ```ts
 * const client = new PulsarClient({ port: 8080 });
 * await client.connect();
 * const answer = await client.request('ping'); // echo server: 'ping'
 * for await (const frame of client) console.log(String(frame));
 * ```
 * @typeParam M the messages' type, from `messages` (`Buffer`: frames; `unknown` with `json()`: annotate a JSON client `PulsarClient<unknown>`)
 * @typeParam S the client's `schema` output, when it has one
 * @typeParam C the contract, when it has one
 */
export class PulsarClient<M = Buffer, S = never, C extends Contract = Contract> extends EventEmitter<PulsarClientEvents<Inbound<M, S>>> {
  /** Where the client is in its lifecycle; see {@link ClientState}. */
  get state(): ClientState {
    return this.#state;
  }

  /** The options in force, defaults applied. */
  readonly options: ResolvedClientOptions;
  #socket: net.Socket | null = null;
  /** What is read on the connection now (`null` between connections). */
  #input: ClientInput | null = null;
  #state: ClientState = 'idle';
  #attempt = 0;
  #lastError: Error | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  /** The connection's message layer (with `messages`): a new one for each connection. */
  #session: MessageSession | null = null;
  /** Requests answered in order (without `rpc`): the next data frame answers the oldest. */
  readonly #ordered: PendingRequests;
  /** True while the connection is dropped on purpose, to open a new one at once (see {@link request}). */
  #resetting = false;
  /** What is sent, batched per tick (as a server's connection sends). */
  readonly #output: FrameWriter;
  #lateReplies = 0;
  /** The close under way, for a second `close()` to wait on. */
  #closing: Promise<void> | undefined;
  readonly #inbox: ClientInbox<Inbound<M, S>>;
  /** Where what the server sends goes. */
  readonly #delivery: ClientDelivery<Inbound<M, S>>;
  /** The hello, contract and routes (SPEC section 17), or `null` without them. */
  readonly #app: ClientApplication | null;
  /** Aborted when `close()` begins: handlers' `ctx.closing`. */
  readonly #stopping = new AbortController();

  /** @param options see {@link PulsarClientOptions} */
  constructor(options: PulsarClientOptions<M, S, C> = {}) {
    super();
    this.options = resolveClientOptions(options);
    const { application } = this.options;
    this.#app = application && new ClientApplication(application, {
      deliver: (name, value) => super.emit(name as 'message', value as Inbound<M, S>),
      error: (error) => this.#error(error),
    });
    this.#inbox = new ClientInbox({
      peer: this.#target(),
      pause: () => this.#socket?.pause(),
      resume: () => this.#socket?.resume(),
      closed: () => this.#state === 'closed',
    });
    this.#ordered = new PendingRequests({ peer: this.#target(), gaveUp: (_id, error) => this.#outOfStep(error as PulsarError) });
    this.#delivery = new ClientDelivery({
      emitter: this as unknown as DeliveryHost<Inbound<M, S>>['emitter'], ordered: this.#ordered, inbox: this.#inbox,
      heartbeat: this.options.heartbeatPayload, rpc: this.options.messages?.rpc ?? false, error: (error) => this.#error(error),
    });
    this.#output = new FrameWriter(this.options.codec, { writerSocket: () => this.#socket, wrote: () => {} });
  }

  /** Replies (with `rpc`) that came after their request had given up (timeout, abort): dropped, never handed to another. */
  get lateReplies(): number {
    return this.#lateReplies;
  }

  /** Contract messages that came with no listener for their name, dropped (a warning said so once). */
  get droppedMessages(): number {
    return this.#app?.dropped ?? 0;
  }

  /**
   * Sends the contract's request `name` and resolves with its output, validated on arrival.
   * @throws {PulsarError} (rejects) `ERR_UNKNOWN_ROUTE` for a name the contract's `client` side has no
   * request for, `ERR_INVALID_MESSAGE` for an input or an output the contract refuses, or as {@link request}
   */
  call<K extends RequestNames<C['client']>>(name: K, input: CallInput<C['client'], K>, options?: RequestOptions): Promise<CallOutput<C['client'], K>> {
    const caller = this.#app?.caller;
    if (!caller) return Promise.reject(new PulsarError('ERR_UNKNOWN_ROUTE', 'client.call() needs a contract'));
    return caller.call(name, input, options, (body, given, upload) => promised(() => this.#rpcSession().request(body, given, upload))) as Promise<CallOutput<C['client'], K>>;
  }

  /**
   * Calls a stream (`rpc`): with a contract, `stream(name, input, options)`, its items typed and validated
   * by the contract's `stream()` entry; without, `stream(value, options)`. Loop over what it returns:
   * items come under a window of credit (`window`, 16 by default); `break` (or `signal`) cancels the
   * stream, and the producer's generator is returned; a producer's error ends the loop as a `RemoteError`.
   * @throws {PulsarError} (from the loop) `ERR_RPC_DISABLED`, `ERR_CONNECTION_CLOSED`, `ERR_ABORTED`,
   * `ERR_REQUEST_TIMEOUT` (`timeout`: for the whole stream), `ERR_REMOTE`, `ERR_UNKNOWN_ROUTE`, `ERR_INVALID_MESSAGE`
   */
  stream<K extends StreamNames<C['client']>>(name: K, input: StreamInput<C['client'], K>, options?: StreamOptions): AsyncIterable<StreamItem<C['client'], K>>;
  stream<T = unknown>(value: unknown, options?: StreamOptions): AsyncIterable<T>;
  stream(first: unknown, second?: unknown, third?: StreamOptions): AsyncIterable<unknown> {
    const caller = this.#app?.caller;
    return failedStream(() => (caller
      ? caller.stream(first as string, second, third, (body, options, check, upload) => this.#rpcSession().stream(body, options, check, upload))
      : this.#rpcSession().stream(first, second as StreamOptions | undefined)));
  }

  /** A contract's `client` message name sends it (`[name, value]`, checked with `validateOutgoing`; returns as {@link send}); any other raises the client's own event. */
  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (this.#app?.sends(event)) return this.send(this.#app.caller!.emitBody(event, args[0]));
    return super.emit(event as 'message', ...(args as [Inbound<M, S>]));
  }

  /** Listens to a contract message of the server's by name (`client.on('said', ({ from, text }) => …)`), or to the client's own events. */
  override on<K extends keyof PulsarClientEvents<Inbound<M, S>>>(event: K, fn: (...args: PulsarClientEvents<Inbound<M, S>>[K]) => void, context?: unknown): this;
  override on<K extends ContractEventNames<C['server']>>(event: K, fn: (value: MessageValue<C['server'], K>) => void): this;
  override on(event: string, fn: (...args: never[]) => void, context?: unknown): this {
    return super.on(event as 'message', fn as () => void, context);
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
   * Encodes and writes one frame: a string or a `Uint8Array`, or with `messages` any value the message
   * codec encodes. Writes made in the same tick leave together, in one write.
   * @returns `false` when the socket's buffer is full: wait for `drain` before sending much more
   * @throws {PulsarError} `ERR_CONNECTION_CLOSED` when not connected, `ERR_FRAME_TOO_LARGE` over the
   * codec's limit, `ERR_INVALID_PAYLOAD` for what cannot be sent, `ERR_INVALID_OPTION` for bad `headers`
   */
  send(payload: unknown, options?: SendOptions): boolean {
    return this.#write(sendPayload(this.options.messages, payload, options));
  }

  /**
   * Sends a request and resolves with its answer.
   *
   * With `rpc`, the answer is the reply to this request, matched by id, whatever order replies come in;
   * an error reply rejects with a `RemoteError` (`ERR_REMOTE`). Without `rpc`, the answer is the next
   * data frame (or message), for protocols that answer every request in order (the echo among them);
   * heartbeats are not answers. Once such a request gives up (timeout, abort), nobody can tell which
   * answer is whose: every request waiting fails, and the client drops the connection and opens a new
   * one at once (`reconnecting`, then `reconnect`), so that no caller is handed another's answer.
   * @throws {PulsarError} (rejects) `ERR_REQUEST_TIMEOUT` after `timeout` ms (`requestTimeout`, 30 s by
   * default); `ERR_ABORTED` when `signal` aborts; `ERR_CONNECTION_CLOSED` if the connection is lost
   * first, or reset after another request gave up; `ERR_INVALID_OPTION` for a bad timeout
   */
  request<R = Inbound<M, S>>(payload: unknown, options: RequestOptions = {}): Promise<R> {
    const session = this.#session;
    if (session !== null && this.options.messages!.rpc) {
      if (!this.connected) return Promise.reject(this.#notConnected());
      return session.request(payload, options) as Promise<R>;
    }
    return this.#delivery.requestInOrder(payload, options, this.options, this.#target(), (bytes) => this.#write(bytes)) as Promise<R>;
  }

  /**
   * Times the client stopped reading because 1,024 messages (or frames) waited with nothing to consume
   * them: no listener, no iterator running. Replies wait behind them too. The first time, a
   * `PulsarWarning` says so; take them (`for await`) or listen to `message`.
   */
  get inboxFull(): number {
    return this.#inbox.timesFull;
  }

  /** Closes gracefully: ends our side, waits for the server to close its own; open streams are cancelled. Resolves once closed (a second call with the first). */
  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#state = 'closing';
    this.#stopping.abort(new PulsarError('ERR_CLIENT_STATE', 'the client is closing'));
    clearTimeout(this.#retryTimer);
    const socket = this.#socket;
    if (socket === null || socket.destroyed) {
      this.#finish();
      return;
    }
    this.#output.flush(); // what was sent in this tick leaves before our FIN
    await new Promise<void>((resolve) => {
      this.once('close', resolve);
      socket.end();
      // The server answers our FIN with its own once it has flushed; do not wait forever for it.
      this.#closeTimer = setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS);
    });
  }

  /**
   * What the server sends that no request took: data frames, or with `messages` one-way messages. What
   * arrived before the first `next()` and was not taken by a listener is queued, so none is lost; reading
   * pauses while 1,024 items wait unread (the server's sends then wait in TCP). Ends when the client
   * closes. Concurrent iterators share the items out, each once.
   */
  [Symbol.asyncIterator](): AsyncGenerator<Inbound<M, S>, void, undefined> {
    return this.#inbox.iterate();
  }

  #error(error: PulsarError): void {
    emitError(this, 'PulsarClient', error);
  }

  #target(): string {
    return hostPort(this.options.host, this.options.port);
  }

  #open(): Promise<void> {
    const { socket, connected } = dial(this.options, this.#target());
    this.#socket = socket;
    return connected.then(async () => {
      this.#attach(socket);
      if (this.#state === 'connecting' || this.#state === 'reconnecting') this.#state = 'open';
      debug('connected to %s', this.#target());
      this.emit('connect');
      const hello = this.#app?.helloBody() ?? null;
      if (hello !== null) await this.#session!.request(hello); // before anything else, on every connection
      this.emit('ready');
    }, (error: Error) => {
      this.#socket = null;
      throw error;
    });
  }

  #attach(socket: net.Socket): void {
    const input = (this.#input = new ClientInput(socket, this.options.codec.createDecoder(), this.options.silenceTimeout, this.#target(), (frame) => this.#delivery.frame(frame, this.#session)));
    socket.on('data', (chunk: Buffer) => input.receive(chunk));
    socket.on('drain', () => this.emit('drain'));
    socket.on('error', (error) => {
      this.#lastError = error;
      this.#error(error instanceof PulsarError ? error : new PulsarError('ERR_CONNECTION_LOST', `connection to ${this.#target()} lost: ${error.message}`, { cause: error }));
    });
    socket.on('close', () => this.#lost());
    const { messages } = this.options;
    if (messages === null) return;
    this.#session = clientSession(messages, {
      peer: this.#target(),
      write: (payload, now) => this.connected && this.#write(payload, now), // a reply for a connection already gone is dropped
      drained: () => new Promise((resolve) => socket.once('drain', resolve)),
      message: (message) => (this.#app?.caller ? this.#app.message(message) : this.#delivery.message(message as Inbound<M, S>)),
      answer: this.#app?.answer ?? this.options.handler,
      error: (error) => this.#error(error),
      destroy: () => socket.destroy(),
      lateReply: () => this.#lateReplies++,
      closing: this.#stopping.signal,
    });
  }

  /** Writes one frame's payload (see {@link FrameWriter}): `false` when the socket is over its high-water mark (`drain` follows). */
  #write(payload: Uint8Array, now = false): boolean {
    const socket = this.#socket;
    if (socket === null || socket.destroyed || this.#state === 'closing') throw this.#notConnected();
    this.#output.add(payload);
    if (now) this.#output.flush();
    return this.#output.hasRoom(socket);
  }

  /** The session, for a call. @throws {PulsarError} `ERR_RPC_DISABLED` without `rpc`, `ERR_CONNECTION_CLOSED` when not connected */
  #rpcSession(): MessageSession {
    if (!this.options.messages?.rpc) throw new PulsarError('ERR_RPC_DISABLED', 'calls need rpc: true (and messages) on the client');
    if (!this.connected || this.#session === null) throw this.#notConnected();
    return this.#session;
  }

  #notConnected(): PulsarError {
    return new PulsarError('ERR_CONNECTION_CLOSED', `cannot send to ${this.#target()}: not connected`);
  }

  /**
   * A request without `rpc` gave up (see {@link request}): answers can no longer be matched to requests, so
   * every other one waiting fails, and the connection is dropped to open a new one at once.
   */
  #outOfStep(error: PulsarError): void {
    this.#ordered.failAll(() => new PulsarError('ERR_CONNECTION_CLOSED', `the connection was reset: an earlier request gave up (${error.code}), so answers could no longer be matched to requests`));
    this.#reset(error);
  }

  /** Drops the connection to open a new one at once. */
  #reset(error: PulsarError): void {
    if (this.#socket === null || this.#state === 'closing') return;
    debug('resetting the connection to %s: %s', this.#target(), error.message);
    this.#resetting = true;
    this.#lastError = error;
    this.#socket.destroy();
  }

  /** The socket closed: settle what waited on it, then reconnect or finish. */
  #lost(): void {
    clearTimeout(this.#closeTimer);
    this.#socket = null;
    const truncated = this.#input?.end() ?? null;
    this.#input = null;
    if (truncated !== null) this.#error(truncated);
    this.#session?.close();
    this.#session = null;
    this.#ordered.failAll(() => new PulsarError('ERR_CONNECTION_CLOSED', `connection to ${this.#target()} lost before the answer`));
    const resetting = this.#resetting;
    this.#resetting = false;
    if (this.#state === 'closing' || (this.options.reconnect === null && !resetting)) {
      this.#finish();
    } else {
      this.#state = 'reconnecting';
      this.#retry(resetting);
    }
  }

  /**
   * Schedules the next connection attempt: capped exponential backoff, half of it random ("equal
   * jitter"); at once after a reset (and only once without `reconnect`).
   */
  #retry(now = false): void {
    const { initialDelay, maxDelay, maxAttempts } = this.options.reconnect ?? RESET_ONLY;
    this.#attempt++;
    if (this.#attempt > maxAttempts) {
      this.#error(new PulsarError('ERR_CONNECTION_CLOSED', `gave up reconnecting to ${this.#target()} after ${maxAttempts} attempt(s)`));
      this.#finish();
      return;
    }
    const delay = now ? 0 : backoffDelay(initialDelay, maxDelay, this.#attempt);
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
    this.#inbox.wake();
    this.emit('close');
  }
}
