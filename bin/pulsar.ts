#!/usr/bin/env node
// The thin CLI: parse flags, build the library's objects from them, log their events, and close on
// signals. It uses the package's public entry points only (pulsar, pulsar/metrics, pulsar/redis).
import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import createDebug from 'debug';
import { closeOnSignals, json, PulsarCluster, PulsarError, PulsarServer, reloadOnSignal, serveHealth, serveWorker, type HealthSource, type HttpEndpoint, type PulsarServerOptions } from 'pulsar';
import type { MetricsEndpoint } from 'pulsar/metrics';
import { asUsageError, parseCli, usage, UsageError, type CliOptions } from './args.js';
import { CliLogger, DEFAULT_NAMESPACES, logClosed, logClusterEvents, logReload, logServerEvents, logShutdown, where } from './log.js';

/** package.json's version, written in by the build (tsup.config.ts). */
declare const PULSAR_VERSION: string;

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available',
};

/** A usage error: one line, the usage, exit 2. */
function usageFailed(error: unknown): never {
  if (!(error instanceof UsageError)) throw error;
  process.stderr.write(`pulsar: ${error.message}\n\n${usage()}\n`);
  process.exit(2);
}

/**
 * One line saying why `what` (`listen on`, `serve metrics on`) failed at `place` (Node's error names the
 * address it tried, when it has one), then exit 1.
 */
function listenFailed(place: string, error: unknown, what = 'listen on'): never {
  const { code, message, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
  if (typeof address === 'string' && typeof port === 'number' && !place.startsWith('unix:')) place = where(address, port, 'IPv4');
  // Our own Unix-socket errors say more than the generic words for their code.
  const reason = !place.startsWith('unix:') && code && LISTEN_ERRORS[code] ? `${LISTEN_ERRORS[code]} (${code})` : code ? `${message} (${code})` : message;
  process.stderr.write(`pulsar: cannot ${what} ${place}: ${reason}\n`);
  process.exit(1);
}

/** Where the server's resolved options say it listens, as logs write it. */
function placeOf({ host, port, path, fd }: PulsarServer['options']): string {
  if (fd !== null) return `fd ${fd}`;
  return path === null ? where(host, port, 'IPv4') : where(path, 0, 'unix');
}

/** `--redis`: the shared registry and the relay, their module loaded only then (and ioredis only when they start). */
async function redisOptions(redis: CliOptions['redis']): Promise<Pick<PulsarServerOptions, 'registry' | 'relay'>> {
  if (redis === undefined) return {};
  const { redisFleet } = await import('pulsar/redis');
  return asUsageError(() => redisFleet({ url: redis.url, ...(redis.ttl === undefined ? {} : { ttl: redis.ttl }) }));
}

/** `--messages` and `--rpc`: the message layer (msgpackr loaded only for `--messages msgpack`). */
async function messageOptions(messages: CliOptions['messages']): Promise<Pick<PulsarServerOptions, 'messages' | 'rpc'>> {
  if (messages === undefined) return {};
  const codec = messages.format === 'json' ? json() : await import('pulsar/msgpack').then(({ msgpack }) => msgpack(), (error: unknown) => {
    throw new UsageError(`--messages msgpack needs the msgpackr package: npm install msgpackr (${(error as Error).message})`);
  });
  return { messages: codec as PulsarServerOptions['messages'], rpc: messages.rpc };
}

/** An endpoint (`--metrics`, `--health`) that could not start: a value the library refuses is a usage error naming the flag. */
function endpointFailed(flag: string, at: { host?: string; port: number }, error: unknown, what: string): never {
  if (error instanceof PulsarError && error.code === 'ERR_INVALID_OPTION') usageFailed(new UsageError(`${flag} ${error.reason ?? error.message}`));
  return listenFailed(at.host === undefined ? `port ${at.port}` : where(at.host, at.port, 'IPv4'), error, what);
}

/** prom-client is loaded only when `--metrics` asks for it. */
function loadMetrics(): Promise<typeof import('pulsar/metrics')> {
  return import('pulsar/metrics');
}

/** Serves `/metrics` (and the health probes) where `--metrics` says, and logs where; exits 1 if it cannot. */
async function serveEndpoint(cli: CliOptions, logger: CliLogger, health: HealthSource, serve: (options: { host?: string; port: number; health: HealthSource }) => Promise<MetricsEndpoint>): Promise<void> {
  const at = cli.metrics!;
  const endpoint = await serve({ ...at, health }).catch((error: unknown) => endpointFailed('--metrics', at, error, 'serve metrics on'));
  logger.log('pulsar:server', 'info', 'metrics', { address: endpoint.address, port: endpoint.port }, `metrics on ${endpoint.url}`);
}

/** Serves `/livez` and `/readyz` where `--health` says, and logs where; exits 1 if it cannot. */
async function serveProbes(cli: CliOptions, logger: CliLogger, health: HealthSource): Promise<void> {
  if (cli.health === undefined) return;
  const at = cli.health;
  const endpoint: HttpEndpoint = await Promise.resolve().then(() => serveHealth(health, at)).catch((error: unknown) => endpointFailed('--health', at, error, 'serve health on'));
  logger.log('pulsar:server', 'info', 'health', { address: endpoint.address, port: endpoint.port }, `health on ${endpoint.url}/livez and ${endpoint.url}/readyz`);
}

/** `--workers N` in the primary: forks the workers (this same script), logs for all, coordinates shutdown. */
async function runPrimary(cli: CliOptions, server: PulsarServer['options'], logger: CliLogger): Promise<void> {
  let primary: PulsarCluster;
  try {
    primary = asUsageError(() => new PulsarCluster({
      workers: cli.workers,
      reportInterval: server.reportInterval,
      shutdownTimeout: server.shutdownTimeout + 5000, // the workers' own timeout, then some to exit
      ...(server.path === null ? {} : { path: server.path }),
      drainDelay: server.drainDelay,
    }));
  } catch (error) {
    usageFailed(error);
  }
  let open = 0;
  primary.on('report', (report) => (open = report.count));
  logClusterEvents(primary, logger);
  closeOnSignals(primary, { onSignal: (signal) => logShutdown(logger, signal, open, signal === 'SIGTERM' ? server.drainDelay : 0), onClosed: (result) => logClosed(logger, result) });
  reloadOnSignal(primary, logReload(logger, 'replacing the workers one at a time', 'reloaded'));
  await serveProbes(cli, logger, primary); // before the workers listen: /readyz says 503 until they do
  await primary.start().catch((error: unknown) => listenFailed(placeOf(server), error));
  if (cli.metrics) {
    const { serveClusterMetrics } = await loadMetrics();
    await serveEndpoint(cli, logger, primary, serveClusterMetrics);
  }
}

/** `pulsar send` and `pulsar bench`: their exit status; a usage error prints their own usage and exits 2. */
async function runTool(command: 'send' | 'bench', argv: string[]): Promise<void> {
  const tools = await import('./tools.js');
  try {
    process.exitCode = await (command === 'send' ? tools.runSend(argv) : tools.runBench(argv));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`pulsar ${command}: ${error.message}\n\n${command === 'send' ? tools.SEND_USAGE : tools.BENCH_USAGE}\n`);
    process.exitCode = 2;
  }
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (command === 'send' || command === 'bench') return runTool(command, rest);
  let cli: CliOptions;
  let server: PulsarServer;
  try {
    cli = parseCli(process.argv.slice(2));
    if (cli.help || cli.version) {
      process.stdout.write(`${cli.help ? usage() : PULSAR_VERSION}\n`);
      return;
    }
    const options = { ...cli.server, ...(await redisOptions(cli.redis)), ...(await messageOptions(cli.messages)) };
    // Built in the primary of --workers too: its options are checked before any worker is forked.
    server = asUsageError(() => new PulsarServer(options));
  } catch (error) {
    usageFailed(error);
  }
  if (process.env.DEBUG === undefined) createDebug.enable(DEFAULT_NAMESPACES);
  const logger = new CliLogger(cli.log);
  const workers = cli.workers === 'auto' ? availableParallelism() : cli.workers;
  if (workers !== 1 && cluster.isPrimary) return runPrimary({ ...cli, workers }, server.options, logger);
  logServerEvents(server, logger, cluster.worker?.id);
  const metricsModule = cli.metrics ? await loadMetrics() : undefined;
  const metrics = metricsModule ? new metricsModule.PulsarMetrics(server) : undefined;
  if (cluster.isWorker) {
    if (metrics) metricsModule!.shareWithPrimary(metrics); // the primary serves them, summed
    await serveWorker(server).catch((error: unknown) => listenFailed(placeOf(server.options), error));
    return;
  }
  closeOnSignals(server, { onSignal: (signal) => logShutdown(logger, signal, server.connections.size, signal === 'SIGTERM' ? server.options.drainDelay : 0), onClosed: (result) => logClosed(logger, result) });
  const tls = server.options.tls !== false;
  reloadOnSignal(server, logReload(logger, tls ? 'reloading the TLS certificate' : 'nothing to reload (no TLS)', tls ? 'TLS certificate reloaded: new connections get it' : 'nothing reloaded'));
  await serveProbes(cli, logger, server);
  await server.listen().catch((error: unknown) => listenFailed(placeOf(server.options), error));
  if (metrics) await serveEndpoint(cli, logger, server, (at) => metricsModule!.serveMetrics(() => metrics.registry.metrics(), at));
}

void main();
