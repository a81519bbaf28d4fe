import type { PulsarError } from '../errors.js';

/** What a client receives: frames, or messages typed by the schema's output (the client's, else the codec's). */
export type Inbound<M, S> = [S] extends [never] ? M : S;

/**
 * Events of {@link PulsarClient}.
 * @typeParam T what the server sends: frames (`Buffer`), or with `messages` decoded messages
 */
export interface PulsarClientEvents<T = Buffer> {
  /** Connected (first time and after each reconnection). */
  connect: [];
  /** Ready to talk: after each connect, once the `hello` (if any) was accepted. Re-join rooms here. */
  ready: [];
  /** Without `messages`: a data frame that no `request()` was waiting for. A view: copy it to keep it long. */
  frame: [payload: Buffer];
  /** With `messages`: a one-way message from the server (not a reply, not a request). */
  message: [message: T];
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
 * A client's lifecycle: `idle` (made, not connected yet) → `connecting` → `open`; when the connection is
 * lost, `reconnecting` (with `reconnect`, between attempts and during one) → `open` again; `closing`
 * (`close()` called: our side ended, waiting for the server's) → `closed` (for good: also after giving up
 * reconnecting, or when the connection is lost without `reconnect`). A failed first `connect()` goes
 * back to `idle`.
 */
export type ClientState = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';
