import type { Connection } from '../connection/connection.js';
import type { ConnectionSnapshot } from '../connection/snapshot.js';
import { PulsarError } from '../errors.js';
import { messageOf } from '../util/format.js';
import { isPromiseLike } from '../util/thenable.js';
import type { FleetSummary, Registry } from './types.js';

/** A periodic snapshot of the live connections. */
export interface Report {
  /** Epoch ms when it was taken. */
  time: number;
  /** Number of live connections. */
  count: number;
  /** Each live connection's figures. */
  connections: ConnectionSnapshot[];
  /** Bytes the server holds for its clients (see `PulsarServer#bufferedBytes`). */
  bufferedBytes: number;
  /** The whole fleet, when the registry is shared by several instances (`RedisRegistry`). */
  fleet?: FleetSummary;
}

/** What the driver needs from its server. */
export interface RegistryHost {
  /** The server's id in a fleet. */
  readonly instanceId: string;
  /** The connections that can be written, by id. */
  readonly connections: ReadonlyMap<number, Connection>;
  /** Whether a report taken now is still wanted (the server listens). */
  reporting(): boolean;
  /** Bytes held for clients now, for reports. */
  bufferedBytes(): number;
  /** Emits a report. */
  report(report: Report): void;
  /** Reports a problem with the registry. */
  error(error: PulsarError): void;
}

/**
 * Drives the registry for its server: starts it (awaited by `listen()`), tells it of connections without
 * ever making frames wait on it (a slow external store must not stall them), keeps the calls not settled
 * yet so that a shutdown waits for them, stops it, and takes the periodic reports.
 */
export class RegistryDriver {
  readonly #registry: Registry;
  readonly #host: RegistryHost;
  /** Registry calls not settled yet: a shutdown waits for them (removals written to an external store). */
  readonly #pending = new Set<PromiseLike<unknown>>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #reporting = false;

  /**
   * @param registry the server's registry
   * @param host the server
   */
  constructor(registry: Registry, host: RegistryHost) {
    this.#registry = registry;
    this.#host = host;
  }

  /** Starts the registry, if it has a `start()`. @throws {PulsarError} `ERR_REGISTRY` */
  async start(): Promise<void> {
    const { instanceId, connections } = this.#host;
    if (this.#registry.start === undefined) return;
    try {
      await this.#registry.start({
        instanceId,
        connections,
        error: (error) => this.#host.error(error instanceof PulsarError ? error : new PulsarError('ERR_REGISTRY', messageOf(error), { cause: error })),
      });
    } catch (error) {
      throw error instanceof PulsarError ? error : new PulsarError('ERR_REGISTRY', `registry.start() failed: ${messageOf(error)}`, { cause: error });
    }
  }

  /** Waits for every registry call still pending (removals), then stops the registry if it was started. */
  async stop(started: boolean): Promise<void> {
    this.stopReports();
    await Promise.all(this.#pending);
    if (!started || this.#registry.stop === undefined) return;
    try {
      await this.#registry.stop();
    } catch (error) {
      this.#failed('stop', error);
    }
  }

  /** Tells the registry of a connection served (`add`) or gone (`remove`), without waiting on it. */
  call(method: 'add' | 'remove', conn: Connection): void {
    try {
      const result: unknown = this.#registry[method](conn);
      if (!isPromiseLike(result)) return;
      const settled = Promise.resolve(result).then(undefined, (error: unknown) => this.#failed(method, error));
      this.#pending.add(settled);
      void settled.then(() => this.#pending.delete(settled));
    } catch (error) {
      this.#failed(method, error);
    }
  }

  /** Takes a report every `interval` ms (an unref'd timer). */
  startReports(interval: number): void {
    this.stopReports();
    this.#timer = setInterval(() => void this.#report(), interval);
    this.#timer.unref();
  }

  /** Stops the reports. Safe to call more than once. */
  stopReports(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Emits one report; skipped while the previous snapshot (maybe from an external store) is pending. */
  async #report(): Promise<void> {
    if (this.#reporting) return;
    this.#reporting = true;
    try {
      const registry = this.#registry;
      const [connections, fleet] = await Promise.all([registry.snapshot(), registry.fleet?.()]);
      if (this.#host.reporting()) {
        const report: Report = { time: Date.now(), count: connections.length, connections, bufferedBytes: this.#host.bufferedBytes() };
        this.#host.report(fleet === undefined || fleet === null ? report : { ...report, fleet });
      }
    } catch (error) {
      this.#failed('snapshot', error);
    } finally {
      this.#reporting = false;
    }
  }

  #failed(method: string, error: unknown): void {
    this.#host.error(new PulsarError('ERR_REGISTRY', `registry.${method}() failed: ${messageOf(error)}`, { cause: error }));
  }
}
