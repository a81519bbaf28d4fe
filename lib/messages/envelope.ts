import { PulsarError } from '../errors.js';
import { varintLength } from '../codecs/varint.js';
import { DEFAULT_HEADER_LIMITS, headersLength, NO_HEADERS, readHeaders, readVarint, writeHeaders, writeVarint, type HeaderLimits, type Headers } from './headers.js';

/**
 * The kinds of frame in `rpc` mode (docs/protocol.md): the low 7 bits of the byte first in every frame
 * (the top bit, {@link HEADERS_FLAG}, says headers follow the id). Ids belong to the side that calls:
 * kinds 1, 4, 5, 8, 9 and 10 travel from the caller, carrying its id; 2, 3, 6, 7 and 11 come back with it.
 * No kind is `0x48`, a heartbeat's first byte.
 */
export const EnvelopeKind = {
  /** A one-way message: no id, no answer. */
  message: 0,
  /** A request: wants one reply or error reply with its id. */
  request: 1,
  /** The answer to the request with its id. */
  reply: 2,
  /** An error answer to the request or stream call with its id; the body is `{ code, message }`. */
  error: 3,
  /** The caller gave the request or stream with its id up; no body. */
  cancel: 4,
  /** A stream call: wants items (6), then an end (7) or an error (3). */
  stream: 5,
  /** One item of the stream with its id. */
  item: 6,
  /** The stream with its id has no more items; no body. */
  end: 7,
  /** The caller may take this many more items of its stream: the body is a varint count. */
  credit: 8,
  /** One item of the caller's upload (the input of its call with that id). */
  uploadItem: 9,
  /** The caller's upload has no more items; no body. */
  uploadEnd: 10,
  /** The side answering takes this many more items of the caller's upload: the body is a varint count. */
  uploadCredit: 11,
} as const;

/** One of {@link EnvelopeKind}'s values. */
export type EnvelopeKind = (typeof EnvelopeKind)[keyof typeof EnvelopeKind];

/** Set in the kind byte when a header block follows the id (or the kind byte, for a message). */
export const HEADERS_FLAG = 0x80;

/** The highest kind. */
const LAST_KIND = EnvelopeKind.uploadCredit;

/** Kinds with no body: a cancel, the end of a stream or an upload. */
const BODILESS: ReadonlySet<number> = new Set([EnvelopeKind.cancel, EnvelopeKind.end, EnvelopeKind.uploadEnd]);

/** A frame of `rpc` mode, taken apart. */
export interface Envelope {
  /** What the frame is. */
  readonly kind: EnvelopeKind;
  /** The id (every kind but messages); `0` for a message. */
  readonly id: number;
  /** Its headers (an empty object when it has none). */
  readonly headers: Headers;
  /** The body, as `messages` encoded it (empty for a cancel or an end); a view into the frame. */
  readonly body: Buffer;
}

/** Largest request id: ids are unsigned LEB128 varints of at most 7 bytes here, and safe integers in JavaScript. */
export const MAX_REQUEST_ID = 2 ** 49 - 1;

/**
 * The frame for `kind`, `id`, `headers` (or `null`) and an encoded `body`: the kind byte (with
 * {@link HEADERS_FLAG} when there are headers), then (every kind but a message) the id as an unsigned
 * LEB128 varint, then the header block, then the body (a string is written as UTF-8). One allocation.
 */
export function encodeEnvelope(kind: EnvelopeKind, id: number, body: Uint8Array | string, headers: Headers | null = null): Buffer {
  let head = kind === EnvelopeKind.message ? 1 : 1 + varintLength(id);
  if (headers !== null) head += headersLength(headers);
  const bodyLength = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  const frame = Buffer.allocUnsafe(head + bodyLength);
  frame[0] = headers === null ? kind : kind | HEADERS_FLAG;
  let offset = kind === EnvelopeKind.message ? 1 : writeVarint(frame, 1, id);
  if (headers !== null) offset = writeHeaders(frame, offset, headers);
  if (typeof body === 'string') frame.write(body, offset, bodyLength, 'utf8');
  else frame.set(body, offset);
  return frame;
}

/** A credit frame (`kind` {@link EnvelopeKind.credit} or {@link EnvelopeKind.uploadCredit}): the count as a varint body. */
export function encodeCredit(kind: typeof EnvelopeKind.credit | typeof EnvelopeKind.uploadCredit, id: number, count: number): Buffer {
  const frame = Buffer.allocUnsafe(1 + varintLength(id) + varintLength(count));
  frame[0] = kind;
  writeVarint(frame, writeVarint(frame, 1, id), count);
  return frame;
}

/**
 * The count of a credit frame's body.
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` for a body that is not one varint above 0
 */
export function decodeCredit(body: Buffer): number {
  const { value, end } = readVarint(body, 0, body.length, 'the credit');
  if (end !== body.length || value === 0) throw malformed('a credit is one varint above 0');
  return value;
}

/**
 * Takes an `rpc` frame apart; headers are held to `limits`.
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` for an empty frame, an unknown kind, an id that runs past
 * the frame or past 7 bytes, a broken or oversized header block, or a cancel or end with a body
 */
export function decodeEnvelope(frame: Buffer, limits: HeaderLimits = DEFAULT_HEADER_LIMITS): Envelope {
  if (frame.length === 0) throw malformed('an empty frame has no kind byte');
  const first = frame[0]!;
  const kind = (first & ~HEADERS_FLAG) as EnvelopeKind;
  if (kind > LAST_KIND) throw malformed(`unknown kind ${kind} (0 message, 1 request, 2 reply, 3 error, 4 cancel, 5–11 streams)`);
  let id = 0;
  let offset = 1;
  if (kind !== EnvelopeKind.message) {
    // The id, read here rather than by readVarint(): this runs for every frame, and makes no object.
    for (let scale = 1; ; scale *= 128) {
      if (offset >= frame.length) throw malformed('the request id runs past the end of the frame');
      if (offset > 7) throw malformed('the request id is longer than 7 bytes');
      const byte = frame[offset++]!;
      id += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) break;
    }
  }
  let headers = NO_HEADERS;
  if ((first & HEADERS_FLAG) !== 0) ({ headers, end: offset } = readHeaders(frame, offset, limits));
  if (BODILESS.has(kind) && offset !== frame.length) throw malformed(`a ${kind === EnvelopeKind.cancel ? 'cancel' : 'stream end'} carries no body`);
  return { kind, id, headers, body: frame.subarray(offset) };
}

/** How an error names a frame that answers a call: a reply, an error reply, an item, a stream end. */
export function kindName(kind: EnvelopeKind): string {
  return kind === EnvelopeKind.reply ? 'a reply' : kind === EnvelopeKind.error ? 'an error reply' : kind === EnvelopeKind.item ? 'an item' : 'a stream end';
}

function malformed(reason: string): PulsarError {
  return new PulsarError('ERR_MALFORMED_MESSAGE', `malformed rpc frame: ${reason}`);
}
