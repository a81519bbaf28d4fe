import type { Socket } from 'node:net';
import createDebug from 'debug';
import { frameTooLarge, type FrameCodec, type FrameDecoder, type FrameRun } from './codecs/types.js';
import { aboutClient, DecodingError, PulsarError } from './errors.js';
import { hostPort, messageOf } from './format.js';
import type { HeartbeatPeer } from './heartbeat.js';
import type { ProxiedAddress, ProxyInfo } from './proxy.js';
import { OutboundBatch } from './outbound.js';
import { isPromiseLike } from './thenable.js';

const debug = createDebug('pulsar:lifecycle:connection');

/** One connection's figures at a point in time, as reported every `reportInterval`. */
export interface ConnectionSnapshot {
  /** Server-unique connection id. */
  id: number;
  /** Client IP address. */
  remoteAddress: string;
  /** Client port. */
  remotePort: number;
  /** Epoch ms when the connection was accepted. */
  connectedAt: number;
  /** Ms since the last inbound byte. */
  idleMs: number;
  /** Frames decoded from the client. */
  framesIn: number;
  /** Frames sent to the client (heartbeats included). */
  framesOut: number;
  /** Bytes received from the client. */
  bytesIn: number;
  /** Bytes sent to the client. */
  bytesOut: number;
  /** What the PROXY protocol header said besides the client's address; absent without a header. */
  proxy?: ProxySnapshot;
}

/** A PROXY header's details in a {@link ConnectionSnapshot}. */
export interface ProxySnapshot {
  /** `host:port` the client connected to (the proxy's frontend), `null` when the header has none. */
  destination: string | null;
  /** The v2 extensions: type, name when well known (see `ProxyTlv`), value in hex. */
  tlvs: Array<{
    /** The type byte. */
    type: number;
    /** Its name when well known. */
    name?: string;
    /** The value, in hex. */
    value: string;
  }>;
}

/**
 * A connection's lifecycle, in order:
 * - `open`: reading and answering;
 * - `closing`: reads stopped (close, shutdown or the peer's FIN); answering what was read: handlers still
 *   running, pending output flushing. `send()` still works;
 * - `lingering`: every answer handed over and our FIN sent; reading (and discarding) until the peer's FIN,
 *   so that the kernel does not reset answers the peer has not read yet. `send()` throws;
 * - `closed`: the socket is gone.
 * A close timeout (`shutdownTimeout`) during `closing` or `lingering` destroys it (counted as forced).
 */
export type ConnectionState = 'open' | 'closing' | 'lingering' | 'closed';

/**
 * Why a connection ended: `end` the peer closed its side; `close` the application called `close()`;
 * `shutdown` the server closed; `destroy` the application called `destroy()`; `error` a client error
 * (bad frame, reset, idle timeout…); `timeout` a graceful close that did not finish in time.
 */
export type DisconnectReason = 'end' | 'close' | 'shutdown' | 'destroy' | 'error' | 'timeout';

/** What a connection needs from the server that owns it (the server builds it; not a public extension point). */
export interface ConnectionOwner {
  /** The server's instance id, the first part of {@link Connection.globalId}. */
  readonly instanceId: string;
  /** Encodes what the connection sends and makes its decoder. */
  readonly codec: FrameCodec;
  /** Pending output, in bytes, above which reading pauses until the socket drains. */
  readonly highWaterMark: number;
  /** Longest a graceful close may take before the socket is destroyed. */
  readonly closeTimeout: number;
  /** Pending output, in bytes, past which the connection is closed as a slow consumer; `0`: no limit. */
  readonly maxPendingOutput: number;
  /**
   * Whether frames may be echoed in bulk, exactly as they arrived, skipping the frame handler: true when the
   * handler is the default echo and nobody listens to the frames.
   */
  echoInBulk(): boolean;
  /**
   * What handles inbound frames now (asked once per read chunk, not per frame): a returned promise
   * delays a graceful close until it settles.
   */
  frameHandler(): (frame: Buffer, conn: Connection) => unknown;
  /** Reports a problem with this connection. */
  onClientError(error: PulsarError, conn: Connection): void;
  /** Reading paused (`true`) or resumed (`false`) for backpressure. */
  onFlowChange(conn: Connection, paused: boolean): void;
  /** The bytes the connection holds grew (or shrank) by `delta`; called once per read chunk or write at most. */
  onHeldChange(delta: number): void;
  /** A frame offered to the connection after its writing side closed was dropped (see {@link Connection.send}). */
  onFrameDropped(conn: Connection): void;
  /**
   * The connection can no longer be written (our FIN sent, destroyed, or lost); called once, before
   * {@link onClose}, so that it leaves the server's live connections and its groups at once.
   */
  onUnwritable(conn: Connection): void;
  /** The socket is closed; called once. */
  onClose(conn: Connection, reason: DisconnectReason, error: Error | undefined): void;
}

const kConnection = Symbol('pulsar.connection');

// The server's own handles on a connection. Symbols, not methods, so that applications cannot call them
// (as ws keeps kWebSocket and its like): the library's modules import them, `pulsar` does not export them.
/** @internal Attaches the socket handlers and starts reading. */
export const kStart = Symbol('pulsar.start');
/** @internal Handles bytes read before the connection started (those after a PROXY header). */
export const kFeed = Symbol('pulsar.feed');
/** @internal Turns the client away without starting it. */
export const kRefuse = Symbol('pulsar.refuse');
/** @internal Graceful close on server shutdown. */
export const kShutdown = Symbol('pulsar.shutdown');
/** @internal Sends one frame already encoded (the heartbeat). */
export const kSendEncoded = Symbol('pulsar.sendEncoded');
/** @internal Queues one frame already encoded (a group broadcast) for the end of the job. */
export const kQueueEncoded = Symbol('pulsar.queueEncoded');
/** @internal Counts the bytes held now, for the memory budget. */
export const kRecount = Symbol('pulsar.recount');
/** @internal True once every byte sent was handed to the kernel and our FIN queued. */
export const kFlushed = Symbol('pulsar.flushed');
type OwnedSocket = Socket & { [kConnection]: Connection };

function ignoreError(): void {}

/** The parts of a socket's internals that show write progress (see kernelTakenBytes). */
interface SocketWriteInternals {
  _bytesDispatched?: number;
  _handle?: { writeQueueSize?: number } | null;
}

/**
 * Bytes the kernel has accepted: dispatched to libuv minus what libuv still queues. `writableLength`
 * alone cannot show this, as it only drops when a whole write request completes, and one request
 * can hold megabytes. These fields are internal to Node (stable since v8, used by its own TLS and
 * HTTP/2 code); `undefined` if they ever disappear, and callers fall back to `writableLength`.
 */
function kernelTakenBytes(socket: Socket): number | undefined {
  const internals = socket as unknown as SocketWriteInternals;
  const queued = internals._handle?.writeQueueSize;
  const dispatched = internals._bytesDispatched;
  return typeof queued === 'number' && typeof dispatched === 'number' ? dispatched - queued : undefined;
}

/** The PROXY header's details as plain data (logs, reports): addresses as text, TLV values in hex. */
function proxySnapshot({ destination, tlvs }: ProxyInfo): ProxySnapshot {
  return {
    destination: destination === null ? null : hostPort(destination.address, destination.port),
    tlvs: tlvs.map(({ type, name, value }) => ({ type, ...(name === undefined ? {} : { name }), value: value.toString('hex') })),
  };
}

/** A payload `send()` can write: a `Uint8Array` (a `Buffer` among them); anything else is a programming error. */
function checkPayload(payload: unknown): Uint8Array {
  if (payload instanceof Uint8Array) return payload;
  const type = payload === null ? 'null' : typeof payload;
  throw new PulsarError('ERR_INVALID_PAYLOAD', `send() takes a string or a Uint8Array, got ${type}`);
}

/** Where a socket is connected from, as the socket itself says. */
export function peerOf(socket: Socket): ProxiedAddress {
  return { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, family: socket.remoteFamily === 'IPv6' ? 'IPv6' : 'IPv4' };
}

/**
 * One accepted client. Created by {@link PulsarServer}; handed to handlers and events.
 *
 * Frames given to handlers are views into the received bytes, not copies. They stay valid, but share
 * their read chunk with its other frames and keep all of it in memory: copy one (`Buffer.from(frame)`)
 * to modify it or to hold it for long.
 */
export class Connection implements HeartbeatPeer {
  /** Server-unique id, counting from 1. */
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
  readonly #decoder: FrameDecoder;
  readonly #outbound: OutboundBatch;
  #state: ConnectionState = 'open';
  #reason: DisconnectReason | undefined;
  #error: Error | undefined;
  #lastSeen: number;
  #framesIn = 0;
  #framesOut = 0;
  #framesDropped = 0;
  /** True once the owner was told the connection can no longer be written (see #leave). */
  #left = false;
  #bytesIn = 0;
  #bytesOut = 0;
  /** Handler promises not yet settled: the connection ends only after they have. */
  #inflight = 0;
  /** True while a chunk's frames are being dispatched (close() must not end the socket mid-chunk). */
  #dispatching = false;
  /** A flush of queued broadcasts is scheduled for the end of the current job (see queueEncoded). */
  #flushQueued = false;
  #flushQueuedOutput: (() => void) | undefined;
  /** Room left under the socket's high-water mark when the chunk's dispatch began (no write happens during it). */
  #roomAtDispatch = 0;
  #paused = false;
  /** Bytes held as last reported to the owner's budget. */
  #accounted = 0;
  /** Epoch ms of the first byte of the frame being assembled; 0 when none is. */
  #frameStartedAt = 0;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #onHandlerSettled: (() => void) | undefined;
  #onHandlerRejected: ((error: unknown) => void) | undefined;

  /**
   * @internal Created by the server for each accepted socket; not meant to be constructed by applications.
   * `source` is the client a PROXY protocol header named, and `proxy` the rest of what it said, when there was one.
   */
  constructor(id: number, socket: Socket, owner: ConnectionOwner, source: ProxiedAddress | null = null, proxy: ProxyInfo | null = null) {
    this.id = id;
    this.socket = socket;
    this.proxy = proxy;
    const peer = source ?? peerOf(socket);
    this.remoteAddress = peer.address;
    this.remotePort = peer.port;
    this.remote = peer.address === '' ? 'unix' : hostPort(peer.address, peer.port);
    this.connectedAt = Date.now();
    this.#lastSeen = this.connectedAt;
    this.#owner = owner;
    this.#decoder = owner.codec.createDecoder();
    this.#outbound = new OutboundBatch(owner.codec);
  }

  /** Unique across the instances of a fleet: `instanceId/id`. `server.sendTo()` reaches it from any of them. */
  get globalId(): string {
    return `${this.#owner.instanceId}/${this.id}`;
  }

  /** Lifecycle state; see {@link ConnectionState}. */
  get state(): ConnectionState {
    return this.#state;
  }
  /** Epoch ms of the last inbound byte (the connect time until the first). */
  get lastSeen(): number {
    return this.#lastSeen;
  }
  /** Frames decoded from the client. */
  get framesIn(): number {
    return this.#framesIn;
  }
  /** Frames sent to the client, heartbeats included. */
  get framesOut(): number {
    return this.#framesOut;
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
    return this.#bytesIn;
  }
  /** Bytes sent to the client (frames as encoded on the wire). */
  get bytesOut(): number {
    return this.#bytesOut;
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
    if (this.#state === 'closed') return 0;
    return this.#decoder.bufferedBytes + this.socket.writableLength + this.#outbound.bytes;
  }
  /**
   * Epoch ms when the frame being assembled got its first byte; `0` when none is, and while reading is
   * paused or stopped (the client cannot finish a frame the server does not read).
   */
  get frameStartedAt(): number {
    return this.#state === 'open' && !this.#paused ? this.#frameStartedAt : 0;
  }
  /** Output the kernel has taken so far; it advances as a slow reader drains, even inside one large write. */
  get flushedBytes(): number {
    return kernelTakenBytes(this.socket) ?? this.#bytesOut - this.socket.writableLength;
  }
  /** True while reading is paused because pending output passed the server's `highWaterMark`. */
  get paused(): boolean {
    return this.#paused;
  }

  /**
   * Encodes `payload` with the server's codec and writes it. Sent from a handler, it leaves with the
   * other answers to the same read in one write, once the handler returns. Like `socket.write()`, it
   * may keep a reference to a large payload until it is written: do not modify it afterwards.
   *
   * Sending to a connection that can no longer be written (closed, destroyed, lost, or lingering after
   * our FIN) is not an error, as with `ws` and `net.Socket#write`: nothing is written, the frame is
   * counted in {@link framesDropped}, and `false` is returned. A broadcast loop over
   * `server.connections` therefore never stops at a connection closing under it.
   * @returns `false` when the socket is backpressured (its buffer is full: wait for the server's
   * `drain` event or the socket's before sending much more), or when the frame was dropped
   * @throws {PulsarError} only for programming errors: `ERR_FRAME_TOO_LARGE` for a payload over the
   * codec's limit, `ERR_INVALID_PAYLOAD` for one that is neither a string nor a `Uint8Array`
   */
  send(payload: Uint8Array | string): boolean {
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : checkPayload(payload);
    if (!this.writable) return this.#drop(bytes.length);
    return this.#sent(this.#outbound.add(bytes));
  }

  /** @internal Sends one frame already encoded with the server's codec (the heartbeat, encoded once for all). */
  [kSendEncoded](wire: Buffer): boolean {
    if (!this.writable) return this.#drop(0);
    this.#outbound.addEncoded(wire);
    return this.#sent(wire.length);
  }

  /**
   * @internal Queues one frame already encoded (a group broadcast) to leave with whatever else is sent
   * before the current job ends: a burst of broadcasts reaches each member in one write, not one each.
   * @returns `false` when the frame was dropped (the writing side is closed)
   */
  [kQueueEncoded](wire: Buffer): boolean {
    if (!this.writable) return this.#drop(0);
    this.#outbound.addEncoded(wire);
    this.#count(wire.length);
    if (this.#dispatching || this.#flushQueued) return true; // a chunk being dispatched flushes at its end
    this.#flushQueued = true;
    queueMicrotask((this.#flushQueuedOutput ??= () => {
      this.#flushQueued = false;
      this.#flushOrDrop();
    }));
    return true;
  }

  /** Whether {@link send} can still write: the writing side is not closed. */
  get writable(): boolean {
    return (this.#state === 'open' || this.#state === 'closing') && !this.socket.destroyed;
  }

  /**
   * The one rule for a frame offered to a connection that cannot be written: a payload over the codec's
   * limit is still a programming error (thrown, as it would be on an open connection); anything else is
   * dropped and counted.
   */
  #drop(payloadLength: number): false {
    const { maxFrameLength } = this.#owner.codec;
    if (payloadLength > maxFrameLength) throw frameTooLarge(payloadLength, maxFrameLength);
    this.#framesDropped++;
    this.#owner.onFrameDropped(this);
    return false;
  }

  /** Counts one frame gathered for sending. */
  #count(size: number): void {
    this.#framesOut++;
    this.#bytesOut += size;
  }

  /** Counts a frame just gathered; writes it unless a read chunk is being dispatched (it leaves with the rest). */
  #sent(size: number): boolean {
    this.#count(size);
    if (this.#dispatching) return this.#outbound.bytes < this.#roomAtDispatch;
    return this.#flush();
  }

  /**
   * Closes gracefully: reads no more input, lets frames already received be answered (pending
   * handler promises included), flushes, then ends the socket. Destroys it if that takes longer than
   * the server's `shutdownTimeout`. Idempotent.
   */
  close(): void {
    this.#beginClose('close');
  }

  /**
   * Closes at once, dropping pending output. With an `error`, the `disconnect` event carries it.
   * Idempotent.
   */
  destroy(error?: Error): void {
    this.#terminate(error ? 'error' : 'destroy', error);
  }

  /** How errors and logs name this connection: `host:port (connection id)`. */
  toString(): string {
    return `${this.remote} (connection ${this.id})`;
  }

  /** This connection's figures at `now` (epoch ms). */
  snapshot(now = Date.now()): ConnectionSnapshot {
    return {
      id: this.id,
      remoteAddress: this.remoteAddress,
      remotePort: this.remotePort,
      connectedAt: this.connectedAt,
      idleMs: Math.max(0, now - this.#lastSeen),
      framesIn: this.#framesIn,
      framesOut: this.#framesOut,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      ...(this.proxy === null ? {} : { proxy: proxySnapshot(this.proxy) }),
    };
  }

  /** @internal True once every byte sent was handed to the kernel and our FIN queued. */
  get [kFlushed](): boolean {
    return this.socket.writableFinished;
  }

  /** @internal Counts the bytes held now, for the owner's budget (see {@link bufferedBytes}). */
  [kRecount](): number {
    this.#accounted = this.bufferedBytes;
    return this.#accounted;
  }

  /** @internal Attaches the socket handlers and starts reading. */
  [kStart](): void {
    const socket = this.socket as OwnedSocket;
    socket[kConnection] = this;
    socket.on('data', Connection.#socketOnData);
    socket.on('end', Connection.#socketOnEnd);
    socket.on('drain', Connection.#socketOnDrain);
    socket.on('error', Connection.#socketOnError);
    socket.on('close', Connection.#socketOnClose);
  }

  /** @internal Handles bytes read before the connection started (those after a PROXY header). */
  [kFeed](chunk: Buffer): void {
    if (chunk.length > 0) this.#receive(chunk);
  }

  /** @internal Turns the client away without starting it (e.g. `maxConnections`). */
  [kRefuse](): void {
    this.#state = 'closed';
    this.#left = true; // never served: nothing to leave
    this.socket.on('error', ignoreError);
    this.socket.destroy();
  }

  /** @internal Graceful close on server shutdown. */
  [kShutdown](): void {
    this.#beginClose('shutdown');
  }

  static #socketOnData(this: OwnedSocket, chunk: Buffer): void {
    this[kConnection].#receive(chunk);
  }
  static #socketOnEnd(this: OwnedSocket): void {
    this[kConnection].#beginClose('end'); // answer what was received, then close our side too
  }
  static #socketOnDrain(this: OwnedSocket): void {
    const conn = this[kConnection];
    conn.#account();
    conn.#resumeIfPaused();
  }
  static #socketOnError(this: OwnedSocket, error: Error): void {
    const conn = this[kConnection];
    conn.#fail(new PulsarError('ERR_CONNECTION_LOST', `${conn}: connection lost: ${error.message}`, { cause: error }));
  }
  static #socketOnClose(this: OwnedSocket): void {
    this[kConnection].#closed();
  }
  /**
   * Destroys a connection whose close outlived the timeout. Even when every answer was handed to the
   * kernel, destroying a socket whose peer has not closed its side may reset it and lose answers the
   * peer has not read yet: it is reported, and counted as forced, never as drained.
   */
  static #onCloseTimeout(conn: Connection): void {
    const unsent = conn.socket.writableLength;
    const what = conn[kFlushed] ? 'the peer had not closed its side' : `${unsent} byte(s) of output were still pending`;
    conn.#fail(new PulsarError('ERR_CLOSE_TIMEOUT', `${conn}: did not finish closing in ${conn.#owner.closeTimeout} ms (${what})`), 'timeout');
  }

  #receive(chunk: Buffer): void {
    if (this.#state !== 'open') return; // after close() began: discarded, only read to see the peer's FIN
    const now = Date.now();
    this.#lastSeen = now;
    this.#bytesIn += chunk.length;
    const framesBefore = this.#framesIn;
    this.#decoder.push(chunk);
    this.#dispatchFrames();
    // A partial frame left over started in this chunk if a frame was completed in it, else earlier.
    if (this.#decoder.bufferedBytes === 0) this.#frameStartedAt = 0;
    else if (this.#frameStartedAt === 0 || this.#framesIn !== framesBefore) this.#frameStartedAt = now;
  }

  /** Hands every complete frame to the handler; the answers they send leave together, in one write. */
  #dispatchFrames(): void {
    const decoder = this.#decoder;
    const inBulk = decoder.nextRun !== undefined && this.#owner.echoInBulk();
    const handle = inBulk ? null : this.#owner.frameHandler();
    this.#dispatching = true;
    this.#roomAtDispatch = this.socket.writableHighWaterMark - this.socket.writableLength;
    try {
      while (this.#state !== 'closed') {
        const run = inBulk ? decoder.nextRun!() : null;
        if (run !== null) {
          this.#echoRun(run);
          continue;
        }
        const frame = this.#nextFrame();
        if (frame === null) break;
        this.#framesIn++;
        this.#dispatch(frame, handle ?? this.#owner.frameHandler());
      }
    } catch (error) {
      this.#fail(this.#decodingFailure(error));
    } finally {
      this.#dispatching = false;
    }
    this.#flushOrDrop();
    if (this.#state === 'closing') this.#endWhenAnswered();
  }

  /**
   * The decoder's next frame. A frame it skipped (`onTooLong: 'discard'`) is reported and decoding goes
   * on; any other error ends the connection (thrown to the caller).
   */
  #nextFrame(): Buffer | null {
    for (;;) {
      try {
        return this.#decoder.next();
      } catch (error) {
        if (!(error instanceof DecodingError && error.skipped)) throw error;
        this.#owner.onClientError(this.#decodingFailure(error), this);
      }
    }
  }

  /** Writes what was gathered, or drops it when the socket is already gone. */
  #flushOrDrop(): void {
    if (this.socket.destroyed) this.#outbound.clear();
    else this.#flush();
  }

  /**
   * Writes what {@link send} gathered; closes a slow consumer whose pending output passed its limit,
   * pauses reading if it passed the high-water mark, and reports the bytes now held.
   */
  #flush(): boolean {
    const accepted = this.#outbound.writeTo(this.socket);
    const pending = this.socket.writableLength;
    const limit = this.#owner.maxPendingOutput;
    if (limit > 0 && pending > limit) {
      this.#fail(new PulsarError('ERR_SLOW_CONSUMER', `${this}: slow consumer: ${pending} bytes of output pending, over maxPendingOutput (${limit} bytes)`));
      return false;
    }
    this.#pauseIfOverHighWaterMark();
    this.#account();
    return accepted;
  }

  /** Reports the change in bytes held since the last report to the owner's budget. */
  #account(): void {
    const held = this.bufferedBytes;
    const delta = held - this.#accounted;
    if (delta === 0) return;
    this.#accounted = held;
    this.#owner.onHeldChange(delta);
  }

  /** The default echo of whole frames as they arrived: one queued view for all of them. */
  #echoRun({ wire, frames }: FrameRun): void {
    this.#framesIn += frames;
    this.#framesOut += frames;
    this.#bytesOut += wire.length;
    this.#outbound.addEncoded(wire);
  }

  #dispatch(frame: Buffer, handle: (frame: Buffer, conn: Connection) => unknown): void {
    let result: unknown;
    try {
      result = handle(frame, this);
    } catch (error) {
      this.#handlerFailed(error);
      return;
    }
    if (!isPromiseLike(result)) return;
    this.#inflight++;
    // Created once per connection, and only for async handlers.
    this.#onHandlerSettled ??= () => {
      this.#inflight--;
      if (this.#state === 'closing') this.#endWhenAnswered();
    };
    this.#onHandlerRejected ??= (error: unknown) => {
      this.#handlerFailed(error);
      this.#onHandlerSettled!();
    };
    result.then(this.#onHandlerSettled, this.#onHandlerRejected);
  }

  #handlerFailed(error: unknown): void {
    this.#owner.onClientError(
      new PulsarError('ERR_HANDLER', `${this}: the handler failed on a frame: ${messageOf(error)}`, { cause: error }),
      this,
    );
  }

  #pauseIfOverHighWaterMark(): void {
    if (this.#paused || this.#state !== 'open' || this.socket.writableLength < this.#owner.highWaterMark) return;
    this.#paused = true;
    this.socket.pause();
    debug('%s paused reading: %d bytes pending', this.remote, this.socket.writableLength);
    this.#owner.onFlowChange(this, true);
  }

  #resumeIfPaused(): void {
    if (!this.#paused) return;
    this.#paused = false;
    // The frame clock stood still while the server did not read: the client gets a whole frameTimeout again.
    if (this.#frameStartedAt > 0) this.#frameStartedAt = Date.now();
    if (this.#state === 'open') this.socket.resume();
    debug('%s drained, reading resumed', this.remote);
    this.#owner.onFlowChange(this, false);
  }

  #beginClose(reason: DisconnectReason): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#reason = reason;
    this.socket.pause(); // read no more input
    this.#closeTimer = setTimeout(Connection.#onCloseTimeout, this.#owner.closeTimeout, this);
    debug('%s closing (%s)', this.remote, reason);
    this.#endWhenAnswered();
  }

  /** Ends our side once no frame is being dispatched and no handler promise is pending. */
  #endWhenAnswered(): void {
    if (this.#state !== 'closing' || this.#dispatching || this.#inflight > 0) return;
    this.#state = 'lingering';
    this.#leave();
    this.#reportPartialFrame();
    this.socket.end();
    // Keep reading (and discarding) until the peer's FIN, or the close timeout: closing the socket while
    // the peer may still send makes the kernel answer that data with a reset, and a reset destroys the
    // answers the peer has not read yet.
    this.socket.resume();
  }

  /**
   * Input has stopped (peer EOF, close or shutdown) and every complete frame was dispatched: a partial
   * frame left in the decoder will never be answered, so say so rather than drop it silently.
   */
  #reportPartialFrame(): void {
    try {
      this.#decoder.end();
    } catch (error) {
      this.#owner.onClientError(this.#decodingFailure(error), this);
    }
  }

  /** What the decoder threw, as reported: naming this client, with a code even from a faulty custom decoder. */
  #decodingFailure(error: unknown): PulsarError {
    if (error instanceof PulsarError) return aboutClient(error, String(this));
    return new PulsarError('ERR_CODEC', `${this}: the codec's decoder failed: ${messageOf(error)}`, { cause: error });
  }

  /** Reports a client error and destroys the connection. */
  #fail(error: PulsarError, reason: DisconnectReason = 'error'): void {
    if (this.#state === 'closed') {
      debug('%s late error after close: %s', this.remote, error.message);
      return;
    }
    this.#owner.onClientError(error, this);
    this.#terminate(reason, error);
  }

  #terminate(reason: DisconnectReason, error: Error | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#reason = reason;
    this.#error = error;
    this.socket.destroy();
    this.#leave();
    this.#account();
  }

  /** Tells the owner, once, that this connection can no longer be written (see ConnectionOwner.onUnwritable). */
  #leave(): void {
    if (this.#left) return;
    this.#left = true;
    this.#owner.onUnwritable(this);
  }

  #closed(): void {
    clearTimeout(this.#closeTimer);
    this.#state = 'closed';
    this.#leave();
    this.#account();
    debug('%s closed (%s)', this.remote, this.#reason ?? 'end');
    this.#owner.onClose(this, this.#reason ?? 'end', this.#error);
  }
}
