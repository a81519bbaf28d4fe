#!/usr/bin/env node
// The thin CLI: parse flags, wire the library's defaults, log its events, and map signals to close().
import cluster from 'node:cluster';
import createDebug from 'debug';
import { IdleHeartbeat, PulsarCluster, PulsarServer, serveWorker, type CloseResult, type Registry } from '../lib/index.js';
import { hostPort } from '../lib/format.js';
import { clearStaleSocket } from '../lib/unix-socket.js';
import type { MetricsEndpoint } from '../lib/metrics/index.js';
import { parseCli, UsageError, USAGE, type CliOptions } from './args.js';
import { CliLogger, DEFAULT_NAMESPACES, logClosed, logClusterEvents, logServerEvents, logShutdown } from './log.js';

/** package.json's version, written in by the build (tsup.config.ts). */
declare const PULSAR_VERSION: string;

const SIGNAL_EXIT_CODES: Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available',
};

function readCli(): CliOptions {
  try {
    return parseCli(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`pulsar: ${error.message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

function createServer(cli: CliOptions, registry: Registry | undefined): PulsarServer {
  const heartbeat = cli.heartbeat > 0 || cli.idleTimeout > 0
    ? new IdleHeartbeat({ interval: cli.heartbeat, idleTimeout: cli.idleTimeout })
    : false;
  return new PulsarServer({
    ...(cli.unix === undefined ? { host: cli.host, port: cli.port } : { path: cli.unix }),
    codec: cli.codec,
    heartbeat,
    reportInterval: cli.report > 0 ? cli.report : false,
    shutdownTimeout: cli.shutdownTimeout,
    maxBufferedBytes: cli.maxBuffered,
    frameTimeout: cli.frameTimeout,
    maxPendingOutput: cli.maxPendingOutput,
    writeTimeout: cli.writeTimeout,
    proxyProtocol: cli.proxyProtocol,
    trustedProxies: cli.trustedProxies,
    tls: cli.tls ?? false,
    ...(cli.maxConnections === undefined ? {} : { maxConnections: cli.maxConnections }),
    ...(cli.maxPerAddress === undefined ? {} : { maxConnectionsPerAddress: cli.maxPerAddress }),
    allow: cli.allow,
    deny: cli.deny,
    ...(registry === undefined ? {} : { registry }),
  });
}

/**
 * First signal: graceful close, exit 0. A second one: exit at once (130 for SIGINT), after `kill` (the
 * workers, in cluster mode).
 */
function handleSignals(logger: CliLogger, open: () => number, close: () => Promise<CloseResult>, kill = (): void => {}): void {
  let closing = false;
  const onSignal = (signal: 'SIGINT' | 'SIGTERM'): void => {
    if (closing) {
      kill();
      process.exit(SIGNAL_EXIT_CODES[signal]);
    }
    closing = true;
    logShutdown(logger, signal, open());
    void close().then((result) => {
      logClosed(logger, result);
      process.exit(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** `--workers N` in the primary: forks the workers (this same script), logs for all, coordinates shutdown. */
async function runPrimary(cli: CliOptions, logger: CliLogger): Promise<void> {
  if (cli.unix !== undefined) await clearStaleSocket(cli.unix).catch((error: unknown) => listenFailed(cli, error));
  const primary = new PulsarCluster({
    workers: cli.workers,
    reportInterval: cli.report > 0 ? cli.report : false,
    shutdownTimeout: cli.shutdownTimeout + 5000, // the workers' own timeout, then some to exit
  });
  let open = 0;
  primary.on('report', (report) => (open = report.count));
  logClusterEvents(primary, logger);
  handleSignals(logger, () => open, () => primary.close(), () => primary.kill());
  try {
    await primary.start();
  } catch (error) {
    process.stderr.write(`pulsar: ${(error as Error).message}\n`);
    process.exit(1);
  }
  if (cli.metrics) {
    const { serveClusterMetrics } = await loadMetrics();
    await serveEndpoint(cli, logger, serveClusterMetrics);
  }
}

/** One line saying why `what` (`listen on`, `serve metrics on`) failed at `host:port` (or the Unix socket), then exit 1. */
function listenFailed({ host, port, unix }: { host: string; port: number; unix?: string | undefined }, error: unknown, what = 'listen on'): never {
  const { code, message } = error as NodeJS.ErrnoException;
  // Our own Unix-socket errors say more than the generic words for their code.
  const reason = unix === undefined && code && LISTEN_ERRORS[code] ? `${LISTEN_ERRORS[code]} (${code})` : code ? `${message} (${code})` : message;
  process.stderr.write(`pulsar: cannot ${what} ${unix === undefined ? hostPort(host, port) : `unix:${unix}`}: ${reason}\n`);
  process.exit(1);
}

/** `--redis`: the shared registry, its module loaded only then (and ioredis only when it starts). */
async function redisRegistry({ url, ttl }: NonNullable<CliOptions['redis']>): Promise<Registry> {
  const { RedisRegistry } = await import('../lib/redis/index.js');
  return new RedisRegistry({ url, ttl });
}

type MetricsModule = typeof import('../lib/metrics/index.js');

/** prom-client is loaded only when `--metrics` asks for it. */
function loadMetrics(): Promise<MetricsModule> {
  return import('../lib/metrics/index.js');
}

/** Serves `/metrics` where `--metrics` says, and logs where; exits 1 if it cannot. */
async function serveEndpoint(cli: CliOptions, logger: CliLogger, serve: (options: { host: string; port: number }) => Promise<MetricsEndpoint>): Promise<void> {
  const where = cli.metrics!;
  const endpoint = await serve(where).catch((error: unknown) => listenFailed(where, error, 'serve metrics on'));
  logger.log('pulsar:server', 'info', 'metrics', { address: endpoint.address, port: endpoint.port }, `metrics on ${endpoint.url}`);
}

async function main(): Promise<void> {
  const cli = readCli();
  if (cli.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  if (cli.version) {
    process.stdout.write(`${PULSAR_VERSION}\n`);
    return;
  }
  if (process.env.DEBUG === undefined) createDebug.enable(DEFAULT_NAMESPACES);
  const logger = new CliLogger(cli.log);
  if (cli.workers > 1 && cluster.isPrimary) return runPrimary(cli, logger);
  let server: PulsarServer;
  try {
    server = createServer(cli, cli.redis === undefined ? undefined : await redisRegistry(cli.redis));
  } catch (error) {
    // e.g. a --tls-cert or --tls-key file that is not valid PEM
    process.stderr.write(`pulsar: ${(error as Error).message}\n`);
    process.exit(2);
  }
  logServerEvents(server, logger, cluster.worker?.id);
  const metricsModule = cli.metrics ? await loadMetrics() : undefined;
  const metrics = metricsModule ? new metricsModule.PulsarMetrics(server) : undefined;
  if (cluster.isWorker) {
    if (metrics) metricsModule!.shareWithPrimary(metrics); // the primary serves them, summed
    await serveWorker(server).catch((error: unknown) => listenFailed(cli, error));
    return;
  }
  handleSignals(logger, () => server.connections.size, () => server.close());
  await server.listen().catch((error: unknown) => listenFailed(cli, error));
  if (metrics) await serveEndpoint(cli, logger, (where) => metricsModule!.serveMetrics(() => metrics.registry.metrics(), where));
}

void main();
