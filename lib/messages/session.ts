import createDebug from 'debug';
import { aboutClient, PulsarError } from '../errors.js';
import { checkInteger } from '../util/validate.js';
import { Answers, isAsyncIterable } from './answers.js';
import { HandlerContext } from './context.js';
import { encodeMessage, remoteError, schemaFailure, undecodable } from './encoding.js';
import { decodeCredit, decodeEnvelope, encodeCredit, encodeEnvelope, EnvelopeKind, kindName, type Envelope } from './envelope.js';
import { NO_HEADERS, type Headers } from './headers.js';
import { InboundStream, type ItemCheck } from './inbound-stream.js';
import { OutboundStream, returnIterator } from './outbound-stream.js';
import { PendingRequests, type Settle } from './pending.js';
import { InvalidMessageError, validate } from './schema.js';
import type { MessageContext, MessageSettings, RequestOptions, StreamOptions } from './settings.js';
import { tracedName } from './tracing.js';
import { outgoing, traced } from './outgoing.js';

export { encodeMessage, sendPayload } from './encoding.js';

const debug = createDebug('pulsar:messages:trace');

/** What a message session needs from the end it serves (a server's connection, a client). */
export interface SessionHost {
  /** Names the other side, for errors and logs. */
  readonly peer: string;
  /**
   * Sends one frame's payload (the session made it); `now`: at once, not with the rest of the tick's (a credit).
   * @returns `false` when the socket's buffer is full (or the frame was dropped)
   */
  write(payload: Uint8Array, now?: boolean): boolean;
  /** Resolves when the socket's buffer has drained (what a stream's producer waits on after a `false`). */
  drained(): Promise<void>;
  /** A one-way message came, decoded and validated. A returned promise is the host's to watch. */
  message(message: unknown, ctx: MessageContext): unknown;
  /** Answers a request or stream call: the reply (or an `AsyncIterable` of items), or a promise of it; a throw is an error reply. `null`: nothing answers here. */
  readonly answer: ((message: unknown, ctx: MessageContext) => unknown) | null;
  /** The other side sent something wrong (`ERR_MALFORMED_MESSAGE`, `ERR_INVALID_MESSAGE`, naming it): report it, close if so set. */
  invalid(error: PulsarError): void;
  /**
   * The connection cannot go on (`ERR_DUPLICATE_REQUEST` or `ERR_FLOW_CONTROL` from the other side, or an
   * answer that cannot be sent at all): report it and end the connection at once, as HTTP/2 ends one on a
   * connection error.
   */
  abort(error: PulsarError): void;
  /** A request handler failed with an error without a `code`: a bug, reported (the requester got `ERR_HANDLER`). */
  handlerFailed(error: PulsarError): void;
  /** A reply came after its request gave up, and was dropped. */
  lateReply(): void;
  /** Aborts when the end it serves stops serving (what handlers get as `ctx.closing`). */
  readonly closing: AbortSignal;
}

/**
 * The message layer of one connection (SPEC sections 12 and 18): decodes and validates inbound messages,
 * and with `rpc` takes every frame's envelope apart and keeps the calls in flight both ways: those this
 * side made (requests matched to their replies by id, streams read under our credit, uploads pumped under
 * theirs; timed out, cancelled) and those it answers ({@link Answers}).
 */
export class MessageSession {
  readonly #settings: MessageSettings;
  readonly #host: SessionHost;
  /** Calls made, waiting for their answers; made by the first. */
  #sent: PendingRequests | undefined;
  /** Calls being answered. */
  readonly #answers: Answers;
  /** The context of one-way messages without headers; made by the first. */
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
    this.#answers = new Answers(settings, {
      get peer() {
        return host.peer;
      },
      closing: host.closing,
      answer: host.answer,
      write: (kind, id, value) => host.write(encodeMessage(settings, kind, id, value)),
      drained: () => host.drained(),
      writeRaw: (payload, now) => host.write(payload, now),
      handlerFailed: (error) => host.handlerFailed(error),
      abort: (error) => host.abort(error),
    });
  }

  /** Whether frames carry envelopes: requests and streams can be made. */
  get rpc(): boolean {
    return this.#settings.rpc;
  }

  /** Replies that came after their request had given up (timeout, abort): dropped, counted here. */
  get lateReplies(): number {
    return this.#sent?.late ?? 0;
  }

  /**
   * Sends a request (`rpc` only) and resolves with its reply, matched by id; with `upload`, its items
   * follow under the other side's credit.
   * @throws {PulsarError} (rejects) `ERR_REQUEST_TIMEOUT`, `ERR_ABORTED`, `ERR_CONNECTION_CLOSED`,
   * `ERR_REMOTE` (a {@link RemoteError}), `ERR_MALFORMED_MESSAGE` (a reply that does not decode)
   */
  request(value: unknown, options: RequestOptions = {}, upload?: AsyncIterable<unknown>): Promise<unknown> {
    try {
      const call = outgoing(this.#settings, this.#checkOpen(), 'request()', 'request', value, options, this.#settings.requestTimeout);
      const sent = this.#sentTable();
      const id = sent.nextId();
      // Written before it waits: a frame the codec refuses throws here and leaves nothing pending (no reply
      // can come before this function returns).
      this.#host.write(encodeMessage(this.#settings, EnvelopeKind.request, id, value, call.headers));
      if (upload === undefined && call.span === undefined) return sent.wait(id, call.timeout, call.signal);
      return new Promise((resolve, reject) => sent.track(id, traced({ resolve, reject }, call.span), call.timeout, call.signal, { stream: undefined, upload: upload && this.#upload(id, upload) }));
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /**
   * Calls a stream (`rpc` only): its items, as they come, under a window of credit. What fails later (the
   * producer, the deadline, the connection) ends the loop with its error; leaving the loop cancels the stream.
   * @throws {PulsarError} `ERR_CONNECTION_CLOSED`, `ERR_INVALID_OPTION`, `ERR_ABORTED`, `ERR_INVALID_PAYLOAD`: the call was not made
   */
  stream(value: unknown, options: StreamOptions = {}, check: ItemCheck | null = null, upload?: AsyncIterable<unknown>): InboundStream {
    const window = options.window === undefined ? this.#settings.streamWindow : checkInteger('stream()', 'window', options.window, 1);
    const call = outgoing(this.#settings, this.#checkOpen(), 'stream()', 'stream', value, options, 0);
    const sent = this.#sentTable();
    const id = sent.nextId();
    const reader = new InboundStream({
      grant: (count) => this.#host.write(encodeCredit(EnvelopeKind.credit, id, count), true),
      leave: () => sent.giveUp(id, new PulsarError('ERR_ABORTED', `stream ${id} to ${this.#host.peer}: the loop left`)),
    }, window, check);
    this.#host.write(encodeMessage(this.#settings, EnvelopeKind.stream, id, value, call.headers));
    sent.track(id, traced({ resolve: () => reader.finish(), reject: (error) => reader.finish(error) }, call.span), call.timeout, call.signal, { stream: reader, upload: upload && this.#upload(id, upload) });
    reader.open(); // the first window goes right after the call
    return reader;
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
        this.#invalid(undecodable(error, 'a message'));
        return undefined;
      }
      return this.#message(value, this.#messageContextFor(NO_HEADERS));
    }
    if (!settings.rpc) return this.#inbound(frame, null, NO_HEADERS);
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(frame, settings.headerLimits);
    } catch (error) {
      this.#invalid(error as PulsarError);
      return undefined;
    }
    const { kind, id, body } = envelope;
    switch (kind) {
      case EnvelopeKind.message:
        return this.#inbound(body, null, envelope.headers);
      case EnvelopeKind.request:
      case EnvelopeKind.stream:
        return this.#call(envelope);
      case EnvelopeKind.cancel:
        this.#answers.cancel(id);
        return undefined;
      case EnvelopeKind.credit:
        this.#withCredit(body, (count) => this.#answers.credit(id, count));
        return undefined;
      case EnvelopeKind.uploadItem:
      case EnvelopeKind.uploadEnd:
        this.#uploaded(envelope);
        return undefined;
      case EnvelopeKind.uploadCredit:
        this.#withCredit(body, (count) => {
          const parts = this.#sent?.parts(id) ?? 'unknown';
          if (typeof parts === 'object' && parts.upload !== undefined) parts.upload.grant(count);
          else if (parts !== 'late') this.#invalid(new PulsarError('ERR_MALFORMED_MESSAGE', `upload credit for call ${id}, which has no upload`));
        });
        return undefined;
      default:
        this.#answered(envelope);
        return undefined;
    }
  }

  /**
   * Nothing more will be read (the connection is closing): every call made fails at once with
   * `ERR_CONNECTION_CLOSED`, and no new one is made; the requests being answered go on, the streams
   * (and the requests reading an upload) are cancelled. Idempotent.
   */
  stopReading(): void {
    if (this.#closed !== undefined) return;
    this.#closed = new PulsarError('ERR_CONNECTION_CLOSED', `the connection to ${this.#host.peer} is closing: no reply could be read`);
    this.#sent?.failAll(() => new PulsarError('ERR_CONNECTION_CLOSED', `the connection to ${this.#host.peer} closed before the reply`));
    this.#answers.stopStreams(this.#closed); // no more credit (or upload) can be read: they would wait for nothing
  }

  /**
   * The other side sent its FIN. With `rpc` (unless `answerAfterEnd`), it is taken as gone: the calls
   * it made that are running have their signals aborted and will not be answered (see {@link close}).
   */
  peerEnded(): void {
    if (this.#settings.rpc && !this.#settings.answerAfterEnd) this.close();
  }

  /**
   * The connection is gone: every call made fails at once with `ERR_CONNECTION_CLOSED`, and the signals
   * of the calls being answered (and of one-way messages) abort, their streams stopped. Idempotent.
   */
  close(): void {
    this.stopReading();
    const closed = new PulsarError('ERR_CONNECTION_CLOSED', `the connection to ${this.#host.peer} closed`);
    this.#answers.abandonAll(closed);
    this.#messageContext?.abandon(closed);
  }

  /** The other side's name, once it is sure calls can still be made. @throws {PulsarError} `ERR_CONNECTION_CLOSED` */
  #checkOpen(): string {
    if (this.#closed !== undefined) throw this.#closed;
    return this.#host.peer;
  }

  #sentTable(): PendingRequests {
    if (this.#closed !== undefined) throw this.#closed;
    return (this.#sent ??= new PendingRequests({ peer: this.#host.peer, gaveUp: (id) => this.#host.write(encodeEnvelope(EnvelopeKind.cancel, id, '')) }));
  }

  /** Pumps `upload` as call `id`'s input once the other side grants credit; its failure gives the call up with it. */
  #upload(id: number, upload: AsyncIterable<unknown>): OutboundStream {
    const sent = this.#sent!;
    return new OutboundStream(upload, {
      item: (value) => this.#host.write(encodeMessage(this.#settings, EnvelopeKind.uploadItem, id, value)),
      drained: () => this.#host.drained(),
      end: () => void this.#host.write(encodeEnvelope(EnvelopeKind.uploadEnd, id, '')),
      failed: (error) => sent.giveUp(id, error instanceof Error ? error : new PulsarError('ERR_ABORTED', `the upload of call ${id} failed: ${String(error)}`, { cause: error })),
    });
  }

  /** A request or a stream call: bounded, decoded, validated, answered. */
  #call({ kind, id, headers, body }: Envelope): unknown {
    const answers = this.#answers;
    if (answers.has(id)) {
      // HTTP/2 (RFC 9113 §5.1.1) makes a reused stream id a connection error: two answers with one id could
      // not be told apart, and the first handler would escape the in-flight bound and its cancel.
      this.#host.abort(aboutClient(new PulsarError('ERR_DUPLICATE_REQUEST', `request id ${id} reused while that request is still in flight`), this.#host.peer));
      return undefined;
    }
    const { maxInflightRequests } = this.#settings;
    if (answers.size >= maxInflightRequests) {
      debug('%s: request %d refused, %d in flight', this.#host.peer, id, maxInflightRequests);
      answers.writeError(id, 'ERR_TOO_MANY_REQUESTS', `more than ${maxInflightRequests} requests in flight on this connection`);
      return undefined;
    }
    return this.#inbound(body, answers.context(id, kind, headers), headers);
  }

  /** Decodes and validates a message (`ctx` `null`) or a call, then hands it on. */
  #inbound(body: Buffer, ctx: HandlerContext | null, headers: Headers): unknown {
    let value: unknown;
    try {
      value = this.#settings.codec.decode(body);
    } catch (error) {
      return this.#badInput(ctx, undecodable(error, ctx === null ? 'a message' : 'a request'));
    }
    const { schema } = this.#settings;
    if (schema === null) return this.#handle(value, ctx, headers);
    let checked: unknown;
    try {
      checked = validate(schema, value);
    } catch (error) {
      return this.#badInput(ctx, schemaFailure(error));
    }
    if (!(checked instanceof Promise)) return this.#handle(checked, ctx, headers);
    if (ctx !== null) this.#answers.hold(ctx); // in flight while it validates
    return checked.then((valid) => this.#handle(valid, ctx, headers), (error: unknown) => this.#badInput(ctx, schemaFailure(error)));
  }

  /** Reports bad input, and answers a call that brought it with its code, so that its caller fails at once. */
  #badInput(ctx: HandlerContext | null, error: PulsarError): undefined {
    if (ctx !== null) this.#answers.refuse(ctx, error.code, error.message);
    this.#invalid(error);
    return undefined;
  }

  /** Reports bad input from the other side, naming it (and keeping a schema's issues). */
  #invalid(error: PulsarError): void {
    const peer = this.#host.peer;
    this.#host.invalid(error instanceof InvalidMessageError ? new InvalidMessageError(`${peer}: ${error.message}`, error.issues) : aboutClient(error, peer));
  }

  #handle(value: unknown, ctx: HandlerContext | null, headers: Headers): unknown {
    return ctx === null ? this.#message(value, this.#messageContextFor(headers)) : this.#answers.answer(value, ctx);
  }

  /** A one-way message to the host; a handler that streams is refused (nobody reads its items). */
  #message(value: unknown, ctx: HandlerContext): unknown {
    const { tracing } = this.#settings;
    const span = tracing === null || ctx.headers === NO_HEADERS ? undefined : tracing.answer(tracedName('message', value), 'message', ctx.headers);
    const result = span === undefined ? this.#host.message(value, ctx) : span.run(() => this.#host.message(value, ctx));
    span?.end();
    if (!isAsyncIterable(result)) return result;
    returnIterator(result[Symbol.asyncIterator]()); // nobody reads it
    this.#host.handlerFailed(aboutClient(new PulsarError('ERR_STREAM_MISMATCH', 'a one-way message met a handler that streams (call it with stream())'), this.#host.peer));
    return undefined;
  }

  #messageContextFor(headers: Headers): HandlerContext {
    if (headers === NO_HEADERS) return (this.#messageContext ??= new HandlerContext(undefined, this.#host.closing));
    return new HandlerContext(undefined, this.#host.closing, headers);
  }

  /** A credit frame's count handed to `grant`; a broken one is the other side's bad input. */
  #withCredit(body: Buffer, grant: (count: number) => void): void {
    try {
      grant(decodeCredit(body));
    } catch (error) {
      this.#invalid(error as PulsarError);
    }
  }

  /** An item or the end of a call's upload, for the side answering it. */
  #uploaded({ kind, id, body }: Envelope): void {
    const upload = this.#answers.get(id)?.upload;
    if (upload === undefined) {
      // Its call was answered (what the caller sent within its credit is still in flight), or never asked for one.
      debug('%s: upload frame for call %d dropped', this.#host.peer, id);
      return;
    }
    if (kind === EnvelopeKind.uploadEnd) {
      upload.finish();
      return;
    }
    this.#item(upload, id, body);
  }

  /** An item for `stream`: decoded, and held to its credit (past it, the connection ends: `ERR_FLOW_CONTROL`). */
  #item(stream: InboundStream, id: number, body: Buffer): void {
    let value: unknown;
    try {
      value = this.#settings.codec.decode(body);
    } catch (error) {
      const failure = undecodable(error, `an item of stream ${id}`);
      stream.finish(failure);
      this.#invalid(failure);
      return;
    }
    if (!stream.push(value)) {
      this.#host.abort(aboutClient(new PulsarError('ERR_FLOW_CONTROL', `stream ${id}: an item past the credit granted`), this.#host.peer));
    }
  }

  /** A reply, an error reply, an item or an end: for the call it answers, if it still waits. */
  #answered(envelope: Envelope): void {
    const { kind, id, body } = envelope;
    const parts = this.#sent?.parts(id) ?? 'unknown';
    if (parts === 'late') {
      if (kind !== EnvelopeKind.reply && kind !== EnvelopeKind.error) return; // a stream's tail, after a cancel
      debug('%s: late reply to request %d dropped', this.#host.peer, id);
      this.#sent!.late++;
      this.#host.lateReply();
      return;
    }
    const streaming = typeof parts === 'object' && parts.stream !== undefined;
    if (parts === 'unknown' || (kind === EnvelopeKind.reply && streaming) || ((kind === EnvelopeKind.item || kind === EnvelopeKind.end) && !streaming)) {
      this.#invalid(new PulsarError('ERR_MALFORMED_MESSAGE', `${kindName(kind)} for call ${id}, ${parts === 'unknown' ? 'which was never made' : `which is ${streaming ? 'a stream' : 'a request'}`}`));
      return;
    }
    if (kind === EnvelopeKind.item) {
      this.#item(parts.stream!, id, body);
      return;
    }
    const pending = this.#sent!.take(id) as Settle;
    if (kind === EnvelopeKind.end) {
      pending.resolve(undefined);
      return;
    }
    let value: unknown;
    try {
      value = this.#settings.codec.decode(body);
    } catch (error) {
      pending.reject(new PulsarError('ERR_MALFORMED_MESSAGE', `the reply to request ${id} from ${this.#host.peer} does not decode: ${(error as Error)?.message}`, { cause: error }));
      return;
    }
    if (kind === EnvelopeKind.reply) pending.resolve(value);
    else pending.reject(remoteError(value, id, this.#host.peer));
  }
}
