import type { Connection, ConnectionData } from '../connection/connection.js';
import type { MessageContext } from '../messages/settings.js';

/**
 * Called for every inbound frame; replaces the default echo. It may answer with `conn.send()` at once
 * or later. Its return value is ignored unless it is a promise (or thenable): then a graceful close
 * waits for it to settle, and a rejection is reported like a throw, as an `ERR_HANDLER` client error.
 */
export type FrameHandler<D extends ConnectionData = ConnectionData> = (frame: Buffer, conn: Connection<D>) => unknown;

/**
 * With `messages`: called for every inbound message, decoded and validated. For a request (`rpc`,
 * `ctx.requestId` set), what it returns or resolves is the reply, and a throw or a rejection is an error
 * reply with the error's `code` (`ERR_HANDLER` without one, then also reported as a client error) and
 * its message, never its stack. For a one-way message, its return value is ignored, as for frames.
 */
export type MessageHandler<M = unknown, D extends ConnectionData = ConnectionData> = (message: M, conn: Connection<D>, ctx: MessageContext) => unknown;

/**
 * The handler a server's options call for: frames without `messages`, else messages typed by the
 * schema's output (the server's `schema`, else the codec's).
 */
export type HandlerFor<M, S, D extends ConnectionData> = [S] extends [never] ? ([M] extends [Buffer] ? FrameHandler<D> : MessageHandler<M, D>) : MessageHandler<S, D>;

/**
 * Decides whether a new connection is served, before any of its frames is read: `true` serves it,
 * anything else refuses it (`ERR_REFUSED`), as does a throw or a rejection. It may answer later (a
 * promise, e.g. after asking a rate limiter), within the server's `admitTimeout`.
 */
export type AdmitHook = (conn: Connection) => boolean | PromiseLike<boolean>;

/** The default handler: sends every frame back unchanged. */
export function echo(frame: Buffer, conn: Connection): void {
  conn.send(frame);
}

/** The default handler with `messages`: sends every message back; a request's reply is the request. */
export function echoMessage(message: unknown, conn: Connection, ctx: MessageContext): unknown {
  if (ctx.requestId !== undefined) return message;
  conn.send(message);
  return undefined;
}
