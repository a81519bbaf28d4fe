import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import { PulsarError } from './errors.js';
import { emitError } from './unhandled-error.js';
import { clearStaleSocket } from './unix-socket.js';
import type { ConnectionSnapshot } from './connection/snapshot.js';
import type { FleetSummary } from './registry/types.js';
import type { CloseResult, ListenAddress, PulsarServer, Report } from './server.js';
import { checkInteger, checkKnownOptions, checkTimerMs, invalidOption } from './validate.js';

const debug = createDebug('pulsar:lifecycle:cluster');

/**
 * Several worker processes behind one port, with Node's own `node:cluster`: the primary forks the
 * workers (each runs the same script and serves with a `PulsarServer` through {@link serveWorker}),
 * aggregates their reports, replaces a worker that dies, and coordinates a graceful shutdown.
 */

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
  /** Every worker has drained and exited; the figures are summed. */
  close: [result: CloseResult];
}

type Message =
  | { pulsar: 'listening'; address: ListenAddress }
  | { pulsar: 'report'; report: Report }
  | { pulsar: 'closed'; result: CloseResult }
  | { pulsar: 'shutdown' };

function isMessage(value: unknown): value is Message {
  return typeof value === 'object' && value !== null && typeof (value as { pulsar?: unknown }).pulsar === 'string';
}

interface WorkerState {
  worker: Worker;
  listening: boolean;
  report: Report | null;
  closed: CloseResult | null;
}

const OWNER = 'PulsarCluster';

/**
 * The primary side of a cluster. Create it in the primary process only (`cluster.isPrimary`); the
 * workers run the same script and call {@link serveWorker}.
 *
 * @example
 * ```ts
 * if (cluster.isPrimary) {
 *   const primary = new PulsarCluster({ workers: 'auto' });
 *   primary.on('report', (r) => console.log(`${r.count} connections`));
 *   await primary.start();
 *   process.once('SIGTERM', () => primary.close());
 * } else {
 *   await serveWorker(new PulsarServer({ port: 8080 }));
 * }
 * ```
 */
export class PulsarCluster extends EventEmitter<PulsarClusterEvents> {
  /** How many workers it keeps running. */
  readonly workers: number;
  readonly #reportInterval: number | false;
  readonly #shutdownTimeout: number;
  readonly #path: string | null;
  readonly #states = new Map<number, WorkerState>();
  #address: ListenAddress | null = null;
  #reportTimer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<CloseResult> | undefined;
  #started = false;

  /**
   * @param options see {@link PulsarClusterOptions}
   * @throws {PulsarError} `ERR_INVALID_OPTION` for a bad option; `ERR_SERVER_STATE` outside the primary
   */
  constructor(options: PulsarClusterOptions = {}) {
    super();
    if (!cluster.isPrimary) throw new PulsarError('ERR_SERVER_STATE', 'PulsarCluster runs in the primary process; workers call serveWorker()');
    checkKnownOptions(OWNER, options, { workers: true, reportInterval: true, shutdownTimeout: true, path: true });
    if (options.path !== undefined && (typeof options.path !== 'string' || options.path === '')) throw invalidOption(OWNER, 'path', 'must be a non-empty string', options.path);
    this.#path = options.path ?? null;
    const workers = options.workers ?? 'auto';
    if (workers !== 'auto' && typeof workers !== 'number') throw invalidOption(OWNER, 'workers', "must be a number or 'auto'", workers);
    this.workers = workers === 'auto' ? os.availableParallelism() : checkInteger(OWNER, 'workers', workers, 1, 1024);
    this.#reportInterval = options.reportInterval ?? 10_000;
    if (this.#reportInterval !== false) checkTimerMs(OWNER, 'reportInterval', this.#reportInterval, 1);
    this.#shutdownTimeout = checkTimerMs(OWNER, 'shutdownTimeout', options.shutdownTimeout ?? 15_000);
  }

  /**
   * Forks the workers.
   * @returns the shared address, once every worker listens
   * @throws rejects with `ERR_SERVER_STATE` when a worker exits before it listens (its own error is in its
   * output); with `path`, as `clearStaleSocket` does (`EADDRINUSE`, `EEXIST`)
   */
  async start(): Promise<ListenAddress> {
    if (this.#started) throw new PulsarError('ERR_SERVER_STATE', 'start() was already called');
    this.#started = true;
    if (this.#path !== null) await clearStaleSocket(this.#path);
    cluster.on('message', this.#onMessage);
    cluster.on('exit', this.#onExit);
    return new Promise((resolve, reject) => {
      const onListening = (address: ListenAddress): void => {
        this.off('error', onError);
        resolve(address);
      };
      const onError = (error: Error): void => {
        this.off('listening', onListening);
        void this.close().finally(() => reject(error));
      };
      this.once('listening', onListening);
      this.once('error', onError);
      for (let i = 0; i < this.workers; i++) this.#fork();
    });
  }

  /**
   * Graceful shutdown of every worker (each drains as `PulsarServer.close()` does); workers still running
   * after `shutdownTimeout` are killed and counted as forced. A second call returns the same promise.
   * @returns the workers' `{ drained, forced }`, summed
   */
  close(): Promise<CloseResult> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Kills every worker at once (a second Ctrl+C). */
  kill(): void {
    for (const { worker } of this.#states.values()) worker.process.kill('SIGKILL');
  }

  async #shutdown(): Promise<CloseResult> {
    clearInterval(this.#reportTimer);
    debug('closing %d worker(s)', this.#states.size);
    const exits = [...this.#states.values()].map(({ worker }) => new Promise<void>((resolve) => {
      if (worker.isDead()) resolve();
      else worker.once('exit', () => resolve());
      if (worker.isConnected()) worker.send({ pulsar: 'shutdown' } satisfies Message);
    }));
    const timer = setTimeout(() => this.kill(), this.#shutdownTimeout);
    await Promise.all(exits);
    clearTimeout(timer);
    cluster.off('message', this.#onMessage);
    cluster.off('exit', this.#onExit);
    const result = { drained: 0, forced: 0 };
    for (const state of this.#states.values()) {
      result.drained += state.closed?.drained ?? 0;
      result.forced += state.closed?.forced ?? (state.report?.count ?? 0);
    }
    this.#states.clear();
    this.emit('close', result);
    return result;
  }

  #fork(): void {
    const worker = cluster.fork();
    this.#states.set(worker.id, { worker, listening: false, report: null, closed: null });
  }

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    const state = this.#states.get(worker.id);
    if (!state || !isMessage(message)) return;
    if (message.pulsar === 'listening') {
      state.listening = true;
      if (this.#address === null && [...this.#states.values()].every((s) => s.listening)) {
        this.#address = message.address;
        this.#startReports();
        debug('%d worker(s) listening on %s:%d', this.#states.size, message.address.address, message.address.port);
        this.emit('listening', message.address, this.#states.size);
      }
    } else if (message.pulsar === 'report') {
      state.report = message.report;
    } else if (message.pulsar === 'closed') {
      state.closed = message.result;
    }
  };

  readonly #onExit = (worker: Worker, code: number | null, signal: string | null): void => {
    const state = this.#states.get(worker.id);
    if (!state || this.#closing) return;
    this.#states.delete(worker.id);
    const replaced = state.listening; // one that never listened would likely fail again: no fork loop
    debug('worker %d (pid %d) exited (%s), %s', worker.id, worker.process.pid, signal ?? code, replaced ? 'replacing it' : 'not replaced');
    this.emit('workerExit', { worker: worker.id, pid: worker.process.pid ?? 0, code, signal, replaced });
    if (replaced) this.#fork();
    else emitError(this, 'PulsarCluster', new PulsarError('ERR_SERVER_STATE', `worker ${worker.id} exited (${signal ?? `code ${code}`}) before it listened`));
  };

  #startReports(): void {
    if (this.#reportInterval === false) return;
    this.#reportTimer = setInterval(() => this.#report(), this.#reportInterval);
    this.#reportTimer.unref();
  }

  #report(): void {
    const workers: WorkerReport[] = [...this.#states.values()].map(({ worker, report }) => ({
      worker: worker.id,
      pid: worker.process.pid ?? 0,
      count: report?.count ?? 0,
      connections: report?.connections ?? [],
      bufferedBytes: report?.bufferedBytes ?? 0,
    }));
    const sum = (figure: 'count' | 'bufferedBytes'): number => workers.reduce((n, w) => n + w[figure], 0);
    const fleet = [...this.#states.values()].map((state) => state.report).filter((r) => r?.fleet !== undefined).sort((a, b) => b!.time - a!.time)[0]?.fleet;
    const report: ClusterReport = { time: Date.now(), count: sum('count'), bufferedBytes: sum('bufferedBytes'), workers };
    this.emit('report', fleet === undefined ? report : { ...report, fleet });
  }
}

/**
 * In a worker process: listens with `server` (on the port all workers share), forwards its reports to
 * the primary, and closes it gracefully when the primary says so, or on SIGINT/SIGTERM, then exits 0.
 * @returns the address, once listening
 * @throws {PulsarError} `ERR_SERVER_STATE` outside a cluster worker; rejects with `listen()`'s error
 */
export async function serveWorker(server: PulsarServer): Promise<ListenAddress> {
  if (!cluster.isWorker) throw new PulsarError('ERR_SERVER_STATE', 'serveWorker() runs in a cluster worker');
  const send = (message: Message, then?: () => void): void => {
    if (process.connected) process.send!(message, undefined, {}, () => then?.());
    else then?.();
  };
  const close = (): void => {
    void server.close().then((result) => send({ pulsar: 'closed', result }, () => process.exit(0)));
  };
  process.on('message', (message: unknown) => {
    if (isMessage(message) && message.pulsar === 'shutdown') close();
  });
  process.on('SIGINT', close); // Ctrl+C reaches the whole process group; the primary coordinates
  process.on('SIGTERM', close);
  process.on('disconnect', close); // the primary is gone
  server.on('report', (report) => send({ pulsar: 'report', report }));
  const address = await server.listen();
  send({ pulsar: 'listening', address });
  return address;
}
