import { PulsarError } from '../errors.js';
import { MessageSession } from '../messages/session.js';
import type { MessageContext, MessageSettings } from '../messages/settings.js';
import type { Connection } from './connection.js';
import { kCloseForError, kSession, type ConnectionOwner } from './owner.js';

/**
 * The message session of a server's connection, made on its first use: it writes through `write` (the
 * connection's output, batched with the other answers to the same read), hands messages and requests to
 * the server's handler, and reports bad input as the connection's client errors (closing it with
 * `onInvalid: 'close'`).
 */
export function connectionSession(conn: Connection, owner: ConnectionOwner, settings: MessageSettings, write: (payload: Uint8Array, now?: boolean) => boolean): MessageSession {
  const { settings: own } = owner;
  const handle = (message: unknown, ctx: MessageContext): unknown => own.handler(message, conn, ctx);
  return new MessageSession(settings, {
    get peer() {
      return String(conn);
    },
    write,
    drained: () => new Promise((resolve) => conn.socket.once('drain', resolve)),
    message: handle,
    answer: handle,
    invalid: (error) => {
      if (settings.onInvalid === 'close') conn[kCloseForError](error);
      else owner.clientError(error, conn);
    },
    // A protocol error ends the connection at once, as HTTP/2's connection errors do: the rest of what was
    // read is not dispatched (each frame would be one more report), the running requests are aborted.
    abort: (error) => {
      if (conn.state === 'closed') return;
      owner.clientError(error, conn);
      conn.destroy(error);
    },
    handlerFailed: (error) => owner.clientError(error, conn),
    lateReply: () => owner.lateReply(conn),
    closing: own.closing,
  });
}

/**
 * The session of `conn`, for a request or a stream the server makes.
 * @throws {PulsarError} `ERR_RPC_DISABLED` without `rpc`, `ERR_CONNECTION_CLOSED` unless the connection is open
 */
export function callSession(conn: Connection): MessageSession {
  const session = conn[kSession]();
  if (session === null || !session.rpc) throw new PulsarError('ERR_RPC_DISABLED', 'conn.request() and conn.stream() need rpc: true (and messages) on the server');
  if (conn.state !== 'open') throw new PulsarError('ERR_CONNECTION_CLOSED', `${conn}: cannot send a request: the connection is ${conn.state}`);
  return session;
}
