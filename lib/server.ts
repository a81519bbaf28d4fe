import cluster from 'node:cluster';
import net, { type AddressInfo, type Socket } from 'node:net';
import tls from 'node:tls';
import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import { Connection, peerOf, type ConnectionOwner, type DisconnectReason } from './connection.js';
import { aboutClient, PulsarError } from './errors.js';
import { hostPort, messageOf } from './format.js';
import { channels, type BackpressureMessage, type ClientErrorMessage, type ConnectionMessage, type DisconnectMessage, type RefusedMessage } from './channels.js';
import { AddressRules, CidrList, addressGroup } from './admission/address-rules.js';
import { DeadlineSweep } from './deadlines.js';
import type { HeartbeatHost } from './heartbeat.js';
import { MemoryBudget } from './memory-budget.js';
import { echo, resolveServerOptions, type PulsarServerOptions, type ResolvedServerOptions } from './options.js';
import { ProxyHeaderParser, type ProxiedAddress, type ProxyInfo, type ProxyProtocolOptions } from './proxy.js';
import type { ConnectionSnapshot, FleetSummary, RelayMessage } from './registry.js';
import { ConnectionGroup, leaveGroups } from './groups.js';
import { isPromiseLike } from './thenable.js';
import { clearStaleSocket } from './unix-socket.js';
import { ReadonlyMapView } from './readonly-map.js';
import { emitError } from './unhandled-error.js';

const debug = createDebug('pulsar:lifecycle:server');

/** Where the server listens, as `listen()` resolves and `listening` carries it. */
export interface ListenAddress {
  /** Bound IP address, e.g. `'127.0.0.1'` or `'::1'`; the socket file's path for a Unix socket. */
  address: string;
  /** Bound port (the real one when `port: 0` was asked); `0` for a Unix socket. */
  port: number;
  /** `'IPv4'`, `'IPv6'`, or `'unix'`. */
  family: string;
}

/** A periodic snapshot of the live connections. */
export interface Report {
  /** Epoch ms when it was taken. */
  time: number;
  /** Number of live connections. */
  count: number;
  /** Each live connection's figures. */
  connections: ConnectionSnapshot[];
  /** Bytes the server holds for its clients (see {@link PulsarServer.bufferedBytes}). */
  bufferedBytes: number;
  /** The whole fleet, when the registry is shared by several instances (`RedisRegistry`). */
  fleet?: FleetSummary;
}

/** How a graceful close ended. */
export interface CloseResult {
  /**
   * Connections that closed cleanly before the timeout: every answer handed to the kernel, our FIN
   * sent, and the socket closed without an error.
   */
  drained: number;
  /**
   * Connections destroyed instead: at the shutdown timeout (whatever they had already flushed), by a
   * reset, or by an error during the shutdown.
   */
  forced: number;
}

/**
 * The server's running totals, for metrics: exact, and counted without any work per frame (live
 * connections' own counters are summed when asked, closed ones were added as they closed).
 */
export interface ServerStats {
  /** Connections open now. */
  connections: number;
  /** Connections accepted and served since the server started. */
  accepted: number;
  /** Frames received, over every connection ever served. */
  framesIn: number;
  /** Frames sent, heartbeats included. */
  framesOut: number;
  /** Bytes received, frame headers included. */
  bytesIn: number;
  /** Bytes sent, frame headers and heartbeats included. */
  bytesOut: number;
  /** Heartbeat frames sent. */
  heartbeats: number;
  /** Frames offered to connections that could no longer be written, and dropped (see `Connection.send`). */
  framesDropped: number;
  /** Bytes held for clients now (see {@link PulsarServer.bufferedBytes}). */
  bufferedBytes: number;
  /** Connections whose reading is paused for backpressure now. */
  paused: number;
}

/** Events of {@link PulsarServer}, with their arguments. */
export interface PulsarServerEvents {
  /** The server is accepting connections. */
  listening: [address: ListenAddress];
  /** A client connected. */
  connection: [conn: Connection];
  /** A frame arrived (emitted before the handler runs). */
  frame: [frame: Buffer, conn: Connection];
  /** A heartbeat frame was sent to a silent client. */
  heartbeat: [conn: Connection];
  /** The periodic registry report. */
  report: [report: Report];
  /** Reading from `conn` paused: its pending output passed `highWaterMark`. */
  backpressure: [conn: Connection];
  /** `conn`'s output drained and reading resumed. */
  drain: [conn: Connection];
  /** A client went away, and why; `error` is set when it was a failure. */
  disconnect: [conn: Connection, reason: DisconnectReason, error: Error | undefined];
  /** A problem with one client (bad frame, reset, timeout, handler failure); other clients are untouched. Match on `error.code`. */
  clientError: [error: PulsarError, conn: Connection];
  /** A problem with the server itself (not with one client). */
  error: [error: Error];
  /** The server has closed; every connection is gone. */
  close: [result: CloseResult];
}

type ServerState = 'idle' | 'starting' | 'listening' | 'closing' | 'closed';

/**
 * A framed TCP server: accepts connections, splits each stream into frames with the codec, and hands
 * every frame to the handler (echo by default). Sends heartbeats, tracks connections in the registry,
 * reports them periodically, and closes gracefully.
 *
 * @example
 * ```ts
 * const server = new PulsarServer({ port: 0, handler: (frame, conn) => conn.send(frame.reverse()) });
 * const { port } = await server.listen();
 * // ...
 * await server.close();
 * ```
 */
export class PulsarServer extends EventEmitter<PulsarServerEvents> {
  /** The options in force, defaults applied. */
  readonly options: ResolvedServerOptions;
  readonly #net: net.Server;
  /** The connections that can be written: what {@link connections} shows. */
  readonly #connections = new Map<number, Connection>();
  readonly #connectionsView = new ReadonlyMapView(this.#connections);
  /**
   * Every served connection until its socket closes: the writable ones and those lingering after our
   * FIN (they still hold output, count against `maxConnections` and are waited for on shutdown).
   */
  readonly #live = new Set<Connection>();
  /** Sockets still sending their PROXY header: not connections yet. */
  readonly #handshakes = new Set<Socket>();
  /** The `tls` option's context, made once, for TLS started after a PROXY header. */
  #secureContext: tls.SecureContext | undefined;
  /** Connections waiting for an asynchronous `admit` hook: not served yet, but holding a place. */
  readonly #admitting = new Set<Connection>();
  readonly #owner: ConnectionOwner;
  readonly #budget: MemoryBudget<Connection>;
  readonly #deadlines: DeadlineSweep<Connection>;
  readonly #rules: AddressRules;
  readonly #trustedProxies: CidrList;
  /** Open connections per address group (see addressGroup), kept only with `maxConnectionsPerAddress`. */
  readonly #perAddress = new Map<string, number>();
  #state: ServerState = 'idle';
  #nextId = 1;
  /**
   * The groups by name, held weakly: a group lives while it has members (each member's connection holds
   * its groups) or the application holds it, so rooms that empty out do not pile up.
   */
  readonly #groups = new Map<string, WeakRef<ConnectionGroup>>();
  readonly #forgetGroup = new FinalizationRegistry<{ name: string; ref: WeakRef<ConnectionGroup> }>(({ name, ref }) => {
    if (this.#groups.get(name) === ref) this.#groups.delete(name);
  });
  /** Registry calls not settled yet: a shutdown waits for them (removals written to an external store). */
  readonly #registryPending = new Set<PromiseLike<unknown>>();
  /** True while relaying fails: reported once per outage, not once per message. */
  #relayFailing = false;
  #reportTimer: ReturnType<typeof setInterval> | undefined;
  #reporting = false;
  #closing: Promise<CloseResult> | undefined;
  #closeResult: CloseResult = { drained: 0, forced: 0 };
  /** Figures of connections already closed, and counts kept as events happen (see {@link stats}). */
  readonly #totals = { accepted: 0, heartbeats: 0, framesDropped: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 };
  /** Resolves the shutdown's wait once the last connection is gone. */
  #onLastDisconnect: (() => void) | undefined;
  /** Rejects a `listen()` still in progress when `close()` comes first. */
  #abortListen: ((error: Error) => void) | undefined;

  /**
   * @param options see {@link PulsarServerOptions}
   * @throws {PulsarError} `ERR_INVALID_OPTION` naming the first bad option
   */
  constructor(options?: PulsarServerOptions) {
    super();
    this.options = resolveServerOptions(options);
    const connections = (): Iterable<Connection> => this.#live;
    this.#budget = new MemoryBudget(this.options.maxBufferedBytes, connections, (conn, held) => this.#evict(conn, held));
    this.#deadlines = new DeadlineSweep(this.options, connections, (conn, error) => this.#expire(conn, error));
    this.#rules = new AddressRules('PulsarServer', this.options.allow, this.options.deny);
    this.#trustedProxies = new CidrList('PulsarServer', 'trustedProxies', this.options.trustedProxies);
    this.#owner = this.#createOwner();
    this.#net = this.#createListener();
  }

  /** A TCP server, or a TLS one whose failed handshakes are client errors. */
  #createListener(): net.Server {
    const socketOptions = { allowHalfOpen: true, noDelay: true };
    const accept = (socket: Socket): void => this.#accept(socket);
    const { tls: tlsOptions, proxyProtocol } = this.options;
    // With the PROXY protocol, the header comes before TLS: a TCP listener, TLS started after the header.
    if (!tlsOptions || proxyProtocol) return net.createServer(socketOptions, accept);
    const server = tls.createServer({ ...tlsOptions, ...socketOptions }, accept);
    server.on('tlsClientError', (error, socket) => {
      this.#turnAway(this.#connectionFor(socket), new PulsarError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${error.message}`, { cause: error }));
    });
    return server;
  }

  /** This server's id in a fleet (see `instanceId`). */
  get instanceId(): string {
    return this.options.instanceId;
  }

  /**
   * The group called `name`, made on first use: a Set-like of connections with an encode-once
   * `broadcast()`. Connections leave their groups when they close; a group with no member that the
   * application no longer holds is forgotten (garbage collected), and made anew by the next call.
   */
  group(name: string): ConnectionGroup {
    const existing = this.#groups.get(name)?.deref();
    if (existing !== undefined) return existing;
    const group = new ConnectionGroup(name, {
      encode: (payload) => this.options.codec.encode(payload),
      relay: (groupName, payload) => this.#relay({ kind: 'group', group: groupName, origin: this.instanceId, payload }),
    });
    const ref = new WeakRef(group);
    this.#groups.set(name, ref);
    this.#forgetGroup.register(group, { name, ref });
    return group;
  }

  /** The live groups (with members, or held by the application), by name. */
  get groups(): ReadonlyMap<string, ConnectionGroup> {
    const live = new Map<string, ConnectionGroup>();
    for (const [name, ref] of this.#groups) {
      const group = ref.deref();
      if (group !== undefined) live.set(name, group);
    }
    return live;
  }

  /**
   * Sends a frame to a connection of this fleet by its {@link Connection.globalId}: here, or on another
   * instance through the registry's relay (`RedisRegistry`), in order per sender. Delivery to another
   * instance is at most once: a connection that closed meanwhile does not get it.
   * A connection of this instance that is gone is not an error, as for `send()`: the frame is dropped
   * and counted (`framesDropped` in {@link stats}), and the promise resolves `false`.
   * @returns `true` once written here or handed to the relay, `false` when dropped
   * @throws {PulsarError} (rejects) `ERR_NO_SUCH_CONNECTION` for an id that is not one, or an instance
   * that is not in the fleet (or not reachable without a relaying registry); `ERR_RELAY` when the store
   * cannot be reached; `ERR_FRAME_TOO_LARGE` and `ERR_INVALID_PAYLOAD` as `send()`
   */
  async sendTo(globalId: string, payload: Uint8Array | string): Promise<boolean> {
    const slash = globalId.lastIndexOf('/');
    const instance = globalId.slice(0, slash);
    const id = Number(globalId.slice(slash + 1));
    if (slash <= 0 || !Number.isSafeInteger(id)) throw new PulsarError('ERR_NO_SUCH_CONNECTION', `'${globalId}' is not a connection id (instance/id)`);
    const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
    if (instance === this.instanceId) return this.#sendHere(id, bytes);
    const { relay } = this.options.registry;
    if (relay === undefined) throw new PulsarError('ERR_NO_SUCH_CONNECTION', `connection ${globalId} is on instance ${instance}, and this registry does not relay`);
    if (bytes.length > this.options.codec.maxFrameLength) this.options.codec.encode(bytes); // throws ERR_FRAME_TOO_LARGE here, not there
    await relay.call(this.options.registry, { kind: 'connection', instance, id, payload: bytes });
    return true;
  }

  /** Sends to a connection of this instance by id; one that is gone gets nothing, counted as dropped. */
  #sendHere(id: number, payload: Buffer): boolean {
    const conn = this.#connections.get(id);
    if (conn !== undefined) return conn.send(payload);
    if (payload.length > this.options.codec.maxFrameLength) this.options.codec.encode(payload); // throws ERR_FRAME_TOO_LARGE, as send() would
    debug('frame for connection %d dropped: it is not open here', id);
    this.#totals.framesDropped++;
    return false;
  }

  /** Hands a group broadcast to the other instances without waiting; a failure is reported once per outage. */
  #relay(message: RelayMessage): void {
    const { registry } = this.options;
    if (registry.relay === undefined) return;
    registry.relay(message).then(
      () => (this.#relayFailing = false),
      (error: unknown) => {
        if (this.#relayFailing) return;
        this.#relayFailing = true;
        this.#serverError(error instanceof PulsarError ? error : new PulsarError('ERR_RELAY', `relaying failed: ${messageOf(error)}`, { cause: error }));
      },
    );
  }

  /** A message another instance relayed: delivered to the connections here, never relayed again. */
  #deliverRelayed(message: RelayMessage): void {
    if (message.kind === 'group') {
      if (message.origin !== this.instanceId) this.#groups.get(message.group)?.deref()?.deliver(this.options.codec.encode(message.payload));
      return;
    }
    try {
      this.#sendHere(message.id, message.payload);
    } catch (error) {
      debug('relayed frame for connection %d dropped: %s', message.id, messageOf(error)); // too large for this codec
    }
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
    const stats = { ...this.#totals, connections: this.#connections.size, bufferedBytes: this.bufferedBytes, paused: 0 };
    for (const conn of this.#live) {
      stats.framesIn += conn.framesIn;
      stats.framesOut += conn.framesOut;
      stats.bytesIn += conn.bytesIn;
      stats.bytesOut += conn.bytesOut;
      if (conn.paused) stats.paused++;
    }
    return stats;
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
   * @throws rejects with Node's error (`EADDRINUSE`, `EACCES`…), or `ERR_SERVER_STATE` if the server
   * is already listening or closed
   */
  listen(): Promise<ListenAddress> {
    if (this.#state !== 'idle') {
      return Promise.reject(new PulsarError('ERR_SERVER_STATE', `listen() needs an idle server, but this one is ${this.#state}`));
    }
    this.#state = 'starting';
    const { host, port, path } = this.options;
    // In a cluster worker the primary owns the socket: it makes way for it (see clearStaleSocket).
    const ready = (path === null || cluster.isWorker ? Promise.resolve() : clearStaleSocket(path)).then(() => this.#startRegistry());
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
        this.#net.on('error', (error) => this.#serverError(error));
        this.#state = 'listening';
        this.#startTimers();
        const address = this.address()!;
        debug('listening on %s', address.family === 'unix' ? `unix:${address.address}` : hostPort(address.address, address.port));
        this.emit('listening', address);
        resolve(address);
      };
      this.#abortListen = onError;
      this.#net.once('error', onError);
      this.#net.once('listening', onListening);
      this.#net.listen(path === null ? { host, port } : { path });
    }), (error: unknown) => {
      if (this.#state === 'starting') this.#state = 'idle';
      throw error;
    });
  }

  /**
   * Shuts down gracefully: stops accepting at once, reads no more input, answers every frame already
   * received, flushes and ends each connection, and destroys what is left after `shutdownTimeout`.
   * Calling it again returns the same promise.
   * @returns how many connections drained cleanly and how many were forced
   */
  close(): Promise<CloseResult> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<CloseResult> {
    const wasStarted = this.#state === 'listening' || this.#state === 'starting';
    this.#state = 'closing';
    if (this.#abortListen) {
      this.#abortListen(new PulsarError('ERR_SERVER_STATE', 'close() was called before the server was listening'));
      // A listen() waiting on a DNS lookup binds later: close the socket it opens then.
      if (!this.#net.listening) this.#net.once('listening', () => this.#net.close());
    }
    this.#stopTimers();
    const stopped = wasStarted ? new Promise<void>((resolve) => this.#net.close(() => resolve())) : undefined;
    const disconnected = new Promise<void>((resolve) => (this.#onLastDisconnect = resolve));
    for (const socket of this.#handshakes) socket.destroy(); // nothing accepted from them yet
    for (const conn of this.#admitting) conn.refuse(); // not admitted yet either
    debug('closing: %d connection(s) to drain', this.#live.size);
    for (const conn of this.#live) conn.shutdown();
    if (this.#live.size === 0) this.#onLastDisconnect?.();
    await Promise.all([stopped, disconnected]); // also makes 'close' asynchronous, even with nothing to wait for
    await this.#stopRegistry(wasStarted);
    this.#state = 'closed';
    debug('closed: %d drained, %d forced', this.#closeResult.drained, this.#closeResult.forced);
    this.emit('close', this.#closeResult);
    return this.#closeResult;
  }

  #accept(socket: Socket): void {
    // Reset before it was accepted (a balancer's probe): its address is gone and nothing came from it.
    if (socket.remoteAddress === undefined && this.options.path === null) {
      socket.destroy();
      return;
    }
    const { proxyProtocol } = this.options;
    if (!proxyProtocol || this.#state !== 'listening') {
      this.#admit(socket, null, null, null);
    } else if (this.#trustedProxies.empty || this.#trustedProxies.contains(socket.remoteAddress ?? '')) {
      this.#readProxyHeader(socket, proxyProtocol);
    } else {
      const untrusted = `refused, ${socket.remoteAddress} is not a trusted proxy (trustedProxies): its PROXY header would not be believed`;
      this.#turnAway(this.#connectionFor(socket), new PulsarError('ERR_PROXY_PROTOCOL', untrusted));
    }
  }

  /** Starts serving a socket: from its first byte, or after its PROXY header with the bytes that followed. */
  #admit(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, rest: Buffer | null): void {
    const conn = this.#connectionFor(socket, source, proxy);
    if (this.#state !== 'listening') {
      conn.refuse();
      return;
    }
    const held = this.#live.size + this.#admitting.size;
    if (held >= this.options.maxConnections) {
      this.#turnAway(conn, new PulsarError('ERR_MAX_CONNECTIONS', `refused, ${held} connections are already open (maxConnections)`));
      return;
    }
    const refusal = this.#claimPlace(conn.remoteAddress);
    if (refusal !== null) {
      this.#turnAway(conn, refusal);
      return;
    }
    const { admit } = this.options;
    if (admit === null) {
      this.#serve(conn, rest);
      return;
    }
    let verdict: boolean | PromiseLike<boolean>;
    try {
      verdict = admit(conn);
    } catch (error) {
      this.#refuseByHook(conn, `refused, the admit hook threw: ${messageOf(error)}`, error);
      return;
    }
    if (isPromiseLike(verdict)) this.#awaitAdmission(conn, verdict, rest);
    else if (verdict === true) this.#serve(conn, rest);
    else this.#refuseByHook(conn, 'refused by the admit hook');
  }

  /**
   * Holds a connection, reading nothing, until the `admit` hook's promise settles or `admitTimeout` passes.
   * The socket has no connection listeners yet: its errors and close are handled here meanwhile.
   */
  #awaitAdmission(conn: Connection, verdict: PromiseLike<boolean>, rest: Buffer | null): void {
    const { socket } = conn;
    const { admitTimeout } = this.options;
    socket.pause();
    this.#admitting.add(conn);
    let settled = false;
    const settle = (admitted: boolean, reason: string, cause?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onGone);
      socket.off('close', onGone);
      this.#admitting.delete(conn);
      if (this.#state !== 'listening' || socket.destroyed) {
        this.#releasePlace(conn.remoteAddress);
        conn.refuse(); // gone while waiting, or the server is closing: nothing was accepted from it
      } else if (admitted) {
        this.#serve(conn, rest);
        socket.resume();
      } else {
        this.#refuseByHook(conn, reason, cause);
      }
    };
    const onGone = (): void => settle(false, 'gone');
    const timer = setTimeout(() => settle(false, `refused, the admit hook did not answer within ${admitTimeout} ms`), admitTimeout);
    socket.on('error', onGone);
    socket.on('close', onGone);
    verdict.then(
      (answer) => settle(answer === true, 'refused by the admit hook'),
      (error: unknown) => settle(false, `refused, the admit hook failed: ${messageOf(error)}`, error),
    );
  }

  /** Turns away a connection the `admit` hook did not accept, giving back its place in its address group. */
  #refuseByHook(conn: Connection, reason: string, cause?: unknown): void {
    this.#releasePlace(conn.remoteAddress);
    this.#turnAway(conn, new PulsarError('ERR_REFUSED', reason, cause === undefined ? undefined : { cause }));
  }

  /** Serves an admitted connection: registers it, starts reading, and hands it the bytes after its PROXY header. */
  #serve(conn: Connection, rest: Buffer | null): void {
    this.#connections.set(conn.id, conn);
    this.#live.add(conn);
    this.#totals.accepted++;
    conn.start();
    this.#registryCall('add', conn);
    this.emit('connection', conn);
    if (channels.connection.hasSubscribers) channels.connection.publish({ server: this, connection: conn } satisfies ConnectionMessage);
    if (rest !== null) conn.feed(rest);
  }

  /**
   * Applies the address rules and the per-address limit to a client's real address (the PROXY source
   * when there was a header) and, when they let it in, claims its place in its address group (given back
   * by {@link releasePlace} when it closes or the `admit` hook refuses it).
   * @returns why it is refused, or `null` once its place is claimed
   */
  #claimPlace(address: string): PulsarError | null {
    if (this.#rules.active && !this.#rules.admits(address)) {
      return new PulsarError('ERR_ADDRESS_DENIED', `refused, ${address} is not allowed to connect (allow/deny rules)`);
    }
    const limit = this.options.maxConnectionsPerAddress;
    if (limit === Infinity) return null;
    const group = addressGroup(address);
    const open = this.#perAddress.get(group) ?? 0;
    if (open >= limit) return new PulsarError('ERR_MAX_CONNECTIONS', `refused, ${open} connections from ${group} are already open (maxConnectionsPerAddress)`);
    this.#perAddress.set(group, open + 1);
    return null;
  }

  /** Gives back a connection's place in its address group (see {@link claimPlace}). */
  #releasePlace(address: string): void {
    if (this.options.maxConnectionsPerAddress === Infinity) return;
    const group = addressGroup(address);
    const open = (this.#perAddress.get(group) ?? 1) - 1;
    if (open > 0) this.#perAddress.set(group, open);
    else this.#perAddress.delete(group);
  }

  /** A Connection with the next id, served or only reported and turned away. */
  #connectionFor(socket: Socket, source: ProxiedAddress | null = null, proxy: ProxyInfo | null = null): Connection {
    return new Connection(this.#nextId++, socket, this.#owner, source, proxy);
  }

  /** Closes a client that cannot be served, reporting why. */
  #turnAway(conn: Connection, error: PulsarError): void {
    conn.refuse();
    const named = aboutClient(error, String(conn));
    if (channels.refused.hasSubscribers) channels.refused.publish({ server: this, connection: conn, error: named } satisfies RefusedMessage);
    this.#clientError(named, conn);
  }

  /**
   * Reads a PROXY header before the socket becomes a connection, then (with `tls`) runs the TLS handshake
   * on what follows. Its listeners and timer live only until then, so nothing of this stays per
   * connection. With `tls`, `handshakeTimeout` bounds the header and the handshake together.
   */
  #readProxyHeader(socket: Socket, { timeout, maxHeaderLength }: Required<ProxyProtocolOptions>): void {
    const parser = new ProxyHeaderParser(maxHeaderLength);
    // The proxy's own address, read now: a health check that resets right after its header would
    // leave nothing to read later.
    const direct = peerOf(socket);
    const acceptedAt = Date.now();
    const tlsOptions = this.options.tls;
    const handshakeTimeout = tlsOptions ? tlsOptions.handshakeTimeout ?? timeout : timeout;
    const done = (): void => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', done);
      socket.off('error', done);
      this.#handshakes.delete(socket);
    };
    const refuse = (error: PulsarError): void => {
      done();
      this.#turnAway(this.#connectionFor(socket, direct), error);
    };
    const onData = (chunk: Buffer): void => {
      let header;
      try {
        header = parser.push(chunk);
      } catch (error) {
        refuse(error as PulsarError);
        return;
      }
      if (header === null) return;
      done();
      const { source, destination, tlvs, rest } = header;
      const proxy = { destination, tlvs };
      if (!tlsOptions) this.#admit(socket, source ?? direct, proxy, rest);
      else this.#secureAfterProxy(socket, source ?? direct, proxy, rest, acceptedAt + handshakeTimeout - Date.now());
    };
    const timer = setTimeout(() => refuse(new PulsarError('ERR_PROXY_TIMEOUT', `no complete PROXY header within ${Math.min(timeout, handshakeTimeout)} ms`)), Math.min(timeout, handshakeTimeout));
    this.#handshakes.add(socket);
    socket.on('data', onData);
    socket.on('close', done); // gone before its header: nothing was accepted from it
    socket.on('error', done);
  }

  /**
   * The TLS handshake after a PROXY header, on the same TCP socket: the bytes read with the header (the
   * start of the ClientHello, often) are put back first. Within `remainingMs`, else `ERR_TLS_HANDSHAKE`.
   */
  #secureAfterProxy(socket: Socket, source: ProxiedAddress, proxy: ProxyInfo, rest: Buffer, remainingMs: number): void {
    socket.pause();
    if (rest.length > 0) socket.unshift(rest);
    const secure = new tls.TLSSocket(socket, { isServer: true, ...this.#tlsSocketOptions() });
    const done = (): void => {
      clearTimeout(timer);
      secure.off('secure', onSecure);
      secure.off('error', onError);
      secure.off('close', done);
      this.#handshakes.delete(secure);
    };
    const onError = (error: Error): void => {
      done();
      secure.destroy();
      this.#turnAway(this.#connectionFor(secure, source, proxy), new PulsarError('ERR_TLS_HANDSHAKE', `TLS handshake failed: ${error.message}`, { cause: error }));
    };
    const onSecure = (): void => {
      done();
      this.#admit(secure, source, proxy, null);
    };
    const timer = setTimeout(() => onError(new Error('TLS handshake timeout (the PROXY header included)')), Math.max(0, remainingMs));
    this.#handshakes.add(secure);
    secure.on('secure', onSecure);
    secure.on('error', onError);
    secure.on('close', done); // gone before its handshake (a health check): nothing was accepted from it
  }

  /** What a server-side TLSSocket needs from the `tls` option: its secure context and client-certificate settings. */
  #tlsSocketOptions(): tls.TLSSocketOptions {
    const options = this.options.tls as tls.TlsOptions;
    this.#secureContext ??= tls.createSecureContext(options);
    const { requestCert, rejectUnauthorized, ALPNProtocols, SNICallback } = options;
    return { secureContext: this.#secureContext, requestCert, rejectUnauthorized, ALPNProtocols, SNICallback };
  }

  #createOwner(): ConnectionOwner {
    const { codec, highWaterMark, shutdownTimeout, handler, maxPendingOutput } = this.options;
    const echoing = handler === echo;
    const emitThenHandle = (frame: Buffer, conn: Connection): unknown => {
      this.emit('frame', frame, conn);
      return handler(frame, conn);
    };
    return {
      instanceId: this.options.instanceId,
      codec,
      highWaterMark,
      closeTimeout: shutdownTimeout,
      maxPendingOutput,
      echoInBulk: () => echoing && this.listenerCount('frame') === 0,
      frameHandler: () => (this.listenerCount('frame') === 0 ? handler : emitThenHandle),
      onClientError: (error, conn) => this.#clientError(error, conn),
      onFlowChange: (conn, paused) => {
        if (paused) this.emit('backpressure', conn);
        else this.emit('drain', conn);
        if (channels.backpressure.hasSubscribers) channels.backpressure.publish({ server: this, connection: conn, paused } satisfies BackpressureMessage);
      },
      onHeldChange: (delta) => this.#budget.change(delta),
      onFrameDropped: () => this.#totals.framesDropped++,
      onUnwritable: (conn) => this.#unwritable(conn),
      onClose: (conn, reason, error) => this.#disconnected(conn, reason, error),
    };
  }

  #heartbeatHost(): HeartbeatHost<Connection> {
    const { codec } = this.options;
    let beat: { payload: Buffer; wire: Buffer } | undefined;
    return {
      connections: () => this.#connections.values(),
      now: Date.now,
      ping: (conn, payload) => {
        if (conn.state !== 'open') return;
        // Every silent client gets the same frame: encode it once, again only if the payload changes.
        if (beat === undefined || !beat.payload.equals(payload)) beat = { payload: Buffer.from(payload), wire: codec.encode(payload) };
        conn.sendEncoded(beat.wire);
        this.#totals.heartbeats++;
        this.emit('heartbeat', conn);
      },
      kill: (conn, error) => this.#expire(conn, error),
    };
  }

  /** Closes a connection that broke a limit, reporting `error` (which does not name it yet). */
  #expire(conn: Connection, error: PulsarError): void {
    const named = aboutClient(error, String(conn));
    this.#clientError(named, conn);
    conn.destroy(named);
  }

  /** Closes one of the connections holding the most when the server's buffers pass `maxBufferedBytes`. */
  #evict(conn: Connection, held: number): void {
    const { maxBufferedBytes } = this.options;
    this.#expire(conn, new PulsarError('ERR_MEMORY_LIMIT', `evicted holding ${held} bytes: the server's buffers for its clients passed maxBufferedBytes (${maxBufferedBytes} bytes)`));
  }

  /** A connection that can no longer be written leaves the live map, its groups and the registry at once. */
  #unwritable(conn: Connection): void {
    if (!this.#connections.delete(conn.id)) return;
    leaveGroups(conn);
    this.#registryCall('remove', conn);
  }

  #disconnected(conn: Connection, reason: DisconnectReason, error: Error | undefined): void {
    if (!this.#live.delete(conn)) return;
    this.#releasePlace(conn.remoteAddress);
    this.#retire(conn);
    if (this.#state === 'closing') {
      if (error === undefined && reason !== 'timeout' && conn.flushed) this.#closeResult.drained++;
      else this.#closeResult.forced++;
    }
    this.emit('disconnect', conn, reason, error);
    if (channels.disconnect.hasSubscribers) channels.disconnect.publish({ server: this, connection: conn, reason, error } satisfies DisconnectMessage);
    if (this.#live.size === 0) this.#onLastDisconnect?.();
  }

  /** Adds a closed connection's figures to the totals. */
  #retire(conn: Connection): void {
    const totals = this.#totals;
    totals.framesIn += conn.framesIn;
    totals.framesOut += conn.framesOut;
    totals.bytesIn += conn.bytesIn;
    totals.bytesOut += conn.bytesOut;
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

  /** Calls the registry without waiting on it: a slow external store must not stall frames. */
  #registryCall(method: 'add' | 'remove', conn: Connection): void {
    try {
      const result: unknown = this.options.registry[method](conn);
      if (!isPromiseLike(result)) return;
      const settled = Promise.resolve(result).then(undefined, (error: unknown) => this.#registryFailed(method, error));
      this.#registryPending.add(settled);
      void settled.then(() => this.#registryPending.delete(settled));
    } catch (error) {
      this.#registryFailed(method, error);
    }
  }

  /** Starts the registry (`listen()` waits): it learns this instance's id and how to deliver relayed messages. */
  async #startRegistry(): Promise<void> {
    const { registry, instanceId } = this.options;
    if (registry.start === undefined) return;
    try {
      await registry.start({
        instanceId,
        connections: () => this.#connections.values(),
        deliver: (message) => this.#deliverRelayed(message),
        error: (error) => this.#serverError(error instanceof PulsarError ? error : new PulsarError('ERR_REGISTRY', messageOf(error), { cause: error })),
      });
    } catch (error) {
      throw error instanceof PulsarError ? error : new PulsarError('ERR_REGISTRY', `registry.start() failed: ${messageOf(error)}`, { cause: error });
    }
  }

  /** Waits for every registry write still pending (removals), then stops the registry. */
  async #stopRegistry(started: boolean): Promise<void> {
    await Promise.all(this.#registryPending);
    const { registry } = this.options;
    if (!started || registry.stop === undefined) return;
    try {
      await registry.stop();
    } catch (error) {
      this.#registryFailed('stop', error);
    }
  }

  #registryFailed(method: string, error: unknown): void {
    this.#serverError(new PulsarError('ERR_REGISTRY', `registry.${method}() failed: ${messageOf(error)}`, { cause: error }));
  }

  #startTimers(): void {
    const { heartbeat, reportInterval } = this.options;
    if (heartbeat) heartbeat.start(this.#heartbeatHost());
    this.#deadlines.start();
    if (reportInterval !== false) {
      this.#reportTimer = setInterval(() => this.#report(), reportInterval);
      this.#reportTimer.unref();
    }
  }

  #stopTimers(): void {
    if (this.options.heartbeat) this.options.heartbeat.stop();
    this.#deadlines.stop();
    clearInterval(this.#reportTimer);
  }

  /** Emits one report; skipped while the previous snapshot (maybe from an external store) is pending. */
  async #report(): Promise<void> {
    if (this.#reporting) return;
    this.#reporting = true;
    try {
      const { registry } = this.options;
      const [connections, fleet] = await Promise.all([registry.snapshot(), registry.fleet?.()]);
      if (this.#state === 'listening') {
        const report: Report = { time: Date.now(), count: connections.length, connections, bufferedBytes: this.bufferedBytes };
        this.emit('report', fleet === undefined || fleet === null ? report : { ...report, fleet });
      }
    } catch (error) {
      this.#registryFailed('snapshot', error);
    } finally {
      this.#reporting = false;
    }
  }
}

