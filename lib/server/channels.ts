import diagnosticsChannel from 'node:diagnostics_channel';
import type { Connection } from '../connection/connection.js';
import type { DisconnectReason } from '../connection/owner.js';
import type { PulsarError } from '../errors.js';
import type { DisconnectError, ServerStats } from './types.js';

/**
 * The server a message comes from: a `PulsarServer`, seen through what an observer needs (typed
 * structurally, so that this module does not import the server's).
 */
export interface ObservedServer {
  /** Its id in a fleet. */
  readonly instanceId: string;
  /** Its live connections. */
  readonly connections: ReadonlyMap<number, Connection>;
  /** Its running totals. */
  stats(): ServerStats;
}

/** Published on `pulsar:connection` when a server accepts a client. */
export interface ConnectionMessage {
  /** The server it happened on. */
  readonly server: ObservedServer;
  /** The connection concerned. */
  readonly connection: Connection;
}

/** Published on `pulsar:refused` when a client is turned away before it is served (`maxConnections`, a bad PROXY header, a failed TLS handshake…). */
export interface RefusedMessage {
  /** The server it happened on. */
  readonly server: ObservedServer;
  /** The connection concerned. */
  readonly connection: Connection;
  /** Why, with its code (`ERR_MAX_CONNECTIONS`, `ERR_PROXY_PROTOCOL`…). */
  readonly error: PulsarError;
}

/** Published on `pulsar:disconnect` when a served client goes away. */
export interface DisconnectMessage {
  /** The server it happened on. */
  readonly server: ObservedServer;
  /** The connection concerned. */
  readonly connection: Connection;
  /** Why it ended. */
  readonly reason: DisconnectReason;
  /** Set when the connection ended in a failure. */
  readonly error: DisconnectError | undefined;
}

/** Published on `pulsar:client-error` for every `clientError` event, refusals included. */
export interface ClientErrorMessage {
  /** The server it happened on. */
  readonly server: ObservedServer;
  /** The connection concerned. */
  readonly connection: Connection;
  /** The error, with its code. */
  readonly error: PulsarError;
}

/** Published on `pulsar:backpressure` when reading from a connection pauses (`paused: true`) or resumes. */
export interface BackpressureMessage {
  /** The server it happened on. */
  readonly server: ObservedServer;
  /** The connection concerned. */
  readonly connection: Connection;
  /** `true`: reading paused; `false`: resumed. */
  readonly paused: boolean;
}

/** Published on `pulsar:rate-limited` when a connection runs into a rate limit (see `rateLimit`, `connectionRate`). */
export interface RateLimitedMessage {
  /** The server it happened on. */
  readonly server: ObservedServer;
  /** The connection concerned (refused, with `connections`). */
  readonly connection: Connection;
  /** The limit: `frames` or `bytes` of `rateLimit`, or `connections` of `connectionRate`. */
  readonly kind: 'frames' | 'bytes' | 'connections';
  /** What was done: reading held back (`pause`), the connection closed (`close`), or refused at accept (`refuse`). */
  readonly action: 'pause' | 'close' | 'refuse';
}

/**
 * pulsar's `node:diagnostics_channel` channels, one seam for metrics, tracing and application code, as
 * undici publishes its own. Messages are built only when a channel has subscribers, so an unobserved
 * server pays one boolean check per event; nothing is published per frame.
 *
 * @example
 * ```ts
 * import diagnosticsChannel from 'node:diagnostics_channel';
 * diagnosticsChannel.subscribe('pulsar:disconnect', (message) => {
 *   const { connection, reason } = message as DisconnectMessage;
 *   console.log(`${connection} left: ${reason}`);
 * });
 * ```
 */
export const channels = {
  /** `pulsar:connection`: a client was accepted and served ({@link ConnectionMessage}). */
  connection: diagnosticsChannel.channel('pulsar:connection'),
  /** `pulsar:refused`: a client was turned away ({@link RefusedMessage}). */
  refused: diagnosticsChannel.channel('pulsar:refused'),
  /** `pulsar:disconnect`: a served client went away ({@link DisconnectMessage}). */
  disconnect: diagnosticsChannel.channel('pulsar:disconnect'),
  /** `pulsar:client-error`: every `clientError` ({@link ClientErrorMessage}). */
  clientError: diagnosticsChannel.channel('pulsar:client-error'),
  /** `pulsar:backpressure`: reading paused or resumed ({@link BackpressureMessage}). */
  backpressure: diagnosticsChannel.channel('pulsar:backpressure'),
  /** `pulsar:rate-limited`: a connection ran into a rate limit ({@link RateLimitedMessage}). */
  rateLimited: diagnosticsChannel.channel('pulsar:rate-limited'),
} as const;
