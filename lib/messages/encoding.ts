import { RemoteError, PulsarError } from '../errors.js';
import { framePayload } from '../io/payload.js';
import { messageOf } from '../util/format.js';
import { encodeEnvelope, EnvelopeKind } from './envelope.js';
import { checkHeaders, type Headers } from './headers.js';
import { invalidOption } from '../util/validate.js';
import type { MessageSettings } from './settings.js';

/** What an error reply's body holds. */
export interface ErrorBody {
  code: string;
  message: string;
}

/** Longest message an error reply carries (a longer one is cut): an error quoting its input cannot outgrow a frame. */
export const MAX_ERROR_MESSAGE = 1024;

/** A thrown value whose code and message may go to the other side: a string `code`, and not a Node system error. */
export function isCodedError(error: unknown): error is { code: string } {
  if (typeof error !== 'object' || error === null) return false;
  const { code, errno, syscall } = error as { code?: unknown; errno?: unknown; syscall?: unknown };
  return typeof code === 'string' && code !== '' && errno === undefined && syscall === undefined;
}

/** What a schema threw or rejected with, as `ERR_INVALID_MESSAGE` unless it has a pulsar code (never without a code). */
export function schemaFailure(error: unknown): PulsarError {
  if (error instanceof PulsarError) return error;
  return new PulsarError('ERR_INVALID_MESSAGE', `the schema failed: ${messageOf(error)}`, { cause: error });
}

/** Options of `send()`. */
export interface SendOptions {
  /** Headers for the message (`rpc` only): the handler's `ctx.headers` on the other side. */
  headers?: Record<string, string>;
}

/**
 * What `send()` puts in a frame for `value`, on either end: the bytes of a frame without `messages` (a string or
 * a `Uint8Array`), else a one-way message (in its envelope with `rpc`, with headers when `options` give some).
 * @throws {PulsarError} `ERR_INVALID_PAYLOAD` for what cannot be sent; `ERR_INVALID_OPTION` for headers
 * that are not lowercase ASCII keys and string values within `headerLimits`, or headers without `rpc`
 */
export function sendPayload(messages: MessageSettings | null, value: unknown, options?: SendOptions): Uint8Array {
  if (messages === null) {
    if (options?.headers !== undefined) throw invalidOption('send()', 'headers', 'need rpc: true (and messages): plain frames carry none', options.headers);
    return framePayload(value);
  }
  const { tracing } = messages;
  if (options?.headers === undefined && tracing === null) return encodeMessage(messages, EnvelopeKind.message, 0, value);
  if (!messages.rpc) {
    if (options?.headers === undefined) return encodeMessage(messages, EnvelopeKind.message, 0, value);
    throw invalidOption('send()', 'headers', 'need rpc: true: a message carries headers in its envelope', options.headers);
  }
  let headers = checkHeaders('send()', options?.headers, messages.headerLimits);
  if (tracing !== null) {
    // The trace the message is sent from (a handler's span, say) travels with it, to each member of a broadcast too.
    const carried: Record<string, string> = { ...headers };
    tracing.inject(carried);
    headers = Object.keys(carried).length === 0 ? null : carried;
  }
  return encodeMessage(messages, EnvelopeKind.message, 0, value, headers);
}

/**
 * A frame's payload for `value`: with `rpc`, the envelope (`kind`, `id`) and the encoded body in one
 * buffer, with `headers` when given; without, the encoded body.
 * @throws {PulsarError} `ERR_INVALID_PAYLOAD` for a value the codec cannot encode (its error as `cause`)
 */
export function encodeMessage(settings: MessageSettings, kind: EnvelopeKind, id: number, value: unknown, headers: Headers | null = null): Uint8Array {
  const body = encodeBody(settings.codec, value);
  if (!settings.rpc) return typeof body === 'string' ? Buffer.from(body) : body;
  return encodeEnvelope(kind, id, body, headers);
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
export function cannotEncode(error: unknown): PulsarError {
  if (error instanceof PulsarError) return error;
  return new PulsarError('ERR_INVALID_PAYLOAD', `the message codec cannot encode this value: ${messageOf(error)}`, { cause: error });
}

/** What a codec's decoder threw, as `ERR_MALFORMED_MESSAGE` (`what`: a message, a request…). */
export function undecodable(error: unknown, what: string): PulsarError {
  if (error instanceof PulsarError && error.code === 'ERR_MALFORMED_MESSAGE') return error;
  return new PulsarError('ERR_MALFORMED_MESSAGE', `${what} that does not decode: ${messageOf(error)}`, { cause: error });
}

/** The error an error reply's body stands for; a body that is not `{ code, message }` is a broken peer. */
export function remoteError(body: unknown, id: number, peer: string): PulsarError {
  const { code, message } = (body ?? {}) as Partial<ErrorBody>;
  if (typeof code !== 'string' || typeof message !== 'string') {
    return new PulsarError('ERR_MALFORMED_MESSAGE', `the error reply to request ${id} from ${peer} is not { code, message }`);
  }
  return new RemoteError(code, message, `request ${id} to ${peer}`);
}
