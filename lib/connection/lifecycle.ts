import type { Socket } from 'node:net';
import createDebug from 'debug';
import { PulsarError } from '../errors.js';
import type { ReadThrottle } from '../rate/throttle.js';
import type { Connection } from './connection.js';
import type { ConnectionInput } from './input.js';
import type { ConnectionOutput } from './output.js';
import { kFlushed, kSession, type ConnectionOwner, type ConnectionState, type DisconnectReason } from './owner.js';

const debug = createDebug('pulsar:connection:trace');

/** Where a socket's static handlers find their connection's lifecycle. */
const kLifecycle = Symbol('pulsar.lifecycle');
type OwnedSocket = Socket & { [kLifecycle]: ConnectionLifecycle };

/**
 * A served connection's way to its end (see {@link ConnectionState}): a graceful close answers what was
 * read, flushes, sends our FIN and lingers until the peer's (bounded by the close timeout, which forces
 * it); a failure destroys it at once. The owner hears, once each, that it can no longer be written and
 * that it closed, with why.
 */
export class ConnectionLifecycle {
  readonly #conn: Connection;
  readonly #owner: ConnectionOwner;
  readonly #input: ConnectionInput;
  readonly #output: ConnectionOutput;
  readonly #throttle: ReadThrottle | null;
  #state: ConnectionState = 'open';
  #reason: DisconnectReason | undefined;
  #error: Error | undefined;
  /** True once the owner was told the connection can no longer be written. */
  #unwritable = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(conn: Connection, owner: ConnectionOwner, input: ConnectionInput, output: ConnectionOutput, throttle: ReadThrottle | null) {
    this.#conn = conn;
    this.#owner = owner;
    this.#input = input;
    this.#output = output;
    this.#throttle = throttle;
  }

  get state(): ConnectionState {
    return this.#state;
  }

  /** Attaches the socket's handlers (static ones: no closure per connection) and starts reading. */
  start(): void {
    const socket = this.#conn.socket as OwnedSocket;
    socket[kLifecycle] = this;
    socket.on('data', ConnectionLifecycle.#onData);
    socket.on('end', ConnectionLifecycle.#onEnd);
    socket.on('drain', ConnectionLifecycle.#onDrain);
    socket.on('error', ConnectionLifecycle.#onError);
    socket.on('close', ConnectionLifecycle.#onClose);
  }

  /** Bytes read: decoded and dispatched while open; after close() began, discarded (read only to see the peer's FIN). */
  received(chunk: Buffer): void {
    if (this.#state === 'open') this.#input.receive(chunk);
  }

  /** Reads no more input, answers what was read, then ends our side. Idempotent. */
  beginClose(reason: DisconnectReason): void {
    if (this.#state !== 'open') return;
    this.#state = 'closing';
    this.#reason = reason;
    this.#conn.socket.pause(); // read no more input
    this.#conn[kSession](false)?.stopReading(); // so no reply to a request of ours can come
    this.#closeTimer = setTimeout(ConnectionLifecycle.#onCloseTimeout, this.#owner.settings.closeTimeout, this);
    debug('%s closing (%s)', this.#conn.remote, reason);
    this.answered();
  }

  /** Reports a client error, then closes gracefully (answering what was read); the disconnect carries it. */
  closeForError(error: PulsarError): void {
    if (this.#state !== 'open') return;
    this.#owner.clientError(error, this.#conn);
    this.#error = error;
    this.beginClose('error');
  }

  /** Ends our side once no frame is being dispatched and no handler promise is pending. */
  answered(): void {
    if (this.#state !== 'closing' || this.#output.holding || this.#input.answering) return;
    const { socket } = this.#conn;
    this.#state = 'lingering';
    this.#output.flush(); // what was sent in this tick leaves before our FIN
    this.#becomeUnwritable();
    this.#input.end();
    socket.end();
    // Keep reading (and discarding) until the peer's FIN, or the close timeout: closing the socket while
    // the peer may still send makes the kernel answer that data with a reset, and a reset destroys the
    // answers the peer has not read yet.
    socket.resume();
  }

  /** Reports a client error and destroys the connection. */
  fail(error: PulsarError, reason: DisconnectReason = 'error'): void {
    if (this.#state === 'closed') {
      debug('%s late error after close: %s', this.#conn.remote, error.message);
      return;
    }
    this.#owner.clientError(error, this.#conn);
    this.terminate(reason, error);
  }

  /** Destroys the socket at once, dropping pending output. */
  terminate(reason: DisconnectReason, error: Error | undefined): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#reason = reason;
    this.#error = error;
    this.#conn.socket.destroy();
    this.#becomeUnwritable();
    this.#output.account();
  }

  /** Turned away before it was served: closed, with nobody to tell. */
  refused(): void {
    this.#state = 'closed';
    this.#unwritable = true;
  }

  /** The socket closed: the owner hears why, once. */
  closed(): void {
    clearTimeout(this.#closeTimer);
    this.#throttle?.stop();
    this.#state = 'closed';
    this.#becomeUnwritable();
    this.#output.account();
    debug('%s closed (%s)', this.#conn.remote, this.#reason ?? 'end');
    this.#owner.closed(this.#conn, this.#reason ?? 'end', this.#error);
  }

  /** Tells the owner, once, that this connection can no longer be written (see ConnectionOwner.unwritable). */
  #becomeUnwritable(): void {
    if (this.#unwritable) return;
    this.#unwritable = true;
    this.#conn[kSession](false)?.close(); // no reply can come any more: pending requests fail now
    this.#owner.unwritable(this.#conn);
  }

  /**
   * Destroys a connection whose close outlived the timeout. Even when every answer was handed to the
   * kernel, destroying a socket whose peer has not closed its side may reset it and lose answers the
   * peer has not read yet: it is reported, and counted as forced, never as drained.
   */
  static #onCloseTimeout(lifecycle: ConnectionLifecycle): void {
    const conn = lifecycle.#conn;
    const what = conn[kFlushed] ? 'the peer had not closed its side' : `${conn.socket.writableLength} byte(s) of output were still pending`;
    lifecycle.fail(new PulsarError('ERR_CLOSE_TIMEOUT', `${conn}: did not finish closing in ${lifecycle.#owner.settings.closeTimeout} ms (${what})`), 'timeout');
  }

  static #onData(this: OwnedSocket, chunk: Buffer): void {
    this[kLifecycle].received(chunk);
  }
  static #onEnd(this: OwnedSocket): void {
    const lifecycle = this[kLifecycle];
    lifecycle.#conn[kSession](false)?.peerEnded(); // with rpc: a peer gone is not worked for (answerAfterEnd keeps answering)
    lifecycle.beginClose('end'); // answer what was received, then close our side too
  }
  static #onDrain(this: OwnedSocket): void {
    this[kLifecycle].#output.drained();
  }
  static #onError(this: OwnedSocket, error: Error): void {
    const lifecycle = this[kLifecycle];
    lifecycle.fail(new PulsarError('ERR_CONNECTION_LOST', `${lifecycle.#conn}: connection lost: ${error.message}`, { cause: error }));
  }
  static #onClose(this: OwnedSocket): void {
    this[kLifecycle].closed();
  }
}
