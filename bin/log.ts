import os from 'node:os';
import createDebug from 'debug';
import type { CloseResult, Connection, ConnectionSnapshot, FleetSummary, ListenAddress, PulsarCluster, PulsarServer, Report, RollStep } from 'pulsar';

/** Namespaces logged when `DEBUG` is unset: startup, connections and reports, not heartbeats. */
export const DEFAULT_NAMESPACES = 'pulsar:server,pulsar:connection,pulsar:report';

type Namespace = 'pulsar:server' | 'pulsar:connection' | 'pulsar:report' | 'pulsar:heartbeat' | 'pulsar:flow';
type Level = 'debug' | 'info' | 'warn' | 'error';
type Fields = Record<string, unknown>;

/** Connections a report log line lists (text and JSON) before it says how many more there are. */
const REPORT_LINES = 20;

/** Lines a second one kind of client error may log before the rest are summed up ("… and N more"). */
const FLOOD_LINES = 5;

/** pino's numeric levels, so that pino-pretty and log shippers read the JSON lines. */
const PINO_LEVELS: Record<Level, number> = { debug: 20, info: 30, warn: 40, error: 50 };

/**
 * One log call site for both formats: text goes to stderr through `debug` (namespace-gated), JSON
 * lines go to stdout, gated by the same namespaces so `DEBUG` narrows both. JSON lines have pino's
 * shape (numeric `level`, `time` in epoch ms, `pid`, `hostname`, `msg`, errors as `err`), plus `event`.
 */
export class CliLogger {
  readonly #format: 'text' | 'json';
  readonly #channels = new Map<Namespace, createDebug.Debugger>();
  readonly #base = { pid: process.pid, hostname: os.hostname() };

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

  /** Logs one event: `text` for humans (its first line is the JSON `msg`), `fields` for JSON. */
  log(namespace: Namespace, level: Level, event: string, fields: Fields, text: string): void {
    const channel = this.#channel(namespace);
    if (!channel.enabled) return;
    if (this.#format === 'text') {
      channel('%s', text);
      return;
    }
    const newline = text.indexOf('\n');
    const msg = newline === -1 ? text : text.slice(0, newline);
    const record = { level: PINO_LEVELS[level], time: Date.now(), ...this.#base, event, ...fields, msg };
    process.stdout.write(`${JSON.stringify(record)}\n`);
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

/**
 * Client-controlled text (an error quoting a frame, a PROXY header, a TLS name) made safe for a text log:
 * C0 controls and DEL escaped (`\x1b`, `\n`…), so that it cannot forge a line or a terminal escape
 * (CWE-117). JSON lines need no help: `JSON.stringify` escapes them.
 */
export function escapeControls(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

/**
 * Keeps a flood of one kind of event (refusals, bad frames) to {@link FLOOD_LINES} lines a second: past
 * that, events are counted, and one line says how many more there were once the second is over.
 */
class FloodGate {
  readonly #windows = new Map<string, { started: number; logged: number; more: number }>();
  readonly #summarize: (kind: string, more: number) => void;

  /** @param summarize logs "… and `more` more" for `kind` */
  constructor(summarize: (kind: string, more: number) => void) {
    this.#summarize = summarize;
  }

  /** Whether one more event of `kind` may be logged now. */
  admit(kind: string, now = Date.now()): boolean {
    let window = this.#windows.get(kind);
    if (window === undefined || now - window.started >= 1000) {
      if (window !== undefined && window.more > 0) this.#summarize(kind, window.more);
      window = { started: now, logged: 0, more: 0 };
      this.#windows.set(kind, window);
    }
    if (window.logged < FLOOD_LINES) {
      window.logged++;
      return true;
    }
    if (window.more++ === 0) {
      // The summary comes when the second is over, even if the flood stops: one unref'd timer per flood.
      const flooded = window;
      setTimeout(() => {
        if (this.#windows.get(kind) !== flooded) return;
        this.#windows.delete(kind);
        this.#summarize(kind, flooded.more);
      }, 1000 - (now - window.started)).unref();
    }
    return false;
  }
}

function ignoreBrokenPipe(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') throw error;
}

function clientFields(conn: Connection): Fields {
  return { id: conn.id, remoteAddress: conn.remoteAddress, remotePort: conn.remotePort };
}

/** pulsar's `ERR_…` code, Node's (`ECONNRESET`…), or the error's name when it has none. */
function errorCode(error: Error): string {
  return (error as NodeJS.ErrnoException).code ?? error.name;
}

/** An error as pino serialises one: `err: { type, message, code }`. */
function errorFields(error: Error | undefined): Fields {
  if (!error) return {};
  return { err: { type: error.name, message: error.message, code: errorCode(error) } };
}

/** A connection's id in text logs: `#3`, or `#w2.3` for connection 3 of cluster worker 2. */
function connectionTag(id: number, worker: number | undefined): string {
  return worker === undefined ? `#${id}` : `#w${worker}.${id}`;
}

/** An address as the logs write it: `unix:/path`, `host:port`, `[v6]:port`. */
export function where(address: string, port: number, family: string): string {
  if (family === 'unix') return `unix:${address}`;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

function logListening(logger: CliLogger, { address, port, family }: ListenAddress, workers?: number): void {
  const fields = workers === undefined ? { address, port, family } : { address, port, family, workers };
  logger.log('pulsar:server', 'info', 'listening', fields, `listening on ${where(address, port, family)}${workers === undefined ? '' : ` (${workers} workers)`}`);
}

/**
 * Logs every server event the CLI reports. In cluster worker `worker`, the primary logs the listening
 * line and the reports for the whole server, so the worker does not, and connection ids (per worker) are
 * shown with the worker's (`#w2.1`).
 */
export function logServerEvents(server: PulsarServer, logger: CliLogger, worker?: number): void {
  const inWorker = worker !== undefined;
  const client = (conn: Connection): Fields => (inWorker ? { ...clientFields(conn), worker } : clientFields(conn));
  const tag = (conn: Connection): string => connectionTag(conn.id, worker);
  if (!inWorker) server.on('listening', (address) => logListening(logger, address));
  server.on('connection', (conn) => {
    logger.log('pulsar:connection', 'info', 'connection', client(conn), `${conn.remote} connected (${tag(conn)}, ${server.connections.size} open)`);
  });
  server.on('disconnect', (conn, reason, error) => {
    const why = error ? `${reason}: ${errorCode(error)}` : reason;
    logger.log(
      'pulsar:connection', 'info', 'disconnect',
      { ...client(conn), reason, ...errorFields(error), framesIn: conn.framesIn, framesOut: conn.framesOut },
      `${conn.remote} disconnected (${tag(conn)}, ${why}) after ${conn.framesIn} frame(s) in, ${conn.framesOut} out`,
    );
  });
  // Client error messages start with the client's address and connection id; a flood of one code is summed up.
  const floods = new FloodGate((code, more) => {
    logger.log('pulsar:connection', 'warn', 'clientErrors', { code, more }, `… and ${more} more client error(s) [${code}] in the last second`);
  });
  server.on('clientError', (error, conn) => {
    const code = errorCode(error);
    if (!floods.admit(code)) return;
    logger.log('pulsar:connection', 'warn', 'clientError', { ...client(conn), ...errorFields(error) }, `${escapeControls(error.message)} [${code}]`);
  });
  // Per-heartbeat and per-stall events are off by default: listen only when they are logged, so that
  // 10,000 idle clients cost no log call each.
  if (logger.enabled('pulsar:heartbeat')) {
    server.on('heartbeat', (conn) => {
      logger.log('pulsar:heartbeat', 'debug', 'heartbeat', client(conn), `${conn.remote} heartbeat sent (${tag(conn)})`);
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
  if (!inWorker) server.on('report', (report) => logReport(logger, report));
  server.on('error', (error) => {
    logger.log('pulsar:server', 'error', 'error', errorFields(error), `server error: ${escapeControls(error.message)}`);
  });
}

type ListedConnection = ConnectionSnapshot & { worker?: number };

function logReport(logger: CliLogger, report: Report): void {
  logReportLine(logger, report.count, report.bufferedBytes, report.connections, ...fleetParts(report.fleet));
}

/** With a shared registry: the fleet in the JSON fields, and "on this instance, M across K instances" in the text. */
function fleetParts(fleet: FleetSummary | undefined, split = ' on this instance'): [Fields, string] {
  if (fleet === undefined) return [{}, split === ' on this instance' ? '' : split];
  return [{ fleet }, `${split}, ${fleet.connections} across ${fleet.instances} instance(s)`];
}

/**
 * One report line, its size bounded whatever the number of connections: the count and totals over all
 * of them, then at most REPORT_LINES connections and how many more there are. The `report` event still
 * carries every connection.
 */
function logReportLine(logger: CliLogger, count: number, bufferedBytes: number, connections: ListedConnection[], extra: Fields = {}, split = ''): void {
  const totals = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 };
  for (const c of connections) {
    totals.framesIn += c.framesIn;
    totals.framesOut += c.framesOut;
    totals.bytesIn += c.bytesIn;
    totals.bytesOut += c.bytesOut;
  }
  const listed = connections.slice(0, REPORT_LINES);
  const more = connections.length - listed.length;
  const lines = listed.map((c) =>
    `\n  ${connectionTag(c.id, c.worker)} ${c.remoteAddress}:${c.remotePort} idle ${c.idleMs} ms, in ${c.framesIn} frames/${c.bytesIn} B, out ${c.framesOut} frames/${c.bytesOut} B${c.pausedBy === undefined ? '' : `, paused (${c.pausedBy})`}`);
  if (more > 0) lines.push(`\n  … and ${more} more`);
  const summary = `${count} connection(s)${split}, ${bufferedBytes} bytes buffered, in ${totals.framesIn} frames/${totals.bytesIn} B, out ${totals.framesOut} frames/${totals.bytesOut} B`;
  logger.log('pulsar:report', 'info', 'report', { count, bufferedBytes, totals, ...extra, connections: listed, more }, `${summary}${lines.join('')}`);
}

/** A rolling reload's step as a log line. */
function rollText(step: RollStep): string {
  switch (step.step) {
    case 'start': return `roll: replacing ${step.workers} worker(s), one at a time`;
    case 'replacing': return `roll: worker ${step.worker} (pid ${step.pid}): replacement worker ${step.replacement} (pid ${step.replacementPid}) starting`;
    case 'replaced': return `roll: worker ${step.replacement} (pid ${step.replacementPid}) listening; worker ${step.worker} (pid ${step.pid}) closed`;
    case 'failed': return `roll stopped at worker ${step.worker} (pid ${step.pid}): ${step.reason}; it goes on serving`;
    case 'done': return `roll: done, ${step.replaced} worker(s) replaced`;
  }
}

/** Logs the events of the primary of `--workers N`: one listening line and one report for all workers. */
export function logClusterEvents(primary: PulsarCluster, logger: CliLogger): void {
  primary.on('listening', (address, workers) => logListening(logger, address, workers));
  primary.on('report', ({ count, bufferedBytes, workers, fleet }) => {
    const connections = workers.flatMap((w) => w.connections.map((c) => ({ ...c, worker: w.worker })));
    const perWorker = workers.map((w) => ({ worker: w.worker, pid: w.pid, count: w.count }));
    const split = perWorker.map((w) => `worker ${w.worker}: ${w.count}`).join(', ');
    const [fleetFields, text] = fleetParts(fleet, ` (${split})`);
    logReportLine(logger, count, bufferedBytes, connections, { workers: perWorker, ...fleetFields }, text);
  });
  primary.on('roll', (step) => {
    logger.log('pulsar:server', step.step === 'failed' ? 'warn' : 'info', 'roll', { ...step }, rollText(step));
  });
  primary.on('workerExit', ({ worker, pid, code, signal, replaced }) => {
    const how = signal ?? `code ${code}`;
    logger.log('pulsar:server', 'warn', 'workerExit', { worker, pid, code, signal, replaced }, `worker ${worker} (pid ${pid}) exited (${how})${replaced ? ', replaced' : ''}`);
  });
  primary.on('error', (error) => {
    logger.log('pulsar:server', 'error', 'error', errorFields(error), `cluster error: ${error.message}`);
  });
}

/** Logs the start of a signal-triggered shutdown (after a drain of `drainDelay` ms, when there is one). */
export function logShutdown(logger: CliLogger, signal: string, open: number, drainDelay = 0): void {
  if (drainDelay > 0) {
    logger.log('pulsar:server', 'info', 'draining', { signal, connections: open, drainDelay }, `${signal}: draining for ${drainDelay} ms (/readyz answers 503, still serving), then shutting down`);
    return;
  }
  logger.log('pulsar:server', 'info', 'shutdown', { signal, connections: open }, `${signal}: shutting down, ${open} connection(s) to drain`);
}

/** The log lines of a SIGHUP reload: what it does, then how it went (one line either way). */
export function logReload(logger: CliLogger, what: string, done: string): { onSignal: (signal: string) => void; onReloaded: (result: unknown) => void; onFailed: (error: Error) => void } {
  return {
    onSignal: (signal) => logger.log('pulsar:server', 'info', 'reload', { signal }, `${signal}: ${what}`),
    onReloaded: (result) => logger.log('pulsar:server', 'info', 'reloaded', typeof result === 'number' ? { replaced: result } : {}, typeof result === 'number' ? `reloaded: ${result} worker(s) replaced` : done),
    onFailed: (error) => logger.log('pulsar:server', 'warn', 'reloadFailed', errorFields(error), `reload failed: ${error.message} [${errorCode(error)}]`),
  };
}

/** Logs the final line of a shutdown. */
export function logClosed(logger: CliLogger, result: CloseResult): void {
  logger.log('pulsar:server', 'info', 'closed', { ...result }, `closed: ${result.drained} drained, ${result.forced} forced`);
}
