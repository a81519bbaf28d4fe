import createDebug from 'debug';
import type { Connection } from '../connection.js';
import { PulsarError } from '../errors.js';
import { messageOf } from '../format.js';
import { MemoryRegistry, type ConnectionSnapshot, type FleetSummary, type Registry, type RegistryContext, type RelayMessage } from '../registry.js';
import { checkInteger, checkKnownOptions, checkTimerMs, invalidOption } from '../validate.js';

const debug = createDebug('pulsar:redis');

/** Options of {@link RedisRegistry}. */
export interface RedisRegistryOptions {
  /** Where Redis is. @default 'redis://127.0.0.1:6379' */
  url?: string;
  /** Prefix of every key and channel, so that several fleets can share one Redis. @default 'pulsar' */
  prefix?: string;
  /**
   * Ms an instance's records live without a refresh (refreshed every third of it): the entries of an
   * instance that crashed are gone within this. @default 15000
   */
  ttl?: number;
  /** Ms `listen()` waits for Redis before it rejects. @default 5000 */
  connectTimeout?: number;
}

const OWNER = 'RedisRegistry';

/** The few ioredis calls used here, typed locally so that pulsar's types never need ioredis's. */
interface RedisClient {
  readonly status: string;
  connect(): Promise<void>;
  duplicate(): RedisClient;
  quit(): Promise<unknown>;
  disconnect(): void;
  on(event: string, listener: (...args: never[]) => void): unknown;
  subscribe(...channels: string[]): Promise<unknown>;
  publish(channel: string, message: Buffer): Promise<number>;
  hset(key: string, field: string, value: string): Promise<unknown>;
  hdel(key: string, field: string): Promise<unknown>;
  pexpire(key: string, ms: number): Promise<unknown>;
  multi(): RedisPipeline;
  zrangebyscore(key: string, min: number | string, max: number | string): Promise<string[]>;
}

interface RedisPipeline {
  del(key: string): RedisPipeline;
  hset(key: string, field: string, value: string): RedisPipeline;
  hlen(key: string): RedisPipeline;
  pexpire(key: string, ms: number): RedisPipeline;
  zadd(key: string, score: number, member: string): RedisPipeline;
  zrem(key: string, member: string): RedisPipeline;
  zremrangebyscore(key: string, min: number | string, max: number | string): RedisPipeline;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisClient;

/** ioredis, loaded on first use: an optional peer dependency. */
async function loadRedis(): Promise<RedisConstructor> {
  try {
    const module = (await import('ioredis')) as unknown as { Redis?: RedisConstructor; default?: RedisConstructor };
    return (module.Redis ?? module.default)!;
  } catch (error) {
    throw new PulsarError('ERR_MISSING_DEPENDENCY', `${OWNER} needs the ioredis package: npm install ioredis (${messageOf(error)})`, { cause: error });
  }
}

/**
 * A registry shared by a fleet of pulsar instances through Redis (on `ioredis`, an optional peer
 * dependency loaded when the server starts), and the relay for cross-instance delivery
 * (`group.broadcast()`, `server.sendTo()`) over Redis pub/sub.
 *
 * Each instance keeps its connections in a hash of its own (`prefix:conns:instanceId`, field: connection
 * id) and its liveness in a sorted set (`prefix:instances`, scored by expiry), both refreshed every
 * `ttl / 3`: an instance that crashes disappears from the fleet within `ttl`. Reports list this instance's
 * connections and add `fleet` (every live instance's count); metrics stay per instance, so nothing is
 * counted twice (Prometheus sums instances). Cluster workers are instances of their own.
 *
 * While Redis is unreachable, the server goes on serving its own clients: writes are skipped (the
 * instance writes all its connections again when Redis is back), relaying rejects with `ERR_RELAY` (one
 * server `error` per outage for broadcasts), and reports have no `fleet`.
 *
 * @example
 * ```ts
 * import { RedisRegistry } from 'pulsar/redis';
 * const server = new PulsarServer({ registry: new RedisRegistry({ url: 'redis://10.0.0.5:6379' }) });
 * ```
 */
export class RedisRegistry implements Registry {
  /** The options, with defaults applied. */
  readonly options: Readonly<Required<RedisRegistryOptions>>;
  readonly #local = new MemoryRegistry();
  #context: RegistryContext | null = null;
  #redis: RedisClient | null = null;
  #subscriber: RedisClient | null = null;
  #refreshTimer: ReturnType<typeof setInterval> | undefined;
  /** True while Redis is unreachable: reported once per outage. */
  #down = false;

  /** @param options see {@link RedisRegistryOptions}; every field is optional */
  constructor(options: RedisRegistryOptions = {}) {
    checkKnownOptions(OWNER, options, { url: true, prefix: true, ttl: true, connectTimeout: true });
    const url = options.url ?? 'redis://127.0.0.1:6379';
    if (typeof url !== 'string' || !/^rediss?:\/\//.test(url)) throw invalidOption(OWNER, 'url', "must be a redis:// or rediss:// URL", url);
    const prefix = options.prefix ?? 'pulsar';
    if (typeof prefix !== 'string' || !/^[\w.:-]{1,64}$/.test(prefix)) throw invalidOption(OWNER, 'prefix', 'must be 1 to 64 letters, digits or . : - _', prefix);
    this.options = Object.freeze({
      url,
      prefix,
      ttl: checkTimerMs(OWNER, 'ttl', options.ttl ?? 15_000, 300),
      connectTimeout: checkInteger(OWNER, 'connectTimeout', options.connectTimeout ?? 5000, 1, 600_000),
    });
  }

  /** Connects to Redis (rejects with `ERR_REGISTRY` if it cannot within `connectTimeout`), subscribes, writes this instance's record. */
  async start(context: RegistryContext): Promise<void> {
    const Redis = await loadRedis();
    this.#context = context;
    const { url, connectTimeout, ttl } = this.options;
    const redis = new Redis(url, {
      lazyConnect: true,
      connectTimeout,
      enableOfflineQueue: false, // fail at once while Redis is down: never hold local traffic
      enableAutoPipelining: true, // the publishes of a burst of broadcasts leave in one write
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 100, 1000),
    });
    const subscriber = redis.duplicate();
    this.#redis = redis;
    this.#subscriber = subscriber;
    for (const client of [redis, subscriber]) client.on('error', (error: Error) => this.#outage(error));
    redis.on('ready', () => void this.#writeAll());
    subscriber.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#received(String(channel), message));
    try {
      await Promise.all([redis.connect(), subscriber.connect()]);
      await subscriber.subscribe(this.#channel(context.instanceId), this.#groupsChannel);
    } catch (error) {
      redis.disconnect();
      subscriber.disconnect();
      throw new PulsarError('ERR_REGISTRY', `${OWNER}: cannot reach Redis at ${url}: ${messageOf(error)}`, { cause: error });
    }
    this.#refreshTimer = setInterval(() => void this.#refresh(), Math.max(100, Math.floor(ttl / 3)));
    this.#refreshTimer.unref();
    debug('instance %s registered at %s', context.instanceId, url);
  }

  /** Forgets this instance in Redis (its connections and its liveness) and disconnects. */
  async stop(): Promise<void> {
    clearInterval(this.#refreshTimer);
    const redis = this.#redis;
    const subscriber = this.#subscriber;
    if (redis === null || subscriber === null) return;
    if (redis.status === 'ready') {
      await redis.multi().del(this.#connsKey).zrem(this.#instancesKey, this.#instanceId).exec().catch(() => undefined);
    }
    await Promise.all([redis, subscriber].map((client) => client.quit().catch(() => client.disconnect())));
    this.#redis = this.#subscriber = null;
  }

  /** Records a connection here and, when Redis is reachable, there. */
  async add(conn: Connection): Promise<void> {
    this.#local.add(conn);
    await this.#write((redis) => redis.hset(this.#connsKey, String(conn.id), describe(conn)));
  }

  /** Forgets a connection here and there. */
  async remove(conn: Connection): Promise<void> {
    this.#local.remove(conn);
    await this.#write((redis) => redis.hdel(this.#connsKey, String(conn.id)));
  }

  /** This instance's connections (reports list these; the fleet's figures are in {@link fleet}). */
  snapshot(): ConnectionSnapshot[] {
    return this.#local.snapshot();
  }

  /** Connections and instances across the fleet, or `null` while Redis is unreachable. */
  async fleet(): Promise<FleetSummary | null> {
    const redis = this.#ready();
    if (redis === null) return null;
    try {
      const now = Date.now();
      await redis.multi().zremrangebyscore(this.#instancesKey, '-inf', now).exec();
      const instances = await redis.zrangebyscore(this.#instancesKey, now, '+inf');
      const pipeline = redis.multi();
      for (const instance of instances) pipeline.hlen(`${this.options.prefix}:conns:${instance}`);
      const counts = (await pipeline.exec()) ?? [];
      return { connections: counts.reduce((sum, [, count]) => sum + Number(count ?? 0), 0), instances: instances.length };
    } catch (error) {
      this.#outage(error as Error);
      return null;
    }
  }

  /** Publishes a message for another instance (one connection) or for every instance (a group). */
  async relay(message: RelayMessage): Promise<void> {
    const redis = this.#ready();
    if (redis === null) throw new PulsarError('ERR_RELAY', `${OWNER}: Redis at ${this.options.url} is unreachable: not relayed`);
    let receivers: number;
    try {
      receivers = message.kind === 'connection'
        ? await redis.publish(this.#channel(message.instance), Buffer.concat([uint32(message.id), message.payload]))
        : await redis.publish(this.#groupsChannel, encodeGroupMessage(message.origin, message.group, message.payload));
    } catch (error) {
      throw new PulsarError('ERR_RELAY', `${OWNER}: relaying failed: ${messageOf(error)}`, { cause: error });
    }
    if (message.kind === 'connection' && receivers === 0) {
      throw new PulsarError('ERR_NO_SUCH_CONNECTION', `instance ${message.instance} is not in the fleet: connection ${message.id} is not reachable`);
    }
  }

  get #instanceId(): string {
    return this.#context!.instanceId;
  }

  get #connsKey(): string {
    return `${this.options.prefix}:conns:${this.#instanceId}`;
  }

  get #instancesKey(): string {
    return `${this.options.prefix}:instances`;
  }

  get #groupsChannel(): string {
    return `${this.options.prefix}:groups`;
  }

  #channel(instance: string): string {
    return `${this.options.prefix}:to:${instance}`;
  }

  /** The command client when Redis is reachable, else `null`. */
  #ready(): RedisClient | null {
    return this.#redis?.status === 'ready' ? this.#redis : null;
  }

  /** A write while Redis is reachable; skipped otherwise (everything is written again when it is back). */
  async #write(command: (redis: RedisClient) => Promise<unknown>): Promise<void> {
    const redis = this.#ready();
    if (redis === null) return;
    try {
      await command(redis);
    } catch (error) {
      this.#outage(error as Error);
    }
  }

  /** Redis is (back) up: this instance's record and every connection, written again from scratch. */
  async #writeAll(): Promise<void> {
    const redis = this.#ready();
    if (redis === null || this.#context === null) return;
    const pipeline = redis.multi().del(this.#connsKey);
    for (const conn of this.#context.connections()) pipeline.hset(this.#connsKey, String(conn.id), describe(conn));
    this.#expiring(pipeline);
    try {
      await pipeline.exec();
      if (this.#down) debug('Redis is back: instance %s written again', this.#instanceId);
      this.#down = false;
    } catch (error) {
      this.#outage(error as Error);
    }
  }

  /** Keeps this instance alive in Redis for another `ttl`. */
  async #refresh(): Promise<void> {
    const redis = this.#ready();
    if (redis === null) return;
    try {
      await this.#expiring(redis.multi()).exec();
    } catch (error) {
      this.#outage(error as Error);
    }
  }

  #expiring(pipeline: RedisPipeline): RedisPipeline {
    const { ttl } = this.options;
    return pipeline.pexpire(this.#connsKey, ttl).zadd(this.#instancesKey, Date.now() + ttl, this.#instanceId);
  }

  /** Reports an outage once, until Redis is back. */
  #outage(error: Error): void {
    if (this.#down) return;
    this.#down = true;
    this.#context?.error(new PulsarError('ERR_REGISTRY', `${OWNER}: Redis at ${this.options.url} failed (serving local clients meanwhile): ${error.message}`, { cause: error }));
  }

  /** A message published by an instance: for one of our connections, or for our members of a group. */
  #received(channel: string, message: Buffer): void {
    const context = this.#context;
    if (context === null) return;
    if (channel === this.#groupsChannel) {
      const decoded = decodeGroupMessage(message);
      if (decoded !== null) context.deliver({ kind: 'group', ...decoded });
    } else if (message.length >= 4) {
      context.deliver({ kind: 'connection', instance: this.#instanceId, id: message.readUInt32BE(0), payload: message.subarray(4) });
    }
  }
}

/** What the fleet's hash holds about a connection. */
function describe(conn: Connection): string {
  return JSON.stringify({ id: conn.globalId, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, connectedAt: conn.connectedAt });
}

function uint32(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(4);
  bytes.writeUInt32BE(value, 0);
  return bytes;
}

/** A group broadcast on the wire between instances: origin and group names (length-prefixed), then the payload. */
function encodeGroupMessage(origin: string, group: string, payload: Buffer): Buffer {
  const originBytes = Buffer.from(origin);
  const groupBytes = Buffer.from(group);
  const head = Buffer.allocUnsafe(3);
  head[0] = originBytes.length;
  head.writeUInt16BE(groupBytes.length, 1);
  return Buffer.concat([head.subarray(0, 1), originBytes, head.subarray(1), groupBytes, payload]);
}

function decodeGroupMessage(message: Buffer): { origin: string; group: string; payload: Buffer } | null {
  const originLength = message[0] ?? 0;
  if (message.length < 3 + originLength) return null;
  const groupLength = message.readUInt16BE(1 + originLength);
  const groupAt = 3 + originLength;
  if (message.length < groupAt + groupLength) return null;
  return {
    origin: message.toString('utf8', 1, 1 + originLength),
    group: message.toString('utf8', groupAt, groupAt + groupLength),
    payload: message.subarray(groupAt + groupLength),
  };
}
