import type { ConnectionSnapshot } from '../connection/snapshot.js';
import type { FleetSummary } from '../registry/types.js';
import type { Readiness } from '../server/health.js';
import type { CloseResult, ListenAddress } from '../server/types.js';

/** Options of {@link PulsarCluster}. */
export interface PulsarClusterOptions {
  /** How many workers; `'auto'`: one per CPU (`os.availableParallelism()`). @default 'auto' */
  workers?: number | 'auto';
  /** Ms between aggregated `report` events, or `false`. @default 10000 */
  reportInterval?: number | false;
  /**
   * Ms `close()` gives the workers to drain before killing them; set it above the workers' own
   * `shutdownTimeout`. @default 15000
   */
  shutdownTimeout?: number;
  /**
   * The Unix socket the workers listen on (their `path`), if any: the primary owns it, so it makes way
   * for it before forking (a stale file left by a crashed run is replaced; a live server's is not:
   * `start()` rejects with `EADDRINUSE`). @default none (TCP)
   */
  path?: string;
  /**
   * Ms a `close()` keeps the workers serving after readiness turns to `draining`, before they shut down
   * (see the server's `drainDelay`). @default 0
   */
  drainDelay?: number;
  /** Ms a replacement worker has to listen during a rolling `reload()` before the roll stops. @default 10000 */
  startTimeout?: number;
  /**
   * Ms a worker being replaced goes on serving, taking no new connections, before its graceful close: the
   * primary hands new connections to the other workers at once, and those it handed this one just before
   * get their first frames read and answered instead of being closed unanswered. @default 500
   */
  rollGrace?: number;
}

/** A step of a rolling reload, as the `roll` event tells it. */
export type RollStep = RollStart | RollReplacing | RollFailed | RollDone;

/** The roll begins. */
export interface RollStart {
  /** The discriminant. */
  step: 'start';
  /** Workers to replace. */
  workers: number;
}

/** A replacement starts for `worker` (`replacing`), or it listens and `worker` has closed (`replaced`). */
export interface RollReplacing {
  /** The discriminant. */
  step: 'replacing' | 'replaced';
  /** The worker being replaced (its cluster id). */
  worker: number;
  /** Its process id. */
  pid: number;
  /** The replacement's cluster id. */
  replacement: number;
  /** The replacement's process id. */
  replacementPid: number;
}

/** The replacement for `worker` exited or did not listen in time: the roll stops, `worker` goes on serving. */
export interface RollFailed {
  /** The discriminant. */
  step: 'failed';
  /** The worker that was to be replaced. */
  worker: number;
  /** Its process id. */
  pid: number;
  /** What went wrong. */
  reason: string;
}

/** The roll is over. */
export interface RollDone {
  /** The discriminant. */
  step: 'done';
  /** Workers replaced. */
  replaced: number;
}

/** One worker's part of a {@link ClusterReport}. */
export interface WorkerReport {
  /** The worker's cluster id. */
  worker: number;
  /** Its process id. */
  pid: number;
  /** Its live connections, as of its last report. */
  count: number;
  /** Their figures (connection ids are per worker). */
  connections: ConnectionSnapshot[];
  /** Bytes it holds for its clients (its `maxBufferedBytes` budget is its own). */
  bufferedBytes: number;
}

/** The whole server's report: the total and each worker's part. */
export interface ClusterReport {
  /** Epoch ms when it was assembled. */
  time: number;
  /** Live connections over all workers. */
  count: number;
  /** Bytes held for clients over all workers. */
  bufferedBytes: number;
  /** Each live worker's last report. */
  workers: WorkerReport[];
  /** The fleet, when the workers share a registry with other instances (each worker is one): the most recent any worker saw. */
  fleet?: FleetSummary;
}

/** A worker that exited while the cluster was not closing. */
export interface WorkerExit {
  /** The worker's cluster id. */
  worker: number;
  /** Its process id. */
  pid: number;
  /** Its exit code, or `null` when a signal ended it. */
  code: number | null;
  /** The signal that ended it, if any. */
  signal: string | null;
  /** Whether a new worker was started in its place (not when it died before it ever listened). */
  replaced: boolean;
}

/** Events of {@link PulsarCluster}. */
export interface PulsarClusterEvents {
  /** Every worker listens; `address` is the shared one. */
  listening: [address: ListenAddress, workers: number];
  /** The aggregated report, every `reportInterval`. */
  report: [report: ClusterReport];
  /** A worker died and (usually) was replaced. */
  workerExit: [exit: WorkerExit];
  /** A problem with the cluster itself (a worker that cannot start). */
  error: [error: Error];
  /** A step of a rolling `reload()`. */
  roll: [step: RollStep];
  /** Readiness changed (see `readiness`). */
  readiness: [readiness: Readiness];
  /** Every worker has drained and exited; the figures are summed. */
  close: [result: CloseResult];
}
