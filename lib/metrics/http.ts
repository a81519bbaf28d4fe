import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostPort, messageOf } from '../format.js';
import { checkKnownOptions } from '../validate.js';

/** The content type of Prometheus's text exposition format. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Options of {@link serveMetrics}. */
export interface MetricsEndpointOptions {
  /** Bind address. @default '127.0.0.1' */
  host?: string;
  /** TCP port; `0` picks a free one. @default 9464 */
  port?: number;
}

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  /** Bound address. */
  readonly address: string;
  /** Bound port (the real one when `port: 0` was asked). */
  readonly port: number;
  /** The scrape URL, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  /** Stops listening and closes open scrape connections. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` in the Prometheus text format (404 elsewhere, 500 if `collect` fails).
 * @param collect the exposition text, e.g. `() => registry.metrics()`, or `() => aggregator.clusterMetrics()` in a cluster primary
 * @throws rejects with Node's error when it cannot listen (`EADDRINUSE`…)
 */
export async function serveMetrics(collect: () => Promise<string>, options: MetricsEndpointOptions = {}): Promise<MetricsEndpoint> {
  checkKnownOptions('serveMetrics', options, { host: true, port: true });
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: metrics are at GET /metrics\n');
      return;
    }
    collect().then(
      (text) => response.writeHead(200, { 'content-type': CONTENT_TYPE }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${messageOf(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 9464 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    address,
    port,
    url: `http://${hostPort(address, port)}/metrics`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
