import type { ContractCaller } from '../contract/router.js';
import type { FrameCodec } from '../codecs/types.js';
import type { PulsarError } from '../errors.js';
import type { MessageContext, MessageSettings } from '../messages/settings.js';
import type { RateLimitAction, RateLimitKind, RateLimitOptions } from '../rate/read-limiter.js';
import type { Connection } from './connection.js';

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

/**
 * What every connection of a server is set to: resolved once per server, shared by its connections.
 */
export interface ConnectionSettings {
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
  /** How fast the connection may send, or `null` for no limit. */
  readonly rateLimit: RateLimitOptions | null;
  /** What happens when it sends faster. */
  readonly onRateLimit: RateLimitAction;
  /** The message layer (`messages`, `rpc`), or `null` when the connection carries frames. */
  readonly messages: MessageSettings | null;
  /**
   * The application's handler: of frames (a returned promise delays a graceful close until it settles), or
   * with `messages` of messages and requests (what it returns answers a request).
   */
  handler(input: unknown, conn: Connection, ctx?: MessageContext): unknown;
  /** True when the handler is the default echo of frames: received frames may then be echoed in bulk. */
  readonly echoes: boolean;
  /** Aborts when the server stops serving: handlers' `ctx.closing`. */
  readonly closing: AbortSignal;
  /** What `conn.call()` and `conn.emit()` send, checked against the contract; `null` without one. */
  readonly caller: ContractCaller | null;
}

/**
 * What a connection needs from the server that owns it: its settings, and the events it reports (the
 * server builds it; not a public extension point).
 */
export interface ConnectionOwner {
  readonly settings: ConnectionSettings;
  /**
   * The `frame` listeners as one function, or `null` when there are none (asked once per read chunk):
   * frames are then handled (or echoed in bulk) without it.
   */
  frameListener(): ((frame: Buffer, conn: Connection) => void) | null;
  /** Reports a problem with this connection. */
  clientError(error: PulsarError, conn: Connection): void;
  /** The connection ran into its rate limit: reading held back (`pause`), or closing (`close`). */
  rateLimited(conn: Connection, kind: RateLimitKind, action: RateLimitAction): void;
  /** Reading paused (`true`) or resumed (`false`) for backpressure. */
  flowChanged(conn: Connection, paused: boolean): void;
  /** The bytes the connection holds grew (or shrank) by `delta`; called once per read chunk or write at most. */
  heldChanged(delta: number): void;
  /** A frame offered to the connection after its writing side closed was dropped (see {@link Connection.send}). */
  frameDropped(conn: Connection): void;
  /** A reply came after its request (sent by `conn.request()`) gave up, and was dropped. */
  lateReply(conn: Connection): void;
  /**
   * The connection can no longer be written (our FIN sent, destroyed, or lost); called once, before
   * {@link closed}, so that it leaves the server's live connections and its groups at once.
   */
  unwritable(conn: Connection): void;
  /** The socket is closed; called once. */
  closed(conn: Connection, reason: DisconnectReason, error: Error | undefined): void;
}

// The server's own handles on a connection. Symbols, not methods, so that applications cannot call them
// (as ws keeps kWebSocket and its like): the library's modules import them, `pulsar` does not export them.
/**
 * @internal What the library passes to the constructors of `Connection` and `ConnectionGroup`: without it
 * they throw, so that applications get theirs from the server, wired to it.
 */
export const kCreate: unique symbol = Symbol('pulsar.create');
/** @internal Queues frames already encoded for every member of a group (relayed broadcasts arrive so). */
export const kDeliver = Symbol('pulsar.deliver');
/** @internal Attaches the socket handlers and starts reading. */
export const kStart = Symbol('pulsar.start');
/** @internal Handles bytes read before the connection started (those after a PROXY header). */
export const kFeed = Symbol('pulsar.feed');
/** @internal Turns the client away without starting it. */
export const kRefuse = Symbol('pulsar.refuse');
/** @internal Graceful close on server shutdown. */
export const kShutdown = Symbol('pulsar.shutdown');
/** @internal Sends one frame already encoded (a heartbeat, a group broadcast), leaving at the end of the tick. */
export const kSendEncoded = Symbol('pulsar.sendEncoded');
/** @internal Counts the bytes held now, for the memory budget. */
export const kRecount = Symbol('pulsar.recount');
/** @internal True once every byte sent was handed to the kernel and our FIN queued. */
export const kFlushed = Symbol('pulsar.flushed');
/** @internal Sends one frame's payload as it is, a message already encoded (`sendTo`). */
export const kSendPayload = Symbol('pulsar.sendPayload');
/** @internal The connection's message session, made on first use. */
export const kSession = Symbol('pulsar.session');
/** @internal Reports a client error and destroys the connection. */
export const kFail = Symbol('pulsar.fail');
/** @internal A dispatch or a handler promise finished (a closing connection may end). */
export const kAnswered = Symbol('pulsar.answered');
/** @internal Reading resumed after backpressure or the rate. */
export const kResumed = Symbol('pulsar.resumed');
/** @internal Closes gracefully after a client error (answering what was read), the disconnect carrying it. */
export const kCloseForError = Symbol('pulsar.closeForError');
