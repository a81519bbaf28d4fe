import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { TlsOptions } from 'node:tls';
import { LengthPrefixedCodec } from '../codecs/length-prefixed.js';
import type { FrameCodec } from '../codecs/types.js';
import type { Connection, ConnectionData } from '../connection/connection.js';
import type { MessageCodec } from '../messages/codec.js';
import type { StandardSchemaV1 } from '../messages/schema.js';
import type { Contract } from '../contract/contract.js';
import { APPLICATION_OPTIONS, resolveApplication, type ResolvedApplication, type ServerApplicationOptions } from '../contract/options.js';
import { MESSAGE_OPTIONS, resolveMessageSettings, type MessageContext, type MessageOptions, type MessageSettings } from '../messages/settings.js';
import { PulsarError } from '../errors.js';
import { IdleHeartbeat, type HeartbeatPolicy } from '../heartbeat.js';
import type { ConnectionRateOptions } from '../admission/connection-rate.js';
import type { ProxyProtocolOptions } from '../accept/proxy-protocol.js';
import type { RateLimitAction, RateLimitOptions } from '../rate/read-limiter.js';
import { resolveConnectionRate, resolveRateLimit } from '../rate/options.js';
import type { Relay } from '../fleet/relay.js';
import { MemoryRegistry } from '../registry/memory.js';
import type { Registry } from '../registry/types.js';
import { echo, echoMessage, type AdmitHook, type FrameHandler, type HandlerFor, type MessageHandler } from './handlers.js';
import { resolveTls } from '../accept/tls-options.js';
import { checkInteger, checkKnownOptions, checkOneOf, checkTimerMs, CODEC_OPTION_HINTS, conflictingOption, invalidOption } from '../util/validate.js';

/**
 * Options of {@link PulsarServer}; all optional.
 * @typeParam M the messages' type, from `messages` (`Buffer`: frames)
 * @typeParam S the server's `schema` output, when it has one
 * @typeParam D the type of `conn.data`
 */
export interface PulsarServerOptions<M = Buffer, S = never, D extends ConnectionData = ConnectionData, C extends Contract = Contract, H = unknown> extends Omit<MessageOptions, 'messages' | 'schema'>, ServerApplicationOptions<C, D, H> {
  /**
   * Messages instead of frames, one per frame: `json()`, or `msgpack()` from `pulsar/msgpack`. The handler
   * gets decoded values; `conn.send(value)` and `group.broadcast(value)` encode them. @default none: frames
   */
  messages?: MessageCodec<M>;
  /**
   * Validates every inbound message (any Standard Schema: zod, valibot, arktype), typing the handler's
   * message; overrides the codec's own `schema`. Needs `messages`. @default the codec's
   */
  schema?: StandardSchemaV1<unknown, S>;
  /** Bind address; IPv6 (`'::1'`) and `'0.0.0.0'` work too. @default '127.0.0.1' */
  host?: string;
  /** TCP port; `0` picks a free one (read it back from `listen()`). @default 8080 */
  port?: number;
  /**
   * Listen on this Unix domain socket instead of TCP (`host` and `port` then do not apply). A socket file
   * left by a crashed run is detected (nothing answers on it) and replaced; one a live server answers on
   * is not touched (`listen()` rejects with `EADDRINUSE`), nor is a file that is not a socket. The file
   * is removed on close. Clients have no IP address (`remoteAddress` is `''`, `remote` is `'unix'`), so
   * the address rules need `proxyProtocol` (a proxy in front says who the client is).
   */
  path?: string;
  /** Frame codec. @default new LengthPrefixedCodec() */
  codec?: FrameCodec;
  /** Where live connections are tracked. @default new MemoryRegistry() */
  registry?: Registry;
  /**
   * Cross-instance delivery for a fleet: `group.broadcast()` and `sendTo()` reach the connections of
   * the other instances through it (`RedisRelay` from `pulsar/redis`). @default none: this server alone
   */
  relay?: Relay;
  /** Heartbeat policy, or `false` for none. @default new IdleHeartbeat({ interval: 5000 }) */
  heartbeat?: HeartbeatPolicy | false;
  /** Ms between `report` events, or `false`. @default 10000 */
  reportInterval?: number | false;
  /**
   * The frame handler, or with `messages` the message handler ({@link MessageHandler}).
   * @default echo: every frame is sent back unchanged; with `messages`, every message, and a request's
   * reply is the request itself
   */
  handler?: HandlerFor<NoInfer<M>, NoInfer<S>, D>;
  /** Connections beyond this many are closed at once (`ERR_MAX_CONNECTIONS`). @default Infinity */
  maxConnections?: number;
  /** Ms a graceful `close()` waits before destroying what is left. @default 10000 */
  shutdownTimeout?: number;
  /**
   * Pending output, in bytes, above which the server stops reading from that connection; reading
   * resumes when its output has drained. @default 1048576 (1 MiB)
   */
  highWaterMark?: number;
  /**
   * Expect a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy` / `send-proxy-v2` write it) at
   * the start of every connection, and show the client address it carries in `Connection`, the registry
   * and the logs. A connection without a valid header is closed (`ERR_PROXY_PROTOCOL`,
   * `ERR_PROXY_TIMEOUT`). Only for servers that every client reaches through such a proxy: anyone who can
   * connect directly can claim any address. `true` for the default limits. @default false
   */
  proxyProtocol?: boolean | ProxyProtocolOptions;
  /**
   * Serve over TLS: Node's `tls.createServer()` options (`key` and `cert`, or `pfx`, at least). Heartbeats,
   * the registry, backpressure and shutdown work as over plain TCP. A failed handshake is an
   * `ERR_TLS_HANDSHAKE` client error; `handshakeTimeout` defaults to 5000 ms (Node's is 120 s). With
   * `proxyProtocol`, the PROXY header is read first and the handshake runs on what follows (TLS
   * passthrough behind HAProxy or an AWS NLB); `handshakeTimeout` then bounds both. A function returning
   * the options is called now and again by `server.reload()`: certificate rotation without a restart (read
   * the files in it). @default false
   */
  tls?: TlsOptions | (() => TlsOptions) | false;
  /**
   * Ms a `close()` keeps accepting and serving after readiness turns to `draining` (`/readyz` 503), so that
   * load balancers stop sending new clients before the server stops taking them (a Kubernetes preStop
   * drain). `close({ drainDelay: 0 })` skips it. @default 0
   */
  drainDelay?: number;
  /**
   * Serve a listening socket inherited as this file descriptor (systemd socket activation passes fd 3)
   * instead of binding `host`/`port`. @default none
   */
  fd?: number;
  /**
   * Bind with `SO_REUSEPORT` (Node ≥ 22.12 or ≥ 23.1, on Linux and some BSDs): several processes listen on
   * the same port and the kernel spreads connections between them. In a cluster worker, each worker binds
   * its own socket instead of sharing the primary's. @default false
   */
  reusePort?: boolean;
  /**
   * Server-wide budget, in bytes, for what the server holds for its clients: partial inbound frames
   * being assembled plus output not yet taken by the kernel. When taking more passes it, the
   * connections holding the most are closed (`ERR_MEMORY_LIMIT`) until the total fits, biggest first,
   * as Redis 7 does with `maxmemory-clients`. `0`: no budget. @default 268435456 (256 MiB)
   */
  maxBufferedBytes?: number;
  /**
   * Ms within which a frame must be complete once its first byte has arrived, else the connection is
   * closed (`ERR_FRAME_TIMEOUT`): a client trickling a frame cannot hold its bytes for ever. The clock
   * stops while reading is paused for backpressure. `0`: off. @default 30000
   */
  frameTimeout?: number;
  /**
   * Pending output, in bytes, past which a connection is closed as a slow consumer
   * (`ERR_SLOW_CONSUMER`), e.g. a client that receives broadcasts but never reads. `0`: off.
   * @default 67108864 (64 MiB)
   */
  maxPendingOutput?: number;
  /**
   * Ms that a connection's pending output may make no progress before it is closed as a slow consumer
   * (`ERR_SLOW_CONSUMER`). Output that moves, however slowly, keeps it open. `0`: off. @default 10000
   */
  writeTimeout?: number;
  /**
   * Connections from one client address beyond this many are refused (`ERR_MAX_CONNECTIONS`), as
   * ZooKeeper's `maxClientCnxns` does; IPv6 clients count per /64. With `proxyProtocol`, the address is the
   * one the PROXY header names. @default Infinity
   */
  maxConnectionsPerAddress?: number;
  /**
   * CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or single addresses) a client must be in to connect; others
   * are refused at once (`ERR_ADDRESS_DENIED`). Omitted or empty: every address not denied.
   * @default []
   */
  allow?: readonly string[];
  /** CIDR blocks whose clients are refused at once (`ERR_ADDRESS_DENIED`); deny wins over allow. @default [] */
  deny?: readonly string[];
  /**
   * With `proxyProtocol`: the only addresses (CIDR blocks) whose PROXY headers are believed, those of your
   * load balancers. A connection from anywhere else is refused before its header is read
   * (`ERR_PROXY_PROTOCOL`), so a client reaching the server directly cannot claim any address it likes.
   * Empty: headers are believed from anyone. @default []
   */
  trustedProxies?: readonly string[];
  /**
   * Called for each connection that passed the limits and address rules, before any frame is read; see
   * {@link AdmitHook}. With `proxyProtocol`, `conn.remoteAddress` is the real client. @default none
   */
  admit?: AdmitHook;
  /** Ms an asynchronous `admit` hook has to answer before the connection is refused (`ERR_REFUSED`). @default 5000 */
  admitTimeout?: number;
  /**
   * How fast each connection may send: token buckets of `frames` and/or `bytes` per `interval` ms,
   * refilled continuously, charged per read chunk (never per frame). Over it, `onRateLimit` decides.
   * Time a connection spends held back by the server never counts against it (idle timeout, frame
   * timeout, heartbeats). @default none
   */
  rateLimit?: RateLimitOptions;
  /**
   * What happens to a connection over its `rateLimit`: `'pause'` stops reading it until its buckets
   * refill, so TCP backpressure slows the sender and nothing is dropped (Netty's traffic shaping);
   * `'close'` answers what was read, then closes it with `ERR_RATE_LIMITED` (Discord's gateway).
   * @default 'pause'
   */
  onRateLimit?: RateLimitAction;
  /**
   * How often one address may connect: beyond `count` new connections per `interval` ms from one
   * address (an IPv4 address, an IPv6 /64; with `proxyProtocol`, the PROXY source), a connection is
   * refused at accept, before TLS or any read, with `ERR_RATE_LIMITED`. The table of addresses is
   * bounded (`maxAddresses`, oldest forgotten first). @default none
   */
  connectionRate?: ConnectionRateOptions;
  /**
   * This server's id in a fleet: connection ids are unique across instances as `instanceId/id`
   * (`conn.globalId`). @default `hostname:pid:random`, unique per process
   */
  instanceId?: string;
}

/** {@link PulsarServerOptions} with every default applied. */
export type ResolvedServerOptions = Readonly<
  Required<Omit<PulsarServerOptions, 'proxyProtocol' | 'admit' | 'path' | 'relay' | 'rateLimit' | 'connectionRate' | 'tls' | 'fd' | 'handler' | keyof MessageOptions | keyof ServerApplicationOptions>> & {
    /** The contract, routes and hello, or `null` without them. */
    application: ResolvedApplication | null;
    /** The handler: a {@link FrameHandler}, or with `messages` a {@link MessageHandler}. */
    handler: (message: unknown, conn: Connection, ctx: MessageContext) => unknown;
    /** The message layer's settings, or `null` for frames. */
    messages: MessageSettings | null;
    /** The TLS options in force at construction (a `tls` function's first answer), or `false`. */
    tls: TlsOptions | false;
    /** The inherited listening socket's file descriptor, or `null` to bind. */
    fd: number | null;
    /** The per-connection rate limit, every field resolved, or `null` for none. */
    rateLimit: Readonly<Required<Omit<RateLimitOptions, 'frames' | 'bytes'>> & Pick<RateLimitOptions, 'frames' | 'bytes'>> | null;
    /** The per-address connection rate, or `null` for none. */
    connectionRate: Readonly<Required<ConnectionRateOptions>> | null;
    /** The relay, or `null` for a server alone. */
    relay: Relay | null;
    /** The PROXY protocol reader's options, or `false` when off. */
    proxyProtocol: false | Required<ProxyProtocolOptions>;
    /** The `admit` hook, or `null`. */
    admit: AdmitHook | null;
    /** The Unix socket's path, or `null` for TCP. */
    path: string | null;
  }
>;

const OWNER = 'PulsarServer';

const SERVER_OPTIONS: Record<keyof PulsarServerOptions, true> = {
  host: true, port: true, path: true, codec: true, registry: true, relay: true, heartbeat: true, reportInterval: true, handler: true,
  maxConnections: true, shutdownTimeout: true, highWaterMark: true, proxyProtocol: true, tls: true,
  maxBufferedBytes: true, frameTimeout: true, maxPendingOutput: true, writeTimeout: true,
  maxConnectionsPerAddress: true, allow: true, deny: true, trustedProxies: true, admit: true, admitTimeout: true, instanceId: true,
  rateLimit: true, onRateLimit: true, connectionRate: true, drainDelay: true, fd: true, reusePort: true,
  ...MESSAGE_OPTIONS, ...APPLICATION_OPTIONS,
};
const PROXY_OPTIONS: Record<keyof ProxyProtocolOptions, true> = { timeout: true, maxHeaderLength: true };

/** Applies defaults and validates every option, naming the bad one and its value. */
export function resolveServerOptions<M, S, D extends ConnectionData, C extends Contract, H>(options: PulsarServerOptions<M, S, D, C, H> = {}): ResolvedServerOptions {
  if (typeof options !== 'object' || options === null) throw invalidOption(OWNER, 'options', 'must be an object', options);
  checkKnownOptions(OWNER, options, SERVER_OPTIONS, CODEC_OPTION_HINTS);
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host === '') throw invalidOption(OWNER, 'host', 'must be a non-empty string', host);
  const maxConnections = options.maxConnections ?? Infinity;
  if (maxConnections !== Infinity) checkInteger(OWNER, 'maxConnections', maxConnections, 1);
  const maxConnectionsPerAddress = options.maxConnectionsPerAddress ?? Infinity;
  if (maxConnectionsPerAddress !== Infinity) checkInteger(OWNER, 'maxConnectionsPerAddress', maxConnectionsPerAddress, 1);
  const reportInterval = options.reportInterval ?? 10_000;
  if (reportInterval !== false) checkTimerMs(OWNER, 'reportInterval', reportInterval, 1);
  const application = resolveApplication(OWNER, options as ServerApplicationOptions);
  const messages = resolveMessageSettings(OWNER, (application === null ? options : { ...options, rpc: true }) as MessageOptions, options.codec);
  const handler = (options.handler ?? (messages === null ? echo : echoMessage)) as ResolvedServerOptions['handler'];
  if (typeof handler !== 'function') throw invalidOption(OWNER, 'handler', 'must be a function', handler);
  const path = resolvePath(options as PulsarServerOptions);
  return Object.freeze({
    host,
    port: checkInteger(OWNER, 'port', options.port ?? 8080, 0, 65535),
    path,
    codec: checkShape(options.codec ?? new LengthPrefixedCodec(), 'codec', ['createDecoder', 'encode']),
    registry: checkShape(options.registry ?? new MemoryRegistry(), 'registry', ['add', 'remove', 'snapshot']),
    relay: options.relay === undefined ? null : checkShape(options.relay, 'relay', ['start', 'publish']),
    heartbeat: options.heartbeat === false ? false : checkShape(options.heartbeat ?? new IdleHeartbeat(), 'heartbeat', ['start', 'stop']),
    reportInterval,
    handler,
    messages,
    application,
    maxConnections,
    shutdownTimeout: checkTimerMs(OWNER, 'shutdownTimeout', options.shutdownTimeout ?? 10_000),
    highWaterMark: checkInteger(OWNER, 'highWaterMark', options.highWaterMark ?? 1024 * 1024, 1),
    proxyProtocol: resolveProxyProtocol(options.proxyProtocol ?? false),
    tls: resolveTls(options.tls ?? false),
    maxBufferedBytes: checkInteger(OWNER, 'maxBufferedBytes', options.maxBufferedBytes ?? 256 * 1024 * 1024, 0),
    frameTimeout: checkTimerMs(OWNER, 'frameTimeout', options.frameTimeout ?? 30_000),
    maxPendingOutput: checkInteger(OWNER, 'maxPendingOutput', options.maxPendingOutput ?? 64 * 1024 * 1024, 0),
    writeTimeout: checkTimerMs(OWNER, 'writeTimeout', options.writeTimeout ?? 10_000),
    maxConnectionsPerAddress,
    allow: options.allow ?? [],
    deny: options.deny ?? [],
    trustedProxies: resolveTrustedProxies(options.trustedProxies ?? [], options.proxyProtocol ?? false),
    admit: resolveAdmit(options.admit),
    admitTimeout: checkTimerMs(OWNER, 'admitTimeout', options.admitTimeout ?? 5000, 1),
    instanceId: resolveInstanceId(options.instanceId),
    rateLimit: resolveRateLimit(options.rateLimit),
    onRateLimit: checkOneOf(OWNER, 'onRateLimit', options.onRateLimit ?? 'pause', ['pause', 'close'] as const),
    connectionRate: resolveConnectionRate(options.connectionRate),
    drainDelay: checkTimerMs(OWNER, 'drainDelay', options.drainDelay ?? 0),
    fd: resolveFd(options as PulsarServerOptions),
    reusePort: resolveReusePort(options.reusePort ?? false),
  });
}

/** `fd`, when given: a file descriptor number, instead of `host`/`port`/`path`. */
function resolveFd(options: Omit<PulsarServerOptions, 'handler' | 'messages' | 'schema'>): number | null {
  if (options.fd === undefined) return null;
  checkInteger(OWNER, 'fd', options.fd, 0);
  if (options.host !== undefined || options.port !== undefined || options.path !== undefined) {
    throw conflictingOption(OWNER, 'fd', 'replaces host, port and path (the socket is already bound): give one or the other');
  }
  return options.fd;
}

/** Whether this Node's `net.Server#listen()` takes `reusePort` (added in 22.12 and 23.1). */
export function reusePortSupported(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

function resolveReusePort(reusePort: boolean): boolean {
  if (typeof reusePort !== 'boolean') throw invalidOption(OWNER, 'reusePort', 'must be a boolean', reusePort);
  if (reusePort && !reusePortSupported()) throw conflictingOption(OWNER, 'reusePort', `needs Node 22.12, 23.1 or later (this is ${process.versions.node})`);
  return reusePort;
}

/** `path`, when given: a non-empty string, without `host`/`port`, and address rules only with a PROXY header to judge. */
function resolvePath(options: Omit<PulsarServerOptions, 'handler' | 'messages' | 'schema'>): string | null {
  const { path } = options;
  if (path === undefined) return null;
  if (typeof path !== 'string' || path === '') throw invalidOption(OWNER, 'path', 'must be a non-empty string', path);
  if (options.host !== undefined || options.port !== undefined) throw conflictingOption(OWNER, 'path', 'replaces host and port (a Unix socket has neither): give one or the other');
  const rules = (options.allow?.length ?? 0) + (options.deny?.length ?? 0) + (options.trustedProxies?.length ?? 0) > 0
    || options.maxConnectionsPerAddress !== undefined || options.connectionRate !== undefined;
  if (rules && !options.proxyProtocol) {
    throw conflictingOption(OWNER, 'path', 'has clients with no IP address: allow, deny, maxConnectionsPerAddress and connectionRate need proxyProtocol with it');
  }
  if ((options.trustedProxies?.length ?? 0) > 0) throw conflictingOption(OWNER, 'trustedProxies', 'cannot apply to a Unix socket (the proxy has no IP address): control who may connect with the file\'s permissions');
  return path;
}

function resolveInstanceId(id: string | undefined): string {
  if (id === undefined) return `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
  if (typeof id !== 'string' || !/^[^\s/]{1,100}$/.test(id)) throw invalidOption(OWNER, 'instanceId', 'must be 1 to 100 characters, without spaces or /', id);
  return id;
}

function resolveAdmit(hook: AdmitHook | undefined): AdmitHook | null {
  if (hook === undefined) return null;
  if (typeof hook !== 'function') throw invalidOption(OWNER, 'admit', 'must be a function', hook);
  return hook;
}

function resolveTrustedProxies(blocks: readonly string[], proxyProtocol: unknown): readonly string[] {
  if (Array.isArray(blocks) && blocks.length > 0 && proxyProtocol === false) {
    throw conflictingOption(OWNER, 'trustedProxies', 'needs proxyProtocol (there is no PROXY header to trust without it)');
  }
  return blocks;
}

function resolveProxyProtocol(option: boolean | ProxyProtocolOptions): false | Required<ProxyProtocolOptions> {
  if (option === false) return false;
  if (option !== true && (typeof option !== 'object' || option === null)) {
    throw invalidOption(OWNER, 'proxyProtocol', 'must be a boolean or an options object', option);
  }
  const given = option === true ? {} : option;
  checkKnownOptions(`${OWNER} proxyProtocol`, given, PROXY_OPTIONS);
  return Object.freeze({
    timeout: checkTimerMs(OWNER, 'proxyProtocol.timeout', given.timeout ?? 5000, 1),
    // 16 bytes is the smallest v2 header; v1 lines need up to 107.
    maxHeaderLength: checkInteger(OWNER, 'proxyProtocol.maxHeaderLength', given.maxHeaderLength ?? 1024, 107, 16 + 65535),
  });
}

/** Checks that a pluggable piece has the methods its interface needs. */
function checkShape<T>(value: T, option: string, methods: readonly string[]): T {
  const missing = methods.filter((name) => typeof (value as Record<string, unknown> | null)?.[name] !== 'function');
  if (missing.length > 0) throw invalidOption(OWNER, option, `must implement ${methods.join(', ')} (missing ${missing.join(', ')})`, value);
  return value;
}

/** The options as `server.options` shows them: frozen, with a heartbeat policy that cannot be started or stopped from outside. */
export function publicOptions(options: ResolvedServerOptions): ResolvedServerOptions {
  const { heartbeat } = options;
  const running = (): never => {
    throw new PulsarError('ERR_SERVER_STATE', 'the server runs its heartbeat policy: server.options.heartbeat is a view (close() stops it)');
  };
  const view = heartbeat === false ? false : Object.freeze({ ...heartbeat, start: running, stop: running });
  return Object.freeze({ ...options, heartbeat: view });
}
