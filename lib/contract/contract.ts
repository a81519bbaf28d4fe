import { invalidOption } from '../util/validate.js';
import { isStandardSchema, type StandardSchemaV1 } from '../messages/schema.js';

/** An input that is an upload: an `AsyncIterable` whose items `item` validates ({@link streamOf}). */
export interface UploadOf<S extends StandardSchemaV1 = StandardSchemaV1> {
  /** Marks an upload. */
  readonly kind: 'upload';
  /** Validates each item where it arrives. */
  readonly item: S;
}

/** What a call's input is: a value its schema validates, or an upload. */
export type InputSchema = StandardSchemaV1 | UploadOf;

/** A request in a contract: what the caller sends (`input`) and what the answer is (`output`). */
export interface RequestEntry<I extends InputSchema = InputSchema, O extends StandardSchemaV1 = StandardSchemaV1> {
  /** Marks a request. */
  readonly kind: 'request';
  /** Validates what arrives at the side that answers (an upload: each of its items). */
  readonly input: I;
  /** Validates the answer at the caller. */
  readonly output: O;
}

/** A one-way message in a contract, validated where it arrives. */
export interface MessageEntry<S extends StandardSchemaV1 = StandardSchemaV1> {
  /** Marks a one-way message. */
  readonly kind: 'message';
  /** Validates it where it arrives. */
  readonly schema: S;
}

/** A stream in a contract: what the caller sends (`input`), and each item the answer yields (`item`). */
export interface StreamEntry<I extends InputSchema = InputSchema, T extends StandardSchemaV1 = StandardSchemaV1> {
  /** Marks a stream. */
  readonly kind: 'stream';
  /** Validates what arrives at the side that answers (an upload: each of its items). */
  readonly input: I;
  /** Validates each item at the caller. */
  readonly item: T;
}

/** An entry of a contract. */
export type ContractEntry = RequestEntry | StreamEntry | MessageEntry;

/** The names one side may send, each a {@link RequestEntry}, a {@link StreamEntry} or a {@link MessageEntry}. */
export type ContractEntries = Readonly<Record<string, ContractEntry>>;

/**
 * What the two sides say to each other (SPEC section 17): `client` names what the client sends and the
 * server handles, `server` what the server sends and the client handles. Made by {@link contract}.
 */
export interface Contract<C extends ContractEntries = ContractEntries, S extends ContractEntries = ContractEntries> {
  /** What the client sends and the server handles. */
  readonly client: C;
  /** What the server sends and the client handles. */
  readonly server: S;
}

/** What a schema takes. */
export type InputOf<T> = T extends StandardSchemaV1<infer I, unknown> ? I : never;
/** What a schema gives. */
export type OutputOf<T> = T extends StandardSchemaV1<unknown, infer O> ? O : never;

/** The names of `E` that are requests (any name for a contract the compiler does not know). */
export type RequestNames<E extends ContractEntries> = string extends keyof E ? string : { [K in keyof E]: E[K] extends RequestEntry ? K : never }[keyof E] & string;
/** The names of `E` that are streams (any name for a contract the compiler does not know). */
export type StreamNames<E extends ContractEntries> = string extends keyof E ? string : { [K in keyof E]: E[K] extends StreamEntry ? K : never }[keyof E] & string;
/** The names of `E` that are one-way messages (any name for a contract the compiler does not know). */
export type MessageNames<E extends ContractEntries> = string extends keyof E ? string : { [K in keyof E]: E[K] extends MessageEntry ? K : never }[keyof E] & string;
/** What a caller passes for an input schema: its input, or for an upload an `AsyncIterable` (or `Iterable`) of its items' inputs. */
export type SentInput<I> = I extends UploadOf<infer S> ? AsyncIterable<InputOf<S>> | Iterable<InputOf<S>> : InputOf<I>;
/** What a route gets for an input schema: its output, or for an upload an `AsyncIterable` of its items' outputs. */
export type ReceivedInput<I> = I extends UploadOf<infer S> ? AsyncIterable<OutputOf<S>> : OutputOf<I>;
/** What a caller sends for request `K` (the input schema's input). */
export type CallInput<E extends ContractEntries, K extends PropertyKey> = string extends keyof E ? unknown : E[K & keyof E] extends RequestEntry<infer I, StandardSchemaV1> ? SentInput<I> : never;
/** What a caller sends for stream `K`. */
export type StreamInput<E extends ContractEntries, K extends PropertyKey> = string extends keyof E ? unknown : E[K & keyof E] extends StreamEntry<infer I, StandardSchemaV1> ? SentInput<I> : never;
/** What a caller's loop gets for each item of stream `K` (validated). */
export type StreamItem<E extends ContractEntries, K extends PropertyKey> = string extends keyof E ? unknown : E[K & keyof E] extends StreamEntry<InputSchema, infer T> ? OutputOf<T> : never;
/** What a caller gets back for request `K` (the output schema's output). */
export type CallOutput<E extends ContractEntries, K extends PropertyKey> = string extends keyof E ? unknown : E[K & keyof E] extends RequestEntry<StandardSchemaV1, infer O> ? OutputOf<O> : never;
/** What is sent as message `K`. */
export type EmitValue<E extends ContractEntries, K extends PropertyKey> = string extends keyof E ? unknown : E[K & keyof E] extends MessageEntry<infer S> ? InputOf<S> : never;
/** What a receiver gets for message `K` (validated). */
export type MessageValue<E extends ContractEntries, K extends PropertyKey> = string extends keyof E ? unknown : E[K & keyof E] extends MessageEntry<infer S> ? OutputOf<S> : never;

/** The message names of a contract the compiler knows, as events where they arrive (`client.on(name, value => …)`); none otherwise. */
export type ContractEventNames<E extends ContractEntries> = string extends keyof E ? never : MessageNames<E>;

/**
 * The handlers of one side's names: a request's route returns (or resolves) its output, a message's
 * route returns nothing that is used. `A` is what follows the value (the connection and context on the
 * server, the context on the client).
 */
export type RoutesOf<E extends ContractEntries, A extends unknown[]> = string extends keyof E
  ? Readonly<Record<string, (value: never, ...rest: A) => unknown>> // a contract not known to the compiler
  : {
  [K in keyof E]?: E[K] extends RequestEntry<infer I, infer O>
    ? (input: ReceivedInput<I>, ...rest: A) => InputOf<O> | PromiseLike<InputOf<O>>
    : E[K] extends StreamEntry<infer I, infer T>
      ? (input: ReceivedInput<I>, ...rest: A) => AsyncIterable<InputOf<T>> | PromiseLike<AsyncIterable<InputOf<T>>>
      : E[K] extends MessageEntry<infer S> ? (value: OutputOf<S>, ...rest: A) => unknown : never;
};

/**
 * A request entry of a contract.
 * @example request({ input: z.object({ room: z.string() }), output: z.object({ members: z.number() }) })
 */
export function request<I extends InputSchema, O extends StandardSchemaV1>(entry: { input: I; output: O }): RequestEntry<I, O> {
  checkInput('request()', entry?.input);
  if (!isStandardSchema(entry?.output)) throw invalidOption('request()', 'output', 'must be a Standard Schema (zod, valibot, arktype…)', entry?.output);
  return Object.freeze({ kind: 'request', input: entry.input, output: entry.output });
}

/**
 * A stream entry of a contract: its route is an async generator (or returns an `AsyncIterable`) and the
 * caller's `stream()` loops over its items.
 * @example stream({ input: z.object({ sql: z.string() }), item: Row })
 */
export function stream<I extends InputSchema, T extends StandardSchemaV1>(entry: { input: I; item: T }): StreamEntry<I, T> {
  checkInput('stream()', entry?.input);
  if (!isStandardSchema(entry?.item)) throw invalidOption('stream()', 'item', 'must be a Standard Schema (zod, valibot, arktype…)', entry?.item);
  return Object.freeze({ kind: 'stream', input: entry.input, item: entry.item });
}

/**
 * An input that is an upload: the caller passes an `AsyncIterable` (or an `Iterable`), sent item by item
 * under the route's credit; the route gets an `AsyncIterable` of the items, each validated by `schema`.
 * @example request({ input: streamOf(Sample), output: z.object({ count: z.number() }) })
 */
export function streamOf<S extends StandardSchemaV1>(schema: S): UploadOf<S> {
  if (!isStandardSchema(schema)) throw invalidOption('streamOf()', 'schema', 'must be a Standard Schema (zod, valibot, arktype…)', schema);
  return Object.freeze({ kind: 'upload', item: schema });
}

/** Whether an entry's input is an upload. */
export function isUpload(input: InputSchema): input is UploadOf {
  return (input as Partial<UploadOf>).kind === 'upload';
}

function checkInput(owner: string, input: unknown): void {
  if (isStandardSchema(input) || (input as Partial<UploadOf> | null)?.kind === 'upload') return;
  throw invalidOption(owner, 'input', 'must be a Standard Schema (zod, valibot, arktype…) or streamOf(schema)', input);
}

/** A one-way message entry of a contract: its schema validates it where it arrives. */
export function message<S extends StandardSchemaV1>(schema: S): MessageEntry<S> {
  if (!isStandardSchema(schema)) throw invalidOption('message()', 'schema', 'must be a Standard Schema (zod, valibot, arktype…)', schema);
  return Object.freeze({ kind: 'message', schema });
}

/**
 * Names the client's own events cannot be taken by a contract: `client.emit(name, value)` sends, and the
 * client raises its own events apart from it (as socket.io's `emitReserved`).
 */
const RESERVED = new Set(['connect', 'ready', 'close', 'error', 'message', 'frame', 'drain', 'heartbeat', 'reconnect', 'reconnecting', 'newListener', 'removeListener']);

/**
 * Declares what the two sides say to each other, each name a {@link request}, a {@link stream} or a {@link message}.
 * @throws {PulsarError} `ERR_INVALID_OPTION` for an entry that is neither, a name starting with `$`
 * (reserved: the hello is `$hello`), or a name that is one of the client's own events
 */
export function contract<C extends ContractEntries, S extends ContractEntries>(sides: { client?: C; server?: S }): Contract<C, S> {
  const checked = (side: 'client' | 'server'): ContractEntries => {
    const entries = sides?.[side] ?? {};
    if (typeof entries !== 'object' || entries === null) throw invalidOption('contract()', side, 'must be an object of request(), stream() and message() entries', entries);
    for (const [name, entry] of Object.entries(entries)) {
      if (name.startsWith('$')) throw invalidOption('contract()', `${side}.${name}`, "names starting with '$' are reserved", name);
      if (RESERVED.has(name)) throw invalidOption('contract()', `${side}.${name}`, "is one of the client's own events", name);
      const kind = (entry as Partial<ContractEntry> | null)?.kind;
      if (kind !== 'request' && kind !== 'stream' && kind !== 'message') throw invalidOption('contract()', `${side}.${name}`, 'must be made by request(), stream() or message()', entry);
    }
    return Object.freeze({ ...entries });
  };
  return Object.freeze({ client: checked('client') as C, server: checked('server') as S });
}

/** Whether `value` was made by {@link contract}. */
export function isContract(value: unknown): value is Contract {
  const c = value as Partial<Contract> | null;
  return typeof c === 'object' && c !== null && typeof c.client === 'object' && typeof c.server === 'object';
}

export type { ContractConnection, ContractGroup } from './typed.js';
