import { checkInteger, checkOneOf, checkTimerMs, conflictingOption, invalidOption } from '../util/validate.js';
import type { FrameCodec } from '../codecs/types.js';
import type { MessageCodec } from './codec.js';
import { isStandardSchema, type StandardSchemaV1 } from './schema.js';

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
}

/** Options of a `request()`. */
export interface RequestOptions {
  /** Ms to wait for the reply; `0` waits as long as the connection lasts. @default the `requestTimeout` option */
  timeout?: number;
  /** Gives the request up when it aborts: rejects with `ERR_ABORTED`, and a cancel tells the other side. */
  signal?: AbortSignal;
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
}

/** The names of {@link MessageOptions}, for the owners' lists of known options. */
export const MESSAGE_OPTIONS: Record<keyof MessageOptions, true> = {
  messages: true, schema: true, rpc: true, onInvalid: true, maxInflightRequests: true, requestTimeout: true, answerAfterEnd: true,
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
}

/**
 * Validates the message options of `owner` (`PulsarServer`, `PulsarClient`): the settings, or `null`
 * for frames (no `messages`); the other options then make no sense and are refused. `frames`, the frame
 * codec given, must carry any byte for `rpc` and binary message codecs.
 */
export function resolveMessageSettings(owner: string, options: MessageOptions, frames: FrameCodec | undefined): MessageSettings | null {
  const { messages } = options;
  if (messages === undefined) {
    for (const name of ['schema', 'rpc', 'onInvalid', 'maxInflightRequests', 'answerAfterEnd'] as const) {
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
  };
}
