import type { Connection, ConnectionData } from '../connection/connection.js';
import { kCloseForError } from '../connection/owner.js';
import { aboutClient, PulsarError } from '../errors.js';
import { validate, type StandardSchemaV1 } from '../messages/schema.js';
import type { MessageContext } from '../messages/settings.js';
import { checkTimerMs, invalidOption } from '../util/validate.js';

/**
 * The server's `hello` option: the first request of every connection (SPEC section 17). Until it is
 * accepted, nothing else reaches a handler.
 */
export interface HelloOptions<V = unknown, D extends ConnectionData = ConnectionData> {
  /** Validates the hello's value. @default none */
  schema?: StandardSchemaV1<unknown, V>;
  /** Ms a new connection has to say hello; then `ERR_HELLO_TIMEOUT` closes it. @default 5000 */
  timeout?: number;
  /**
   * Accepts the hello: what it returns (or resolves) is merged into `conn.data`. A throw answers the
   * hello with its error (its `code` when it has one) and closes the connection.
   */
  handler(value: V, conn: Connection<D>, ctx: MessageContext): D | void | PromiseLike<D | void>;
}

/** Where a connection is with its hello. */
interface HelloState {
  phase: 'waiting' | 'running' | 'accepted' | 'failed';
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Settles with the hello while it runs: what arrives meanwhile waits on it. */
  done: Promise<void> | undefined;
}

/** What the gate reports to its server. */
export interface HelloHost {
  /** A hello was accepted. */
  accepted(conn: Connection, value: unknown): void;
}

/**
 * The server's side of the hello: a timer per new connection (only with `hello`), the hello's handler,
 * and the gate every other message and request passes.
 */
export class HelloGate {
  readonly #options: Required<Omit<HelloOptions, 'schema'>> & { schema: StandardSchemaV1 | null };
  readonly #host: HelloHost;
  readonly #states = new WeakMap<Connection, HelloState>();

  /**
   * @param owner who is configured (for errors)
   * @param options the `hello` option
   * @param host who hears of accepted hellos
   * @throws {PulsarError} `ERR_INVALID_OPTION`
   */
  constructor(owner: string, options: HelloOptions, host: HelloHost) {
    if (typeof options !== 'object' || options === null || typeof options.handler !== 'function') throw invalidOption(owner, 'hello', 'must be { handler, schema?, timeout? }', options);
    this.#options = {
      handler: options.handler as HelloOptions['handler'],
      schema: options.schema ?? null,
      timeout: checkTimerMs(owner, 'hello.timeout', options.timeout ?? 5000, 1),
    };
    this.#host = host;
  }

  /** A connection is served: its hello is due within the timeout. */
  connected(conn: Connection): void {
    const timer = setTimeout(HelloGate.#timedOut, this.#options.timeout, this, conn);
    timer.unref();
    this.#states.set(conn, { phase: 'waiting', timer, done: undefined });
  }

  /** The connection is gone: its timer with it. */
  closed(conn: Connection): void {
    clearTimeout(this.#states.get(conn)?.timer);
  }

  /**
   * Whether what `conn` sent may be handled: `true` once its hello was accepted; a promise while the hello
   * runs (rejecting if it fails).
   * @throws {PulsarError} `ERR_HELLO_REQUIRED` before any hello (the connection closes)
   */
  admit(conn: Connection): true | Promise<void> {
    const state = this.#states.get(conn);
    if (state?.phase === 'accepted') return true;
    if (state?.phase === 'running') return state.done!;
    const error = new PulsarError('ERR_HELLO_REQUIRED', 'nothing is handled before the hello');
    conn[kCloseForError](aboutClient(error, String(conn)));
    throw error;
  }

  /** Handles a hello: `null` once accepted (its reply); a failure closes the connection. */
  async hello(conn: Connection, value: unknown, ctx: MessageContext): Promise<null> {
    const state = this.#states.get(conn);
    if (state === undefined || state.phase !== 'waiting') throw new PulsarError('ERR_HELLO_REPEATED', 'a connection says hello once');
    state.phase = 'running';
    let release!: () => void;
    let refuse!: (error: Error) => void;
    state.done = new Promise<void>((resolve, reject) => ((release = resolve), (refuse = reject)));
    state.done.catch(() => {}); // heard by whatever waits on it, if anything does
    try {
      const valid = this.#options.schema === null ? value : await validate(this.#options.schema, value);
      const data = await this.#options.handler(valid, conn, ctx);
      if (typeof data === 'object' && data !== null) Object.assign(conn.data, data);
      state.phase = 'accepted';
      clearTimeout(state.timer);
      release();
      this.#host.accepted(conn, valid);
      return null;
    } catch (error) {
      state.phase = 'failed';
      clearTimeout(state.timer);
      const refusal = new PulsarError('ERR_HELLO_REQUIRED', `${conn}: the hello was not accepted`, { cause: error });
      refuse(refusal);
      conn.close();
      throw error;
    }
  }

  static #timedOut(this: void, gate: HelloGate, conn: Connection): void {
    const state = gate.#states.get(conn);
    if (state?.phase !== 'waiting') return; // a hello being handled is not late
    state.phase = 'failed';
    conn[kCloseForError](new PulsarError('ERR_HELLO_TIMEOUT', `${conn}: no hello within ${gate.#options.timeout} ms`));
  }
}
