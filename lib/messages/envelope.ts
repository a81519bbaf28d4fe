import { PulsarError } from '../errors.js';

/**
 * The kinds of frame in `rpc` mode (docs/protocol.md): one byte first in every frame.
 * `message` (0) carries a one-way message; `request` (1) one that wants an answer, by id; `reply` (2) the
 * answer; `error` (3) an error answer, its body `{ code, message }`; `cancel` (4) gives a request up.
 */
export const EnvelopeKind = {
  /** A one-way message: no id, no answer. */
  message: 0,
  /** A request: wants one reply or error reply with its id. */
  request: 1,
  /** The answer to the request with its id. */
  reply: 2,
  /** An error answer to the request with its id; the body is `{ code, message }`. */
  error: 3,
  /** The requester gave the request with its id up; no body. */
  cancel: 4,
} as const;

/** One of {@link EnvelopeKind}'s values. */
export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

/** A frame of `rpc` mode, taken apart. */
export interface Envelope {
  /** What the frame is. */
  readonly kind: EnvelopeKind;
  /** The request id (kinds 1–4); `0` for a message. */
  readonly id: number;
  /** The body, as `messages` encoded it (empty for a cancel); a view into the frame. */
  readonly body: Buffer;
}

/** Largest request id: ids are unsigned LEB128 varints of at most 7 bytes here, and safe integers in JavaScript. */
export const MAX_REQUEST_ID = 2 ** 49 - 1;

/** Bytes the varint of `id` takes. */
function idLength(id: number): number {
  let length = 1;
  for (let rest = Math.floor(id / 128); rest > 0; rest = Math.floor(rest / 128)) length++;
  return length;
}

/**
 * The frame for `kind`, `id` and an encoded `body`: the kind byte, then (kinds 1–4) the id as an unsigned
 * LEB128 varint, then the body (a string is written as UTF-8). One allocation.
 */
export function encodeEnvelope(kind: EnvelopeKind, id: number, body: Uint8Array | string): Buffer {
  const head = kind === EnvelopeKind.message ? 1 : 1 + idLength(id);
  const bodyLength = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const frame = Buffer.allocUnsafe(head + bodyLength);
  frame[0] = kind;
  if (kind !== EnvelopeKind.message) {
    let offset = 1;
    let rest = id;
    while (rest >= 128) {
      frame[offset++] = (rest % 128) | 0x80;
      rest = Math.floor(rest / 128);
    }
    frame[offset] = rest;
  }
  if (typeof body === 'string') frame.write(body, head, bodyLength, 'utf8');
  else frame.set(body, head);
  return frame;
}

/**
 * Takes an `rpc` frame apart.
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` for an empty frame, an unknown kind, a varint that runs past
 * the frame or past 7 bytes, or a cancel with a body
 */
export function decodeEnvelope(frame: Buffer): Envelope {
  if (frame.length === 0) throw malformed('an empty frame has no kind byte');
  const kind = frame[0]!;
  if (kind > EnvelopeKind.cancel) throw malformed(`unknown kind ${kind} (0 message, 1 request, 2 reply, 3 error, 4 cancel)`);
  if (kind === EnvelopeKind.message) return { kind, id: 0, body: frame.subarray(1) };
  let id = 0;
  let scale = 1;
  let offset = 1;
  for (;;) {
    if (offset >= frame.length) throw malformed('the request id runs past the end of the frame');
    if (offset > 7) throw malformed('the request id is longer than 7 bytes');
    const byte = frame[offset++]!;
    id += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) break;
    scale *= 128;
  }
  if (kind === EnvelopeKind.cancel && offset !== frame.length) throw malformed('a cancel carries no body');
  return { kind: kind as EnvelopeKind, id, body: frame.subarray(offset) };
}

function malformed(reason: string): PulsarError {
  return new PulsarError('ERR_MALFORMED_MESSAGE', `malformed rpc frame: ${reason}`);
}
