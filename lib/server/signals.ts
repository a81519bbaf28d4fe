import type { CloseResult } from './types.js';

/** What {@link closeOnSignals} closes: a `PulsarServer` or a `PulsarCluster`. */
export interface Closable {
  /** Graceful close; `drainDelay: 0` skips the drain. */
  close(options?: { drainDelay?: number }): Promise<CloseResult>;
  /** Ends at once what is still running (a cluster's workers), before a forced exit. */
  kill?(): void;
}

/** Options of {@link closeOnSignals}. */
export interface CloseOnSignalsOptions {
  /** The signals that start a graceful close. @default ['SIGINT', 'SIGTERM'] */
  signals?: readonly NodeJS.Signals[];
  /** Called when the first signal arrives, before `close()`. */
  onSignal?(signal: NodeJS.Signals): void;
  /** Called once the close is done, before the process exits with 0. */
  onClosed?(result: CloseResult): void;
}

/** 128 + the signal's number: how a shell reports a process ended by it (130 for SIGINT, 143 for SIGTERM). */
function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (SIGNAL_NUMBERS[signal] ?? 15);
}

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGTERM: 15 };

/**
 * Serves until a signal, then closes gracefully and exits 0: the first SIGTERM calls `target.close()`
 * (which drains first with a `drainDelay`: SIGTERM is how Kubernetes and systemd stop a service), the first
 * SIGINT `target.close({ drainDelay: 0 })` (Ctrl+C means now); once closed, `process.exit(0)`. A second
 * signal during the close exits at once (130 for SIGINT, 143 for SIGTERM), after `target.kill()`. What
 * `npx pulsar` does; the library itself never touches the process unless this is called.
 * @returns a function that removes the signal listeners
 */
export function closeOnSignals(target: Closable, options: CloseOnSignalsOptions = {}): () => void {
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      target.kill?.();
      process.exit(signalExitCode(signal));
    }
    closing = true;
    options.onSignal?.(signal);
    void target.close(signal === 'SIGINT' ? { drainDelay: 0 } : {}).then((result) => {
      options.onClosed?.(result);
      process.exit(0);
    });
  };
  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
}

/** What {@link reloadOnSignal} reloads: a `PulsarServer` (its TLS certificate) or a `PulsarCluster` (a rolling restart). */
export interface Reloadable {
  /** Reloads. */
  reload(): Promise<unknown>;
}

/** Options of {@link reloadOnSignal}. */
export interface ReloadOnSignalOptions {
  /** The signal. @default 'SIGHUP' */
  signal?: NodeJS.Signals;
  /** Called when the signal arrives. */
  onSignal?(signal: NodeJS.Signals): void;
  /** Called with what `reload()` resolved. */
  onReloaded?(result: unknown): void;
  /** Called with what `reload()` rejected with: a failed reload keeps what was serving. */
  onFailed?(error: Error): void;
}

/**
 * Reloads on SIGHUP, as nginx and pm2 do: `target.reload()` each time the signal arrives.
 * @returns a function that removes the signal listener
 */
export function reloadOnSignal(target: Reloadable, options: ReloadOnSignalOptions = {}): () => void {
  const signal = options.signal ?? 'SIGHUP';
  const onSignal = (): void => {
    options.onSignal?.(signal);
    target.reload().then(
      (result) => options.onReloaded?.(result),
      (error: unknown) => options.onFailed?.(error instanceof Error ? error : new Error(String(error))),
    );
  };
  process.on(signal, onSignal);
  return () => void process.off(signal, onSignal);
}
