import secureJson from 'secure-json-parse';
import { PulsarError } from '../errors.js';
import { checkKnownOptions, checkOneOf, invalidOption } from '../util/validate.js';
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
  /**
   * True when encoded payloads may hold any byte (MessagePack), so that a framing ended by a delimiter
   * cannot carry them; false or absent for text that never holds a raw newline (JSON).
   */
  readonly binary?: boolean;
}

/**
 * What {@link json} does with a `__proto__` key (or a `constructor` holding `prototype`) in an inbound
 * message, as fastify does (`secure-json-parse`): `error` refuses the message (`ERR_MALFORMED_MESSAGE`),
 * `remove` drops the key, `ignore` keeps it (only safe if the value is never merged into another object).
 */
export type ProtoAction = 'error' | 'remove' | 'ignore';

/** Options of {@link json}. */
export interface JsonOptions<S extends StandardSchemaV1 | undefined> {
  /** Validates every inbound message; the handler's message is the schema's output. @default none */
  schema?: S;
  /** A `__proto__` key in an inbound message: `Object.assign(conn.data, msg)` would replace a prototype. @default 'error' */
  protoAction?: ProtoAction;
  /** A `constructor.prototype` key in an inbound message. @default the `protoAction` */
  constructorAction?: ProtoAction;
}

/**
 * UTF-8 JSON, one value per frame. Inbound `__proto__` and `constructor.prototype` keys are refused by
 * default, as fastify does (see {@link JsonOptions.protoAction}).
 * @example
 * ```ts
 * const server = new PulsarServer({ messages: json({ schema: z.object({ a: z.number(), b: z.number() }) }), rpc: true, handler: (m) => m.a + m.b });
 * ```
 */
export function json<S extends StandardSchemaV1 | undefined = undefined>(options: JsonOptions<S> = {}): MessageCodec<S extends StandardSchemaV1 ? SchemaOutput<S> : unknown> {
  checkKnownOptions('json', options, { schema: true, protoAction: true, constructorAction: true });
  const { schema } = options;
  if (schema !== undefined && !isStandardSchema(schema)) {
    throw invalidOption('json', 'schema', 'must be a Standard Schema (zod, valibot, arktype…)', schema);
  }
  const actions = ['error', 'remove', 'ignore'] as const;
  const protoAction = checkOneOf('json', 'protoAction', options.protoAction ?? 'error', actions);
  const constructorAction = checkOneOf('json', 'constructorAction', options.constructorAction ?? protoAction, actions);
  const parseOptions = { protoAction, constructorAction };
  // JSON.parse first, as secure-json-parse does; the prototype keys are looked for only in text that names them.
  const parse = protoAction === 'ignore' && constructorAction === 'ignore'
    ? (text: string): unknown => JSON.parse(text)
    : (text: string): unknown => secureJson.parse(text, null, parseOptions);
  return {
    encode: (value) => {
      const text = JSON.stringify(value);
      if (text === undefined) throw new PulsarError('ERR_INVALID_PAYLOAD', `json() cannot encode ${typeof value}`);
      return text;
    },
    decode: (bytes) => parse(bytes.toString('utf8')) as never,
    schema: schema as never,
  };
}
