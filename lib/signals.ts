import type { CloseResult } from './server-types.js';

/** What {@link closeOnSignals} closes: a `PulsarServer` or a `PulsarCluster`. */
export interface Closable {
  /** Graceful close. */
  close(): Promise<CloseResult>;
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
 * Serves until a signal, then closes gracefully and exits 0: the first SIGINT or SIGTERM calls
 * `target.close()` and, once it resolves, `process.exit(0)`; a second one during the close exits at once
 * (130 for SIGINT, 143 for SIGTERM), after `target.kill()`. What `npx pulsar` does; the library itself
 * never touches the process unless this is called.
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
    void target.close().then((result) => {
      options.onClosed?.(result);
      process.exit(0);
    });
  };
  for (const signal of signals) process.on(signal, onSignal);
  return () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
}
