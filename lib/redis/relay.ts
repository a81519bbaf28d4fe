import createDebug from 'debug';
import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import type { Relay, RelayContext, RelayMessage } from '../fleet/relay.js';
import { checkKnownOptions } from '../util/validate.js';
import { closeRedis, connectRedis, OutageReporter, resolveConnectionOptions, type RedisClient, type RedisConnectionOptions } from './client.js';

const debug = createDebug('pulsar:redis:trace');

/** Options of {@link RedisRelay}. */
export type RedisRelayOptions = RedisConnectionOptions;

const OWNER = 'RedisRelay';

/**
 * Cross-instance delivery over Redis pub/sub (on `ioredis`, an optional peer dependency loaded when the
 * server starts): `group.broadcast()` reaches the group's members on every instance, `server.sendTo()`
 * the connection on whichever instance holds it, in order per sender, at most once. One channel per
 * instance (`prefix:to:instanceId`) and one for the groups (`prefix:groups`); publishes are auto-pipelined.
 *
 * While Redis is unreachable, local delivery goes on; publishing rejects with `ERR_RELAY` (one server
 * `error` per outage for broadcasts).
 *
 * @example
 * ```ts
 * import { RedisRelay, RedisRegistry } from 'pulsar/redis';
 * const url = 'redis://10.0.0.5:6379';
 * const server = new PulsarServer({ registry: new RedisRegistry({ url }), relay: new RedisRelay({ url }) });
 * ```
 */
export class RedisRelay implements Relay {
  /** The options, with defaults applied. */
  readonly options: Readonly<Required<RedisRelayOptions>>;
  #context: RelayContext | null = null;
  #publisher: RedisClient | null = null;
  #subscriber: RedisClient | null = null;

  /** @param options see {@link RedisRelayOptions}; every field is optional */
  constructor(options: RedisRelayOptions = {}) {
    checkKnownOptions(OWNER, options, { url: true, prefix: true, connectTimeout: true });
    this.options = Object.freeze(resolveConnectionOptions(OWNER, options));
  }

  /** Connects to Redis (rejects with `ERR_RELAY` if it cannot within `connectTimeout`) and subscribes. */
  async start(context: RelayContext): Promise<void> {
    this.#context = context;
    const outage = new OutageReporter((error) => context.error(new PulsarError('ERR_RELAY', `${OWNER}: Redis at ${this.options.url} failed (local delivery goes on): ${error.message}`, { cause: error })));
    const [publisher, subscriber] = await Promise.all([0, 1].map(() => connectRedis(OWNER, this.options, 'ERR_RELAY', (error) => outage.failed(error))));
    this.#publisher = publisher!;
    this.#subscriber = subscriber!;
    publisher!.on('ready', () => outage.recovered());
    subscriber!.on('messageBuffer', (channel: Buffer, message: Buffer) => this.#received(String(channel), message));
    try {
      await subscriber!.subscribe(this.#channel(context.instanceId), this.#groupsChannel);
    } catch (error) {
      await this.stop();
      throw new PulsarError('ERR_RELAY', `${OWNER}: cannot subscribe at ${this.options.url}: ${messageOf(error)}`, { cause: error });
    }
    debug('instance %s relaying through %s', context.instanceId, this.options.url);
  }

  /** Unsubscribes and disconnects. */
  async stop(): Promise<void> {
    const clients = [this.#publisher, this.#subscriber].filter((client) => client !== null);
    this.#publisher = this.#subscriber = null;
    await Promise.all(clients.map(closeRedis));
  }

  /** Publishes a message for another instance (one connection) or for every instance (a group). */
  async publish(message: RelayMessage): Promise<void> {
    const redis = this.#publisher?.status === 'ready' ? this.#publisher : null;
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

  get #groupsChannel(): string {
    return `${this.options.prefix}:groups`;
  }

  #channel(instance: string): string {
    return `${this.options.prefix}:to:${instance}`;
  }

  /** A message published by an instance: for one of our connections, or for our members of a group. */
  #received(channel: string, message: Buffer): void {
    const context = this.#context;
    if (context === null) return;
    if (channel === this.#groupsChannel) {
      const decoded = decodeGroupMessage(message);
      if (decoded !== null) context.deliver({ kind: 'group', ...decoded });
    } else if (message.length >= 4) {
      context.deliver({ kind: 'connection', instance: context.instanceId, id: message.readUInt32BE(0), payload: message.subarray(4) });
    }
  }
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
