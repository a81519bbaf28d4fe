import createDebug from 'debug';
import { aboutClient, PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import { EarliestTimer } from '../util/earliest-timer.js';
import { isPromiseLike } from '../util/thenable.js';
import { HandlerContext } from './context.js';
import { cannotEncode, isCodedError, MAX_ERROR_MESSAGE, type ErrorBody } from './encoding.js';
import { EnvelopeKind, encodeCredit, encodeEnvelope } from './envelope.js';
import { TIMEOUT_HEADER, type Headers } from './headers.js';
import { InboundStream, type ItemCheck } from './inbound-stream.js';
import { OutboundStream, returnIterator } from './outbound-stream.js';
import type { MessageSettings } from './settings.js';
import { tracedName } from './tracing.js';

const debug = createDebug('pulsar:messages:trace');

/** What {@link Answers} needs from its session. */
export interface AnswersHost {
  /** Names the other side. */
  readonly peer: string;
  /** Aborts when the owner stops serving. */
  readonly closing: AbortSignal;
  /** The handler of requests and stream calls, or `null`: nothing answers here. */
  readonly answer: ((message: unknown, ctx: HandlerContext) => unknown) | null;
  /** Writes a frame: `kind`, `id`, and a value the codec encodes. @returns `false` when the socket's buffer is full */
  write(kind: EnvelopeKind, id: number, value: unknown): boolean;
  /** Resolves when the socket's buffer has drained. */
  drained(): Promise<void>;
  /** Writes a frame already encoded (a credit, an end); `now`: at once. */
  writeRaw(payload: Uint8Array, now?: boolean): boolean;
  /** A handler failed without a code, or an answer could not leave: reported. */
  handlerFailed(error: PulsarError): void;
  /** The connection cannot go on: reported, and ended at once. */
  abort(error: PulsarError): void;
}

/** Whether `value` is an `AsyncIterable` (what a stream handler returns). */
export function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === 'function';
}

/**
 * The calls one side is answering (SPEC sections 12 and 18): requests and stream calls in flight, bounded by
 * `maxInflightRequests`, each with its context; a stream's producer pumped under the caller's credit; an
 * upload read under ours; the caller's deadline enforced by one timer for all of them.
 */
export class Answers {
  readonly #settings: MessageSettings;
  readonly #host: AnswersHost;
  /** Calls being answered, by id. */
  readonly #inFlight = new Map<number, HandlerContext>();
  /** Those of them with a deadline. */
  readonly #timed = new Set<HandlerContext>();
  readonly #timer = new EarliestTimer((now) => this.#sweep(now));

  /**
   * @param settings the owner's message settings
   * @param host the session
   */
  constructor(settings: MessageSettings, host: AnswersHost) {
    this.#settings = settings;
    this.#host = host;
  }

  /** Whether call `id` is being answered. */
  has(id: number): boolean {
    return this.#inFlight.has(id);
  }

  /** The context of call `id` being answered. */
  get(id: number): HandlerContext | undefined {
    return this.#inFlight.get(id);
  }

  /** Calls being answered. */
  get size(): number {
    return this.#inFlight.size;
  }

  /** A context for call `id` with its headers; its deadline, when one came, is watched. */
  context(id: number, kind: EnvelopeKind, headers: Headers): HandlerContext {
    const timeout = headers[TIMEOUT_HEADER];
    // Milliseconds in decimal, as gRPC's grpc-timeout is digits; anything else sets no deadline.
    const deadline = timeout === undefined || !/^\d{1,15}$/.test(timeout) ? Infinity : Date.now() + Number(timeout);
    const ctx: HandlerContext = new HandlerContext(id, this.#host.closing, headers, deadline, kind === EnvelopeKind.stream, (check): InboundStream => this.#openUpload(ctx, check));
    if (deadline !== Infinity) {
      this.#timed.add(ctx);
      this.#timer.arm(deadline);
    }
    return ctx;
  }

  /** Call `ctx` is in flight (its handler or validation has not settled). */
  hold(ctx: HandlerContext): void {
    this.#inFlight.set(ctx.requestId!, ctx);
  }

  /** Runs the handler for `value` and answers (a reply, or a stream); a promise while it is pending. */
  answer(value: unknown, ctx: HandlerContext): unknown {
    const answer = this.#host.answer;
    if (answer === null) return this.#refuse(ctx, 'ERR_NO_HANDLER', 'nothing answers requests here (no handler)');
    const tracing = this.#settings.tracing;
    if (tracing !== null) ctx.span = tracing.answer(tracedName(ctx.streaming ? 'stream' : 'request', value), ctx.streaming ? 'stream' : 'request', ctx.headers);
    let result: unknown;
    try {
      result = ctx.span === undefined ? answer(value, ctx) : ctx.span.run(() => answer(value, ctx));
    } catch (error) {
      this.#failed(ctx, error);
      return undefined;
    }
    if (!isPromiseLike(result)) {
      this.#settle(ctx, result);
      return undefined;
    }
    this.hold(ctx);
    return result.then((settled) => this.#settle(ctx, settled), (error: unknown) => this.#failed(ctx, error));
  }

  /** The caller granted `count` more items of stream `id`. */
  credit(id: number, count: number): void {
    const ctx = this.#inFlight.get(id);
    if (ctx === undefined || !ctx.streaming) return; // ended, or a request: credit after its answer is in flight
    if (ctx.producer === undefined) ctx.credit += count;
    else this.#grant(ctx, ctx.producer, count);
  }

  /** Grants `producer` credit; with tracing, inside the call's span, so that its generator runs as the span's child. */
  #grant(ctx: HandlerContext, producer: OutboundStream, count: number): void {
    if (ctx.span === undefined) producer.grant(count);
    else ctx.span.run(() => producer.grant(count));
  }

  /** The caller gave call `id` up. */
  cancel(id: number): void {
    const ctx = this.#inFlight.get(id);
    if (ctx !== undefined) this.#abandon(ctx, new PulsarError('ERR_ABORTED', `request ${id} cancelled by ${this.#host.peer}`));
  }

  /** An error answer to call `id` (bad input, too many in flight); one that cannot leave closes the connection. */
  writeError(id: number, code: string, message: string): void {
    try {
      this.#host.write(EnvelopeKind.error, id, { code, message: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message } satisfies ErrorBody);
    } catch (error) {
      this.#host.abort(new PulsarError('ERR_FRAME_TOO_LARGE', `${this.#host.peer}: the error reply to request ${id} (${code}) cannot be sent: ${messageOf(error)}`, { cause: error }));
    }
  }

  /** Call `ctx` failed before its handler ran (bad input): answered with `code`. */
  refuse(ctx: HandlerContext, code: string, message: string): void {
    this.#refuse(ctx, code, message);
  }

  /**
   * Nothing more is read: streams being produced (no credit can come) and calls reading an upload end with
   * `error` (an error answer, their signals aborted); requests go on, to be answered.
   */
  stopStreams(error: PulsarError): void {
    for (const ctx of this.#inFlight.values()) {
      if (!ctx.streaming && ctx.upload === undefined) continue;
      if (!ctx.abandoned) this.writeError(ctx.requestId!, error.code, 'the connection is closing');
      this.#abandon(ctx, error);
      if (ctx.producer === undefined) this.#done(ctx, error);
    }
  }

  /** The connection is gone: every call's signal aborts with `error`. */
  abandonAll(error: PulsarError): void {
    for (const ctx of this.#inFlight.values()) this.#abandon(ctx, error);
  }

  /** Call `ctx` will not be answered: its signal aborts; a stream's producer stops and the call is done. */
  #abandon(ctx: HandlerContext, error: PulsarError): void {
    ctx.abandon(error);
    if (ctx.producer !== undefined) this.#done(ctx, error);
  }

  #refuse(ctx: HandlerContext, code: string, message: string): undefined {
    this.#done(ctx);
    this.writeError(ctx.requestId!, code, message);
    return undefined;
  }

  /** The handler gave its answer: a reply for a request, a producer for a stream call (each refused for the other). */
  #settle(ctx: HandlerContext, result: unknown): void {
    const stream = isAsyncIterable(result);
    if (stream !== ctx.streaming) {
      if (stream) returnIterator(result[Symbol.asyncIterator]()); // nobody reads it: its generator's finally runs
      const error = new PulsarError('ERR_STREAM_MISMATCH', ctx.streaming ? 'a stream call met a handler that answers once' : 'a request met a handler that streams (call it with stream())');
      this.#host.handlerFailed(aboutClient(error, this.#host.peer));
      this.#done(ctx);
      if (!ctx.abandoned) this.writeError(ctx.requestId!, error.code, error.message);
      return;
    }
    if (stream) {
      this.#produce(ctx, result);
      return;
    }
    this.#done(ctx);
    if (ctx.abandoned) return; // the requester gave up, or the connection is gone: nobody waits for it
    const id = ctx.requestId!;
    try {
      this.#host.write(EnvelopeKind.reply, id, result === undefined ? null : result);
    } catch (error) {
      // Exactly one answer per request: a reply that cannot leave is answered with why (its code), and the
      // cause stays here.
      const failure = error instanceof PulsarError ? error : cannotEncode(error);
      this.#host.handlerFailed(new PulsarError(failure.code, `${this.#host.peer}: the reply to request ${id} could not be sent: ${failure.message}`, { cause: error }));
      this.writeError(id, failure.code, failure.code === 'ERR_FRAME_TOO_LARGE' ? 'the reply is over the frame limit' : 'the reply could not be encoded');
    }
  }

  /** Streams `iterable` as call `ctx`'s answer, under the caller's credit. */
  #produce(ctx: HandlerContext, iterable: AsyncIterable<unknown>): void {
    const id = ctx.requestId!;
    const producer = new OutboundStream(iterable, {
      item: (value) => this.#host.write(EnvelopeKind.item, id, value),
      drained: () => this.#host.drained(),
      end: () => {
        this.#done(ctx);
        if (!ctx.abandoned) this.#host.writeRaw(encodeEnvelope(EnvelopeKind.end, id, ''));
      },
      failed: (error) => this.#failed(ctx, error),
    });
    ctx.producer = producer;
    this.hold(ctx);
    if (ctx.abandoned) {
      producer.stop();
      this.#done(ctx);
    } else if (ctx.credit > 0) {
      this.#grant(ctx, producer, ctx.credit);
    }
  }

  /**
   * A handler threw: an error answer that speaks only for coded errors (gRPC answers an unexpected error as
   * `UNKNOWN` without its internals): a string `code` that is not a Node system error's sends its code and
   * message; anything else is `ERR_HANDLER` with a fixed message, the error itself reported here only.
   */
  #failed(ctx: HandlerContext, error: unknown): void {
    this.#done(ctx, error);
    const coded = isCodedError(error);
    if (!coded) {
      this.#host.handlerFailed(new PulsarError('ERR_HANDLER', `${this.#host.peer}: the handler failed on request ${ctx.requestId}: ${messageOf(error)}`, { cause: error }));
    }
    if (!ctx.abandoned) this.writeError(ctx.requestId!, coded ? error.code : 'ERR_HANDLER', coded ? messageOf(error) : 'the handler failed');
  }

  /** Call `ctx` is answered (or never will be): forgotten, its span ended, its upload closed. */
  #done(ctx: HandlerContext, error?: unknown): void {
    this.#inFlight.delete(ctx.requestId!);
    if (ctx.deadline !== Infinity) this.#timed.delete(ctx);
    ctx.upload?.finish(); // read no more of it: what the caller still sends is dropped
    ctx.span?.end(error);
  }

  /** The route reads the caller's upload: its first window is granted now. */
  #openUpload(ctx: HandlerContext, check: ItemCheck | null): InboundStream {
    const id = ctx.requestId!;
    const upload = new InboundStream({ grant: (count) => this.#host.writeRaw(encodeCredit(EnvelopeKind.uploadCredit, id, count), true), leave: () => {} }, this.#settings.streamWindow, check);
    ctx.upload = upload;
    upload.open();
    return upload;
  }

  /** Aborts every call past its caller's deadline. @returns the earliest deadline left */
  #sweep(now: number): number {
    let earliest = Infinity;
    for (const ctx of this.#timed) {
      if (ctx.deadline <= now) {
        this.#timed.delete(ctx);
        debug('%s: request %d passed its deadline', this.#host.peer, ctx.requestId);
        this.#abandon(ctx, new PulsarError('ERR_REQUEST_TIMEOUT', `request ${ctx.requestId} from ${this.#host.peer} passed its caller's deadline`));
      } else if (ctx.deadline < earliest) {
        earliest = ctx.deadline;
      }
    }
    return earliest;
  }
}
