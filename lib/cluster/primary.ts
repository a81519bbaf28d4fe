import cluster, { type Worker } from 'node:cluster';
import os from 'node:os';
import createDebug from 'debug';
import { EventEmitter } from 'eventemitter3';
import { PulsarError } from '../errors.js';
import { ReadinessEvents, type Readiness } from '../server/health.js';
import type { Report } from '../registry/driver.js';
import type { CloseResult, ListenAddress } from '../server/types.js';
import { emitError } from '../util/unhandled-error.js';
import { clearStaleSocket } from '../server/unix-socket.js';
import { checkInteger, checkKnownOptions, checkTimerMs, invalidOption } from '../util/validate.js';
import { isClusterMessage, type ClusterMessage } from './ipc.js';
import type { ClusterReport, PulsarClusterEvents, PulsarClusterOptions, WorkerReport } from './types.js';

const debug = createDebug('pulsar:cluster:trace');

interface WorkerState {
  worker: Worker;
  listening: boolean;
  report: Report | null;
  closed: CloseResult | null;
  /** Told to close by a roll: its exit is expected, not replaced. */
  retiring: boolean;
  /** Called once it listens, or exits (a roll waits for its replacement this way). */
  settle: ((listening: boolean) => void) | null;
}

const OWNER = 'PulsarCluster';

/**
 * Several worker processes behind one port, with Node's own `node:cluster`: the primary forks the
 * workers, aggregates their reports, replaces a worker that dies, and coordinates a graceful shutdown.
 * Create it in the primary process only (`cluster.isPrimary`); the workers run the same script and serve
 * with a `PulsarServer` through {@link serveWorker}.
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
  readonly #drainDelay: number;
  readonly #startTimeout: number;
  readonly #rollGrace: number;
  #draining = false;
  readonly #readinessEvents = new ReadinessEvents((readiness) => this.emit('readiness', readiness));
  /** The rolling reload under way, if any. */
  #rolling: Promise<number> | null = null;
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
    checkKnownOptions(OWNER, options, { workers: true, reportInterval: true, shutdownTimeout: true, path: true, drainDelay: true, startTimeout: true, rollGrace: true });
    this.#rollGrace = checkTimerMs(OWNER, 'rollGrace', options.rollGrace ?? 500);
    this.#drainDelay = checkTimerMs(OWNER, 'drainDelay', options.drainDelay ?? 0);
    this.#startTimeout = checkTimerMs(OWNER, 'startTimeout', options.startTimeout ?? 10_000, 1);
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
   * Where the cluster is in its life (see the server's `readiness`): `ready` once every worker listens.
   */
  get readiness(): Readiness {
    if (this.#closing !== undefined) return this.#draining ? 'draining' : this.#states.size === 0 ? 'closed' : 'closing';
    return this.#address === null ? 'starting' : 'ready';
  }

  /**
   * Graceful shutdown of every worker (each drains as `PulsarServer.close()` does); workers still running
   * after `shutdownTimeout` are killed and counted as forced. With a `drainDelay`, readiness turns to
   * `draining` first and the workers keep serving for that long. A second call returns the same promise.
   * @param options `drainDelay`: ms to drain first (the option's by default; `0` skips it)
   * @returns the workers' `{ drained, forced }`, summed
   */
  close(options: { drainDelay?: number } = {}): Promise<CloseResult> {
    this.#closing ??= this.#shutdown(options.drainDelay ?? this.#drainDelay);
    return this.#closing;
  }

  /**
   * Rolls the workers, one at a time: starts a replacement (which loads the code from disk anew), waits
   * until it listens (within `startTimeout`), then closes the old one gracefully and waits for it to exit.
   * New connections keep going to the workers that listen meanwhile, so none is refused. A replacement
   * that exits or does not listen in time is killed and stops the roll: the workers not yet replaced go on
   * serving. The `roll` event tells each step.
   * @returns how many workers were replaced
   * @throws {PulsarError} (rejects) `ERR_RELOAD_FAILED` when a replacement failed; `ERR_SERVER_STATE`
   * when a roll is already under way (it is refused, not queued), or the cluster is not running
   */
  reload(): Promise<number> {
    if (this.#rolling !== null) return Promise.reject(new PulsarError('ERR_SERVER_STATE', 'a rolling reload is already under way'));
    if (this.#address === null || this.#closing !== undefined) return Promise.reject(new PulsarError('ERR_SERVER_STATE', `cannot reload: the cluster is ${this.readiness}`));
    this.#rolling = this.#roll().finally(() => (this.#rolling = null));
    return this.#rolling;
  }

  async #roll(): Promise<number> {
    const old = [...this.#states.values()].filter((s) => !s.retiring);
    this.emit('roll', { step: 'start', workers: old.length });
    let replaced = 0;
    for (const state of old) {
      if (this.#closing !== undefined) break;
      const { worker } = state;
      const pid = worker.process.pid ?? 0;
      const next = this.#fork();
      const replacement = { replacement: next.worker.id, replacementPid: next.worker.process.pid ?? 0 };
      this.emit('roll', { step: 'replacing', worker: worker.id, pid, ...replacement });
      if (!(await this.#listensInTime(next))) {
        const reason = next.worker.isDead() ? `replacement worker ${next.worker.id} exited before it listened` : `replacement worker ${next.worker.id} did not listen within ${this.#startTimeout} ms`;
        next.retiring = true;
        next.worker.process.kill('SIGKILL');
        this.emit('roll', { step: 'failed', worker: worker.id, pid, reason });
        throw new PulsarError('ERR_RELOAD_FAILED', `rolling reload stopped after ${replaced} worker(s): ${reason}; the others go on serving`);
      }
      await this.#retire(state);
      replaced++;
      this.emit('roll', { step: 'replaced', worker: worker.id, pid, ...replacement });
    }
    this.emit('roll', { step: 'done', replaced });
    return replaced;
  }

  /** Resolves `true` once `state`'s worker listens, `false` if it exits first or `startTimeout` passes. */
  #listensInTime(state: WorkerState): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(false), this.#startTimeout);
      const settle = (listening: boolean): void => {
        clearTimeout(timer);
        state.settle = null;
        resolve(listening);
      };
      state.settle = settle;
    });
  }

  /**
   * Closes one worker gracefully: it takes no new connection from now on (the others do), serves what it has
   * for `rollGrace`, then closes as a shutdown does; waits for its exit, killing it after `shutdownTimeout`.
   */
  async #retire(state: WorkerState): Promise<void> {
    state.retiring = true;
    const { worker } = state;
    const exited = new Promise<void>((resolve) => {
      if (worker.isDead()) resolve();
      else worker.once('exit', () => resolve());
    });
    if (worker.isConnected()) worker.send({ pulsar: 'shutdown', drainDelay: this.#rollGrace, accepting: false } satisfies ClusterMessage);
    const timer = setTimeout(() => worker.process.kill('SIGKILL'), this.#rollGrace + this.#shutdownTimeout);
    await exited;
    clearTimeout(timer);
  }

  /** Kills every worker at once (a second Ctrl+C). */
  kill(): void {
    for (const { worker } of this.#states.values()) worker.process.kill('SIGKILL');
  }

  async #shutdown(drainDelay: number): Promise<CloseResult> {
    if (drainDelay > 0 && this.#address !== null) {
      this.#draining = true;
      this.#readinessEvents.update(this.readiness);
      debug('draining for %d ms', drainDelay);
      await new Promise((resolve) => setTimeout(resolve, drainDelay));
      this.#draining = false;
    }
    this.#readinessEvents.update(this.readiness);
    await this.#rolling?.catch(() => undefined); // a roll under way stops at its next step
    clearInterval(this.#reportTimer);
    debug('closing %d worker(s)', this.#states.size);
    const exits = [...this.#states.values()].map(({ worker }) => new Promise<void>((resolve) => {
      if (worker.isDead()) resolve();
      else worker.once('exit', () => resolve());
      if (worker.isConnected()) worker.send({ pulsar: 'shutdown', drainDelay: 0, accepting: false } satisfies ClusterMessage);
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
    this.#readinessEvents.update(this.readiness);
    this.emit('close', result);
    return result;
  }

  #fork(): WorkerState {
    const worker = cluster.fork();
    const state: WorkerState = { worker, listening: false, report: null, closed: null, retiring: false, settle: null };
    this.#states.set(worker.id, state);
    return state;
  }

  readonly #onMessage = (worker: Worker, message: unknown): void => {
    const state = this.#states.get(worker.id);
    if (!state || !isClusterMessage(message)) return;
    if (message.pulsar === 'listening') {
      state.listening = true;
      state.settle?.(true);
      if (this.#address === null && [...this.#states.values()].every((s) => s.listening)) {
        this.#address = message.address;
        this.#startReports();
        debug('%d worker(s) listening on %s:%d', this.#states.size, message.address.address, message.address.port);
        this.emit('listening', message.address, this.#states.size);
        this.#readinessEvents.update(this.readiness);
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
    const awaited = state.settle !== null; // a roll's replacement: the roll reports it
    state.settle?.(false);
    if (state.retiring || awaited) return; // closed by a roll, or a replacement that failed it
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
