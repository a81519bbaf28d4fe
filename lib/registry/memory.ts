import type { Connection } from '../connection/connection.js';
import type { ConnectionSnapshot } from '../connection/snapshot.js';
import type { Registry, RegistryContext } from './types.js';

/**
 * The default registry: the server's own record of its connections, read through the context it is
 * given at start (it keeps no copy of its own). Iterable, with `size` and `get(id)`, for broadcasts.
 */
export class MemoryRegistry implements Registry, Iterable<Connection> {
  #context: RegistryContext | null = null;

  /** Number of live connections (0 before the server starts it). */
  get size(): number {
    return this.#context?.connections.size ?? 0;
  }

  /** The live connection with this id, if any. */
  get(id: number): Connection | undefined {
    return this.#context?.connections.get(id);
  }

  /** {@inheritDoc Registry.start} */
  start(context: RegistryContext): void {
    this.#context = context;
  }

  /** Nothing to do: the server's own record already has it. */
  add(): void {}

  /** Nothing to do: the server's own record has already let it go. */
  remove(): void {}

  /** {@inheritDoc Registry.snapshot} */
  snapshot(): ConnectionSnapshot[] {
    const now = Date.now();
    return Array.from(this, (conn) => conn.snapshot(now));
  }

  /** Iterates the live connections. */
  *[Symbol.iterator](): IterableIterator<Connection> {
    if (this.#context !== null) yield* this.#context.connections.values();
  }
}
