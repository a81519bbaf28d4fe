import { messageOf } from '../util/format.js';
import { checkEndpoint, healthCheck, listenHttp, type HealthSource, type HttpEndpoint } from '../server/health.js';
import { checkKnownOptions } from '../util/validate.js';

/** The content type of Prometheus's text exposition format. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Options of {@link serveMetrics}. */
export interface MetricsEndpointOptions {
  /** Bind address. @default '127.0.0.1' */
  host?: string;
  /** TCP port; `0` picks a free one. @default 9464 */
  port?: number;
  /** A server (or cluster) whose `/livez` and `/readyz` this listener answers too; the listener closes when it does. @default none */
  health?: HealthSource;
}

/** A running metrics endpoint. */
export interface MetricsEndpoint extends HttpEndpoint {
  /** The scrape URL, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
}

/**
 * Serves `GET /metrics` in the Prometheus text format (404 elsewhere, 500 if `collect` fails), and with
 * `health` the probes `GET /livez` and `GET /readyz` on the same listener.
 * @param collect the exposition text, e.g. `() => registry.metrics()`, or `() => aggregator.clusterMetrics()` in a cluster primary
 * @throws rejects with Node's error when it cannot listen (`EADDRINUSE`…)
 */
export async function serveMetrics(collect: () => Promise<string>, options: MetricsEndpointOptions = {}): Promise<MetricsEndpoint> {
  checkKnownOptions('serveMetrics', options, { host: true, port: true, health: true });
  const { host, port } = checkEndpoint('serveMetrics', options.host ?? '127.0.0.1', options.port ?? 9464);
  const health = options.health === undefined ? null : healthCheck(options.health);
  const endpoint = await listenHttp((request, response) => {
    if (health?.(request, response)) return;
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    collect().then(
      (text) => response.writeHead(200, { 'content-type': CONTENT_TYPE }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${messageOf(error)}\n`),
    );
  }, host, port, options.health);
  return { ...endpoint, url: `${endpoint.url}/metrics` };
}
