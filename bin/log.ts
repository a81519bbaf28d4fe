import createDebug from 'debug';
import type { CloseResult, Connection, PulsarServer, Report } from '../lib/index.js';

/** Namespaces logged when `DEBUG` is unset: startup, connections and reports, not heartbeats. */
export const DEFAULT_NAMESPACES = 'pulsar:server,pulsar:conn,pulsar:report';

type Namespace = 'pulsar:server' | 'pulsar:conn' | 'pulsar:report' | 'pulsar:heartbeat' | 'pulsar:flow';
type Level = 'debug' | 'info' | 'warn' | 'error';
type Fields = Record<string, unknown>;

/** Report lines listed one per connection in text logs before the rest is summarised. */
const REPORT_LINES = 20;

/**
 * One log call site for both formats: text goes to stderr through `debug` (namespace-gated), JSON
 * lines go to stdout, gated by the same namespaces so `DEBUG` narrows both.
 */
export class CliLogger {
  readonly #format: 'text' | 'json';
  readonly #channels = new Map<Namespace, createDebug.Debugger>();

  /** @param format `text` (stderr, via debug) or `json` (stdout) */
  constructor(format: 'text' | 'json') {
    this.#format = format;
    // A closed stdout (`npx pulsar --log json | head -1`) must not crash the server it logs for.
    if (format === 'json') process.stdout.on('error', ignoreBrokenPipe);
  }

  /** Whether events of `namespace` are logged (`DEBUG` is read once, at start-up). */
  enabled(namespace: Namespace): boolean {
    return this.#channel(namespace).enabled;
  }

  /** Logs one event: `text` for humans, `fields` for JSON. */
  log(namespace: Namespace, level: Level, event: string, fields: Fields, text: string): void {
    const channel = this.#channel(namespace);
    if (!channel.enabled) return;
    if (this.#format === 'text') channel('%s', text);
    else process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);
  }

  #channel(namespace: Namespace): createDebug.Debugger {
    let channel = this.#channels.get(namespace);
    if (!channel) {
      channel = createDebug(namespace);
      this.#channels.set(namespace, channel);
    }
    return channel;
  }
}

function ignoreBrokenPipe(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') throw error;
}

function client(conn: Connection): Fields {
  return { id: conn.id, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort };
}

/** pulsar's `ERR_…` code, Node's (`ECONNRESET`…), or the error's name when it has none. */
function errorCode(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.name;
}

function errorFields(error: Error | undefined): Fields {
  if (!error) return {};
  return { code: errorCode(error), error: error.message };
}

/** Logs every server event the CLI reports. */
export function logServerEvents(server: PulsarServer, logger: CliLogger): void {
  server.on('listening', ({ address, port, family }) => {
    const shown = family === 'IPv6' ? `[${address}]:${port}` : `${address}:${port}`;
    logger.log('pulsar:server', 'info', 'listening', { address, port, family }, `listening on ${shown}`);
  });
  server.on('connection', (conn) => {
    logger.log('pulsar:conn', 'info', 'connection', client(conn), `${conn.remote} connected (#${conn.id}, ${server.connections.size} open)`);
  });
  server.on('disconnect', (conn, reason, error) => {
    const why = error ? `${reason}: ${errorCode(error)}` : reason;
    logger.log(
      'pulsar:conn', 'info', 'disconnect',
      { ...client(conn), reason, ...errorFields(error), framesIn: conn.framesIn, framesOut: conn.framesOut },
      `${conn.remote} disconnected (#${conn.id}, ${why}) after ${conn.framesIn} frame(s) in, ${conn.framesOut} out`,
    );
  });
  // Client error messages start with the client's address and connection id.
  server.on('clientError', (error, conn) => {
    logger.log('pulsar:conn', 'warn', 'clientError', { ...client(conn), ...errorFields(error) }, `${error.message} [${errorCode(error)}]`);
  });
  // Per-heartbeat and per-stall events are off by default: listen only when they are logged, so that
  // 10,000 idle clients cost no log call each.
  if (logger.enabled('pulsar:heartbeat')) {
    server.on('heartbeat', (conn) => {
      logger.log('pulsar:heartbeat', 'debug', 'heartbeat', client(conn), `${conn.remote} heartbeat sent (#${conn.id})`);
    });
  }
  if (logger.enabled('pulsar:flow')) {
    server.on('backpressure', (conn) => {
      logger.log('pulsar:flow', 'debug', 'backpressure', { ...client(conn), pendingBytes: conn.pendingBytes }, `${conn.remote} reading paused: ${conn.pendingBytes} bytes pending`);
    });
    server.on('drain', (conn) => {
      logger.log('pulsar:flow', 'debug', 'drain', client(conn), `${conn.remote} drained, reading resumed`);
    });
  }
  server.on('report', (report) => logReport(logger, report));
  server.on('error', (error) => {
    logger.log('pulsar:server', 'error', 'error', errorFields(error), `server error: ${error.message}`);
  });
}

function logReport(logger: CliLogger, report: Report): void {
  const { count, connections } = report;
  const lines = connections.slice(0, REPORT_LINES).map((c) =>
    `\n  #${c.id} ${c.remoteAddress}:${c.remotePort} idle ${c.idleMs} ms, in ${c.framesIn} frames/${c.bytesIn} B, out ${c.framesOut} frames/${c.bytesOut} B`);
  if (count > REPORT_LINES) lines.push(`\n  … and ${count - REPORT_LINES} more`);
  logger.log('pulsar:report', 'info', 'report', { count, connections }, `${count} connection(s)${lines.join('')}`);
}

/** Logs the start of a signal-triggered shutdown. */
export function logShutdown(logger: CliLogger, signal: string, open: number): void {
  logger.log('pulsar:server', 'info', 'shutdown', { signal, connections: open }, `${signal}: shutting down, ${open} connection(s) to drain`);
}

/** Logs the final line of a shutdown. */
export function logClosed(logger: CliLogger, result: CloseResult): void {
  logger.log('pulsar:server', 'info', 'closed', { ...result }, `closed: ${result.drained} drained, ${result.forced} forced`);
}
