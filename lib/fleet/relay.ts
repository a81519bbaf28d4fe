/**
 * Cross-instance delivery, apart from the registry (socket.io keeps its Adapter apart from who is
 * connected the same way): a relay carries frames for connections and group broadcasts between the
 * instances of a fleet. `RedisRelay` (`pulsar/redis`) does it over Redis pub/sub.
 */
export interface Relay {
  /** Opens what the relay needs and starts receiving; `listen()` waits for it and rejects if it fails. */
  start(context: RelayContext): void | Promise<void>;
  /** Stops receiving and closes; `close()` waits for it. */
  stop?(): void | Promise<void>;
  /**
   * Hands a message to the other instances. Resolves once handed over.
   * @throws {PulsarError} `ERR_NO_SUCH_CONNECTION` when the target instance is not there, `ERR_RELAY`
   * when the store cannot be reached
   */
  publish(message: RelayMessage): Promise<void>;
}

/** What a relay is given when its server starts. */
export interface RelayContext {
  /** The server's instance id (unique across processes and machines). */
  readonly instanceId: string;
  /** Delivers a message another instance published to the connections here. */
  deliver(message: RelayMessage): void;
  /** Reports a problem with the store (the server emits it as an `error` event). */
  error(error: Error): void;
}

/** A message between instances: a frame for one connection, or a broadcast to a group. */
export type RelayMessage = RelayToConnection | RelayToGroup;

/** A frame for one connection of another instance. */
export interface RelayToConnection {
  /** The discriminant. */
  readonly kind: 'connection';
  /** The instance that holds the connection. */
  readonly instance: string;
  /** The connection's id there. */
  readonly id: number;
  /** The payload, encoded by the receiving instance. */
  readonly payload: Buffer;
}

/** A broadcast to a group's members on every instance. */
export interface RelayToGroup {
  /** The discriminant. */
  readonly kind: 'group';
  /** The group's name. */
  readonly group: string;
  /** The instance it comes from (which has delivered it to its own members already). */
  readonly origin: string;
  /** The payload, encoded by each receiving instance. */
  readonly payload: Buffer;
}

