import diagnosticsChannel from 'node:diagnostics_channel';
import type { Connection, DisconnectReason } from './connection.js';
import type { PulsarError } from './errors.js';
import type { PulsarServer } from './server.js';

/** Published on `pulsar:connection` when a server accepts a client. */
export interface ConnectionMessage {
  readonly server: PulsarServer;
  readonly connection: Connection;
}

/** Published on `pulsar:refused` when a client is turned away before it is served (`maxConnections`, a bad PROXY header, a failed TLS handshake…). */
export interface RefusedMessage {
  readonly server: PulsarServer;
  readonly connection: Connection;
  /** Why, with its code (`ERR_MAX_CONNECTIONS`, `ERR_PROXY_PROTOCOL`…). */
  readonly error: PulsarError;
}

/** Published on `pulsar:disconnect` when a served client goes away. */
export interface DisconnectMessage {
  readonly server: PulsarServer;
  readonly connection: Connection;
  readonly reason: DisconnectReason;
  /** Set when the connection ended in a failure. */
  readonly error: Error | undefined;
}

/** Published on `pulsar:client-error` for every `clientError` event, refusals included. */
export interface ClientErrorMessage {
  readonly server: PulsarServer;
  readonly connection: Connection;
  readonly error: PulsarError;
}

/** Published on `pulsar:backpressure` when reading from a connection pauses (`paused: true`) or resumes. */
export interface BackpressureMessage {
  readonly server: PulsarServer;
  readonly connection: Connection;
  readonly paused: boolean;
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
  connection: diagnosticsChannel.channel('pulsar:connection'),
  refused: diagnosticsChannel.channel('pulsar:refused'),
  disconnect: diagnosticsChannel.channel('pulsar:disconnect'),
  clientError: diagnosticsChannel.channel('pulsar:client-error'),
  backpressure: diagnosticsChannel.channel('pulsar:backpressure'),
} as const;
