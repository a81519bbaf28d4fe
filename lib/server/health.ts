import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostPort } from '../util/format.js';
import { checkInteger, checkKnownOptions, invalidOption } from '../util/validate.js';

/**
 * Where a server is in its life, as a load balancer or Kubernetes asks: `starting` (not listening yet),
 * `ready` (listening, taking new connections), `draining` (still serving, but asking to be taken out of
 * rotation: `drainDelay`), `closing` (shutting down), `closed`.
 */
export type Readiness = 'starting' | 'ready' | 'draining' | 'closing' | 'closed';

/** A server's readiness from its state and whether it drains (see `PulsarServer#readiness`). */
export function readinessOf(state: 'idle' | 'starting' | 'listening' | 'closing' | 'closed', draining: boolean): Readiness {
  switch (state) {
    case 'idle':
    case 'starting': return 'starting';
    case 'listening': return draining ? 'draining' : 'ready';
    default: return state;
  }
}

/** Tells each change of readiness once, as the `readiness` event of a server or a cluster. */
export class ReadinessEvents {
  readonly #emit: (readiness: Readiness) => void;
  #last: Readiness = 'starting';

  /** @param emit emits the event */
  constructor(emit: (readiness: Readiness) => void) {
    this.#emit = emit;
  }

  /** Emits `readiness` when it differs from the last told. */
  update(readiness: Readiness): void {
    if (readiness === this.#last) return;
    this.#last = readiness;
    this.#emit(readiness);
  }
}

/** What the health checks read: a `PulsarServer` or a `PulsarCluster`. */
export interface HealthSource {
  /** Where it is in its life. */
  readonly readiness: Readiness;
  /** Its `close` event, when it has one: an endpoint serving its probes closes with it. */
  once?(event: 'close', listener: () => void): unknown;
}

/**
 * Answers the two probes Kubernetes asks, for an application's own `http` server: `GET /livez` is 200 while
 * the process serves; `GET /readyz` is 200 while `source` is `ready`, 503 otherwise (starting, draining,
 * closing), its body saying which. `HEAD` works too.
 * @returns a request handler that answers those two paths and returns `true`, or returns `false` for any other
 *
 * @example
 * ```ts
 * const health = healthCheck(server);
 * http.createServer((req, res) => health(req, res) || app(req, res)).listen(8081);
 * ```
 */
export function healthCheck(source: HealthSource): (request: http.IncomingMessage, response: http.ServerResponse) => boolean {
  return (request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if ((request.method !== 'GET' && request.method !== 'HEAD') || (path !== '/livez' && path !== '/readyz')) return false;
    const readiness = source.readiness;
    const ok = path === '/livez' || readiness === 'ready';
    const body = path === '/livez' ? 'ok\n' : `${readiness}\n`;
    response.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    response.end(request.method === 'HEAD' ? undefined : body);
    return true;
  };
}

/** Options of {@link serveHealth}. */
export interface HealthEndpointOptions {
  /** Bind address. @default '127.0.0.1' */
  host?: string;
  /** TCP port; `0` picks a free one. @default 8081 */
  port?: number;
}

/** A running HTTP endpoint. */
export interface HttpEndpoint {
  /** Bound address. */
  readonly address: string;
  /** Bound port (the real one when `port: 0` was asked). */
  readonly port: number;
  /** Its base URL, e.g. `http://127.0.0.1:8081`. */
  readonly url: string;
  /** Stops listening and closes open connections. */
  close(): Promise<void>;
}

/**
 * Serves `GET /livez` and `GET /readyz` (see {@link healthCheck}) on a listener of their own; 404 elsewhere.
 * @throws rejects with Node's error when it cannot listen (`EADDRINUSE`…)
 */
export function serveHealth(source: HealthSource, options: HealthEndpointOptions = {}): Promise<HttpEndpoint> {
  checkKnownOptions('serveHealth', options, { host: true, port: true });
  const { host, port } = checkEndpoint('serveHealth', options.host ?? '127.0.0.1', options.port ?? 8081);
  const health = healthCheck(source);
  return listenHttp((request, response) => {
    if (!health(request, response)) response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /livez or /readyz\n');
  }, host, port, source);
}

/**
 * An HTTP endpoint's `host` and `port`, checked.
 * @throws {PulsarError} `ERR_INVALID_OPTION` for an empty host or a port that is not 0–65535
 */
export function checkEndpoint(owner: string, host: unknown, port: unknown): { host: string; port: number } {
  if (typeof host !== 'string' || host === '') throw invalidOption(owner, 'host', 'must be a non-empty string', host);
  return { host, port: checkInteger(owner, 'port', port as number, 0, 65535) };
}

/**
 * An `http` server listening on `host:port`, resolved once it listens; closed when `watched` (the server
 * whose probes it answers) closes, so that it never keeps the process alive after it.
 * @throws rejects with Node's error when it cannot listen
 */
export async function listenHttp(handle: http.RequestListener, host: string, port: number, watched?: HealthSource): Promise<HttpEndpoint> {
  const server = http.createServer(handle);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { address, port: bound } = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => (closed ??= new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  }));
  if (watched?.readiness === 'closed') void close();
  else watched?.once?.('close', () => void close());
  return { address, port: bound, url: `http://${hostPort(address, bound)}`, close };
}
