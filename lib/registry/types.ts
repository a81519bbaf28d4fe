import type { Connection } from '../connection/connection.js';
import type { ConnectionSnapshot } from '../connection/snapshot.js';

/**
 * Where live connections are tracked. The server calls `add` when a connection opens and `remove` when
 * it can no longer be written, and `snapshot` for each report. Any method may return a promise (a registry backed by an
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
}

/** What a registry is given when its server starts. */
export interface RegistryContext {
  /** The server's instance id (unique across processes and machines). */
  readonly instanceId: string;
  /** The server's live connections by id: its own record of them, read-only. */
  readonly connections: ReadonlyMap<number, Connection>;
  /** Reports a problem with the store (the server emits it as an `ERR_REGISTRY` `error`). */
  error(error: Error): void;
}

/** The fleet as a registry shared by several instances sees it. */
export interface FleetSummary {
  /** Live connections across every instance. */
  connections: number;
  /** Instances alive (that refreshed their record within its time to live). */
  instances: number;
}

