import { Packr } from 'msgpackr';
import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import { checkKnownOptions, invalidOption } from '../util/validate.js';
import type { MessageCodec } from './codec.js';
import { checkStandardMessagePack } from './msgpack-standard.js';
import { isStandardSchema, type SchemaOutput, type StandardSchemaV1 } from './schema.js';

/** Options of {@link msgpack}. */
export interface MsgpackOptions<S extends StandardSchemaV1 | undefined> {
  /** Validates every inbound message; the handler's message is the schema's output. @default none */
  schema?: S;
}

/**
 * MessagePack, one value per frame, with msgpackr (an optional peer dependency: `npm install msgpackr`;
 * only this entry, `pulsar/msgpack`, loads it). Standard MessagePack that any MessagePack library reads
 * and writes: msgpackr's records extension is off, maps decode as plain objects, and any extension type but
 * the spec's timestamp is refused (`ERR_MALFORMED_MESSAGE`: no BigInt, Error, RegExp, Set or typed array
 * reaches a handler from a peer), checked in time linear in the frame. Binary (`bin`) values decode as
 * copies, so a kept value never pins its read chunk. Smaller than JSON; binary payloads travel as they are.
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
  const packr = new Packr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });
  return {
    binary: true,
    encode: (value) => packr.pack(value),
    decode: (bytes) => {
      if (bytes.length === 0) throw new PulsarError('ERR_MALFORMED_MESSAGE', 'an empty frame is no MessagePack value');
      // Checked first: msgpackr's own errors can stringify what they decoded (seconds for a large BigInt).
      checkStandardMessagePack(bytes);
      try {
        return packr.unpack(bytes) as never;
      } catch (error) {
        throw new PulsarError('ERR_MALFORMED_MESSAGE', `not MessagePack: ${oneLine(messageOf(error))}`, { cause: error });
      }
    },
    schema: schema as never,
  };
}

/** A decoder's error text, cut and on one line: it can quote the peer's bytes. */
function oneLine(text: string): string {
  return text.slice(0, 200).replace(/[\u0000-\u001f\u007f]/g, ' ');
}
