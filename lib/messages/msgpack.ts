import { C1, Packr } from 'msgpackr';
import { PulsarError } from '../errors.js';
import { messageOf } from '../format.js';
import { checkKnownOptions, invalidOption } from '../validate.js';
import type { MessageCodec } from './codec.js';
import { isStandardSchema, type SchemaOutput, type StandardSchemaV1 } from './schema.js';

/** Options of {@link msgpack}. */
export interface MsgpackOptions<S extends StandardSchemaV1 | undefined> {
  /** Validates every inbound message; the handler's message is the schema's output. @default none */
  schema?: S;
}

/**
 * MessagePack, one value per frame, with msgpackr (an optional peer dependency: `npm install msgpackr`;
 * only this entry, `pulsar/msgpack`, loads it). Standard MessagePack that any MessagePack library reads
 * and writes: msgpackr's records extension is off, maps decode as plain objects. Smaller than JSON and
 * carries binary (`Uint8Array`) as it is.
 * @example
 * ```ts
 * import { msgpack } from 'pulsar/msgpack';
 * const server = new PulsarServer({ messages: msgpack(), rpc: true, handler: (m) => m });
 * ```
 */
export function msgpack<S extends StandardSchemaV1 | undefined = undefined>(options: MsgpackOptions<S> = {}): MessageCodec<S extends StandardSchemaV1 ? SchemaOutput<S> : unknown> {
  checkKnownOptions('msgpack', options, { schema: true });
  const { schema } = options;
  if (schema !== undefined && !isStandardSchema(schema)) throw invalidOption('msgpack', 'schema', 'must be a Standard Schema (zod, valibot, arktype…)', schema);
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  return {
    encode: (value) => packr.pack(value),
    decode: (bytes) => {
      if (bytes.length === 0) throw new PulsarError('ERR_MALFORMED_MESSAGE', 'an empty frame is no MessagePack value');
      let value: unknown;
      try {
        value = packr.unpack(bytes);
      } catch (error) {
        throw new PulsarError('ERR_MALFORMED_MESSAGE', `not MessagePack: ${messageOf(error)}`, { cause: error });
      }
      // 0xc1 is "never used" in MessagePack; msgpackr reads it as a marker instead of refusing it.
      if (value === C1) throw new PulsarError('ERR_MALFORMED_MESSAGE', 'not MessagePack: 0xc1 is never used');
      return value as never;
    },
    schema: schema as never,
  };
}
