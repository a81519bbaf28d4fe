import { PulsarError } from '../errors.js';

/** The one extension type the MessagePack spec defines: the timestamp (-1), in 4, 8 or 12 bytes. */
const TIMESTAMP = 0xff;

/**
 * Checks that `bytes` hold exactly one value of standard MessagePack, in time linear in its size and
 * without recursion (a nesting a million deep costs a counter, not the stack): every extension type but
 * the spec's timestamp is refused (msgpackr's own, BigInt, Error, RegExp, Set, typed arrays, records and
 * structured cloning, would hand an untrusted peer's objects to handlers), as are 0xc1 and trailing bytes.
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE`, saying where, never quoting the value
 */
export function checkStandardMessagePack(bytes: Uint8Array): void {
  const end = bytes.length;
  let position = 0;
  let values = 1; // values still to read: a container adds its items, so no stack is needed
  while (values > 0) {
    if (values > end - position) throw malformed(`${values} value(s) announced, ${end - position} byte(s) left`);
    values--;
    const type = bytes[position++]!;
    if (type <= 0x7f || type >= 0xe0 || type === 0xc0 || type === 0xc2 || type === 0xc3) continue;
    if (type <= 0x8f) values += 2 * (type & 0x0f);
    else if (type <= 0x9f) values += type & 0x0f;
    else if (type <= 0xbf) position += type & 0x1f;
    else {
      switch (type) {
        case 0xc4: case 0xd9: position += 1 + readLength(bytes, position, 1); break; // bin 8, str 8
        case 0xc5: case 0xda: position += 2 + readLength(bytes, position, 2); break;
        case 0xc6: case 0xdb: position += 4 + readLength(bytes, position, 4); break;
        case 0xca: position += 4; break; // float 32
        case 0xcb: position += 8; break; // float 64
        case 0xcc: case 0xd0: position += 1; break; // (u)int 8
        case 0xcd: case 0xd1: position += 2; break;
        case 0xce: case 0xd2: position += 4; break;
        case 0xcf: case 0xd3: position += 8; break;
        case 0xdc: values += readLength(bytes, position, 2); position += 2; break; // array 16
        case 0xdd: values += readLength(bytes, position, 4); position += 4; break;
        case 0xde: values += 2 * readLength(bytes, position, 2); position += 2; break; // map 16
        case 0xdf: values += 2 * readLength(bytes, position, 4); position += 4; break;
        case 0xd6: position = timestamp(bytes, position, 4); break; // fixext 4
        case 0xd7: position = timestamp(bytes, position, 8); break; // fixext 8
        case 0xc7: position = timestamp(bytes, position + 1, readLength(bytes, position, 1)); break; // ext 8
        case 0xc1: throw malformed(`0xc1 (never used) at byte ${position - 1}`);
        default: throw malformed(`extension type 0x${type.toString(16)} at byte ${position - 1}: only standard MessagePack is accepted`);
      }
    }
    if (position > end) throw malformed(`a value runs past the end of the ${end}-byte frame`);
  }
  if (position !== end) throw malformed(`${end - position} byte(s) after the value`);
}

/** A big-endian length of `size` bytes at `position`; past the end reads as 0 (the caller's bound check fails). */
function readLength(bytes: Uint8Array, position: number, size: number): number {
  let length = 0;
  for (let i = 0; i < size; i++) length = length * 256 + (bytes[position + i] ?? 0);
  return length;
}

/** An extension of `length` data bytes whose type byte is at `position`: only a timestamp (4, 8 or 12 bytes) passes. */
function timestamp(bytes: Uint8Array, position: number, length: number): number {
  const type = bytes[position];
  if (type !== TIMESTAMP || (length !== 4 && length !== 8 && length !== 12)) {
    throw malformed(`extension type ${type === undefined ? '?' : (type << 24) >> 24} at byte ${position}: only standard MessagePack (the timestamp, -1) is accepted`);
  }
  return position + 1 + length;
}

function malformed(reason: string): PulsarError {
  return new PulsarError('ERR_MALFORMED_MESSAGE', `not standard MessagePack: ${reason}`);
}
