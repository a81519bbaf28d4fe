import type { Connection } from '../connection/connection.js';
import { kFlushed, kShutdown, type DisconnectReason } from '../connection/owner.js';
import { ReadonlyMapView } from '../util/readonly-map.js';
import type { CloseResult } from './types.js';

/**
 * A server's connections: those that can be written, by id (what `server.connections` shows), and every
 * one served until its socket closes (the writable ones and those lingering after our FIN: they still
 * hold output, count against `maxConnections` and are waited for on shutdown). On shutdown it closes
 * them all and counts each as drained or forced.
 */
export class ServedConnections {
  readonly #writable = new Map<number, Connection>();
  /** The read-only view of the writable ones that the server hands out. */
  readonly writable: ReadonlyMap<number, Connection> = new ReadonlyMapView(this.#writable);
  readonly #live = new Set<Connection>();
  /** Set by {@link closeAll}: counts how each ends. */
  #result: CloseResult | null = null;
  #onEmpty: (() => void) | undefined;

  /** Every connection served and not closed yet. */
  get live(): ReadonlySet<Connection> {
    return this.#live;
  }

  /** A connection is served. */
  add(conn: Connection): void {
    this.#writable.set(conn.id, conn);
    this.#live.add(conn);
  }

  /** It can no longer be written. @returns `false` when it was not (or no longer) writable here */
  unwritable(conn: Connection): boolean {
    return this.#writable.delete(conn.id);
  }

  /**
   * Its socket closed. During {@link closeAll} it counts as drained only if it ended cleanly with every
   * byte handed to the kernel (a timeout or an error is forced).
   * @returns `false` when it was not served here
   */
  closed(conn: Connection, reason: DisconnectReason, error: Error | undefined): boolean {
    if (!this.#live.delete(conn)) return false;
    const result = this.#result;
    if (result !== null) {
      if (error === undefined && reason !== 'timeout' && conn[kFlushed]) result.drained++;
      else result.forced++;
    }
    if (this.#live.size === 0) this.#onEmpty?.();
    return true;
  }

  /** Closes every connection gracefully. @returns how many drained and how many were forced, once the last is gone */
  async closeAll(): Promise<CloseResult> {
    const result = (this.#result = { drained: 0, forced: 0 });
    const empty = new Promise<void>((resolve) => (this.#onEmpty = resolve));
    for (const conn of this.#live) conn[kShutdown]();
    if (this.#live.size === 0) this.#onEmpty!();
    await empty;
    return result;
  }
}
