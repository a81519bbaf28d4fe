import { PulsarError } from '../errors.js';
import type { MessageContext } from './settings.js';

/**
 * A handler's context: one per request being handled, and one per connection for its one-way messages.
 * Its `AbortController` is made only when the handler reads `signal`: a request answered without looking
 * at it costs this small object alone.
 */
export class HandlerContext implements MessageContext {
  readonly requestId: number | undefined;
  #controller: AbortController | undefined;
  /** Why it was given up, once it was (the controller, if made later, starts aborted). */
  #reason: PulsarError | undefined;

  /** Aborts when the server (or client) stops serving: answer a long wait early. */
  readonly closing: AbortSignal;

  /**
   * @param requestId the request's id; `undefined` for a connection's one-way messages
   * @param closing the owner's shutdown signal
   */
  constructor(requestId: number | undefined, closing: AbortSignal) {
    this.requestId = requestId;
    this.closing = closing;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** True once the requester gave up or the connection closed: the answer is not sent. */
  get abandoned(): boolean {
    return this.#reason !== undefined;
  }

  /** The requester gave up, or the connection closed: the signal aborts with `reason`. */
  abandon(reason: PulsarError): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}
