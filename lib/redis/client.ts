import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import { checkInteger, invalidOption } from '../util/validate.js';

/** Where Redis is and how the keys and channels are named: what the registry and the relay share. */
export interface RedisConnectionOptions {
  /** Where Redis is. @default 'redis://127.0.0.1:6379' */
  url?: string;
  /** Prefix of every key and channel, so that several fleets can share one Redis. @default 'pulsar' */
  prefix?: string;
  /** Ms `listen()` waits for Redis before it rejects. @default 5000 */
  connectTimeout?: number;
}

/** The few ioredis calls used here, typed locally so that pulsar's types never need ioredis's. */
export interface RedisClient {
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
  multi(): RedisPipeline;
  zrangebyscore(key: string, min: number | string, max: number | string): Promise<string[]>;
}

/** A MULTI pipeline, as far as it is used here. */
export interface RedisPipeline {
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

/** Checks the shared options, naming `owner` in the error. */
export function resolveConnectionOptions(owner: string, options: RedisConnectionOptions): Readonly<Required<RedisConnectionOptions>> {
  const url = options.url ?? 'redis://127.0.0.1:6379';
  if (typeof url !== 'string' || !/^rediss?:\/\/\S+$/.test(url)) throw invalidOption(owner, 'url', 'must be a redis:// or rediss:// URL', url);
  const prefix = options.prefix ?? 'pulsar';
  if (typeof prefix !== 'string' || !/^[\w.:-]{1,64}$/.test(prefix)) throw invalidOption(owner, 'prefix', 'must be 1 to 64 letters, digits or . : - _', prefix);
  return { url, prefix, connectTimeout: checkInteger(owner, 'connectTimeout', options.connectTimeout ?? 5000, 1, 600_000) };
}

/**
 * A client to Redis, connected (ioredis, an optional peer dependency, loaded now). It fails at once while
 * Redis is down (no offline queue: local traffic never waits on it) and reconnects by itself.
 * @throws {PulsarError} `ERR_MISSING_DEPENDENCY` without ioredis; `code` when Redis cannot be reached
 */
export async function connectRedis(owner: string, { url, connectTimeout }: Readonly<Required<RedisConnectionOptions>>, code: 'ERR_REGISTRY' | 'ERR_RELAY', onError: (error: Error) => void): Promise<RedisClient> {
  const Redis = await loadRedis(owner);
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout,
    enableOfflineQueue: false,
    enableAutoPipelining: true, // the publishes of a burst of broadcasts leave in one write
    maxRetriesPerRequest: 1,
    retryStrategy: (times: number) => Math.min(times * 100, 1000),
  });
  redis.on('error', onError);
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    throw new PulsarError(code, `${owner}: cannot reach Redis at ${url}: ${messageOf(error)}`, { cause: error });
  }
  return redis;
}

/** Closes a client: politely, else at once. */
export async function closeRedis(client: RedisClient): Promise<void> {
  await client.quit().catch(() => client.disconnect());
}

/** ioredis, loaded on first use: an optional peer dependency. */
async function loadRedis(owner: string): Promise<RedisConstructor> {
  try {
    const module = (await import('ioredis')) as unknown as { Redis?: RedisConstructor; default?: RedisConstructor };
    return (module.Redis ?? module.default)!;
  } catch (error) {
    throw new PulsarError('ERR_MISSING_DEPENDENCY', `${owner} needs the ioredis package: npm install ioredis (${messageOf(error)})`, { cause: error });
  }
}

/** Reports a store's outage once, until it is back. */
export class OutageReporter {
  readonly #report: (error: Error) => void;
  #down = false;

  /** @param report where the one error per outage goes */
  constructor(report: (error: Error) => void) {
    this.#report = report;
  }

  /** Whether an outage is under way. */
  get down(): boolean {
    return this.#down;
  }

  /** Notes a failure; reports it if it starts an outage. */
  failed(error: Error): void {
    if (this.#down) return;
    this.#down = true;
    this.#report(error);
  }

  /** Notes that the store answers again. */
  recovered(): void {
    this.#down = false;
  }
}
