/** Codes already warned about in this process: one warning each, however many errors follow. */
const warned = new Set<string>();

/**
 * Emits `error` on `emitter` when anyone listens; otherwise writes it once per error code to stderr
 * through `process.emitWarning`. eventemitter3 drops an `error` nobody listens to, and a crash would be
 * worse (a Redis outage must not kill a server that forgot a listener): ioredis prints its unhandled
 * error events the same way.
 */
export function emitError(emitter: { listenerCount(event: 'error'): number; emit(event: 'error', error: never): boolean }, source: string, error: Error): void {
  if (emitter.listenerCount('error') > 0) {
    emitter.emit('error', error as never);
    return;
  }
  const code = (error as { code?: unknown }).code;
  const key = typeof code === 'string' ? code : error.name;
  if (warned.has(key)) return;
  warned.add(key);
  process.emitWarning(`${source}: unhandled 'error' event: ${error.message} (listen to 'error' to handle it; later ${key} errors are not shown)`, { type: 'PulsarWarning', code: key });
}
