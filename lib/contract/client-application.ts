import { PulsarError } from '../errors.js';
import { validate } from '../messages/schema.js';
import type { MessageContext } from '../messages/settings.js';
import { isPromiseLike } from '../util/thenable.js';
import { conflictingOption, invalidOption } from '../util/validate.js';
import { isContract, type Contract, type RoutesOf } from './contract.js';
import { ContractCaller, ContractRoutes, defaultValidateOutgoing, HELLO, namedBody } from './router.js';

/** The client's application options (SPEC section 17). */
export interface ClientApplicationOptions<C extends Contract = Contract> {
  /** What the two sides say to each other ({@link contract}); the server's must be the same. Turns `rpc` on. */
  contract?: C;
  /** The handlers of the requests in `contract.server` (its messages are events: `client.on(name, …)`). */
  routes?: RoutesOf<NoInfer<C>['server'], [ctx: MessageContext]>;
  /** What the client says first on every connect and reconnect (`connect()` resolves after its reply). Turns `rpc` on. */
  hello?: unknown;
  /** Check what leaves against the contract. @default true unless NODE_ENV is production */
  validateOutgoing?: boolean;
}

/** The names of {@link ClientApplicationOptions}. */
export const CLIENT_APPLICATION_OPTIONS: Record<keyof ClientApplicationOptions, true> = { contract: true, routes: true, hello: true, validateOutgoing: true };

/** What the client's application layer hands back to the client. */
export interface ClientApplicationHost {
  /** Raises event `name` for a contract message; `false` when nobody listens. */
  deliver(name: string, value: unknown): boolean;
  /** Bad input from the server, or a message nobody listened to (dropped). */
  error(error: PulsarError): void;
}

/**
 * A client's application layer: its hello, what it calls and emits (checked against the contract), the
 * server's messages raised as events by name, and its routes answering the server's requests.
 */
export class ClientApplication {
  /** What the client sends, or `null` without a contract. */
  readonly caller: ContractCaller | null;
  readonly #contract: Contract | null;
  readonly #routes: ContractRoutes | null;
  readonly #hello: unknown;
  readonly #host: ClientApplicationHost;
  /** Contract messages dropped for want of a listener. */
  dropped = 0;

  /** @throws {PulsarError} `ERR_INVALID_OPTION` */
  constructor(options: ClientApplicationOptions & { messages?: unknown; rpc?: boolean; schema?: unknown; handler?: unknown }, host: ClientApplicationHost) {
    const owner = 'PulsarClient';
    const { contract, routes, hello } = options;
    if (options.messages === undefined) throw conflictingOption(owner, contract !== undefined ? 'contract' : 'hello', 'needs messages (json(), or msgpack() from pulsar/msgpack)');
    if (options.rpc === false) throw conflictingOption(owner, 'rpc', 'cannot be false with a contract or a hello');
    if (options.schema !== undefined) throw conflictingOption(owner, 'schema', "does not apply with a contract or a hello: the contract's schemas validate");
    if (contract !== undefined && !isContract(contract)) throw invalidOption(owner, 'contract', 'must be made by contract()', contract);
    if (routes !== undefined && contract === undefined) throw conflictingOption(owner, 'routes', 'needs a contract');
    if (routes !== undefined && options.handler !== undefined) throw conflictingOption(owner, 'routes', 'and handler cannot both answer: give one');
    const validateOutgoing = options.validateOutgoing ?? defaultValidateOutgoing();
    this.#contract = contract ?? null;
    this.caller = contract === undefined ? null : new ContractCaller(contract.client, validateOutgoing);
    this.#routes = contract === undefined ? null : new ContractRoutes(contract.server, validateOutgoing, (error) => host.error(error));
    this.#routes?.add(owner, (routes ?? {}) as Readonly<Record<string, unknown>>);
    this.#hello = hello;
    this.#host = host;
  }

  /** The hello's body for this connection (`["$hello", value]`), or `null` without a hello. */
  helloBody(): [string, unknown] | null {
    if (this.#hello === undefined) return null;
    return [HELLO, typeof this.#hello === 'function' ? (this.#hello as () => unknown)() : this.#hello];
  }

  /** Whether `client.emit(name, …)` sends (a message of `contract.client`) rather than raising an event. */
  sends(name: string | symbol): name is string {
    return typeof name === 'string' && this.#contract !== null && this.#contract.client[name]?.kind === 'message' && Object.hasOwn(this.#contract.client, name);
  }

  /** Answers a request from the server through the routes; `null` without a contract (the client's handler answers). */
  get answer(): ((message: unknown, ctx: MessageContext) => unknown) | null {
    const routes = this.#routes;
    return routes === null ? null : (message, ctx) => routes.request(message, [ctx]);
  }

  /** A one-way message from the server: raised as its name's event once validated. */
  message(body: unknown): void {
    let name: string;
    let value: unknown;
    try {
      [name, value] = namedBody(body);
      const entry = Object.hasOwn(this.#contract!.server, name) ? this.#contract!.server[name] : undefined;
      if (entry?.kind !== 'message') throw new PulsarError('ERR_UNKNOWN_ROUTE', `the server sent '${name}', which the contract has no message for`);
      const checked = validate(entry.schema, value);
      if (isPromiseLike(checked)) {
        Promise.resolve(checked).then((valid) => this.#deliver(name, valid), (error: unknown) => this.#host.error(error as PulsarError));
        return;
      }
      this.#deliver(name, checked);
    } catch (error) {
      this.#host.error(error as PulsarError);
    }
  }

  #deliver(name: string, value: unknown): void {
    if (this.#host.deliver(name, value)) return;
    if (this.dropped++ === 0) process.emitWarning(`a contract message ('${name}') came with no listener and was dropped; more are counted in client.droppedMessages`, { type: 'PulsarWarning', code: 'PULSAR_MESSAGE_DROPPED' });
  }
}
