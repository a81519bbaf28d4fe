import type { Socket } from 'node:net';
import { peerOf } from '../admission/address-rules.js';
import { frameTooLarge } from '../codecs/types.js';
import { PulsarError } from '../errors.js';
import { hostPort } from '../util/format.js';
import type { HeartbeatPeer } from '../heartbeat.js';
import type { ProxiedAddress, ProxyInfo } from '../accept/proxy-protocol.js';
import type { ReadThrottle } from '../rate/throttle.js';
import { sendPayload, type MessageSession } from '../messages/session.js';
import type { SendOptions } from '../messages/encoding.js';
import type { RequestOptions, StreamOptions } from '../messages/settings.js';
import { failedStream } from '../messages/inbound-stream.js';
import { promised } from '../util/thenable.js';
import { ConnectionInput } from './input.js';
import { callSession, connectionSession } from './session.js';
import { ConnectionOutput } from './output.js';
import {
  kAnswered, kCloseForError, kCreate, kFail, kFeed, kFlushed, kRecount, kRefuse, kResumed, kSendEncoded, kSendPayload, kSession, kShutdown, kStart,
  type ConnectionOwner, type ConnectionState,
} from './owner.js';
import { groupsOf } from '../fleet/groups.js';
import type { Untyped } from '../contract/typed.js';
import { ConnectionLifecycle } from './lifecycle.js';
import { connectionThrottle } from './throttle.js';
import { snapshotOf, type ConnectionSnapshot } from './snapshot.js';
import { kernelTakenBytes } from '../io/write-progress.js';

function ignoreError(): void {}

/** The default type of {@link Connection.data}: any application state, by name. */
export type ConnectionData = Record<string, unknown>;

/**
 * One accepted client. Created by {@link PulsarServer}; handed to handlers and events.
 *
 * Frames given to handlers are views into the received bytes, not copies. They stay valid, but share
 * their read chunk with its other frames and keep all of it in memory: copy one (`Buffer.from(frame)`)
 * to modify it or to hold it for long.
 *
 * @typeParam D the type of {@link data}, the application's state for this connection
 */
export class Connection<D extends ConnectionData = ConnectionData> implements HeartbeatPeer {
  /** Server-unique id, counting from 1; `0` for a client refused at accept (reported, never served). */
  readonly id: number;
  /**
   * The underlying socket (a `tls.TLSSocket` over TLS), for inspection: its addresses, TLS details
   * (`getPeerCertificate()`, `getCipher()`), socket options (`setKeepAlive()`). Do not read from it,
   * write to it, pause, resume, end or destroy it: that bypasses the framing, backpressure, the limits
   * and the graceful close. Use {@link send}, {@link close} and {@link destroy}.
   */
  readonly socket: Socket;
  /** Client IP address (`''` for a client of a Unix socket without a PROXY header). */
  readonly remoteAddress: string;
  /** Client port. */
  readonly remotePort: number;
  /** `host:port` of the client (`[v6]:port` for IPv6), as used in logs; `'unix'` for a Unix socket's client. */
  readonly remote: string;
  /** Epoch ms when the connection was accepted. */
  readonly connectedAt: number;
  /**
   * What the PROXY protocol header said besides the client's address (which is {@link remoteAddress}):
   * the address the client connected to and the v2 extensions (TLVs); `null` without a header.
   */
  readonly proxy: ProxyInfo | null;
  readonly #owner: ConnectionOwner;
  /** The application's state (see {@link data}), made on first use. */
  #data: D | undefined;
  /** The message layer: made on first use with `messages` (`null` without). */
  #session: MessageSession | null | undefined;
  /** The inbound and outbound sides: `null` for a client refused at accept, which is never served. */
  readonly #input: ConnectionInput | null = null;
  readonly #output: ConnectionOutput | null = null;
  /** The connection's read rate, or `null` without `rateLimit`. */
  readonly #throttle: ReadThrottle | null = null;
  /** Its way to the end: `null` for a client refused at accept, closed from the start. */
  readonly #lifecycle: ConnectionLifecycle | null = null;
  #framesDropped = 0;

  /**
   * @internal Created by the server for each accepted socket; not meant to be constructed by applications.
   * `source` is the client a PROXY protocol header named, and `proxy` the rest of what it said, when there was one.
   */
  constructor(token: typeof kCreate, id: number, socket: Socket, owner: ConnectionOwner, source: ProxiedAddress | null = null, proxy: ProxyInfo | null = null, refused = false) {
    if (token !== kCreate) throw new TypeError('Connection is not constructible: a PulsarServer makes one for each client it accepts');
    this.id = id;
    this.socket = socket;
    this.proxy = proxy;
    const peer = source ?? peerOf(socket);
    this.remoteAddress = peer.address;
    this.remotePort = peer.port;
    this.remote = peer.address === '' ? 'unix' : hostPort(peer.address, peer.port);
    this.connectedAt = Date.now();
    this.#owner = owner;
    // Turned away at accept: named for the refusal's report, and nothing more (no decoder, no output).
    if (refused) return;
    // Nothing per connection for what is off: no throttle without rateLimit, no session until messages flow.
    this.#throttle = owner.settings.rateLimit === null ? null : connectionThrottle(this, owner);
    this.#output = new ConnectionOutput(this, owner);
    this.#input = new ConnectionInput(this, owner, this.#output, this.#throttle);
    this.#lifecycle = new ConnectionLifecycle(this, owner, this.#input, this.#output, this.#throttle);
  }

  /**
   * The application's state for this connection (who it is, what it subscribed to…), initially `{}`;
   * type it through the handler's parameter (`(msg, conn: Connection<{ user?: string }>) => …`).
   */
  get data(): D {
    return (this.#data ??= {} as D);
  }
  /** Replaces the application's state for this connection. */
  set data(value: D) {
    this.#data = value;
  }

  /** True while reading is held back because the connection is over its rate. */
  #heldBack(): boolean {
    return this.#throttle?.heldBack ?? false;
  }

  /** Unique across the instances of a fleet: `instanceId/id`. `server.sendTo()` reaches it from any of them. */
  get globalId(): string {
    return `${this.#owner.settings.instanceId}/${this.id}`;
  }

  /** Lifecycle state; see {@link ConnectionState}. */
  get state(): ConnectionState {
    return this.#lifecycle?.state ?? 'closed';
  }
  /**
   * Epoch ms of the last inbound byte (the connect time until the first). While the server holds reading
   * back for the connection's rate, now: time the server does not read never counts as the client's silence.
   */
  get lastSeen(): number {
    return this.#heldBack() ? Date.now() : this.#input?.lastSeen ?? this.connectedAt;
  }
  /** Frames decoded from the client. */
  get framesIn(): number {
    return this.#input?.framesIn ?? 0;
  }
  /** Frames sent to the client, heartbeats included. */
  get framesOut(): number {
    return this.#output?.framesOut ?? 0;
  }
  /**
   * Frames offered to {@link send} (or a group broadcast) after the writing side had closed: not
   * written, not counted in {@link framesOut}.
   */
  get framesDropped(): number {
    return this.#framesDropped;
  }
  /** Bytes received from the client. */
  get bytesIn(): number {
    return this.#input?.bytesIn ?? 0;
  }
  /** Bytes sent to the client (frames as encoded on the wire). */
  get bytesOut(): number {
    return this.#output?.bytesOut ?? 0;
  }
  /** Output queued in the socket, not yet handed to the kernel. */
  get pendingBytes(): number {
    return this.socket.writableLength;
  }
  /**
   * Bytes the server holds for this connection: a partial inbound frame being assembled plus output not
   * yet taken by the kernel. What `maxBufferedBytes` counts.
   */
  get bufferedBytes(): number {
    if (this.state === 'closed') return 0;
    return this.#input!.partialBytes + this.socket.writableLength + this.#output!.gathered;
  }
  /**
   * Epoch ms when the frame being assembled got its first byte; `0` when none is, and while reading is
   * paused or stopped (the client cannot finish a frame the server does not read).
   */
  get frameStartedAt(): number {
    return this.state === 'open' && !this.#output!.paused && !this.#heldBack() ? this.#input!.frameStartedAt : 0;
  }
  /** Output the kernel has taken so far; it advances as a slow reader drains, even inside one large write. */
  get flushedBytes(): number {
    return kernelTakenBytes(this.socket) ?? this.bytesOut - this.socket.writableLength;
  }
  /** True while reading is paused because pending output passed the server's `highWaterMark`. */
  get paused(): boolean {
    return this.#output?.paused ?? false;
  }
  /** True while reading is held back because the connection is over its `rateLimit` (`onRateLimit: 'pause'`). */
  get rateLimited(): boolean {
    return this.#heldBack();
  }

  /**
   * Encodes `payload` with the server's codec and writes it: a string or a `Uint8Array`, or with
   * `messages` any value the message codec encodes (one message per frame). Sent from a handler, it
   * leaves with the other answers to the same read in one write, once the handler returns; sent from
   * anywhere else, with the other frames sent in the same tick (or every 16 frames). Like
   * `socket.write()`, it may keep a reference to a large payload until it is written: do not modify it
   * afterwards.
   *
   * Sending to a connection that can no longer be written (closed, destroyed, lost, or lingering after
   * our FIN) is not an error, as with `ws` and `net.Socket#write`: nothing is written, the frame is
   * counted in {@link framesDropped}, and `false` is returned. A broadcast loop over
   * `server.connections` therefore never stops at a connection closing under it.
   * @returns `false` when the socket is backpressured (its buffer is full: wait for the server's
   * `drain` event or the socket's before sending much more), or when the frame was dropped
   * @throws {PulsarError} only for programming errors: `ERR_FRAME_TOO_LARGE` for a payload over the
   * codec's limit, `ERR_INVALID_PAYLOAD` for one that is neither a string nor a `Uint8Array` (or, with
   * `messages`, a value its codec cannot encode); `ERR_INVALID_OPTION` for bad `headers`
   */
  send(payload: unknown, options?: SendOptions): boolean {
    return this.#sendPayload(sendPayload(this.#owner.settings.messages, payload, options));
  }

  /** @internal Sends one frame's payload as it is (a message already encoded, with its envelope). */
  [kSendPayload](bytes: Uint8Array): boolean {
    return this.#sendPayload(bytes);
  }

  #sendPayload(bytes: Uint8Array, now = false): boolean {
    if (!this.writable) return this.#drop(bytes.length);
    return this.#output!.send(bytes, now);
  }

  /**
   * Sends a request to the client (`rpc: true` on both ends) and resolves with its reply, matched by
   * id, whatever order replies come in. The client's `handler` answers it.
   * @throws {PulsarError} (rejects) `ERR_REQUEST_TIMEOUT` after `timeout` (the server's
   * `requestTimeout`, 30 s by default); `ERR_ABORTED` when `signal` aborts; `ERR_CONNECTION_CLOSED`
   * when the connection is closing or closes first; `ERR_REMOTE` (a `RemoteError`) for an error reply;
   * `ERR_RPC_DISABLED` on a server without `rpc`
   */
  request<R = unknown>(message: unknown, options?: RequestOptions): Promise<R> {
    return promised(() => callSession(this).request(message, options)) as Promise<R>;
  }

  /**
   * Calls a stream of the client's: with a contract, `stream(name, input, options)` (typed and validated by
   * its `stream()` entry); without, `stream(value, options)`. Loop over what it returns; `break` cancels.
   * @throws {PulsarError} (from the loop) as {@link request}, and `ERR_UNKNOWN_ROUTE`, `ERR_INVALID_MESSAGE` with a contract
   */
  stream<T = unknown>(this: Connection<D> & Untyped, first: unknown, second?: unknown, third?: StreamOptions): AsyncIterable<T> {
    const { caller } = this.#owner.settings;
    return failedStream(() => (caller !== null
      ? caller.stream(first as string, second, third, (body, options, check, upload) => callSession(this).stream(body, options, check, upload))
      : callSession(this).stream(first, second as StreamOptions | undefined))) as AsyncIterable<T>;
  }

  /**
   * Sends the contract's request `name` to the client and resolves with its output, validated on arrival.
   * @throws {PulsarError} (rejects) `ERR_UNKNOWN_ROUTE` for a name the contract's `server` side has no
   * request for, `ERR_INVALID_MESSAGE` for an input or an output the contract refuses, or as {@link request}
   */
  call(this: Connection<D> & Untyped, name: string, input: unknown, options?: RequestOptions): Promise<unknown> {
    const { caller } = this.#owner.settings;
    if (caller === null) return Promise.reject(new PulsarError('ERR_UNKNOWN_ROUTE', 'conn.call() needs a contract on the server'));
    return caller.call(name, input, options, (body, given, upload) => promised(() => callSession(this).request(body, given, upload)));
  }

  /**
   * Sends the contract's message `name` to the client, as `[name, value]` (checked first with `validateOutgoing`).
   * @returns as {@link send}
   * @throws {PulsarError} `ERR_UNKNOWN_ROUTE`, `ERR_INVALID_MESSAGE`
   */
  emit(this: Connection<D> & Untyped, name: string, value: unknown): boolean {
    const { caller } = this.#owner.settings;
    if (caller === null) throw new PulsarError('ERR_UNKNOWN_ROUTE', 'conn.emit() needs a contract on the server');
    return this.send(caller.emitBody(name, value));
  }

  /** The names of the groups the connection is in; once it can no longer be written, those it was in then. */
  get groups(): readonly string[] {
    return groupsOf(this);
  }

  /** Replies to {@link request}s that came after the request had given up (timeout, abort): dropped, counted. */
  get lateReplies(): number {
    return this.#session?.lateReplies ?? 0;
  }

  /**
   * @internal Sends one frame already encoded with the server's codec (a heartbeat or a group broadcast,
   * encoded once for all): it leaves with whatever else is sent before the tick ends, so a burst of
   * broadcasts reaches each member in one write; `now` (a heartbeat) writes it at once.
   * @returns `false` when the frame was dropped (the writing side is closed)
   */
  [kSendEncoded](wire: Buffer, now = false): boolean {
    if (!this.writable) return this.#drop(0);
    this.#output!.sendEncoded(wire, now);
    return true;
  }

  /** @internal The message session, made on first use (unless `create` is false); `null` without `messages`. */
  [kSession](create = true): MessageSession | null {
    if (this.#session !== undefined || !create) return this.#session ?? null;
    const { messages } = this.#owner.settings;
    return (this.#session = messages === null ? null : connectionSession(this, this.#owner, messages, (payload, now) => this.#sendPayload(payload, now)));
  }

  /** Whether {@link send} can still write: the writing side is not closed. */
  get writable(): boolean {
    const { state } = this;
    return (state === 'open' || state === 'closing') && !this.socket.destroyed;
  }

  /**
   * The one rule for a frame offered to a connection that cannot be written: a payload over the codec's
   * limit is still a programming error (thrown, as it would be on an open connection); anything else is
   * dropped and counted.
   */
  #drop(payloadLength: number): false {
    const { maxFrameLength } = this.#owner.settings.codec;
    if (payloadLength > maxFrameLength) throw frameTooLarge(payloadLength, maxFrameLength);
    this.#framesDropped++;
    this.#owner.frameDropped(this);
    return false;
  }

  /**
   * Closes gracefully: reads no more input, lets frames already received be answered (pending
   * handler promises included), flushes, then ends the socket. Destroys it if that takes longer than
   * the server's `shutdownTimeout`. Idempotent.
   */
  close(): void {
    this.#lifecycle?.beginClose('close');
  }

  /**
   * Closes at once, dropping pending output. With an `error`, the `disconnect` event carries it.
   * Idempotent.
   */
  destroy(error?: Error): void {
    this.#lifecycle?.terminate(error ? 'error' : 'destroy', error);
  }

  /** How errors and logs name this connection: `host:port (connection id)`; `host:port` alone for a client turned away at accept. */
  toString(): string {
    return this.id === 0 ? this.remote : `${this.remote} (connection ${this.id})`;
  }

  /** This connection's figures at `now` (epoch ms). */
  snapshot(now = Date.now()): ConnectionSnapshot {
    return snapshotOf(this, this.#input?.lastSeen ?? this.connectedAt, now);
  }

  /** @internal True once every byte sent was handed to the kernel and our FIN queued. */
  get [kFlushed](): boolean {
    return this.socket.writableFinished;
  }

  /** @internal Counts the bytes held now, for the owner's budget (see {@link bufferedBytes}). */
  [kRecount](): number {
    return this.#output!.recount();
  }

  /** @internal Attaches the socket handlers and starts reading. */
  [kStart](): void {
    this.#lifecycle!.start();
  }

  /** @internal Handles bytes read before the connection started (those after a PROXY header). */
  [kFeed](chunk: Buffer): void {
    if (chunk.length > 0) this.#lifecycle!.received(chunk);
  }

  /** @internal Turns the client away without starting it (e.g. `maxConnections`). */
  [kRefuse](): void {
    this.#lifecycle?.refused(); // never served: nobody to tell
    this.socket.on('error', ignoreError);
    this.socket.destroy();
  }

  /** @internal Graceful close on server shutdown. */
  [kShutdown](): void {
    this.#lifecycle!.beginClose('shutdown');
  }

  /** @internal Reports a client error, then closes gracefully (answering what was read); the disconnect carries it. */
  [kCloseForError](error: PulsarError): void {
    this.#lifecycle!.closeForError(error);
  }

  /** @internal Reports a client error and destroys the connection (a stream that cannot be decoded, a slow consumer…). */
  [kFail](error: PulsarError): void {
    this.#lifecycle!.fail(error);
  }

  /** @internal A dispatch or a handler promise finished: a connection that is closing may end now. */
  [kAnswered](): void {
    this.#lifecycle!.answered();
  }

  /**
   * @internal Reading resumes after backpressure, or after the rate (`rate`: the frames read and held back
   * are dispatched first). The frame clock stood still meanwhile: the client gets a whole frameTimeout again.
   */
  [kResumed](rate = false): void {
    this.#input!.restartFrameClock();
    if (rate) this.#input!.resumeAfterRate();
    if (this.state === 'open' && !this.#output!.paused && !this.#heldBack()) this.socket.resume();
  }
}
