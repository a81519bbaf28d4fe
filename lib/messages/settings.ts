import { checkInteger, checkOneOf, checkTimerMs, conflictingOption, invalidOption } from '../util/validate.js';
import type { FrameCodec } from '../codecs/types.js';
import type { MessageCodec } from './codec.js';
import { isStandardSchema, type StandardSchemaV1 } from './schema.js';
import { DEFAULT_HEADER_LIMITS, type HeaderLimits, type Headers } from './headers.js';
import type { Tracing } from './tracing.js';

/**
 * What happens to a connection that sends a message that does not decode (`ERR_MALFORMED_MESSAGE`) or
 * that the schema refuses (`ERR_INVALID_MESSAGE`): `skip` reports it and goes on with the next;
 * `close` reports it and closes gracefully (answering what was read first).
 */
export type InvalidMessageAction = 'skip' | 'close';

/** What a handler gets besides the message and, on the server, the connection. */
export interface MessageContext {
  /** The request's id, or `undefined` for a one-way message (whose handler's return value is ignored). */
  readonly requestId: number | undefined;
  /** Whether it is a stream call: the handler answers with an `AsyncIterable` (an async generator) of items. */
  readonly streaming: boolean;
  /**
   * Aborts when the requester gives the request up (a cancel: its timeout or its `AbortSignal`), or when
   * the connection closes. Hand it to what the handler waits on (`fetch`, timers, queries) to stop early.
   */
  readonly signal: AbortSignal;
  /**
   * Aborts when the server stops serving (`close()`, after any `drainDelay`), or the client closes: a
   * handler waiting on application state (a long poll) answers early instead of holding the shutdown.
   */
  readonly closing: AbortSignal;
  /** The headers that came with the request, stream call or message ({@link Headers}); empty when none did. */
  readonly headers: Headers;
  /**
   * Epoch ms of the caller's deadline, when it sent one (`Infinity` otherwise): `signal` aborts then with
   * `ERR_REQUEST_TIMEOUT`. A request made with `{ parent: ctx }` passes on what is left of it.
   */
  readonly deadline: number;
}

/** Options of a `request()` or `call()`. */
export interface RequestOptions {
  /**
   * Ms to wait for the answer; `0` waits as long as the connection lasts. A timeout given here travels
   * to the other side as its deadline (`ctx.deadline`). @default the `requestTimeout` option (which does not travel)
   */
  timeout?: number;
  /** Gives the request up when it aborts: rejects with `ERR_ABORTED`, and a cancel tells the other side. */
  signal?: AbortSignal;
  /** Headers sent with it (lowercase ASCII keys, string values; within the other side's `headerLimits`). */
  headers?: Record<string, string>;
  /**
   * The context of the handler this call is made from: the call passes on what is left of its deadline
   * (as gRPC propagates deadlines), is cancelled with it, and with tracing its span is the parent.
   */
  parent?: MessageContext;
}

/** Options of a `stream()`: those of a request, and the flow control window. */
export interface StreamOptions extends RequestOptions {
  /**
   * Items the producer may send ahead of the loop (credit, granted again as they are taken): memory
   * held for the stream is at most `window` items. @default the `streamWindow` option (16)
   */
  window?: number;
  /** Ms the whole stream may take (`0`: no limit); travels as a deadline. @default 0 */
  timeout?: number;
}

/** The message options both ends share (see `PulsarServerOptions` and `PulsarClientOptions`). */
export interface MessageOptions {
  /** Encode and decode messages, one per frame (`json()`, `msgpack()` from `pulsar/msgpack`). @default none: frames */
  messages?: MessageCodec<never>;
  /** Validates every inbound message (any Standard Schema); overrides the codec's own `schema`. @default the codec's */
  schema?: StandardSchemaV1;
  /** Envelopes on every frame: requests answered by id, both ways (docs/protocol.md). Needs `messages`. @default false */
  rpc?: boolean;
  /** A message that does not decode or validate: skipped (reported), or the connection is closed. @default 'skip' */
  onInvalid?: InvalidMessageAction;
  /** Requests from the other side handled at once on one connection; beyond, `ERR_TOO_MANY_REQUESTS`. @default 1024 */
  maxInflightRequests?: number;
  /** Ms a `request()` waits for its reply unless told otherwise; `0` for no limit. @default 30000 */
  requestTimeout?: number;
  /**
   * With `rpc`, the other side's FIN (or reset) aborts the `ctx.signal` of the requests it sent that are
   * still running, at once, and their answers are not sent: a client that died is not worked for. `true`
   * keeps answering after a FIN, for peers that half-close and wait for their answers. Without `rpc`,
   * a FIN always lets what was read be answered. @default false
   */
  answerAfterEnd?: boolean;
  /** What headers a frame from the other side may carry: more is `ERR_MALFORMED_MESSAGE`. @default { count: 32, bytes: 4096 } */
  headerLimits?: Partial<HeaderLimits>;
  /** Items a `stream()` lets the producer send ahead of the loop, unless told otherwise. @default 16 */
  streamWindow?: number;
  /** Client and server spans of requests and streams, `traceparent` in headers: `openTelemetry()` from `pulsar/opentelemetry`. @default none */
  tracing?: Tracing;
}

/** The names of {@link MessageOptions}, for the owners' lists of known options. */
export const MESSAGE_OPTIONS: Record<keyof MessageOptions, true> = {
  messages: true, schema: true, rpc: true, onInvalid: true, maxInflightRequests: true, requestTimeout: true, answerAfterEnd: true,
  headerLimits: true, streamWindow: true, tracing: true,
};

/** {@link MessageOptions} resolved: what a message session runs with. */
export interface MessageSettings {
  /** The codec, typed loosely: the session moves values it does not look into. */
  readonly codec: MessageCodec<unknown>;
  /** The schema in force, or `null`. */
  readonly schema: StandardSchemaV1 | null;
  /** Envelopes on every frame: requests answered by id. */
  readonly rpc: boolean;
  /** What bad input does to the connection. */
  readonly onInvalid: InvalidMessageAction;
  /** Requests from the other side handled at once on one connection. */
  readonly maxInflightRequests: number;
  /** `0`: none. */
  readonly requestTimeout: number;
  /** With `rpc`: keep answering the other side's requests after its FIN. */
  readonly answerAfterEnd: boolean;
  /** Held to what arrives. */
  readonly headerLimits: HeaderLimits;
  /** A stream's window unless its call says otherwise. */
  readonly streamWindow: number;
  /** Tracing, or `null`. */
  readonly tracing: Tracing | null;
}

/**
 * Validates the message options of `owner` (`PulsarServer`, `PulsarClient`): the settings, or `null`
 * for frames (no `messages`); the other options then make no sense and are refused. `frames`, the frame
 * codec given, must carry any byte for `rpc` and binary message codecs.
 */
export function resolveMessageSettings(owner: string, options: MessageOptions, frames: FrameCodec | undefined): MessageSettings | null {
  const { messages } = options;
  if (messages === undefined) {
    for (const name of ['schema', 'rpc', 'onInvalid', 'maxInflightRequests', 'answerAfterEnd', 'headerLimits', 'streamWindow', 'tracing'] as const) {
      if (options[name] !== undefined) throw conflictingOption(owner, name, 'needs messages (json(), or msgpack() from pulsar/msgpack)');
    }
    return null;
  }
  if (typeof messages !== 'object' || messages === null || typeof messages.encode !== 'function' || typeof messages.decode !== 'function') {
    throw invalidOption(owner, 'messages', 'must be a MessageCodec ({ encode, decode }), such as json()', messages);
  }
  const schema = options.schema ?? messages.schema ?? null;
  if (schema !== null && !isStandardSchema(schema)) throw invalidOption(owner, 'schema', 'must be a Standard Schema (zod, valibot, arktype…)', schema);
  const rpc = options.rpc ?? false;
  if (typeof rpc !== 'boolean') throw invalidOption(owner, 'rpc', 'must be a boolean', rpc);
  if (frames?.binarySafe === false && (rpc || messages.binary === true)) {
    // An rpc envelope's id (request 10 is byte 0x0a) or a MessagePack value can hold the delimiter.
    const name = rpc ? 'rpc' : 'messages';
    throw conflictingOption(owner, name, `cannot travel over ${frames.constructor.name}: its frames end at a delimiter, and ${rpc ? 'request ids' : 'binary messages'} can hold any byte (use a length-prefixed codec)`);
  }
  const answerAfterEnd = options.answerAfterEnd ?? false;
  if (typeof answerAfterEnd !== 'boolean') throw invalidOption(owner, 'answerAfterEnd', 'must be a boolean', answerAfterEnd);
  return {
    codec: messages as MessageCodec<unknown>,
    schema,
    rpc,
    onInvalid: checkOneOf(owner, 'onInvalid', options.onInvalid ?? 'skip', ['skip', 'close'] as const),
    maxInflightRequests: checkInteger(owner, 'maxInflightRequests', options.maxInflightRequests ?? 1024, 1),
    requestTimeout: checkTimerMs(owner, 'requestTimeout', options.requestTimeout ?? 30_000),
    answerAfterEnd,
    headerLimits: resolveHeaderLimits(owner, options.headerLimits),
    streamWindow: checkInteger(owner, 'streamWindow', options.streamWindow ?? 16, 1),
    tracing: resolveTracing(owner, options.tracing),
  };
}

function resolveHeaderLimits(owner: string, limits: MessageOptions['headerLimits']): HeaderLimits {
  if (limits === undefined) return DEFAULT_HEADER_LIMITS;
  if (typeof limits !== 'object' || limits === null) throw invalidOption(owner, 'headerLimits', 'must be { count?, bytes? }', limits);
  return Object.freeze({
    count: checkInteger(owner, 'headerLimits.count', limits.count ?? DEFAULT_HEADER_LIMITS.count, 0),
    bytes: checkInteger(owner, 'headerLimits.bytes', limits.bytes ?? DEFAULT_HEADER_LIMITS.bytes, 0),
  });
}

function resolveTracing(owner: string, tracing: Tracing | undefined): Tracing | null {
  if (tracing === undefined) return null;
  if (typeof tracing?.call !== 'function' || typeof tracing.answer !== 'function' || typeof tracing.inject !== 'function') throw invalidOption(owner, 'tracing', 'must be made by openTelemetry() (pulsar/opentelemetry), or be { call, answer, inject }', tracing);
  return tracing;
}
