import cluster from 'node:cluster';
import type net from 'node:net';
import type { TlsOptions } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import { AcceptPath } from '../accept/handshakes.js';
import { AdmissionGate } from '../admission/gate.js';
import { channels, type BackpressureMessage, type ClientErrorMessage, type ConnectionMessage, type DisconnectMessage, type RateLimitedMessage, type RefusedMessage } from './channels.js';
import { Connection, peerOf, type ConnectionData } from '../connection/connection.js';
import { framePayload } from '../io/payload.js';
import { EnvelopeKind } from '../messages/envelope.js';
import { encodeMessage } from '../messages/session.js';
import { kCreate, kFeed, kFlushed, kRecount, kRefuse, kSendEncoded, kShutdown, kStart, type ConnectionOwner, type DisconnectReason } from '../connection/owner.js';
import { DeadlineSweep } from './deadlines.js';
import { aboutClient, PulsarError } from '../errors.js';
import { Fleet } from '../fleet/fleet.js';
import { leaveGroups, type ConnectionGroup } from '../fleet/groups.js';
import { hostPort, messageOf } from '../util/format.js';
import type { Readiness } from './health.js';
import { heartbeatHostFor } from '../heartbeat.js';
import { MemoryBudget } from './memory-budget.js';
import { echo, publicOptions, resolveServerOptions, withTlsDefaults, type PulsarServerOptions, type ResolvedServerOptions } from './options.js';
import type { ProxiedAddress, ProxyInfo } from '../accept/proxy-protocol.js';
import { ReadonlyMapView } from '../util/readonly-map.js';
import { RegistryDriver } from '../registry/driver.js';
import type { CloseResult, ListenAddress, PulsarServerEvents, ServerStats } from './types.js';
import { ServerTotals } from './totals.js';
import { emitError } from '../util/unhandled-error.js';
import { clearStaleSocket } from './unix-socket.js';

const debug = createDebug('pulsar:lifecycle:server');

export type { Report } from '../registry/driver.js';
export type { CloseResult, ListenAddress, PulsarServerEvents, ServerStats } from './types.js';

type ServerState = 'idle' | 'starting' | 'listening' | 'closing' | 'closed';

function ignoreError(): void {}

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
export class PulsarServer<M = Buffer, S = never, D extends ConnectionData = ConnectionData> extends EventEmitter<PulsarServerEvents> {
  /**
   * The options in force, defaults applied: a frozen copy to read. The heartbeat policy in it is a view
   * whose `start` and `stop` throw: the server runs its heartbeat (`close()` stops it).
   */
  get options(): ResolvedServerOptions {
    return this.#publicOptions;
  }
  readonly #options: ResolvedServerOptions;
  readonly #publicOptions: ResolvedServerOptions;
  readonly #net: net.Server;
  /** The connections that can be written: what {@link connections} shows. */
  readonly #connections = new Map<number, Connection>();
  readonly #connectionsView = new ReadonlyMapView(this.#connections);
  /**
   * Every served connection until its socket closes: the writable ones and those lingering after our
   * FIN (they still hold output, count against `maxConnections` and are waited for on shutdown).
   */
  readonly #live = new Set<Connection>();
  readonly #owner: ConnectionOwner;
  readonly #budget: MemoryBudget<Connection>;
  readonly #deadlines: DeadlineSweep<Connection>;
  readonly #accept: AcceptPath;
  readonly #gate: AdmissionGate;
  readonly #fleet: Fleet;
  readonly #registry: RegistryDriver;
  #state: ServerState = 'idle';
  #nextId = 1;
  #closing: Promise<CloseResult> | undefined;
  /** True from a drain's start (`drainDelay`) until the shutdown begins. */
  #draining = false;
  /** The readiness last announced (see {@link readiness}). */
  #announced: Readiness = 'starting';
  /** The `tls` option when it is a function: called again by {@link reload}. */
  readonly #tlsSource: (() => TlsOptions) | null;
  #closeResult: CloseResult = { drained: 0, forced: 0 };
  /** Figures of connections already closed, and counts kept as events happen (see {@link stats}). */
  readonly #totals = new ServerTotals();
  /** Resolves the shutdown's wait once the last connection is gone. */
  #onLastDisconnect: (() => void) | undefined;
  /** Rejects a `listen()` still in progress when `close()` comes first. */
  #abortListen: ((error: Error) => void) | undefined;

  /**
   * @param options see {@link PulsarServerOptions}
   * @throws {PulsarError} `ERR_INVALID_OPTION` naming the first bad option
   */
  constructor(options?: PulsarServerOptions<M, S, D>) {
    super();
    this.#options = resolveServerOptions(options);
    this.#publicOptions = publicOptions(this.#options);
    this.#tlsSource = typeof options?.tls === 'function' ? options.tls : null;
    const { codec, instanceId, registry, relay } = this.#options;
    const live = (): Iterable<Connection> => this.#live;
    this.#budget = new MemoryBudget(this.#options.maxBufferedBytes, live, (conn) => conn[kRecount](), (conn, held) => this.#evict(conn, held));
    this.#deadlines = new DeadlineSweep(this.#options, live, (conn, error) => this.#expire(conn, error));
    this.#gate = new AdmissionGate(this.#options, {
      serving: () => this.#state === 'listening',
      served: () => this.#live.size,
      serve: (conn, rest) => this.#serve(conn, rest),
      turnAway: (conn, error) => this.#turnAway(conn, error),
    });
    this.#accept = new AcceptPath(this.#options, {
      accepting: () => this.#state === 'listening',
      admit: (socket, source, proxy, rest) => this.#gate.admit(this.#connectionFor(socket, source, proxy), rest),
      refuse: (socket, source, proxy, error, screened) => {
        if (screened) this.#gate.release(source?.address ?? peerOf(socket).address);
        this.#refuseAtAccept(socket, source, proxy, error);
      },
      screen: (socket, source, proxy, pending) => {
        const address = source?.address ?? peerOf(socket).address;
        const overRate = this.#gate.rateRefusal(address);
        const refusal = overRate ?? this.#gate.screen(address, pending);
        if (refusal === null) return false;
        const conn = this.#refuseAtAccept(socket, source, proxy, refusal);
        if (overRate !== null) this.#rateLimited(conn, 'connections', 'refuse');
        return true;
      },
      gone: (address) => this.#gate.release(address),
      full: (socket, pending) => {
        const refusal = this.#gate.full(pending);
        if (refusal !== null) this.#refuseAtAccept(socket, null, null, refusal);
        return refusal !== null;
      },
    });
    const serverError = (error: PulsarError): void => this.#serverError(error);
    const { messages } = this.#options;
    this.#fleet = new Fleet({
      instanceId, codec, relay, connections: this.#connectionsView,
      payloadOf: messages === null ? framePayload : (value) => encodeMessage(messages, EnvelopeKind.message, 0, value),
      dropped: () => this.#totals.framesDropped++,
      error: serverError,
    });
    this.#registry = new RegistryDriver(registry, {
      instanceId, connections: this.#connectionsView,
      reporting: () => this.#state === 'listening',
      bufferedBytes: () => this.bufferedBytes,
      report: (report) => this.emit('report', report),
      error: serverError,
    });
    this.#owner = this.#createOwner();
    this.#net = this.#accept.createListener();
  }

  /** This server's id in a fleet (see `instanceId`). */
  get instanceId(): string {
    return this.#options.instanceId;
  }

  /**
   * The group called `name`, made on first use: a Set-like of connections with an encode-once
   * `broadcast()`. Connections leave their groups the moment they can no longer be written; a group with
   * no member that the application no longer holds is forgotten (garbage collected), and made anew by
   * the next call.
   */
  group(name: string): ConnectionGroup {
    return this.#fleet.group(name);
  }

  /** The live groups (with members, or held by the application), by name. */
  get groups(): ReadonlyMap<string, ConnectionGroup> {
    return this.#fleet.groups;
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
  get connections(): ReadonlyMap<number, Connection> {
    return this.#connectionsView;
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
    return this.#totals.sum(this.#live, this.#connections.size, this.bufferedBytes);
  }

  /**
   * Where the server is in its life, as health checks report it: `starting` until it listens, `ready`,
   * `draining` (a `close()` with a `drainDelay` under way: still serving, `/readyz` 503), `closing`, `closed`.
   * The `readiness` event tells each change.
   */
  get readiness(): Readiness {
    switch (this.#state) {
      case 'idle':
      case 'starting': return 'starting';
      case 'listening': return this.#draining ? 'draining' : 'ready';
      default: return this.#state;
    }
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
      this.#accept.setTls(this.#tlsSource === null ? this.#options.tls : withTlsDefaults(this.#tlsSource()));
    } catch (error) {
      throw new PulsarError('ERR_TLS_RELOAD', `TLS reload failed, the certificate in use stays: ${messageOf(error)}`, { cause: error });
    }
    debug('TLS certificate reloaded');
  }

  /** Where the server listens, or `null` when it is not listening. */
  address(): ListenAddress | null {
    const address = this.#net.address() as AddressInfo | string | null;
    if (typeof address === 'string') return { address, port: 0, family: 'unix' };
    return address ? { address: address.address, port: address.port, family: address.family } : null;
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
    const { path } = this.#options;
    // In a cluster worker the primary owns the socket: it makes way for it (see clearStaleSocket).
    const ready = (path === null || cluster.isWorker ? Promise.resolve() : clearStaleSocket(path))
      .then(() => Promise.all([this.#registry.start(), this.#fleet.start()]));
    return ready.then(() => new Promise((resolve, reject) => {
      if (this.#state !== 'starting') throw new PulsarError('ERR_SERVER_STATE', 'the server was closed before it listened');
      const onError = (error: Error): void => {
        this.#net.off('listening', onListening);
        this.#abortListen = undefined;
        if (this.#state === 'starting') this.#state = 'idle';
        reject(error);
      };
      const onListening = (): void => {
        this.#net.off('error', onError);
        this.#abortListen = undefined;
        this.#net.on('error', (error) => {
          const report = this.#accept.failed(error);
          if (report !== null) this.#serverError(report);
        });
        this.#state = 'listening';
        this.#announceReadiness();
        this.#startTimers();
        const address = this.address()!;
        debug('listening on %s', address.family === 'unix' ? `unix:${address.address}` : hostPort(address.address, address.port));
        this.emit('listening', address);
        resolve(address);
      };
      this.#abortListen = onError;
      this.#net.once('error', onError);
      this.#net.once('listening', onListening);
      this.#net.listen(this.#listenOptions());
    }), (error: unknown) => {
      if (this.#state === 'starting') this.#state = 'idle';
      throw error;
    });
  }

  /** What `net.Server#listen()` is given: an inherited descriptor, a Unix socket, or host and port. */
  #listenOptions(): net.ListenOptions | { fd: number } {
    const { host, port, path, fd, reusePort } = this.#options;
    if (fd !== null) return { fd };
    if (path !== null) return { path };
    // With reusePort, a cluster worker binds a socket of its own (exclusive) instead of the primary's.
    return reusePort ? { host, port, reusePort, exclusive: true } as net.ListenOptions : { host, port };
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
      if (!accepting) this.#net.close(); // no callback: the shutdown waits for the listener's close
      this.#announceReadiness();
      debug('draining for %d ms', drainDelay);
      await new Promise((resolve) => setTimeout(resolve, drainDelay));
    }
    return this.#shutdown();
  }

  /** Emits `readiness` when it changed since last told. */
  #announceReadiness(): void {
    const readiness = this.readiness;
    if (readiness === this.#announced) return;
    this.#announced = readiness;
    this.emit('readiness', readiness);
  }

  async #shutdown(): Promise<CloseResult> {
    const wasStarted = this.#state === 'listening' || this.#state === 'starting';
    this.#state = 'closing';
    this.#announceReadiness();
    if (this.#abortListen) {
      this.#abortListen(new PulsarError('ERR_SERVER_STATE', 'close() was called before the server was listening'));
      // A listen() waiting on a DNS lookup binds later: close the socket it opens then.
      if (!this.#net.listening) this.#net.once('listening', () => this.#net.close());
    }
    this.#stopTimers();
    const stopped = wasStarted ? new Promise<void>((resolve) => this.#net.close(() => resolve())) : undefined;
    const disconnected = new Promise<void>((resolve) => (this.#onLastDisconnect = resolve));
    this.#accept.destroyPending(); // nothing accepted from them yet
    this.#gate.refuseWaiting(); // not admitted yet either
    debug('closing: %d connection(s) to drain', this.#live.size);
    for (const conn of this.#live) conn[kShutdown]();
    if (this.#live.size === 0) this.#onLastDisconnect?.();
    await Promise.all([stopped, disconnected]); // also makes 'close' asynchronous, even with nothing to wait for
    await Promise.all([this.#registry.stop(wasStarted), wasStarted ? this.#fleet.stop() : undefined]);
    this.#state = 'closed';
    this.#announceReadiness();
    debug('closed: %d drained, %d forced', this.#closeResult.drained, this.#closeResult.forced);
    this.emit('close', this.#closeResult);
    return this.#closeResult;
  }

  /** Serves an admitted connection: registers it, starts reading, and hands it the bytes after its PROXY header. */
  #serve(conn: Connection, rest: Buffer | null): void {
    this.#connections.set(conn.id, conn);
    this.#live.add(conn);
    this.#totals.accepted++;
    conn[kStart]();
    this.#registry.call('add', conn);
    this.emit('connection', conn);
    if (channels.connection.hasSubscribers) channels.connection.publish({ server: this, connection: conn } satisfies ConnectionMessage);
    if (rest !== null) conn[kFeed](rest);
  }

  /** A Connection with the next id, to be served (or turned away by the `admit` hook). */
  #connectionFor(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null): Connection {
    return new Connection(kCreate, this.#nextId++, socket, this.#owner, source, proxy);
  }

  /**
   * Destroys a socket turned away at accept, then reports why, naming the client with a connection made
   * for the report alone (id 0: no decoder, no output, never served).
   */
  #refuseAtAccept(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, error: PulsarError): Connection {
    socket.on('error', ignoreError);
    socket.destroy();
    const conn = new Connection(kCreate, 0, socket, this.#owner, source, proxy, true);
    this.#turnAway(conn, error);
    return conn;
  }

  /** Closes a client that cannot be served, reporting why. */
  #turnAway(conn: Connection, error: PulsarError): void {
    conn[kRefuse]();
    const named = aboutClient(error, String(conn));
    if (channels.refused.hasSubscribers) channels.refused.publish({ server: this, connection: conn, error: named } satisfies RefusedMessage);
    this.#clientError(named, conn);
  }

  #createOwner(): ConnectionOwner {
    const { codec, highWaterMark, shutdownTimeout, handler, maxPendingOutput, instanceId, rateLimit, onRateLimit, messages } = this.#options;
    const emitFrame = (frame: Buffer, conn: Connection): void => {
      this.emit('frame', frame, conn);
    };
    return {
      settings: Object.freeze({
        instanceId, codec, highWaterMark, closeTimeout: shutdownTimeout, maxPendingOutput, rateLimit, onRateLimit, messages,
        handler: handler as ConnectionOwner['settings']['handler'], echoes: handler === echo,
      }),
      frameListener: () => (this.listenerCount('frame') === 0 ? null : emitFrame),
      clientError: (error, conn) => this.#clientError(error, conn),
      rateLimited: (conn, kind, action) => this.#rateLimited(conn, kind, action),
      flowChanged: (conn, paused) => {
        if (paused) this.emit('backpressure', conn);
        else this.emit('drain', conn);
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

  /** Closes one of the connections holding the most when the server's buffers pass `maxBufferedBytes`. */
  #evict(conn: Connection, held: number): void {
    const { maxBufferedBytes } = this.#options;
    this.#expire(conn, new PulsarError('ERR_MEMORY_LIMIT', `evicted holding ${held} bytes: the server's buffers for its clients passed maxBufferedBytes (${maxBufferedBytes} bytes)`));
  }

  /** A connection that can no longer be written leaves the live map, its groups and the registry at once. */
  #unwritable(conn: Connection): void {
    if (!this.#connections.delete(conn.id)) return;
    leaveGroups(conn);
    this.#registry.call('remove', conn);
  }

  #disconnected(conn: Connection, reason: DisconnectReason, error: Error | undefined): void {
    if (!this.#live.delete(conn)) return;
    this.#gate.release(conn.remoteAddress);
    this.#totals.retire(conn);
    if (this.#state === 'closing') {
      if (error === undefined && reason !== 'timeout' && conn[kFlushed]) this.#closeResult.drained++;
      else this.#closeResult.forced++;
    }
    this.emit('disconnect', conn, reason, error);
    if (channels.disconnect.hasSubscribers) channels.disconnect.publish({ server: this, connection: conn, reason, error } satisfies DisconnectMessage);
    if (this.#live.size === 0) this.#onLastDisconnect?.();
  }

  #clientError(error: PulsarError, conn: Connection): void {
    debug('client error: %s', error.message); // the message names the client
    this.emit('clientError', error, conn);
    if (channels.clientError.hasSubscribers) channels.clientError.publish({ server: this, connection: conn, error } satisfies ClientErrorMessage);
  }

  #serverError(error: Error): void {
    debug('server error: %s', error.message);
    emitError(this, 'PulsarServer', error);
  }

  #startTimers(): void {
    const { heartbeat, reportInterval } = this.#options;
    if (heartbeat) {
      const beat = (conn: Connection, wire: Buffer): void => {
        conn[kSendEncoded](wire);
        this.#totals.heartbeats++;
        this.emit('heartbeat', conn);
      };
      heartbeat.start(heartbeatHostFor(() => this.#connections.values(), (payload) => this.#options.codec.encode(payload), beat, (conn, error) => this.#expire(conn, error)));
    }
    this.#deadlines.start();
    if (reportInterval !== false) this.#registry.startReports(reportInterval);
  }

  #stopTimers(): void {
    if (this.#options.heartbeat) this.#options.heartbeat.stop();
    this.#deadlines.stop();
    this.#registry.stopReports();
  }
}
