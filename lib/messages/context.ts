import { PulsarError } from '../errors.js';
import { NO_HEADERS, type Headers } from './headers.js';
import type { InboundStream, ItemCheck } from './inbound-stream.js';
import type { OutboundStream } from './outbound-stream.js';
import type { MessageContext } from './settings.js';
import type { TraceSpan } from './tracing.js';

/**
 * A handler's context: one per request or stream call being handled, and one per connection for its
 * one-way messages (one per message that carries headers). Its `AbortController` is made only when the
 * handler reads `signal`: a request answered without looking at it costs this small object alone.
 */
export class HandlerContext implements MessageContext {
  readonly requestId: number | undefined;
  readonly headers: Headers;
  /** Epoch ms of the caller's deadline (its `pulsar-timeout` header); `Infinity` without one. */
  readonly deadline: number;
  /** Aborts when the server (or client) stops serving: answer a long wait early. */
  readonly closing: AbortSignal;
  /** Whether it is a stream call (answered with items), not a request. */
  readonly streaming: boolean;
  /** Credit the caller granted before the handler gave its stream. */
  credit = 0;
  /** The stream this call answers with, once its handler gave one. */
  producer: OutboundStream | undefined;
  /** The caller's upload, once the route opened it. */
  upload: InboundStream | undefined;
  /** The server span of this call, with tracing. */
  span: TraceSpan | undefined;
  readonly #openUpload: ((check: ItemCheck | null) => InboundStream) | undefined;
  #controller: AbortController | undefined;
  /** Why it was given up, once it was (the controller, if made later, starts aborted). */
  #reason: PulsarError | undefined;

  /**
   * @param requestId the call's id; `undefined` for one-way messages
   * @param closing the owner's shutdown signal
   * @param headers what came with the call or message
   * @param deadline epoch ms of its deadline, `Infinity` for none
   * @param streaming whether it is a stream call
   * @param openUpload reads the caller's upload (a call's context only)
   */
  constructor(requestId: number | undefined, closing: AbortSignal, headers: Headers = NO_HEADERS, deadline = Infinity, streaming = false, openUpload?: (check: ItemCheck | null) => InboundStream) {
    this.requestId = requestId;
    this.closing = closing;
    this.headers = headers;
    this.deadline = deadline;
    this.streaming = streaming;
    this.#openUpload = openUpload;
  }

  /**
   * The caller's upload, as an `AsyncIterable` of its items (checked by `check`): its first window
   * (`streamWindow`) is granted now, more as the items are taken.
   * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` for a one-way message's context, or a second opening
   */
  openUpload(check: ItemCheck | null): InboundStream {
    if (this.#openUpload === undefined || this.upload !== undefined) throw new PulsarError('ERR_MALFORMED_MESSAGE', 'no upload to read here');
    return this.#openUpload(check);
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

  /** The requester gave up, its deadline passed, or the connection closed: the signal aborts with `reason`, a stream stops. */
  abandon(reason: PulsarError): void {
    if (this.#reason !== undefined) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.producer?.stop();
    this.upload?.finish(reason);
  }
}
