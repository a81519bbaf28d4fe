import { PulsarError } from '../errors.js';
import { InvalidMessageError, validate, type StandardSchemaV1 } from '../messages/schema.js';
import type { RequestOptions } from '../messages/settings.js';
import { isPromiseLike } from '../util/thenable.js';
import type { ContractEntries, MessageEntry, RequestEntry } from './contract.js';

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
  call(name: string, input: unknown, options: RequestOptions | undefined, send: (body: [string, unknown], options?: RequestOptions) => Promise<unknown>): Promise<unknown> {
    let entry: RequestEntry;
    try {
      entry = this.#entry(name, 'request') as RequestEntry;
      if (this.#validateOutgoing) checkOutgoing(entry.input, input, `the input of '${name}'`);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    // One step after the reply, not an async function's: a call costs a promise more than request(), no more.
    return send([name, input], options).then((output) => {
      try {
        return validate(entry.output, output);
      } catch (error) {
        throw refusedOutput(name, error);
      }
    });
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

  #entry(name: string, kind: 'request' | 'message'): RequestEntry | MessageEntry {
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
    const input = validate(entry.input, value);
    if (isPromiseLike(input)) return Promise.resolve(input).then((valid) => this.#answer(name, entry, route, valid, rest));
    return this.#answer(name, entry, route, input, rest);
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
  #lookup<K extends 'request' | 'message'>(body: unknown, kind: K): { name: string; value: unknown; entry: Extract<RequestEntry | MessageEntry, { kind: K }>; route: Route } {
    const [name, value] = namedBody(body);
    const entry = entryOf(this.#entries, name);
    if (entry?.kind !== kind) throw unknownRoute(name, entry, kind);
    const route = this.#routes.get(name);
    if (route === undefined) throw new PulsarError('ERR_UNKNOWN_ROUTE', `no route handles '${name}'`);
    return { name, value, entry: entry as Extract<RequestEntry | MessageEntry, { kind: K }>, route };
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

function unknownRoute(name: string, entry: RequestEntry | MessageEntry | undefined, kind: string): PulsarError {
  return new PulsarError('ERR_UNKNOWN_ROUTE', entry === undefined ? `no ${kind} '${name}' in the contract` : `'${name}' is a ${entry.kind}, not a ${kind}`);
}

/** The entry named `name`, own properties only (`constructor` is no route). */
function entryOf(entries: ContractEntries, name: string): RequestEntry | MessageEntry | undefined {
  return Object.hasOwn(entries, name) ? entries[name] : undefined;
}

/** An output the contract refuses at the caller, saying which request's. */
function refusedOutput(name: string, error: unknown): InvalidMessageError {
  const refused = error as InvalidMessageError;
  return new InvalidMessageError(`the output of '${name}' is refused by the contract: ${refused.message}`, refused.issues ?? []);
}
