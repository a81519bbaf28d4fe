import type { Connection } from './connection.js';

/** One connection's figures at a point in time, as reported every `reportInterval`. */
export interface ConnectionSnapshot {
  /** Server-unique connection id. */
  id: number;
  /** Client IP address. */
  remoteAddress: string;
  /** Client port. */
  remotePort: number;
  /** Epoch ms when the connection was accepted. */
  connectedAt: number;
  /** Ms since the last inbound byte. */
  idleMs: number;
  /** Frames decoded from the client. */
  framesIn: number;
  /** Frames sent to the client (heartbeats included). */
  framesOut: number;
  /** Bytes received from the client. */
  bytesIn: number;
  /** Bytes sent to the client. */
  bytesOut: number;
  /** What the PROXY protocol header said besides the client's address; absent without a header. */
  proxy?: ProxySnapshot;
}

/** A PROXY header's details in a {@link ConnectionSnapshot}. */
export interface ProxySnapshot {
  /** `host:port` the client connected to (the proxy's frontend), `null` when the header has none. */
  destination: string | null;
  /** The v2 extensions: type, name when well known (see `ProxyTlv`), value in hex. */
  tlvs: Array<{
    /** The type byte. */
    type: number;
    /** Its name when well known. */
    name?: string;
    /** The value, in hex. */
    value: string;
  }>;
}

/**
 * Where live connections are tracked. The server calls `add` when a connection opens and `remove` when
 * it closes, and `snapshot` for each report. Any method may return a promise (a registry backed by an
 * external store): the server never waits on `add`/`remove` before handling frames, and reports a
 * rejection as an `ERR_REGISTRY` server error.
 */
export interface Registry {
  /** Records a newly accepted connection. */
  add(conn: Connection): void | Promise<void>;
  /** Forgets a closed connection. On shutdown, the server waits for every removal to settle. */
  remove(conn: Connection): void | Promise<void>;
  /** The live connections' figures, for reports. */
  snapshot(): ConnectionSnapshot[] | Promise<ConnectionSnapshot[]>;
  /**
   * Optional: opens what the registry needs (a client to an external store); `listen()` waits for it
   * and rejects if it throws or rejects.
   */
  start?(context: RegistryContext): void | Promise<void>;
  /** Optional: closes it; `close()` waits for it after every removal has settled. */
  stop?(): void | Promise<void>;
  /**
   * Optional: the whole fleet's figures (every instance sharing the store), added to reports as `fleet`;
   * `null` when they cannot be known now (the store is unreachable).
   */
  fleet?(): FleetSummary | null | Promise<FleetSummary | null>;
  /**
   * Optional: hands a message to the other instances (cross-instance delivery): a frame for one
   * connection, or a group broadcast. Resolves once handed over.
   * @throws {PulsarError} `ERR_NO_SUCH_CONNECTION` when the target instance is not there,
   * `ERR_RELAY` when the store cannot be reached
   */
  relay?(message: RelayMessage): Promise<void>;
}

/** What a registry is given when its server starts. */
export interface RegistryContext {
  /** The server's instance id (unique across processes and machines). */
  readonly instanceId: string;
  /** The server's live connections (to write them all again after the store came back). */
  connections(): Iterable<Connection>;
  /** Delivers a message relayed by another instance to the connections here. */
  deliver(message: RelayMessage): void;
  /** Reports a problem with the store (the server emits it as an `ERR_REGISTRY` or `ERR_RELAY` `error`). */
  error(error: Error): void;
}

/** The fleet as a registry shared by several instances sees it. */
export interface FleetSummary {
  /** Live connections across every instance. */
  connections: number;
  /** Instances alive (that refreshed their record within its time to live). */
  instances: number;
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

/** The default registry: a `Map` keyed by connection id, iterable for broadcasts. */
export class MemoryRegistry implements Registry, Iterable<Connection> {
  readonly #byId = new Map<number, Connection>();

  /** Number of live connections. */
  get size(): number {
    return this.#byId.size;
  }

  /** The live connection with this id, if any. */
  get(id: number): Connection | undefined {
    return this.#byId.get(id);
  }

  /** {@inheritDoc Registry.add} */
  add(conn: Connection): void {
    this.#byId.set(conn.id, conn);
  }

  /** {@inheritDoc Registry.remove} */
  remove(conn: Connection): void {
    this.#byId.delete(conn.id);
  }

  /** {@inheritDoc Registry.snapshot} */
  snapshot(): ConnectionSnapshot[] {
    const now = Date.now();
    return Array.from(this.#byId.values(), (conn) => conn.snapshot(now));
  }

  /** Iterates the live connections. */
  [Symbol.iterator](): IterableIterator<Connection> {
    return this.#byId.values();
  }
}
