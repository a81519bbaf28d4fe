import { PulsarError } from '../errors.js';
import { checkKnownOptions, invalidOption } from '../validate.js';
import { isStandardSchema, type SchemaOutput, type StandardSchemaV1 } from './schema.js';

/**
 * How messages travel in frames, one message per frame: `encode` makes a frame's payload of a value,
 * `decode` a value of a frame's payload. A `schema`, when set, validates every inbound message.
 */
export interface MessageCodec<T = unknown> {
  /** A frame's payload for `value`. */
  encode(value: T): Uint8Array | string;
  /**
   * The value a frame's payload carries.
   * @throws anything: reported as `ERR_MALFORMED_MESSAGE`
   */
  decode(bytes: Buffer): T;
  /** Validates inbound messages (any Standard Schema), and types them. */
  readonly schema?: StandardSchemaV1<unknown, T> | undefined;
}

/** Options of {@link json}. */
export interface JsonOptions<S extends StandardSchemaV1 | undefined> {
  /** Validates every inbound message; the handler's message is the schema's output. @default none */
  schema?: S;
}

/**
 * UTF-8 JSON, one value per frame.
 * @example
 * ```ts
 * const server = new PulsarServer({ messages: json({ schema: z.object({ a: z.number(), b: z.number() }) }), rpc: true, handler: (m) => m.a + m.b });
 * ```
 */
export function json<S extends StandardSchemaV1 | undefined = undefined>(options: JsonOptions<S> = {}): MessageCodec<S extends StandardSchemaV1 ? SchemaOutput<S> : unknown> {
  checkKnownOptions('json', options, { schema: true });
  const { schema } = options;
  if (schema !== undefined && !isStandardSchema(schema)) {
    throw invalidOption('json', 'schema', 'must be a Standard Schema (zod, valibot, arktype…)', schema);
  }
  return {
    encode: (value) => {
      const text = JSON.stringify(value);
      if (text === undefined) throw new PulsarError('ERR_INVALID_PAYLOAD', `json() cannot encode ${typeof value}`);
      return text;
    },
    decode: (bytes) => JSON.parse(bytes.toString('utf8')) as never,
    schema: schema as never,
  };
}
