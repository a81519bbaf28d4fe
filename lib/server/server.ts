import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import { AcceptPath } from '../accept/handshakes.js';
import { AdmissionGate } from '../admission/gate.js';
import { channels, type BackpressureMessage, type ClientErrorMessage, type ConnectionMessage, type DisconnectMessage, type RateLimitedMessage, type RefusedMessage } from './channels.js';
import { Connection, type ConnectionData } from '../connection/connection.js';
import { ServerApplication } from '../contract/application.js';
import type { Contract, ContractConnection, ContractGroup, RoutesOf } from '../contract/contract.js';
import type { MessageContext } from '../messages/settings.js';
import { sendPayload } from '../messages/session.js';
import { kCreate, kFeed, kRecount, kStart, type ConnectionOwner, type DisconnectReason } from '../connection/owner.js';
import { aboutClient, PulsarError } from '../errors.js';
import { Fleet } from '../fleet/fleet.js';
import { leaveGroups, type ConnectionGroup } from '../fleet/groups.js';
import { hostPort, messageOf } from '../util/format.js';
import { readinessOf, ReadinessEvents, type Readiness } from './health.js';
import { ServedConnections } from './connections.js';
import { Listener } from './listener.js';
import { memoryLimitError, MemoryBudget } from './memory-budget.js';
import { echo } from './handlers.js';
import { publicOptions, resolveServerOptions, type PulsarServerOptions, type ResolvedServerOptions } from './options.js';
import { RegistryDriver } from '../registry/driver.js';
import type { CloseResult, ListenAddress, PulsarServerEvents, ServerStats } from './types.js';
import { ServerTimers } from './timers.js';
import { ServerTotals } from './totals.js';
import { emitError } from '../util/unhandled-error.js';

const debug = createDebug('pulsar:server:trace');

export type { Report } from '../registry/driver.js';
export type { CloseResult, DisconnectError, ListenAddress, PulsarServerEvents, ServerStats } from './types.js';

type ServerState = 'idle' | 'starting' | 'listening' | 'closing' | 'closed';

/**
 * A framed TCP server: accepts connections, splits each stream into frames with the codec, and hands
 * every frame to the handler (echo by default). Sends heartbeats, tracks connections in the registry,
 * reports them periodically, and closes gracefully.
 *
 * The server keeps the lifecycle, the connections and their figures; each other concern has a module of
 * its own: the accept path (`accept/`: PROXY header, TLS), admission (`admission/`), the fleet surface
 * (`fleet/`: groups, `sendTo`, the relay), the registry and reports (`registry/`).
 *
 * @example
 * ```ts
 * const server = new PulsarServer({ port: 0, handler: (frame, conn) => conn.send(frame.reverse()) });
 * const { port } = await server.listen();
 * // ...
 * await server.close();
 * ```
 */
export class PulsarServer<M = Buffer, S = never, D extends ConnectionData = ConnectionData, C extends Contract = Contract, H = unknown> extends EventEmitter<PulsarServerEvents<D, C>> {
  /**
   * The options in force, defaults applied: a frozen copy to read. The heartbeat policy in it is a view
   * whose `start` and `stop` throw: the server runs its heartbeat (`close()` stops it).
   */
  get options(): ResolvedServerOptions {
    return this.#publicOptions;
  }
  readonly #options: ResolvedServerOptions;
  readonly #publicOptions: ResolvedServerOptions;
  readonly #listener: Listener;
  /** The connections served: writable, and all until their socket closes. */
  readonly #served = new ServedConnections();
  readonly #owner: ConnectionOwner;
  readonly #budget: MemoryBudget<Connection>;
  /** Heartbeats, deadlines and reports, while listening. */
  readonly #timers: ServerTimers;
  readonly #accept: AcceptPath;
  readonly #gate: AdmissionGate;
  readonly #fleet: Fleet;
  readonly #registry: RegistryDriver;
  /** The hello, contract and routes (SPEC section 17), or `null` without them. */
  readonly #application: ServerApplication | null;
  #state: ServerState = 'idle';
  #nextId = 1;
  #closing: Promise<CloseResult> | undefined;
  /** Aborted when the server stops serving (after any drain): handlers' `ctx.closing`. */
  readonly #stopping = new AbortController();
  /** True from a drain's start (`drainDelay`) until the shutdown begins. */
  #draining = false;
  /** Tells each change of {@link readiness}. */
  readonly #readinessEvents = new ReadinessEvents((readiness) => this.emit('readiness', readiness));
  /** Figures of connections already closed, and counts kept as events happen (see {@link stats}). */
  readonly #totals = new ServerTotals();

  /**
   * @param options see {@link PulsarServerOptions}
   * @throws {PulsarError} `ERR_INVALID_OPTION` naming the first bad option
   */
  constructor(options?: PulsarServerOptions<M, S, D, C, H>) {
    super();
    this.#options = resolveServerOptions(options);
    this.#application = ServerApplication.of(this.#options, {
      clientError: (error, conn) => this.#clientError(error, conn),
      accepted: (conn, value) => this.emit('hello', conn as ContractConnection<D, C>, value),
    });
    this.#publicOptions = publicOptions(this.#options);
    const { codec, instanceId, registry, relay } = this.#options;
    const live = (): Iterable<Connection> => this.#served.live;
    this.#budget = new MemoryBudget(this.#options.maxBufferedBytes, live, (conn) => conn[kRecount](), (conn, held) => this.#expire(conn, memoryLimitError(held, this.#options.maxBufferedBytes)));
    this.#gate = new AdmissionGate(this.#options, {
      serving: () => this.#state === 'listening',
      served: () => this.#served.live.size,
      connectionFor: (socket, source, proxy, refused = false) => new Connection(kCreate, refused ? 0 : this.#nextId++, socket, this.#owner, source, proxy, refused),
      serve: (conn, rest) => this.#serve(conn, rest),
      refused: (conn, error) => this.#refused(conn, error),
      rateLimited: (conn) => this.#rateLimited(conn, 'connections', 'refuse'),
    });
    this.#accept = new AcceptPath(this.#options, this.#gate, typeof options?.tls === 'function' ? options.tls : null);
    const serverError = (error: PulsarError): void => this.#serverError(error);
    const { messages } = this.#options;
    this.#fleet = new Fleet({
      instanceId, codec, relay, connections: this.#served.writable, caller: this.#application?.caller ?? null,
      payloadOf: (value) => sendPayload(messages, value),
      dropped: () => this.#totals.framesDropped++,
      error: serverError,
    });
    this.#registry = new RegistryDriver(registry, {
      instanceId, connections: this.#served.writable,
      reporting: () => this.#state === 'listening',
      bufferedBytes: () => this.bufferedBytes,
      report: (report) => this.emit('report', report),
      error: serverError,
    });
    this.#owner = this.#createOwner();
    this.#timers = new ServerTimers(this.#options, live, this.#registry, {
      writable: () => this.#served.writable.values(),
      beat: (conn) => {
        this.#totals.heartbeats++;
        this.emit('heartbeat', conn as ContractConnection<D, C>);
      },
      expire: (conn, error) => this.#expire(conn, error),
    });
    this.#listener = new Listener(this.#accept.createListener(), this.#options);
  }

  /** This server's id in a fleet (see `instanceId`). */
  get instanceId(): string {
    return this.#options.instanceId;
  }

  /**
   * The group called `name`, made on first use: a Set-like of connections with an encode-once `broadcast()`;
   * they leave it the moment they can no longer be written; one with no member that the application no
   * longer holds is forgotten (garbage collected), and made anew by the next call.
   * @typeParam T the server's contract, which types its `emit()` and `call()`
   */
  group<T extends Contract = C>(name: string): ContractGroup<D, T> {
    return this.#fleet.group(name) as ContractGroup<D, T>;
  }

  /**
   * Adds routes for the contract's `client` names, as the `routes` option does: the form for routes that
   * use the server (TypeScript cannot type those inside the options: TS7022). @throws {PulsarError} `ERR_INVALID_OPTION`
   */
  routes(routes: RoutesOf<C['client'], [conn: ContractConnection<D, C>, ctx: MessageContext]>): this {
    if (this.#application === null) throw new PulsarError('ERR_INVALID_OPTION', 'PulsarServer: routes need a contract');
    this.#application.route('PulsarServer.routes()', routes as Readonly<Record<string, unknown>>);
    return this;
  }

  /** The live groups (with members, or held by the application), by name. */
  get groups(): ReadonlyMap<string, ConnectionGroup<D>> {
    return this.#fleet.groups as ReadonlyMap<string, ConnectionGroup<D>>;
  }

  /**
   * Sends a frame to a connection of this fleet by its {@link Connection.globalId}: here, or on another
   * instance through the `relay` (`RedisRelay`), in order per sender. Delivery to another instance is at
   * most once: a connection that closed meanwhile does not get it. A connection of this instance that
   * is gone is not an error, as for `send()`: the frame is dropped and counted (`framesDropped` in
   * {@link stats}), and the promise resolves `false`.
   * @returns `true` once written here or handed to the relay, `false` when dropped
   * @throws {PulsarError} (rejects) `ERR_NO_SUCH_CONNECTION` for an id that is not one, or an instance
   * that is not in the fleet (or any other instance without a relay); `ERR_RELAY` when the store cannot
   * be reached; `ERR_FRAME_TOO_LARGE` and `ERR_INVALID_PAYLOAD` as `send()`
   */
  sendTo(globalId: string, payload: unknown): Promise<boolean> {
    return this.#fleet.sendTo(globalId, payload);
  }

  /**
   * The live connections, by id: those that can be written. A connection leaves it the moment it can
   * no longer be written (our FIN sent, destroyed, lost), before its `disconnect` event, so a loop over
   * it meets only connections a `send()` reaches. A read-only view of the server's own map.
   */
  get connections(): ReadonlyMap<number, ContractConnection<D, C>> {
    return this.#served.writable as ReadonlyMap<number, ContractConnection<D, C>>;
  }

  /**
   * Bytes the server holds for its clients now: partial inbound frames being assembled plus output not
   * yet taken by the kernel, over every connection. What `maxBufferedBytes` limits.
   */
  get bufferedBytes(): number {
    return this.#budget.total;
  }

  /** The server's running totals, summed now; see {@link ServerStats}. */
  stats(): ServerStats {
    return this.#totals.sum(this.#served.live, this.#served.writable.size, this.bufferedBytes);
  }

  /**
   * Where the server is in its life, as health checks report it: `starting` until it listens, `ready`,
   * `draining` (a `close()` with a `drainDelay` under way: still serving, `/readyz` 503), `closing`, `closed`.
   * The `readiness` event tells each change.
   */
  get readiness(): Readiness {
    return readinessOf(this.#state, this.#draining);
  }

  /**
   * Re-reads the TLS certificate and key: calls the `tls` option again when it is a function (else applies
   * the same options). New connections get the new certificate; established ones are untouched.
   * @throws {PulsarError} (rejects) `ERR_TLS_RELOAD` when the new options make no valid certificate (a
   * file missing, a key that does not match): the certificate in use stays
   */
  async reload(): Promise<void> {
    if (this.#options.tls === false) return;
    try {
      this.#accept.reloadTls();
    } catch (error) {
      throw new PulsarError('ERR_TLS_RELOAD', `TLS reload failed, the certificate in use stays: ${messageOf(error)}`, { cause: error });
    }
    debug('TLS certificate reloaded');
  }

  /** Where the server listens, or `null` when it is not listening. */
  address(): ListenAddress | null {
    return this.#listener.address();
  }

  /**
   * Starts listening.
   * @returns the real address and port (useful with `port: 0`)
   * @throws rejects with Node's error (`EADDRINUSE`, `EACCES`…), `ERR_REGISTRY` or `ERR_RELAY` when the
   * registry or the relay cannot start, or `ERR_SERVER_STATE` if the server is already listening or closed
   */
  listen(): Promise<ListenAddress> {
    if (this.#state !== 'idle') {
      return Promise.reject(new PulsarError('ERR_SERVER_STATE', `listen() needs an idle server, but this one is ${this.#state}`));
    }
    this.#state = 'starting';
    return this.#listener.prepare()
      .then(() => Promise.all([this.#registry.start(), this.#fleet.start()]))
      .then(() => {
        if (this.#state !== 'starting') throw new PulsarError('ERR_SERVER_STATE', 'the server was closed before it listened');
        return this.#listener.bind((error) => {
          const report = this.#accept.failed(error);
          if (report !== null) this.#serverError(report);
        });
      })
      .then((address) => {
        this.#state = 'listening';
        this.#readinessEvents.update(this.readiness);
        this.#timers.start();
        debug('listening on %s', address.family === 'unix' ? `unix:${address.address}` : hostPort(address.address, address.port));
        this.emit('listening', address);
        return address;
      }, (error: unknown) => {
        if (this.#state === 'starting') this.#state = 'idle';
        throw error;
      });
  }

  /**
   * Shuts down gracefully: first, with a `drainDelay`, readiness turns to `draining` and the server keeps
   * accepting and serving for that long; then it stops accepting, reads no more input, answers every frame
   * already received, flushes and ends each connection, and destroys what is left after `shutdownTimeout`.
   * Calling it again returns the same promise.
   * @param options `drainDelay`: ms to drain first (the option's by default; `0` skips it); `accepting`:
   * whether the server still takes new connections while it drains (`true`, for load balancers that still
   * route to it; a cluster's rolling reload passes `false`: the primary hands new ones to the other workers,
   * while those this worker took meanwhile get served)
   * @returns how many connections drained cleanly and how many were forced
   */
  close(options: { drainDelay?: number; accepting?: boolean } = {}): Promise<CloseResult> {
    this.#closing ??= this.#drainThenShutdown(options.drainDelay ?? this.#options.drainDelay, options.accepting ?? true);
    return this.#closing;
  }

  async #drainThenShutdown(drainDelay: number, accepting: boolean): Promise<CloseResult> {
    if (drainDelay > 0 && this.#state === 'listening') {
      this.#draining = true;
      if (!accepting) this.#listener.stopAccepting(); // the shutdown waits for the listener's close
      this.#readinessEvents.update(this.readiness);
      debug('draining for %d ms', drainDelay);
      await new Promise((resolve) => setTimeout(resolve, drainDelay));
    }
    this.#stopping.abort(new PulsarError('ERR_SERVER_STATE', 'the server is closing'));
    return this.#shutdown();
  }

  async #shutdown(): Promise<CloseResult> {
    const wasStarted = this.#state === 'listening' || this.#state === 'starting';
    this.#state = 'closing';
    this.#readinessEvents.update(this.readiness);
    const stopped = this.#listener.close(wasStarted);
    this.#timers.stop();
    this.#accept.destroyPending(); // nothing accepted from them yet
    this.#gate.refuseWaiting(); // not admitted yet either
    debug('closing: %d connection(s) to drain', this.#served.live.size);
    // Also makes 'close' asynchronous, even with nothing to wait for.
    const [, result] = await Promise.all([stopped, this.#served.closeAll()]);
    await Promise.all([this.#registry.stop(wasStarted), wasStarted ? this.#fleet.stop() : undefined]);
    this.#state = 'closed';
    this.#readinessEvents.update(this.readiness);
    debug('closed: %d drained, %d forced', result.drained, result.forced);
    this.emit('close', result);
    return result;
  }

  /** Serves an admitted connection: registers it, starts reading, and hands it the bytes after its PROXY header. */
  #serve(conn: Connection, rest: Buffer | null): void {
    this.#served.add(conn);
    this.#totals.accepted++;
    conn[kStart]();
    this.#registry.call('add', conn);
    this.#application?.gate?.connected(conn);
    this.emit('connection', conn as ContractConnection<D, C>);
    if (channels.connection.hasSubscribers) channels.connection.publish({ server: this, connection: conn } satisfies ConnectionMessage);
    if (rest !== null) conn[kFeed](rest);
  }

  /** Reports a client refused (at accept or by the admit hook). */
  #refused(conn: Connection, error: PulsarError): void {
    const named = aboutClient(error, String(conn));
    if (channels.refused.hasSubscribers) channels.refused.publish({ server: this, connection: conn, error: named } satisfies RefusedMessage);
    this.#clientError(named, conn);
  }

  #createOwner(): ConnectionOwner {
    const { codec, highWaterMark, shutdownTimeout, handler, maxPendingOutput, instanceId, rateLimit, onRateLimit, messages } = this.#options;
    const emitFrame = (frame: Buffer, conn: Connection): void => {
      this.emit('frame', frame, conn as ContractConnection<D, C>);
    };
    return {
      settings: Object.freeze({
        instanceId, codec, highWaterMark, closeTimeout: shutdownTimeout, maxPendingOutput, rateLimit, onRateLimit, messages,
        handler: (this.#application?.handle ?? handler) as ConnectionOwner['settings']['handler'], echoes: handler === echo,
        caller: this.#application?.caller ?? null, closing: this.#stopping.signal,
      }),
      frameListener: () => (this.listenerCount('frame') === 0 ? null : emitFrame),
      clientError: (error, conn) => this.#clientError(error, conn),
      rateLimited: (conn, kind, action) => this.#rateLimited(conn, kind, action),
      flowChanged: (conn, paused) => {
        if (paused) this.emit('backpressure', conn as ContractConnection<D, C>);
        else this.emit('drain', conn as ContractConnection<D, C>);
        if (channels.backpressure.hasSubscribers) channels.backpressure.publish({ server: this, connection: conn, paused } satisfies BackpressureMessage);
      },
      heldChanged: (delta) => this.#budget.change(delta),
      frameDropped: () => this.#totals.framesDropped++,
      lateReply: () => this.#totals.lateReplies++,
      unwritable: (conn) => this.#unwritable(conn),
      closed: (conn, reason, error) => this.#disconnected(conn, reason, error),
    };
  }

  /** Counts a rate limit met (`rateLimited` in {@link stats}, by kind and action) and publishes it. */
  #rateLimited(conn: Connection, kind: RateLimitedMessage['kind'], action: RateLimitedMessage['action']): void {
    this.#totals.rateLimited++;
    if (channels.rateLimited.hasSubscribers) channels.rateLimited.publish({ server: this, connection: conn, kind, action } satisfies RateLimitedMessage);
  }

  /** Closes a connection that broke a limit, reporting `error` (which does not name it yet). */
  #expire(conn: Connection, error: PulsarError): void {
    const named = aboutClient(error, String(conn));
    this.#clientError(named, conn);
    conn.destroy(named);
  }

  /** A connection that can no longer be written leaves the live map, its groups and the registry at once. */
  #unwritable(conn: Connection): void {
    if (!this.#served.unwritable(conn)) return;
    leaveGroups(conn);
    this.#registry.call('remove', conn);
  }

  #disconnected(conn: Connection, reason: DisconnectReason, error: Error | undefined): void {
    if (!this.#served.closed(conn, reason, error)) return;
    this.#gate.release(conn.remoteAddress);
    this.#totals.retire(conn);
    this.#application?.gate?.closed(conn);
    this.emit('disconnect', conn as ContractConnection<D, C>, reason, error);
    if (channels.disconnect.hasSubscribers) channels.disconnect.publish({ server: this, connection: conn, reason, error } satisfies DisconnectMessage);
  }

  #clientError(error: PulsarError, conn: Connection): void {
    debug('client error: %s', error.message); // the message names the client
    this.emit('clientError', error, conn as ContractConnection<D, C>);
    if (channels.clientError.hasSubscribers) channels.clientError.publish({ server: this, connection: conn, error } satisfies ClientErrorMessage);
  }

  #serverError(error: Error): void {
    debug('server error: %s', error.message);
    emitError(this, 'PulsarServer', error);
  }
}
