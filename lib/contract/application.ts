import type { Connection } from '../connection/connection.js';
import { kCloseForError } from '../connection/owner.js';
import { aboutClient, PulsarError } from '../errors.js';
import type { MessageContext } from '../messages/settings.js';
import { isPromiseLike } from '../util/thenable.js';
import type { Contract } from './contract.js';
import { HelloGate, type HelloOptions } from './hello.js';
import type { ResolvedApplication } from './options.js';
import { ContractCaller, ContractRoutes, isHello } from './router.js';

/** What a server's application layer reports. */
export interface ApplicationHost {
  /** Bad input from a client (an unknown name, a value its schema refuses), or an output of ours refused. */
  clientError(error: PulsarError, conn: Connection): void;
  /** A hello was accepted. */
  accepted(conn: Connection, value: unknown): void;
}

/** Codes of bad input that a route's lookup or validation throws. */
const BAD_INPUT = new Set(['ERR_UNKNOWN_ROUTE', 'ERR_INVALID_MESSAGE', 'ERR_MALFORMED_MESSAGE']);

/**
 * A server's application layer (SPEC section 17): the hello every connection says first, then the
 * contract's routes (or the handler, without a contract). It is the server's message handler.
 */
export class ServerApplication {
  /** The hello's gate, or `null` without `hello`. */
  readonly gate: HelloGate | null;
  /** What the server sends (`contract.server`), or `null` without a contract. */
  readonly caller: ContractCaller | null;
  readonly #routes: ContractRoutes | null;
  readonly #handler: (message: unknown, conn: Connection, ctx: MessageContext) => unknown;
  readonly #host: ApplicationHost;
  /** `onInvalid: 'close'`: bad input closes the connection (gracefully, after reporting it). */
  readonly #closeOnInvalid: boolean;

  /**
   * @param owner who is configured (for errors)
   * @param options the server's `contract`, `hello`, `onInvalid` and `handler` (used without a contract)
   * @param host who hears of bad input and hellos
   */
  constructor(owner: string, options: { contract: Contract | null; hello: unknown; validateOutgoing: boolean; closeOnInvalid: boolean; handler: (message: unknown, conn: Connection, ctx: MessageContext) => unknown }, host: ApplicationHost) {
    const { contract, validateOutgoing } = options;
    this.#host = host;
    this.#closeOnInvalid = options.closeOnInvalid;
    this.gate = options.hello === null ? null : new HelloGate(owner, options.hello as HelloOptions, host);
    this.caller = contract === null ? null : new ContractCaller(contract.server, validateOutgoing);
    this.#routes = contract === null ? null : new ContractRoutes(contract.client, validateOutgoing, (error, [conn]) => host.clientError(aboutClient(error, String(conn)), conn as Connection));
    this.#handler = options.handler;
  }

  /** The application of a server's resolved options, its routes added; `null` without a contract or a hello. */
  static of(options: { application: ResolvedApplication | null; messages: { onInvalid: string } | null; handler: (message: unknown, conn: Connection, ctx: MessageContext) => unknown }, host: ApplicationHost): ServerApplication | null {
    const { application } = options;
    if (application === null) return null;
    const closeOnInvalid = options.messages?.onInvalid === 'close';
    const made = new ServerApplication('PulsarServer', { ...application, closeOnInvalid, handler: options.handler }, host);
    made.route('PulsarServer', application.routes);
    return made;
  }

  /** The handler the connections call. */
  readonly handle = (message: unknown, conn: Connection, ctx: MessageContext): unknown => {
    if (ctx.requestId !== undefined && isHello(message)) return this.gate === null ? null : this.gate.hello(conn, message[1], ctx);
    const admitted = this.gate === null ? true : this.gate.admit(conn);
    if (admitted === true) return this.#dispatch(message, conn, ctx);
    return admitted.then(() => this.#dispatch(message, conn, ctx));
  };

  /**
   * Adds routes to the contract's `client` side.
   * @throws {PulsarError} `ERR_INVALID_OPTION` without a contract, or for a name it does not have
   */
  route(owner: string, routes: Readonly<Record<string, unknown>>): void {
    if (this.#routes === null) throw new PulsarError('ERR_INVALID_OPTION', `${owner}: routes need a contract`);
    this.#routes.add(owner, routes);
  }

  #dispatch(message: unknown, conn: Connection, ctx: MessageContext): unknown {
    const routes = this.#routes;
    if (routes === null) return this.#handler(message, conn, ctx);
    const request = ctx.requestId !== undefined;
    try {
      const result = !request ? routes.message(message, [conn, ctx]) : ctx.streaming ? routes.stream(message, [conn, ctx]) : routes.request(message, [conn, ctx]);
      return isPromiseLike(result) ? Promise.resolve(result).catch((error: unknown) => this.#failed(error, conn, request)) : result;
    } catch (error) {
      return this.#failed(error, conn, request);
    }
  }

  /** Bad input is reported as the client's (and a request is answered with its code); anything else is the route's failure. */
  #failed(error: unknown, conn: Connection, request: boolean): undefined {
    if (error instanceof PulsarError && BAD_INPUT.has(error.code)) {
      const named = aboutClient(error, String(conn));
      // onInvalid: 'close' as without a contract: reported, then closed gracefully (a request's answer leaves first).
      if (this.#closeOnInvalid) conn[kCloseForError](named);
      else this.#host.clientError(named, conn);
      if (!request) return undefined;
    }
    throw error;
  }
}
