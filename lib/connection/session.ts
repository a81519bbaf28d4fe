import { MessageSession } from '../messages/session.js';
import type { Connection } from './connection.js';
import { kCloseForError, type ConnectionOwner } from './owner.js';

/**
 * The message layer of a server's connection: its session writes through `write` (the connection's
 * output, batched with the other answers to the same read), hands messages and requests to the server's
 * handler, and reports bad input as the connection's client errors (closing it with `onInvalid: 'close'`).
 */
export function connectionSession(conn: Connection, owner: ConnectionOwner, write: (payload: Uint8Array) => void): MessageSession {
  const settings = owner.messages!;
  const { handleMessage } = owner;
  const handle = (message: unknown, ctx: Parameters<ConnectionOwner['handleMessage']>[2]): unknown => handleMessage(message, conn, ctx);
  return new MessageSession(settings, {
    get peer() {
      return String(conn);
    },
    write,
    message: handle,
    answer: handle,
    invalid: (error) => {
      if (settings.onInvalid === 'close') conn[kCloseForError](error);
      else owner.onClientError(error, conn);
    },
    // A protocol error ends the connection at once, as HTTP/2's connection errors do: the rest of what was
    // read is not dispatched (each frame would be one more report), the running requests are aborted.
    abort: (error) => {
      if (conn.state === 'closed') return;
      owner.onClientError(error, conn);
      conn.destroy(error);
    },
    handlerFailed: (error) => owner.onClientError(error, conn),
    lateReply: () => owner.onLateReply(conn),
  });
}
