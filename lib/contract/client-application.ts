import { PulsarError } from '../errors.js';
import { validate } from '../messages/schema.js';
import type { MessageContext } from '../messages/settings.js';
import { isPromiseLike } from '../util/thenable.js';
import type { Contract, RoutesOf } from './contract.js';
import type { ResolvedApplication } from './options.js';
import { ContractCaller, ContractRoutes, HELLO, namedBody } from './router.js';

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

  /**
   * @param options the client's application options, resolved ({@link resolveApplication})
   * @param host where messages and errors go
   * @throws {PulsarError} `ERR_INVALID_OPTION` for a route the contract does not give the client
   */
  constructor(options: ResolvedApplication, host: ClientApplicationHost) {
    const { contract, validateOutgoing } = options;
    this.#contract = contract;
    this.caller = contract === null ? null : new ContractCaller(contract.client, validateOutgoing);
    this.#routes = contract === null ? null : new ContractRoutes(contract.server, validateOutgoing, (error) => host.error(error));
    this.#routes?.add('PulsarClient', options.routes);
    this.#hello = options.hello;
    this.#host = host;
  }

  /** The hello's body for this connection (`["$hello", value]`), or `null` without a hello. */
  helloBody(): [string, unknown] | null {
    if (this.#hello === null) return null;
    return [HELLO, typeof this.#hello === 'function' ? (this.#hello as () => unknown)() : this.#hello];
  }

  /** Whether `client.emit(name, …)` sends (a message of `contract.client`) rather than raising an event. */
  sends(name: string | symbol): name is string {
    return typeof name === 'string' && this.#contract !== null && this.#contract.client[name]?.kind === 'message' && Object.hasOwn(this.#contract.client, name);
  }

  /** Answers a request from the server through the routes; `null` without a contract (the client's handler answers). */
  get answer(): ((message: unknown, ctx: MessageContext) => unknown) | null {
    const routes = this.#routes;
    return routes === null ? null : (message, ctx) => (ctx.streaming ? routes.stream(message, [ctx]) : routes.request(message, [ctx]));
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
