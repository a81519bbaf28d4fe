import createDebug from 'debug';
import { aboutClient, PulsarError, RemoteError } from '../errors.js';
import { framePayload } from '../io/payload.js';
import { messageOf } from '../util/format.js';
import { isPromiseLike } from '../util/thenable.js';
import { checkTimerMs } from '../util/validate.js';
import { HandlerContext } from './context.js';
import { decodeEnvelope, encodeEnvelope, EnvelopeKind, type Envelope } from './envelope.js';
import { PendingRequests } from './pending.js';
import { InvalidMessageError, validate } from './schema.js';
import type { MessageContext, MessageSettings, RequestOptions } from './settings.js';

const debug = createDebug('pulsar:messages:trace');

/** What a message session needs from the end it serves (a server's connection, a client). */
export interface SessionHost {
  /** Names the other side, for errors and logs. */
  readonly peer: string;
  /** Sends one frame's payload (the session made it). */
  write(payload: Uint8Array): void;
  /** A one-way message came, decoded and validated. A returned promise is the host's to watch. */
  message(message: unknown, ctx: MessageContext): unknown;
  /** Answers a request: the reply, or a promise of it; a throw is an error reply. `null`: nothing answers requests here. */
  readonly answer: ((message: unknown, ctx: MessageContext) => unknown) | null;
  /** The other side sent something wrong (`ERR_MALFORMED_MESSAGE`, `ERR_INVALID_MESSAGE`, naming it): report it, close if so set. */
  invalid(error: PulsarError): void;
  /**
   * The connection cannot go on (`ERR_DUPLICATE_REQUEST` from the other side, or an answer that cannot be
   * sent at all): report it and end the connection at once, as HTTP/2 ends one on a connection error.
   */
  abort(error: PulsarError): void;
  /** A request handler failed with an error without a `code`: a bug, reported (the requester got `ERR_HANDLER`). */
  handlerFailed(error: PulsarError): void;
  /** A reply came after its request gave up, and was dropped. */
  lateReply(): void;
  /** Aborts when the end it serves stops serving (what handlers get as `ctx.closing`). */
  readonly closing: AbortSignal;
}

/** What an error reply's body holds. */
interface ErrorBody {
  code: string;
  message: string;
}

/**
 * The message layer of one connection (SPEC section 12, docs/protocol.md): decodes and validates inbound
 * messages, and with `rpc` takes every frame's envelope apart and keeps the requests in flight both
 * ways: those this side sent (matched to their replies by id, timed out, cancelled) and those it
 * answers (bounded by `maxInflightRequests`, their `ctx.signal` aborted on cancel or close).
 */
export class MessageSession {
  readonly #settings: MessageSettings;
  readonly #host: SessionHost;
  /** Requests sent, waiting for replies; made by the first. */
  #sent: PendingRequests | undefined;
  /** Requests being answered by a handler that has not settled, by id. */
  readonly #answering = new Map<number, HandlerContext>();
  /** The context of one-way messages; made by the first. */
  #messageContext: HandlerContext | undefined;
  /** Why the session ended, once it has. */
  #closed: PulsarError | undefined;

  /**
   * @param settings the owner's resolved message options
   * @param host the connection or client it serves
   */
  constructor(settings: MessageSettings, host: SessionHost) {
    this.#settings = settings;
    this.#host = host;
  }

  /** Replies that came after their request had given up (timeout, abort): dropped, counted here. */
  get lateReplies(): number {
    return this.#sent?.late ?? 0;
  }

  /**
   * Sends a request (`rpc` only) and resolves with its reply, matched by id.
   * @throws {PulsarError} (rejects) `ERR_REQUEST_TIMEOUT`, `ERR_ABORTED`, `ERR_CONNECTION_CLOSED`,
   * `ERR_REMOTE` (a {@link RemoteError}), `ERR_MALFORMED_MESSAGE` (a reply that does not decode)
   */
  request(value: unknown, options: RequestOptions = {}): Promise<unknown> {
    try {
      if (this.#closed !== undefined) throw this.#closed;
      const timeout = options.timeout === undefined ? this.#settings.requestTimeout : checkTimerMs('request()', 'timeout', options.timeout);
      const { signal } = options;
      if (signal?.aborted) throw new PulsarError('ERR_ABORTED', `request to ${this.#host.peer} aborted before it was sent`, { cause: signal.reason });
      const sent = (this.#sent ??= new PendingRequests({ peer: this.#host.peer, gaveUp: (id) => this.#write(EnvelopeKind.cancel, id, null) }));
      const id = sent.nextId();
      // Written before it waits: a frame the codec refuses throws here and leaves nothing pending (no reply
      // can come before this function returns).
      this.#host.write(this.#payload(EnvelopeKind.request, id, value));
      return sent.wait(id, timeout, signal);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * Handles one inbound frame.
   * @returns a promise while the work it started (validation, a handler) is pending, for a graceful
   * close to wait on; it never rejects for a request (failures are answered), and rejects for a one-way
   * message when its handler does
   */
  receive(frame: Buffer): unknown {
    const settings = this.#settings;
    if (!settings.rpc && settings.schema === null) {
      // The common case, kept short: a message, decoded and handed on.
      let value: unknown;
      try {
        value = settings.codec.decode(frame);
      } catch (error) {
        return this.#badInput(null, malformed(error, null));
      }
      return this.#host.message(value, (this.#messageContext ??= new HandlerContext(undefined, this.#host.closing)));
    }
    if (!settings.rpc) return this.#inbound(frame, null);
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(frame);
    } catch (error) {
      this.#invalid(error as PulsarError);
      return undefined;
    }
    switch (envelope.kind) {
      case EnvelopeKind.message:
        return this.#inbound(envelope.body, null);
      case EnvelopeKind.request:
        return this.#request(envelope.id, envelope.body);
      case EnvelopeKind.cancel:
        this.#answering.get(envelope.id)?.abandon(new PulsarError('ERR_ABORTED', `request ${envelope.id} cancelled by ${this.#host.peer}`));
        return undefined;
      default:
        this.#reply(envelope);
        return undefined;
    }
  }

  /**
   * Nothing more will be read (the connection is closing): every request sent fails at once with
   * `ERR_CONNECTION_CLOSED`, and no new one is sent; the requests being answered go on. Idempotent.
   */
  stopReading(): void {
    this.#closed ??= new PulsarError('ERR_CONNECTION_CLOSED', `the connection to ${this.#host.peer} is closing: no reply could be read`);
    this.#sent?.failAll(() => new PulsarError('ERR_CONNECTION_CLOSED', `the connection to ${this.#host.peer} closed before the reply`));
  }

  /**
   * The other side sent its FIN. With `rpc` (unless `answerAfterEnd`), it is taken as gone: the requests
   * it sent that are running have their signals aborted and will not be answered (see {@link close}).
   */
  peerEnded(): void {
    if (this.#settings.rpc && !this.#settings.answerAfterEnd) this.close();
  }

  /**
   * The connection is gone: every request sent fails at once with `ERR_CONNECTION_CLOSED`, and the
   * signals of the requests being answered (and of one-way messages) abort. Idempotent.
   */
  close(): void {
    this.stopReading();
    const closed = new PulsarError('ERR_CONNECTION_CLOSED', `the connection to ${this.#host.peer} closed`);
    for (const ctx of this.#answering.values()) ctx.abandon(closed);
    this.#messageContext?.abandon(closed);
  }

  /** A request: bounded, decoded, validated, answered. */
  #request(id: number, body: Buffer): unknown {
    if (this.#answering.has(id)) {
      // HTTP/2 (RFC 9113 §5.1.1) makes a reused stream id a connection error: two answers with one id could
      // not be told apart, and the first handler would escape the in-flight bound and its cancel.
      this.#host.abort(aboutClient(new PulsarError('ERR_DUPLICATE_REQUEST', `request id ${id} reused while that request is still in flight`), this.#host.peer));
      return undefined;
    }
    const { maxInflightRequests } = this.#settings;
    if (this.#answering.size >= maxInflightRequests) {
      debug('%s: request %d refused, %d in flight', this.#host.peer, id, maxInflightRequests);
      this.#writeError(id, 'ERR_TOO_MANY_REQUESTS', `more than ${maxInflightRequests} requests in flight on this connection`);
      return undefined;
    }
    return this.#inbound(body, new HandlerContext(id, this.#host.closing));
  }

  /** Decodes and validates a message (`ctx` `null`) or a request, then hands it on. */
  #inbound(body: Buffer, ctx: HandlerContext | null): unknown {
    let value: unknown;
    try {
      value = this.#settings.codec.decode(body);
    } catch (error) {
      return this.#badInput(ctx, malformed(error, ctx));
    }
    const { schema } = this.#settings;
    if (schema === null) return this.#handle(value, ctx);
    let checked: unknown;
    try {
      checked = validate(schema, value);
    } catch (error) {
      return this.#badInput(ctx, schemaFailure(error));
    }
    if (!(checked instanceof Promise)) return this.#handle(checked, ctx);
    if (ctx !== null) this.#answering.set(ctx.requestId!, ctx); // in flight while it validates
    return checked.then(
      (valid) => this.#handle(valid, ctx),
      (error: unknown) => {
        if (ctx !== null) this.#answering.delete(ctx.requestId!);
        this.#badInput(ctx, schemaFailure(error));
      },
    );
  }

  /** Reports bad input, and answers a request that brought it with its code, so that its caller fails at once. */
  #badInput(ctx: HandlerContext | null, error: PulsarError): undefined {
    if (ctx !== null) this.#writeError(ctx.requestId!, error.code, error.message);
    this.#invalid(error);
    return undefined;
  }

  /** Reports bad input from the other side, naming it (and keeping a schema's issues). */
  #invalid(error: PulsarError): void {
    const peer = this.#host.peer;
    this.#host.invalid(error instanceof InvalidMessageError ? new InvalidMessageError(`${peer}: ${error.message}`, error.issues) : aboutClient(error, peer));
  }

  #handle(value: unknown, ctx: HandlerContext | null): unknown {
    if (ctx === null) return this.#host.message(value, (this.#messageContext ??= new HandlerContext(undefined, this.#host.closing)));
    const id = ctx.requestId!;
    const answer = this.#host.answer;
    if (answer === null) {
      this.#answering.delete(id);
      this.#writeError(id, 'ERR_NO_HANDLER', 'nothing answers requests here (no handler)');
      return undefined;
    }
    let result: unknown;
    try {
      result = answer(value, ctx);
    } catch (error) {
      this.#answering.delete(id);
      this.#failed(ctx, error);
      return undefined;
    }
    if (!isPromiseLike(result)) {
      this.#answering.delete(id);
      this.#replyWith(ctx, result);
      return undefined;
    }
    this.#answering.set(id, ctx);
    return result.then(
      (reply) => {
        this.#answering.delete(id);
        this.#replyWith(ctx, reply);
      },
      (error: unknown) => {
        this.#answering.delete(id);
        this.#failed(ctx, error);
      },
    );
  }

  #replyWith(ctx: HandlerContext, reply: unknown): void {
    if (ctx.abandoned) return; // the requester gave up, or the connection is gone: nobody waits for it
    const id = ctx.requestId!;
    try {
      this.#host.write(this.#payload(EnvelopeKind.reply, id, reply === undefined ? null : reply));
    } catch (error) {
      // Exactly one answer per request: a reply that cannot leave is answered with why (its code), and the
      // cause stays here.
      const failure = error instanceof PulsarError ? error : cannotEncode(error);
      this.#host.handlerFailed(new PulsarError(failure.code, `${this.#host.peer}: the reply to request ${id} could not be sent: ${failure.message}`, { cause: error }));
      this.#writeError(id, failure.code, failure.code === 'ERR_FRAME_TOO_LARGE' ? 'the reply is over the frame limit' : 'the reply could not be encoded');
    }
  }

  /**
   * A handler threw: an error reply that speaks only for coded errors (gRPC answers an unexpected error as
   * `UNKNOWN` without its internals): a string `code` that is not a Node system error's sends its code and
   * message; anything else is `ERR_HANDLER` with a fixed message, the error itself reported here only.
   */
  #failed(ctx: HandlerContext, error: unknown): void {
    const coded = isCodedError(error);
    if (!coded) {
      this.#host.handlerFailed(new PulsarError('ERR_HANDLER', `${this.#host.peer}: the handler failed on request ${ctx.requestId}: ${messageOf(error)}`, { cause: error }));
    }
    if (!ctx.abandoned) this.#writeError(ctx.requestId!, coded ? error.code : 'ERR_HANDLER', coded ? messageOf(error) : 'the handler failed');
  }

  /** A reply or an error reply: settles its request, if it still waits. */
  #reply({ kind, id, body }: Envelope): void {
    const pending = this.#sent?.take(id) ?? 'unknown';
    if (pending === 'late') {
      debug('%s: late reply to request %d dropped', this.#host.peer, id);
      this.#host.lateReply();
      return;
    }
    if (pending === 'unknown') {
      this.#invalid(new PulsarError('ERR_MALFORMED_MESSAGE', `a reply to request ${id}, which was never sent`));
      return;
    }
    let value: unknown;
    try {
      value = this.#settings.codec.decode(body);
    } catch (error) {
      pending.reject(new PulsarError('ERR_MALFORMED_MESSAGE', `the reply to request ${id} from ${this.#host.peer} does not decode: ${messageOf(error)}`, { cause: error }));
      return;
    }
    if (kind === EnvelopeKind.reply) pending.resolve(value);
    else pending.reject(remoteError(value, id, this.#host.peer));
  }

  /** An error reply; one that cannot leave either (a frame limit below its size) closes the connection. */
  #writeError(id: number, code: string, message: string): void {
    try {
      this.#write(EnvelopeKind.error, id, { code, message: message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message } satisfies ErrorBody);
    } catch (error) {
      this.#host.abort(new PulsarError('ERR_FRAME_TOO_LARGE', `${this.#host.peer}: the error reply to request ${id} (${code}) cannot be sent: ${messageOf(error)}`, { cause: error }));
    }
  }

  #write(kind: EnvelopeKind, id: number, value: unknown): void {
    this.#host.write(this.#payload(kind, id, value));
  }

  #payload(kind: EnvelopeKind, id: number, value: unknown): Uint8Array {
    return encodeMessage(this.#settings, kind, id, value);
  }
}

/** Longest message an error reply carries (a longer one is cut): an error quoting its input cannot outgrow a frame. */
const MAX_ERROR_MESSAGE = 1024;

/** A thrown value whose code and message may go to the other side: a string `code`, and not a Node system error. */
function isCodedError(error: unknown): error is { code: string } {
  if (typeof error !== 'object' || error === null) return false;
  const { code, errno, syscall } = error as { code?: unknown; errno?: unknown; syscall?: unknown };
  return typeof code === 'string' && code !== '' && errno === undefined && syscall === undefined;
}

/** What a schema threw or rejected with, as `ERR_INVALID_MESSAGE` unless it has a pulsar code (never without a code). */
function schemaFailure(error: unknown): PulsarError {
  if (error instanceof PulsarError) return error;
  return new PulsarError('ERR_INVALID_MESSAGE', `the schema failed: ${messageOf(error)}`, { cause: error });
}

/**
 * What `send()` puts in a frame for `value`, on either end: the bytes of a frame without `messages` (a string or
 * a `Uint8Array`), else a one-way message (in its envelope with `rpc`).
 * @throws {PulsarError} `ERR_INVALID_PAYLOAD` for what cannot be sent
 */
export function sendPayload(messages: MessageSettings | null, value: unknown): Uint8Array {
  return messages === null ? framePayload(value) : encodeMessage(messages, EnvelopeKind.message, 0, value);
}

/**
 * A frame's payload for `value`: with `rpc`, the envelope (`kind`, `id`) and the encoded body in one
 * buffer (a cancel has no body); without, the encoded body.
 * @throws {PulsarError} `ERR_INVALID_PAYLOAD` for a value the codec cannot encode (its error as `cause`)
 */
export function encodeMessage(settings: MessageSettings, kind: EnvelopeKind, id: number, value: unknown): Uint8Array {
  if (kind === EnvelopeKind.cancel) return encodeEnvelope(kind, id, '');
  const body = encodeBody(settings.codec, value);
  if (!settings.rpc) return typeof body === 'string' ? Buffer.from(body) : body;
  return encodeEnvelope(kind, id, body);
}

/**
 * What the codec makes of `value`.
 * @throws {PulsarError} `ERR_INVALID_PAYLOAD` for a value it cannot encode (its error as `cause`)
 */
function encodeBody(codec: MessageSettings['codec'], value: unknown): Uint8Array | string {
  try {
    return codec.encode(value);
  } catch (error) {
    throw cannotEncode(error);
  }
}

/** What a codec's encoder threw, as `send()` reports it: `ERR_INVALID_PAYLOAD` unless it has a pulsar code. */
function cannotEncode(error: unknown): PulsarError {
  if (error instanceof PulsarError) return error;
  return new PulsarError('ERR_INVALID_PAYLOAD', `the message codec cannot encode this value: ${messageOf(error)}`, { cause: error });
}

/** What a codec's decoder threw, as `ERR_MALFORMED_MESSAGE` (a message, or with `ctx` a request). */
function malformed(error: unknown, ctx: HandlerContext | null): PulsarError {
  if (error instanceof PulsarError && error.code === 'ERR_MALFORMED_MESSAGE') return error;
  return new PulsarError('ERR_MALFORMED_MESSAGE', `a ${ctx === null ? 'message' : 'request'} that does not decode: ${messageOf(error)}`, { cause: error });
}

/** The error an error reply's body stands for; a body that is not `{ code, message }` is a broken peer. */
function remoteError(body: unknown, id: number, peer: string): PulsarError {
  const { code, message } = (body ?? {}) as Partial<ErrorBody>;
  if (typeof code !== 'string' || typeof message !== 'string') {
    return new PulsarError('ERR_MALFORMED_MESSAGE', `the error reply to request ${id} from ${peer} is not { code, message }`);
  }
  return new RemoteError(code, message, `request ${id} to ${peer}`);
}
