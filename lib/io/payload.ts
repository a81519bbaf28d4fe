import { PulsarError } from '../errors.js';

/**
 * A frame's payload from what `send()` (or a broadcast) was given, without `messages`: a string (as
 * UTF-8) or a `Uint8Array` (a `Buffer` among them); anything else is a programming error.
 */
export function framePayload(payload: unknown): Uint8Array {
  if (typeof payload === 'string') return Buffer.from(payload);
  if (payload instanceof Uint8Array) return payload;
  const type = payload === null ? 'null' : typeof payload;
  throw new PulsarError('ERR_INVALID_PAYLOAD', `send() takes a string or a Uint8Array (or, with messages, a value), got ${type}`);
}
