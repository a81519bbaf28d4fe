import type { PulsarError } from '../errors.js';
import { MessageSession } from '../messages/session.js';
import type { MessageContext, MessageSettings } from '../messages/settings.js';

/** What a client's message session is wired to. */
export interface ClientSessionHost {
  /** Names the server. */
  readonly peer: string;
  /** Writes a frame's payload (dropped when the connection is gone); `now`: flushed at once. @returns `false` when the socket is full */
  write(payload: Uint8Array, now?: boolean): boolean;
  /** Resolves when the socket's buffer has drained. */
  drained(): Promise<void>;
  /** A one-way message from the server. */
  message(message: unknown): unknown;
  /** Answers the server's requests and streams, or `null`. */
  readonly answer: ((message: unknown, ctx: MessageContext) => unknown) | null;
  /** Reports an error as the client's. */
  error(error: PulsarError): void;
  /** Ends the connection at once. */
  destroy(): void;
  /** A reply came after its request gave up. */
  lateReply(): void;
  /** Aborts when the client closes. */
  readonly closing: AbortSignal;
}

/**
 * The message session of one of a client's connections: bad input from the server is the client's
 * `error` (and ends the connection with `onInvalid: 'close'`), a protocol error ends it at once.
 */
export function clientSession(settings: MessageSettings, host: ClientSessionHost): MessageSession {
  return new MessageSession(settings, {
    peer: host.peer,
    write: host.write,
    drained: host.drained,
    message: host.message,
    answer: host.answer,
    invalid: (error) => {
      host.error(error);
      if (settings.onInvalid === 'close') host.destroy();
    },
    abort: (error) => {
      host.error(error);
      host.destroy();
    },
    handlerFailed: host.error,
    lateReply: host.lateReply,
    closing: host.closing,
  });
}
