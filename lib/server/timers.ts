import type { Connection } from '../connection/connection.js';
import { kSendEncoded } from '../connection/owner.js';
import type { PulsarError } from '../errors.js';
import { heartbeatHostFor } from '../heartbeat.js';
import type { RegistryDriver } from '../registry/driver.js';
import { DeadlineSweep } from './deadlines.js';
import type { ResolvedServerOptions } from './options.js';

/** What the server's timers report. */
export interface TimersHost {
  /** The connections that can be written. */
  writable(): Iterable<Connection>;
  /** A heartbeat was sent to `conn`. */
  beat(conn: Connection): void;
  /** `conn` broke a limit the heartbeat policy keeps: close it with `error`. */
  expire(conn: Connection, error: PulsarError): void;
}

/**
 * The server's clocks while it listens: the heartbeat policy (pluggable, so it keeps its own schedule),
 * the sweep of per-connection deadlines, and the registry's reports.
 */
export class ServerTimers {
  readonly #options: ResolvedServerOptions;
  readonly #deadlines: DeadlineSweep<Connection>;
  readonly #registry: RegistryDriver;
  readonly #host: TimersHost;

  constructor(options: ResolvedServerOptions, live: () => Iterable<Connection>, registry: RegistryDriver, host: TimersHost) {
    this.#options = options;
    this.#deadlines = new DeadlineSweep(options, live, (conn, error) => host.expire(conn, error));
    this.#registry = registry;
    this.#host = host;
  }

  /** Starts them all (the server is listening). */
  start(): void {
    const { heartbeat, reportInterval, codec } = this.#options;
    if (heartbeat) {
      const beat = (conn: Connection, wire: Buffer): void => {
        conn[kSendEncoded](wire, true);
        this.#host.beat(conn);
      };
      heartbeat.start(heartbeatHostFor(() => this.#host.writable(), (payload) => codec.encode(payload), beat, (conn, error) => this.#host.expire(conn, error)));
    }
    this.#deadlines.start();
    if (reportInterval !== false) this.#registry.startReports(reportInterval);
  }

  /** Stops them all (the server is closing). */
  stop(): void {
    if (this.#options.heartbeat) this.#options.heartbeat.stop();
    this.#deadlines.stop();
    this.#registry.stopReports();
  }
}
