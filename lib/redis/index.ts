export { RedisRegistry } from './registry.js';
export type { RedisRegistryOptions } from './registry.js';
