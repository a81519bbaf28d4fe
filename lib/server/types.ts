import type { ConnectionData } from '../connection/connection.js';
import type { Contract } from '../contract/contract.js';
import type { ContractConnection } from '../contract/typed.js';
import type { DisconnectReason } from '../connection/owner.js';
import type { PulsarError } from '../errors.js';
import type { Readiness } from './health.js';
import type { Report } from '../registry/driver.js';

/** Where the server listens, as `listen()` resolves and `listening` carries it. */
export interface ListenAddress {
  /** Bound IP address, e.g. `'127.0.0.1'` or `'::1'`; the socket file's path for a Unix socket. */
  address: string;
  /** Bound port (the real one when `port: 0` was asked); `0` for a Unix socket. */
  port: number;
  /** `'IPv4'`, `'IPv6'`, or `'unix'`. */
  family: string;
}

/** How a graceful close ended. */
export interface CloseResult {
  /**
   * Connections that closed cleanly before the timeout: every answer handed to the kernel, our FIN
   * sent, and the socket closed without an error.
   */
  drained: number;
  /**
   * Connections destroyed instead: at the shutdown timeout (whatever they had already flushed), by a
   * reset, or by an error during the shutdown.
   */
  forced: number;
}

/**
 * The server's running totals, for metrics: exact, and counted without any work per frame (live
 * connections' own counters are summed when asked, closed ones were added as they closed).
 */
export interface ServerStats {
  /** Connections open now. */
  connections: number;
  /** Connections accepted and served since the server started. */
  accepted: number;
  /** Frames received, over every connection ever served. */
  framesIn: number;
  /** Frames sent, heartbeats included. */
  framesOut: number;
  /** Bytes received, frame headers included. */
  bytesIn: number;
  /** Bytes sent, frame headers and heartbeats included. */
  bytesOut: number;
  /** Heartbeat frames sent. */
  heartbeats: number;
  /** Frames offered to connections that could no longer be written, and dropped (see `Connection.send`). */
  framesDropped: number;
  /** Bytes held for clients now (see {@link PulsarServer.bufferedBytes}). */
  bufferedBytes: number;
  /** Connections whose reading is paused for backpressure now. */
  paused: number;
  /** Times a connection ran into a rate limit: held back, closed, or refused at accept (see `rateLimit`, `connectionRate`). */
  rateLimited: number;
  /** Connections whose reading is held back for their rate now. */
  rateLimitedNow: number;
  /** Replies to `conn.request()` that came after their request gave up (timeout, abort): dropped, never handed to another. */
  lateReplies: number;
}

/**
 * Why a connection ended when it was a failure: a `PulsarError` with its `code` (`ERR_CONNECTION_LOST`,
 * `ERR_SLOW_CONSUMER`…), or the error given to `conn.destroy(error)`, whose `code`, if it has one, is kept.
 */
export type DisconnectError = Error & {
  /** pulsar's code (`ERR_…`), or the given error's own, if any. */
  readonly code?: string;
};

/** Events of {@link PulsarServer}, with their arguments. */
export interface PulsarServerEvents<D extends ConnectionData = ConnectionData, C extends Contract = Contract> {
  /** The server is accepting connections. */
  listening: [address: ListenAddress];
  /** A client's hello was accepted (`conn.data` filled by the hello's handler); `value` is what it said. */
  hello: [conn: ContractConnection<D, C>, value: unknown];
  /** A client connected. */
  connection: [conn: ContractConnection<D, C>];
  /** A frame arrived (emitted before the handler runs). */
  frame: [frame: Buffer, conn: ContractConnection<D, C>];
  /** A heartbeat frame was sent to a silent client. */
  heartbeat: [conn: ContractConnection<D, C>];
  /** The periodic registry report. */
  report: [report: Report];
  /** Reading from `conn` paused: its pending output passed `highWaterMark`. */
  backpressure: [conn: ContractConnection<D, C>];
  /** `conn`'s output drained and reading resumed. */
  drain: [conn: ContractConnection<D, C>];
  /** A client went away, and why; `error` is set when it was a failure. */
  disconnect: [conn: ContractConnection<D, C>, reason: DisconnectReason, error: DisconnectError | undefined];
  /** A problem with one client (bad frame, reset, timeout, handler failure); other clients are untouched. Match on `error.code`. */
  clientError: [error: PulsarError, conn: ContractConnection<D, C>];
  /** A problem with the server itself (not with one client). */
  error: [error: Error];
  /** Readiness changed (see `server.readiness`): `ready` once listening, `draining`, `closing`, `closed`. */
  readiness: [readiness: Readiness];
  /** The server has closed; every connection is gone. */
  close: [result: CloseResult];
}

