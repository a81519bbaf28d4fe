/**
 * Every error pulsar raises carries a stable `code`, listed in the README. The codes are the API:
 * match on `err.code`, not on messages.
 */
export type PulsarErrorCode =
  /** A frame header announced more than the codec's `maxFrameLength`, or `send()` was given more. */
  | 'ERR_FRAME_TOO_LARGE'
  /** The peer closed its side in the middle of a frame. */
  | 'ERR_TRUNCATED_FRAME'
  /** Bytes that break the codec's format: a negative adjusted length, a varint too long, a payload the format cannot carry. */
  | 'ERR_MALFORMED_FRAME'
  /** The peer sent nothing for the heartbeat policy's idle timeout. */
  | 'ERR_IDLE_TIMEOUT'
  /** A connection arrived while `maxConnections` were already open, or `maxConnectionsPerAddress` from its address. */
  | 'ERR_MAX_CONNECTIONS'
  /** A client's address is outside the `allow` rules or inside the `deny` rules. */
  | 'ERR_ADDRESS_DENIED'
  /** The `admit` hook refused a connection, threw, rejected, or did not answer within `admitTimeout`. */
  | 'ERR_REFUSED'
  /** The `handler` threw or its promise rejected; `cause` holds what it threw. */
  | 'ERR_HANDLER'
  /** A frame that `messages` cannot decode, or an `rpc` frame whose envelope is broken. */
  | 'ERR_MALFORMED_MESSAGE'
  /** A message the `schema` refused; the error carries the validator's issues. */
  | 'ERR_INVALID_MESSAGE'
  /** The connection failed at the socket level (reset by the peer, broken pipe…); `cause` holds Node's error and its code. */
  | 'ERR_CONNECTION_LOST'
  /** A custom codec's decoder threw something other than a `DecodingError`; `cause` holds it. */
  | 'ERR_CODEC'
  /** `proxyProtocol` is on and a connection did not start with a valid PROXY header, it was too long, or it came from outside `trustedProxies`. */
  | 'ERR_PROXY_PROTOCOL'
  /** `proxyProtocol` is on and a connection did not send its whole PROXY header in time. */
  | 'ERR_PROXY_TIMEOUT'
  /** The server uses TLS and a client's handshake failed (bad certificate, plain TCP, timeout…); `cause` holds Node's error. */
  | 'ERR_TLS_HANDSHAKE'
  /** A rolling `reload()` of a cluster stopped: a replacement worker exited or did not listen in time; the workers not yet replaced go on serving. */
  | 'ERR_RELOAD_FAILED'
  /** `reload()` could not make a certificate of the new TLS options (a file missing, a key that does not match): the one in use stays. */
  | 'ERR_TLS_RELOAD'
  /**
   * The connection is gone: `PulsarClient#send()` or `request()` while not connected, a request pending
   * when the connection was lost, a client that gave up reconnecting. (A server connection's `send()`
   * after its close does not throw: the frame is dropped and counted.)
   */
  | 'ERR_CONNECTION_CLOSED'
  /** `send()` was given something other than a string or a `Uint8Array`. */
  | 'ERR_INVALID_PAYLOAD'
  /** The connection was still open when the close or shutdown timeout expired, and was destroyed. */
  | 'ERR_CLOSE_TIMEOUT'
  /** The server's buffers passed `maxBufferedBytes`, and this connection, among those holding the most, was evicted. */
  | 'ERR_MEMORY_LIMIT'
  /** A frame begun was not complete within `frameTimeout`. */
  | 'ERR_FRAME_TIMEOUT'
  /** The connection's pending output passed `maxPendingOutput`, or made no progress for `writeTimeout`. */
  | 'ERR_SLOW_CONSUMER'
  /** A connection over its `rateLimit` (with `onRateLimit: 'close'`), or a new connection over its address's `connectionRate`. */
  | 'ERR_RATE_LIMITED'
  /** A custom `Registry` threw or rejected (or its store failed: `start`, a write, a snapshot). */
  | 'ERR_REGISTRY'
  /** `sendTo()` named a connection or an instance that is not there. */
  | 'ERR_NO_SUCH_CONNECTION'
  /** Cross-instance delivery failed: the store (Redis) could not be reached; local traffic is not affected. */
  | 'ERR_RELAY'
  /** An optional integration's package is not installed (`ioredis` for `RedisRegistry`). */
  | 'ERR_MISSING_DEPENDENCY'
  /**
   * A method called in a state that does not allow it: `listen()` on a server already listening or
   * closed (or closed before it listened), `PulsarCluster` outside the primary or started twice,
   * `serveWorker()` outside a worker, a worker that exited before it listened.
   */
  | 'ERR_SERVER_STATE'
  /** An option given to a constructor is of the wrong type or out of range. */
  | 'ERR_INVALID_OPTION'
  /** `PulsarClient.connect()` did not connect within `connectTimeout`. */
  | 'ERR_CONNECT_TIMEOUT'
  /** A `request()` got no reply within its timeout (a cancel told the other side). */
  | 'ERR_REQUEST_TIMEOUT'
  /** A `request()` was given up through its `AbortSignal` (a cancel told the other side); and a handler's `ctx.signal` aborted by a cancel. */
  | 'ERR_ABORTED'
  /** The other side answered a request with an error reply: a {@link RemoteError}, with its `remoteCode` and `remoteMessage`. */
  | 'ERR_REMOTE'
  /** A request came while `maxInflightRequests` were being answered on its connection (sent as an error reply's code). */
  | 'ERR_TOO_MANY_REQUESTS'
  /**
   * The other side sent a request whose id is already in flight on that connection: a protocol error
   * (HTTP/2's reused stream id). The request never runs, and the connection closes.
   */
  | 'ERR_DUPLICATE_REQUEST'
  /** Accepting a connection failed (`EMFILE`, `ENFILE`: out of descriptors); the server backs off and tries again. */
  | 'ERR_ACCEPT'
  /** A `frame` or `message` listener of the client threw (the error as `cause`); the connection goes on. */
  | 'ERR_LISTENER'
  /** `conn.request()` on a server without `rpc: true` (requests need the envelope's ids). */
  | 'ERR_RPC_DISABLED'
  /** Something other than the hello came before the hello was accepted (the connection closes). */
  | 'ERR_HELLO_REQUIRED'
  /** No hello within the server's `hello.timeout` (the connection closes). */
  | 'ERR_HELLO_TIMEOUT'
  /** A second hello on one connection. */
  | 'ERR_HELLO_REPEATED'
  /** A name the contract has no entry of that kind for, or no route handles. */
  | 'ERR_UNKNOWN_ROUTE'
  /** A stream call met a handler that answers once, a request or a one-way message one that streams. */
  | 'ERR_STREAM_MISMATCH'
  /** The other side sent a stream item past the credit it was granted (the connection ends). */
  | 'ERR_FLOW_CONTROL'
  /** The server sent nothing, heartbeats included, for the client's `silenceTimeout`. */
  | 'ERR_SERVER_SILENT'
  /** `connect()` on a client that is connected, connecting or closed. */
  | 'ERR_CLIENT_STATE';

const kPulsarError = Symbol.for('pulsar.error');

/** Options of {@link PulsarError}. */
export interface PulsarErrorOptions extends ErrorOptions {
  /** See {@link PulsarError.option}. */
  option?: string;
  /** See {@link PulsarError.reason}. */
  reason?: string;
}

/**
 * Base class of pulsar's errors. `instanceof` works across the ESM and CommonJS builds (they hold two
 * copies of this class) because it checks a global symbol brand, not the prototype chain.
 */
export class PulsarError extends Error {
  /** Stable, documented error code. */
  readonly code: PulsarErrorCode;
  /**
   * With `ERR_INVALID_OPTION`: the option at fault, as the constructor names it (`port`,
   * `proxyProtocol.timeout`, `maxFrameLength`), so that a CLI can name its own flag instead.
   */
  readonly option?: string;
  /** With `ERR_INVALID_OPTION`: what is wrong with it, after its name (`must be an integer from 0 to 65535, got 70000 (number)`). */
  readonly reason?: string;

  /**
   * @param code stable error code
   * @param message what happened, and to whom
   * @param options standard `ErrorOptions` (`cause`), and for `ERR_INVALID_OPTION` the `option` and the `reason`
   */
  constructor(code: PulsarErrorCode, message: string, options?: PulsarErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
    if (options?.option !== undefined) this.option = options.option;
    if (options?.reason !== undefined) this.reason = options.reason;
  }

  /** @internal brand shared by both builds. */
  get [kPulsarError](): true {
    return true;
  }

  /** Brand-based check, so errors from the other build's class copy still match. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    if (typeof value !== 'object' || value === null) return false;
    if (this === PulsarError) return (value as Record<symbol, unknown>)[kPulsarError] === true;
    return Function.prototype[Symbol.hasInstance].call(this, value) || isNamedPulsarError(value, this.name);
  }
}

function isNamedPulsarError(value: object, name: string): boolean {
  return (value as Record<symbol, unknown>)[kPulsarError] === true && (value as Error).name === name;
}

/** Options of {@link DecodingError}. */
export interface DecodingErrorOptions extends ErrorOptions {
  /** The decoder skipped the offending frame and can go on (`onTooLong: 'discard'`). @default false */
  skipped?: boolean;
}

/**
 * A byte stream that cannot be split into frames (`ERR_FRAME_TOO_LARGE`, `ERR_TRUNCATED_FRAME`,
 * `ERR_MALFORMED_FRAME`).
 */
export class DecodingError extends PulsarError {
  /** True when the decoder skipped the offending frame and decoding goes on: the connection stays open. */
  readonly skipped: boolean;

  /**
   * @param code stable error code
   * @param message what happened
   * @param options `cause`, and `skipped`
   */
  constructor(code: PulsarErrorCode, message: string, options: DecodingErrorOptions = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause });
    this.skipped = options.skipped ?? false;
  }
}

/**
 * `error` again, its message starting with the client it concerns: for errors raised by pieces that do
 * not know the client (decoders, heartbeat policies). Keeps the class (`DecodingError` or `PulsarError`),
 * the code and the cause.
 */
export function aboutClient(error: PulsarError, client: string): PulsarError {
  const message = `${client}: ${error.message}`;
  const cause = error.cause === undefined ? {} : { cause: error.cause };
  if (error instanceof DecodingError) return new DecodingError(error.code, message, { ...cause, skipped: error.skipped });
  return new PulsarError(error.code, message, cause);
}

/**
 * The other side answered a request with an error reply (`code` `ERR_REMOTE`): what it said is in
 * {@link remoteCode} (`ERR_HANDLER`, `ERR_INVALID_MESSAGE`, `ERR_TOO_MANY_REQUESTS`, or the code its
 * handler's error carried) and {@link remoteMessage}. Never a stack: the other side sends none.
 */
export class RemoteError extends PulsarError {
  /** The error reply's code. */
  readonly remoteCode: string;
  /** The error reply's message. */
  readonly remoteMessage: string;

  /**
   * @param remoteCode the error reply's code
   * @param remoteMessage the error reply's message
   * @param request which request, to whom (`request 7 to 127.0.0.1:8080`)
   */
  constructor(remoteCode: string, remoteMessage: string, request: string) {
    super('ERR_REMOTE', `${request} failed there: ${remoteCode}: ${remoteMessage}`);
    this.remoteCode = remoteCode;
    this.remoteMessage = remoteMessage;
  }
}
