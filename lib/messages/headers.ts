import { isUtf8 } from 'node:buffer';
import { PulsarError } from '../errors.js';
import { invalidOption } from '../util/validate.js';
import { varintLength } from '../codecs/varint.js';

/** Headers of a request, message or stream (SPEC section 18): lowercase ASCII keys, string values. */
export type Headers = Readonly<Record<string, string>>;

/** What a header block may hold, counted where it arrives (the `headerLimits` option). */
export interface HeaderLimits {
  /** Most headers in one frame. @default 32 */
  readonly count: number;
  /** Most bytes of one frame's header block (keys, values and their lengths). @default 4096 */
  readonly bytes: number;
}

/** The limits unless told otherwise: small, as HTTP/2's SETTINGS_MAX_HEADER_LIST_SIZE is usually set. */
export const DEFAULT_HEADER_LIMITS: HeaderLimits = Object.freeze({ count: 32, bytes: 4096 });

/** The headers of a frame that carries none: one shared object. */
export const NO_HEADERS: Headers = Object.freeze(Object.create(null) as Record<string, string>);

/** The header a deadline travels in: the caller's remaining milliseconds, in decimal. */
export const TIMEOUT_HEADER = 'pulsar-timeout';

/** A key: HTTP's token characters, lowercase (as HTTP/2 requires of field names). */
const KEY = /^[a-z0-9!#$%&'*+.^_`|~-]+$/;

/**
 * Checks headers about to leave, as `owner`'s option `option`, against `limits`.
 * @returns the headers to encode, or `null` for none
 * @throws {PulsarError} `ERR_INVALID_OPTION` for a key that is not lowercase ASCII, a value that is not a
 * string, or more headers (or bytes) than `limits` allow
 */
export function checkHeaders(owner: string, headers: unknown, limits: HeaderLimits): Headers | null {
  if (headers === undefined) return null;
  if (typeof headers !== 'object' || headers === null) throw invalidOption(owner, 'headers', 'must be an object of strings', headers);
  const entries = Object.entries(headers);
  if (entries.length === 0) return null;
  if (entries.length > limits.count) throw invalidOption(owner, 'headers', `must hold at most ${limits.count} headers`, entries.length);
  for (const [key, value] of entries) {
    if (!KEY.test(key)) throw invalidOption(owner, `headers.${key}`, 'must be a lowercase ASCII token (a-z, 0-9, -_.!#$%&\'*+^`|~)', key);
    if (typeof value !== 'string') throw invalidOption(owner, `headers.${key}`, 'must be a string', value);
  }
  const size = blockLength(headers as Headers);
  if (size > limits.bytes) throw invalidOption(owner, 'headers', `must take at most ${limits.bytes} bytes`, size);
  return headers as Headers;
}

/** Bytes of the header block's content (without its own length). */
function blockLength(headers: Headers): number {
  let size = 0;
  for (const key in headers) {
    const keyBytes = key.length; // ASCII
    const valueBytes = Buffer.byteLength(headers[key]!);
    size += varintLength(keyBytes) + keyBytes + varintLength(valueBytes) + valueBytes;
  }
  return size;
}

/** Bytes the header block takes in a frame: its length, then its content. */
export function headersLength(headers: Headers): number {
  const size = blockLength(headers);
  return varintLength(size) + size;
}

/** Writes the header block at `offset` of `frame` (room made with {@link headersLength}). @returns the offset after it */
export function writeHeaders(frame: Buffer, offset: number, headers: Headers): number {
  offset = writeVarint(frame, offset, blockLength(headers));
  for (const key in headers) {
    offset = writeVarint(frame, offset, key.length);
    offset += frame.write(key, offset, 'latin1');
    const value = headers[key]!;
    const valueBytes = Buffer.byteLength(value);
    offset = writeVarint(frame, offset, valueBytes);
    offset += frame.write(value, offset, valueBytes, 'utf8');
  }
  return offset;
}

/** Writes `value` as an unsigned LEB128 varint. @returns the offset after it */
export function writeVarint(frame: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    frame[offset++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  frame[offset++] = value;
  return offset;
}

/** A varint read from a frame, and where it ended. */
export interface VarintRead {
  /** The value. */
  value: number;
  /** The offset after it. */
  end: number;
}

/**
 * Reads an unsigned LEB128 varint of at most 7 bytes at `offset`, ending by `limit`.
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` naming `what` when it runs past `limit` or 7 bytes
 */
export function readVarint(frame: Buffer, offset: number, limit: number, what: string): VarintRead {
  let value = 0;
  let scale = 1;
  const start = offset;
  for (;;) {
    if (offset >= limit) throw malformed(`${what} runs past the end`);
    if (offset - start >= 7) throw malformed(`${what} is longer than 7 bytes`);
    const byte = frame[offset++]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return { value, end: offset };
    scale *= 0x80;
  }
}

/**
 * Reads the header block at `offset`, within `limits`.
 * @returns the headers and the offset after the block
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` for a block that runs past the frame, is over `limits`, has a
 * key that is not a lowercase ASCII token, a value that is not UTF-8, or a key twice
 */
export function readHeaders(frame: Buffer, offset: number, limits: HeaderLimits): { headers: Headers; end: number } {
  const length = readVarint(frame, offset, frame.length, 'the header block length');
  if (length.value > limits.bytes) throw malformed(`a header block of ${length.value} bytes (at most ${limits.bytes})`);
  const end = length.end + length.value;
  if (end > frame.length) throw malformed('the header block runs past the end of the frame');
  const headers = Object.create(null) as Record<string, string>;
  let count = 0;
  for (let at = length.end; at < end;) {
    if (++count > limits.count) throw malformed(`more than ${limits.count} headers`);
    const keyLength = readVarint(frame, at, end, 'a header key length');
    const keyEnd = keyLength.end + keyLength.value;
    if (keyEnd > end) throw malformed('a header key runs past the header block');
    const key = frame.toString('latin1', keyLength.end, keyEnd);
    if (!KEY.test(key)) throw malformed(`a header key that is not a lowercase ASCII token: ${JSON.stringify(key)}`);
    if (key in headers) throw malformed(`header '${key}' twice`);
    const valueLength = readVarint(frame, keyEnd, end, `header '${key}''s value length`);
    at = valueLength.end + valueLength.value;
    if (at > end) throw malformed(`header '${key}''s value runs past the header block`);
    const bytes = frame.subarray(valueLength.end, at);
    if (!isUtf8(bytes)) throw malformed(`header '${key}''s value is not UTF-8`);
    headers[key] = bytes.toString('utf8');
  }
  return { headers, end };
}

function malformed(reason: string): PulsarError {
  return new PulsarError('ERR_MALFORMED_MESSAGE', `malformed rpc frame: ${reason}`);
}
