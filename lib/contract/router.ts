import { PulsarError } from '../errors.js';
import { isAsyncIterable } from '../messages/answers.js';
import type { HandlerContext } from '../messages/context.js';
import type { ItemCheck } from '../messages/inbound-stream.js';
import { InvalidMessageError, validate, type StandardSchemaV1 } from '../messages/schema.js';
import type { RequestOptions, StreamOptions } from '../messages/settings.js';
import { isPromiseLike } from '../util/thenable.js';
import { isUpload, type ContractEntries, type ContractEntry, type InputSchema, type MessageEntry, type RequestEntry, type StreamEntry } from './contract.js';

/** How a side sends a request: its body, options, and an upload for an input that is one. */
export type SendRequest = (body: [string, unknown], options: RequestOptions | undefined, upload: AsyncIterable<unknown> | undefined) => Promise<unknown>;
/** How a side calls a stream: as {@link SendRequest}, and the check of each item where it arrives. */
export type SendStream = (body: [string, unknown], options: StreamOptions | undefined, check: ItemCheck, upload: AsyncIterable<unknown> | undefined) => AsyncIterable<unknown>;

/** The name a hello travels under (docs/protocol.md): `["$hello", value]`, answered `null`. */
export const HELLO = '$hello';

/** A handler of one name: the value (validated), then what the side passes (the connection, the context). */
export type Route = (value: unknown, ...rest: never[]) => unknown;

/** Whether `OutgoingValidation` checks values before they leave: on unless `NODE_ENV` is `production`. */
export function defaultValidateOutgoing(): boolean {
  return process.env.NODE_ENV !== 'production';
}

/**
 * A contract body, `[name, value]`, taken apart.
 * @throws {PulsarError} `ERR_MALFORMED_MESSAGE` for anything else
 */
export function namedBody(body: unknown): [name: string, value: unknown] {
  if (!Array.isArray(body) || body.length !== 2 || typeof body[0] !== 'string') {
    throw new PulsarError('ERR_MALFORMED_MESSAGE', 'with a contract, a message or request is [name, value]');
  }
  return body as [string, unknown];
}

/** Whether `body` is a hello (`["$hello", value]`). */
export function isHello(body: unknown): body is [typeof HELLO, unknown] {
  return Array.isArray(body) && body.length === 2 && body[0] === HELLO;
}

/**
 * Checks a value about to leave with its schema, when the validator is synchronous (an async one is not
 * waited for on the way out).
 * @throws {InvalidMessageError} when the schema refuses it
 */
export function checkOutgoing(schema: StandardSchemaV1, value: unknown, what: string): void {
  try {
    const checked = validate(schema, value);
    if (isPromiseLike(checked)) (checked as Promise<unknown>).catch(() => {}); // not waited for: never unhandled
  } catch (error) {
    throw new InvalidMessageError(`${what} is refused by its own schema: ${(error as Error).message}`, (error as InvalidMessageError).issues ?? []);
  }
}

/**
 * What one side says, checked against the contract: the calls it makes and the messages it emits (the
 * other side's handlers answer them), with their values checked before they leave when `validateOutgoing`.
 */
export class ContractCaller {
  readonly #entries: ContractEntries;
  readonly #validateOutgoing: boolean;

  /**
   * @param entries the names this side sends
   * @param validateOutgoing check inputs and messages before they leave
   */
  constructor(entries: ContractEntries, validateOutgoing: boolean) {
    this.#entries = entries;
    this.#validateOutgoing = validateOutgoing;
  }

  /**
   * Sends request `name` through `send` and resolves with its output, validated on arrival.
   * @throws {PulsarError} (rejects) `ERR_UNKNOWN_ROUTE` for a name the contract has no request for,
   * `ERR_INVALID_MESSAGE` for an input refused before it leaves or an output refused on arrival, or what
   * `send` rejects with
   */
  call(name: string, input: unknown, options: RequestOptions | undefined, send: SendRequest): Promise<unknown> {
    let entry: RequestEntry;
    let sent: { value: unknown; upload: AsyncIterable<unknown> | undefined };
    try {
      entry = this.#entry(name, 'request') as RequestEntry;
      sent = this.#input(name, entry.input, input);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    // One step after the reply, not an async function's: a call costs a promise more than request(), no more.
    return send([name, sent.value], options, sent.upload).then((output) => {
      try {
        return validate(entry.output, output);
      } catch (error) {
        throw refusedOutput(name, error);
      }
    });
  }

  /**
   * Calls stream `name` through `send`: its items, each validated on arrival.
   * @throws {PulsarError} `ERR_UNKNOWN_ROUTE`, `ERR_INVALID_MESSAGE` (an input refused before it leaves)
   */
  stream(name: string, input: unknown, options: StreamOptions | undefined, send: SendStream): AsyncIterable<unknown> {
    const entry = this.#entry(name, 'stream') as StreamEntry;
    const { value, upload } = this.#input(name, entry.input, input);
    return send([name, value], options, (item) => checkItem(entry.item, item, name), upload);
  }

  /** What a call sends for `input`: the value (checked), or `null` and the upload. */
  #input(name: string, schema: InputSchema, input: unknown): { value: unknown; upload: AsyncIterable<unknown> | undefined } {
    if (!isUpload(schema)) {
      if (this.#validateOutgoing) checkOutgoing(schema, input, `the input of '${name}'`);
      return { value: input, upload: undefined };
    }
    const upload = asyncIterableOf(input, name);
    return { value: null, upload: this.#validateOutgoing ? checkedItems(upload, schema.item, `an upload item of '${name}'`) : upload };
  }

  /**
   * The body of message `name` (`[name, value]`), checked before it leaves when `validateOutgoing`.
   * @throws {PulsarError} `ERR_UNKNOWN_ROUTE`, `ERR_INVALID_MESSAGE`
   */
  emitBody(name: string, value: unknown): [string, unknown] {
    const entry = this.#entry(name, 'message') as MessageEntry;
    if (this.#validateOutgoing) checkOutgoing(entry.schema, value, `message '${name}'`);
    return [name, value];
  }

  #entry(name: string, kind: ContractEntry['kind']): ContractEntry {
    const entry = entryOf(this.#entries, name);
    if (entry?.kind !== kind) {
      throw new PulsarError('ERR_UNKNOWN_ROUTE', `the contract has no ${kind} '${name}'${entry === undefined ? '' : ` ('${name}' is a ${entry.kind})`}`);
    }
    return entry;
  }
}

/**
 * What one side handles, checked against the contract: the name looked up, the value validated, the
 * route called; a request's output is checked before it leaves when `validateOutgoing`.
 */
export class ContractRoutes {
  readonly #entries: ContractEntries;
  readonly #validateOutgoing: boolean;
  readonly #routes = new Map<string, Route>();
  /** Reports a refused output of our own (the caller is answered `ERR_HANDLER`). */
  readonly #refusedOutput: (error: InvalidMessageError, rest: unknown[]) => void;

  /**
   * @param entries the names this side handles
   * @param validateOutgoing check outputs before they leave
   * @param refusedOutput reports an output of ours that the contract refuses
   */
  constructor(entries: ContractEntries, validateOutgoing: boolean, refusedOutput: (error: InvalidMessageError, rest: unknown[]) => void) {
    this.#entries = entries;
    this.#validateOutgoing = validateOutgoing;
    this.#refusedOutput = refusedOutput;
  }

  /**
   * Adds routes (replacing any of the same name).
   * @throws {PulsarError} `ERR_INVALID_OPTION` for a name the contract does not give this side, or a route that is not a function
   */
  add(owner: string, routes: Readonly<Record<string, unknown>>): void {
    for (const [name, route] of Object.entries(routes)) {
      if (!Object.hasOwn(this.#entries, name)) throw new PulsarError('ERR_INVALID_OPTION', `${owner}: routes.${name}: the contract has no '${name}' for this side to handle`);
      if (typeof route !== 'function') throw new PulsarError('ERR_INVALID_OPTION', `${owner}: routes.${name}: must be a function`);
      this.#routes.set(name, route as Route);
    }
  }

  /**
   * Handles a request body: its route's output (or a promise of it).
   * @throws {PulsarError} `ERR_MALFORMED_MESSAGE`, `ERR_UNKNOWN_ROUTE` (no such request, or a message's
   * name, or no route for it), `ERR_INVALID_MESSAGE` (the input); `ERR_HANDLER` for an output the contract refuses
   */
  request(body: unknown, rest: unknown[]): unknown {
    const { name, value, entry, route } = this.#lookup(body, 'request');
    const input = received(entry.input, value, rest);
    if (isPromiseLike(input)) return Promise.resolve(input).then((valid) => this.#answer(name, entry, route, valid, rest));
    return this.#answer(name, entry, route, input, rest);
  }

  /**
   * Handles a stream call's body: its route's `AsyncIterable` (or a promise of it), each item checked before it
   * leaves when `validateOutgoing`.
   * @throws {PulsarError} as {@link request}
   */
  stream(body: unknown, rest: unknown[]): unknown {
    const { name, value, entry, route } = this.#lookup(body, 'stream');
    const input = received(entry.input, value, rest);
    const start = (valid: unknown): unknown => {
      const items = route(valid, ...(rest as never[]));
      if (!this.#validateOutgoing) return items;
      const check = (iterable: unknown): unknown => (isAsyncIterable(iterable) ? checkedItems(iterable, entry.item, `an item of '${name}'`) : iterable);
      return isPromiseLike(items) ? Promise.resolve(items).then(check) : check(items);
    };
    return isPromiseLike(input) ? Promise.resolve(input).then(start) : start(input);
  }

  #answer(name: string, entry: RequestEntry, route: Route, input: unknown, rest: unknown[]): unknown {
    const output = route(input, ...(rest as never[]));
    if (!this.#validateOutgoing) return output;
    return isPromiseLike(output) ? Promise.resolve(output).then((o) => this.#checkOutput(name, entry, o, rest)) : this.#checkOutput(name, entry, output, rest);
  }

  /**
   * Handles a message body: its route's return (a promise is the caller's to watch).
   * @throws {PulsarError} `ERR_MALFORMED_MESSAGE`, `ERR_UNKNOWN_ROUTE`, `ERR_INVALID_MESSAGE`
   */
  message(body: unknown, rest: unknown[]): unknown {
    const { value, entry, route } = this.#lookup(body, 'message');
    const checked = validate(entry.schema, value);
    return isPromiseLike(checked) ? Promise.resolve(checked).then((valid) => route(valid, ...(rest as never[]))) : route(checked, ...(rest as never[]));
  }

  /** Whether a route handles `name`. */
  has(name: string): boolean {
    return this.#routes.has(name);
  }

  /** A body's name, value, entry of `kind` and route. @throws {PulsarError} `ERR_MALFORMED_MESSAGE`, `ERR_UNKNOWN_ROUTE` */
  #lookup<K extends ContractEntry['kind']>(body: unknown, kind: K): { name: string; value: unknown; entry: Extract<ContractEntry, { kind: K }>; route: Route } {
    const [name, value] = namedBody(body);
    const entry = entryOf(this.#entries, name);
    if (entry?.kind !== kind) throw unknownRoute(name, entry, kind);
    const route = this.#routes.get(name);
    if (route === undefined) throw new PulsarError('ERR_UNKNOWN_ROUTE', `no route handles '${name}'`);
    return { name, value, entry: entry as Extract<ContractEntry, { kind: K }>, route };
  }

  #checkOutput(name: string, entry: RequestEntry, output: unknown, rest: unknown[]): unknown {
    try {
      checkOutgoing(entry.output, output, `the output of '${name}'`);
    } catch (error) {
      this.#refusedOutput(error as InvalidMessageError, rest);
      throw new PulsarError('ERR_HANDLER', 'the handler failed');
    }
    return output;
  }
}

function unknownRoute(name: string, entry: ContractEntry | undefined, kind: string): PulsarError {
  return new PulsarError('ERR_UNKNOWN_ROUTE', entry === undefined ? `no ${kind} '${name}' in the contract` : `'${name}' is a ${entry.kind}, not a ${kind}`);
}

/** The entry named `name`, own properties only (`constructor` is no route). */
function entryOf(entries: ContractEntries, name: string): ContractEntry | undefined {
  return Object.hasOwn(entries, name) ? entries[name] : undefined;
}

/** An output the contract refuses at the caller, saying which request's. */
function refusedOutput(name: string, error: unknown): InvalidMessageError {
  const refused = error as InvalidMessageError;
  return new InvalidMessageError(`the output of '${name}' is refused by the contract: ${refused.message}`, refused.issues ?? []);
}

/** What a route gets for `value`: validated by its schema, or for an upload the caller's items (its context opens it). */
function received(schema: InputSchema, value: unknown, rest: unknown[]): unknown {
  if (!isUpload(schema)) return validate(schema, value);
  const ctx = rest[rest.length - 1] as HandlerContext;
  return ctx.openUpload((item) => validate(schema.item, item));
}

/** An item as it arrives at the caller, validated (a refusal names the stream). */
function checkItem(schema: StandardSchemaV1, item: unknown, name: string): unknown {
  try {
    const checked = validate(schema, item);
    return isPromiseLike(checked) ? Promise.resolve(checked).catch((error: unknown) => { throw refusedItem(name, error); }) : checked;
  } catch (error) {
    throw refusedItem(name, error);
  }
}

function refusedItem(name: string, error: unknown): InvalidMessageError {
  const refused = error as InvalidMessageError;
  return new InvalidMessageError(`an item of '${name}' is refused by the contract: ${refused.message}`, refused.issues ?? []);
}

/**
 * An upload as an `AsyncIterable` (an `Iterable` is taken too).
 * @throws {PulsarError} `ERR_INVALID_MESSAGE` for anything else
 */
function asyncIterableOf(input: unknown, name: string): AsyncIterable<unknown> {
  if (isAsyncIterable(input)) return input;
  if (typeof (input as Partial<Iterable<unknown>> | null)?.[Symbol.iterator] === 'function') {
    return (async function* () {
      yield* input as Iterable<unknown>;
    })();
  }
  throw new InvalidMessageError(`the input of '${name}' is an upload: pass an AsyncIterable or an Iterable of its items`, []);
}

/** `items` with each checked by `schema` before it goes on (`what` names them in a refusal). */
async function* checkedItems(items: AsyncIterable<unknown>, schema: StandardSchemaV1, what: string): AsyncGenerator<unknown> {
  for await (const item of items) {
    checkOutgoing(schema, item, what);
    yield item;
  }
}
