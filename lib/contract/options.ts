import type { ConnectionData } from '../connection/connection.js';
import type { ContractConnection } from './typed.js';
import type { MessageContext } from '../messages/settings.js';
import { conflictingOption, invalidOption } from '../util/validate.js';
import { isContract, type Contract, type RoutesOf } from './contract.js';
import type { HelloOptions } from './hello.js';
import { defaultValidateOutgoing } from './router.js';

/** The server's application options (SPEC section 17). */
export interface ServerApplicationOptions<C extends Contract = Contract, D extends ConnectionData = ConnectionData, H = unknown> {
  /** What the two sides say to each other ({@link contract}): turns `rpc` on, bodies are `[name, value]`. */
  contract?: C;
  /** The handlers of `contract.client`'s names (more with `server.routes()`). Not with `handler`. */
  routes?: RoutesOf<NoInfer<C>['client'], [conn: ContractConnection<D, NoInfer<C>>, ctx: MessageContext]>;
  /** The first request of every connection, whose handler fills `conn.data`: turns `rpc` on. */
  hello?: HelloOptions<H, D>;
  /** Check what leaves (inputs, outputs, messages) against the contract. @default true unless NODE_ENV is production */
  validateOutgoing?: boolean;
}

/** The application options of either end ({@link ServerApplicationOptions}, the client's) resolved. */
export interface ResolvedApplication {
  /** The contract, or `null` (a hello alone). */
  readonly contract: Contract | null;
  /** The routes given with the options (`server.routes()` adds more). */
  readonly routes: Readonly<Record<string, unknown>>;
  /** The hello as given, or `null`: the server's `HelloOptions` (checked by its gate), the client's value or function. */
  readonly hello: unknown;
  /** Whether what leaves is checked against the contract. */
  readonly validateOutgoing: boolean;
}

/** The names of {@link ServerApplicationOptions}. */
export const APPLICATION_OPTIONS: Record<keyof ServerApplicationOptions, true> = { contract: true, routes: true, hello: true, validateOutgoing: true };

/**
 * Checks the application options of `owner` (a server or a client): `null` when none is given. A contract or a hello needs
 * `messages` and turns `rpc` on; they take no `schema` (the contract's schemas, or the hello's, apply) and
 * `routes` take no `handler`.
 */
export function resolveApplication(owner: string, options: Omit<ServerApplicationOptions, 'hello' | 'routes'> & { hello?: unknown; routes?: object; messages?: unknown; rpc?: boolean; schema?: unknown; handler?: unknown }): ResolvedApplication | null {
  const { contract, routes, hello, validateOutgoing } = options;
  if (contract === undefined && hello === undefined) {
    if (routes !== undefined) throw conflictingOption(owner, 'routes', 'needs a contract');
    return null;
  }
  const name = contract !== undefined ? 'contract' : 'hello';
  if (options.messages === undefined) throw conflictingOption(owner, name, 'needs messages (json(), or msgpack() from pulsar/msgpack)');
  if (options.rpc === false) throw conflictingOption(owner, 'rpc', `cannot be false with ${name}: requests need it`);
  if (options.schema !== undefined) throw conflictingOption(owner, 'schema', `does not apply with ${name}: its own schemas validate`);
  if (contract !== undefined && !isContract(contract)) throw invalidOption(owner, 'contract', 'must be made by contract()', contract);
  if (routes !== undefined) {
    if (contract === undefined) throw conflictingOption(owner, 'routes', 'needs a contract');
    if (options.handler !== undefined) throw conflictingOption(owner, 'routes', 'and handler cannot both answer: give one');
    if (typeof routes !== 'object' || routes === null) throw invalidOption(owner, 'routes', 'must be an object of functions', routes);
  }
  if (validateOutgoing !== undefined && typeof validateOutgoing !== 'boolean') throw invalidOption(owner, 'validateOutgoing', 'must be a boolean', validateOutgoing);
  return {
    contract: contract ?? null,
    routes: (routes ?? {}) as Readonly<Record<string, unknown>>,
    hello: hello ?? null,
    validateOutgoing: validateOutgoing ?? defaultValidateOutgoing(),
  };
}
