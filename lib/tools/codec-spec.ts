import { LengthPrefixedCodec, type LengthFieldLength } from '../codecs/length-prefixed.js';
import { LineCodec } from '../codecs/line.js';
import type { FrameCodec } from '../codecs/types.js';
import { VarintCodec } from '../codecs/varint.js';
import { checkOneOf, invalidOption } from '../util/validate.js';

/**
 * A built-in codec described as data (the CLI's `--codec`, `--length-field`, `--byte-order`, `--max-frame`),
 * so that it can be handed to worker threads and built again there.
 */
export interface CodecSpec {
  /** `length` (a length prefix), `varint` (a protobuf varint length) or `lines`. @default 'length' */
  kind?: 'length' | 'varint' | 'lines';
  /** With `length`: the prefix's size in bytes. @default 4 */
  lengthFieldLength?: LengthFieldLength;
  /** With `length`: the prefix's byte order. @default 'big' */
  byteOrder?: 'big' | 'little';
  /** Largest frame payload. @default the codec's */
  maxFrameLength?: number;
}

/**
 * The codec a spec describes.
 * @throws {PulsarError} `ERR_INVALID_OPTION` naming the field: a `kind` that is not one, a length field or
 * byte order given for a codec other than `length`, or (from the codec) a value out of range
 */
export function codecOf(spec: CodecSpec = {}): FrameCodec {
  const kind = checkOneOf(OWNER, 'kind', spec.kind ?? 'length', ['length', 'varint', 'lines'] as const);
  if (kind !== 'length') {
    for (const option of ['lengthFieldLength', 'byteOrder'] as const) {
      if (spec[option] !== undefined) throw invalidOption(OWNER, option, `applies to kind 'length', not '${kind}'`, spec[option]);
    }
  }
  const limits = spec.maxFrameLength === undefined ? {} : { maxFrameLength: spec.maxFrameLength };
  switch (kind) {
    case 'varint': return new VarintCodec(limits);
    case 'lines': return new LineCodec(limits);
    default: return new LengthPrefixedCodec({ ...limits, lengthFieldLength: spec.lengthFieldLength ?? 4, byteOrder: spec.byteOrder ?? 'big' });
  }
}

const OWNER = 'codecOf';
