import createDebug from 'debug';
import type { Connection } from '../connection/connection.js';
import type { ConnectionSnapshot } from '../connection/snapshot.js';
import { PulsarError } from '../errors.js';
import type { FleetSummary, Registry, RegistryContext } from '../registry/types.js';
import { checkKnownOptions, checkTimerMs } from '../util/validate.js';
import { closeRedis, connectRedis, OutageReporter, resolveConnectionOptions, type RedisClient, type RedisConnectionOptions, type RedisPipeline } from './client.js';

const debug = createDebug('pulsar:redis:trace');

/** Options of {@link RedisRegistry}. */
export interface RedisRegistryOptions extends RedisConnectionOptions {
  /**
   * Ms an instance's records live without a refresh (refreshed every third of it): the entries of an
   * instance that crashed are gone within this. @default 15000
   */
  ttl?: number;
}

const OWNER = 'RedisRegistry';

/**
 * A registry shared by a fleet of pulsar instances through Redis (on `ioredis`, an optional peer
 * dependency loaded when the server starts). Cross-instance delivery is the {@link RedisRelay}'s job;
 * `redisFleet()` makes the pair.
 *
 * Each instance keeps its connections in a hash of its own (`prefix:conns:instanceId`, field: connection
 * id) and its liveness in a sorted set (`prefix:instances`, scored by expiry), both refreshed every
 * `ttl / 3`: an instance that crashes disappears from the fleet within `ttl`. Reports list this instance's
 * connections and add `fleet` (every live instance's count); metrics stay per instance, so nothing is
 * counted twice (Prometheus sums instances). Cluster workers are instances of their own.
 *
 * While Redis is unreachable, the server goes on serving its own clients: writes are skipped (the
 * instance writes all its connections again when Redis is back, one `error` per outage), and reports
 * have no `fleet`.
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
  #context: RegistryContext | null = null;
  #redis: RedisClient | null = null;
  #refreshTimer: ReturnType<typeof setInterval> | undefined;
  #outage: OutageReporter | null = null;

  /** @param options see {@link RedisRegistryOptions}; every field is optional */
  constructor(options: RedisRegistryOptions = {}) {
    checkKnownOptions(OWNER, options, { url: true, prefix: true, ttl: true, connectTimeout: true });
    this.options = Object.freeze({
      ...resolveConnectionOptions(OWNER, options),
      ttl: checkTimerMs(OWNER, 'ttl', options.ttl ?? 15_000, 300),
    });
  }

  /** Connects to Redis (rejects with `ERR_REGISTRY` if it cannot within `connectTimeout`), writes this instance's record. */
  async start(context: RegistryContext): Promise<void> {
    this.#context = context;
    const outage = new OutageReporter((error) => context.error(new PulsarError('ERR_REGISTRY', `${OWNER}: Redis at ${this.options.url} failed (serving local clients meanwhile): ${error.message}`, { cause: error })));
    this.#outage = outage;
    const redis = await connectRedis(OWNER, this.options, 'ERR_REGISTRY', (error) => outage.failed(error));
    this.#redis = redis;
    redis.on('ready', () => void this.#writeAll());
    await this.#writeAll();
    this.#refreshTimer = setInterval(() => void this.#refresh(), Math.max(100, Math.floor(this.options.ttl / 3)));
    this.#refreshTimer.unref();
    debug('instance %s registered at %s', context.instanceId, this.options.url);
  }

  /** Forgets this instance in Redis (its connections and its liveness) and disconnects. */
  async stop(): Promise<void> {
    clearInterval(this.#refreshTimer);
    const redis = this.#redis;
    if (redis === null) return;
    if (redis.status === 'ready') {
      await redis.multi().del(this.#connsKey).zrem(this.#instancesKey, this.#instanceId).exec().catch(() => undefined);
    }
    await closeRedis(redis);
    this.#redis = null;
  }

  /** Records a connection in Redis, when it is reachable. */
  async add(conn: Connection): Promise<void> {
    await this.#write((redis) => redis.hset(this.#connsKey, String(conn.id), describe(conn)));
  }

  /** Forgets a connection in Redis. */
  async remove(conn: Connection): Promise<void> {
    await this.#write((redis) => redis.hdel(this.#connsKey, String(conn.id)));
  }

  /** This instance's connections (reports list these; the fleet's figures are in {@link fleet}). */
  snapshot(): ConnectionSnapshot[] {
    const now = Date.now();
    return Array.from(this.#context?.connections.values() ?? [], (conn) => conn.snapshot(now));
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
      this.#outage?.failed(error as Error);
      return null;
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

  /** The client when Redis is reachable, else `null`. */
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
      this.#outage?.failed(error as Error);
    }
  }

  /** Redis is (back) up: this instance's record and every connection, written again from scratch. */
  async #writeAll(): Promise<void> {
    const redis = this.#ready();
    if (redis === null || this.#context === null) return;
    const pipeline = redis.multi().del(this.#connsKey);
    for (const conn of this.#context.connections.values()) pipeline.hset(this.#connsKey, String(conn.id), describe(conn));
    this.#expiring(pipeline);
    try {
      await pipeline.exec();
      if (this.#outage?.down) debug('Redis is back: instance %s written again', this.#instanceId);
      this.#outage?.recovered();
    } catch (error) {
      this.#outage?.failed(error as Error);
    }
  }

  /** Keeps this instance alive in Redis for another `ttl`. */
  async #refresh(): Promise<void> {
    const redis = this.#ready();
    if (redis === null) return;
    try {
      await this.#expiring(redis.multi()).exec();
    } catch (error) {
      this.#outage?.failed(error as Error);
    }
  }

  #expiring(pipeline: RedisPipeline): RedisPipeline {
    const { ttl } = this.options;
    return pipeline.pexpire(this.#connsKey, ttl).zadd(this.#instancesKey, Date.now() + ttl, this.#instanceId);
  }
}

/** What the fleet's hash holds about a connection. */
function describe(conn: Connection): string {
  return JSON.stringify({ id: conn.globalId, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort, connectedAt: conn.connectedAt });
}
