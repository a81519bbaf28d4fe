import { RedisRegistry, type RedisRegistryOptions } from './registry.js';
import { RedisRelay } from './relay.js';

export { RedisRegistry } from './registry.js';
export type { RedisRegistryOptions } from './registry.js';
export { RedisRelay } from './relay.js';
export type { RedisRelayOptions } from './relay.js';
export type { RedisConnectionOptions } from './client.js';

/** The two parts of a fleet on Redis, named as the server's options. */
export interface RedisFleet {
  /** Who is connected, across the fleet. */
  registry: RedisRegistry;
  /** Delivery across the fleet. */
  relay: RedisRelay;
}

/**
 * A fleet on one Redis: the shared registry and the relay, to spread into the server's options.
 *
 * @example
 * ```ts
 * import { redisFleet } from 'pulsar/redis';
 * const server = new PulsarServer({ port: 8080, ...redisFleet({ url: 'redis://10.0.0.5:6379' }) });
 * ```
 * @param options the registry's options; the relay takes the same `url`, `prefix` and `connectTimeout`
 */
export function redisFleet(options: RedisRegistryOptions = {}): RedisFleet {
  const { ttl: _ttl, ...connection } = options;
  return { registry: new RedisRegistry(options), relay: new RedisRelay(connection) };
}
