import cluster from 'node:cluster';
import type net from 'node:net';
import type { AddressInfo } from 'node:net';
import { PulsarError } from '../errors.js';
import type { ResolvedServerOptions } from './options.js';
import type { ListenAddress } from './types.js';
import { clearStaleSocket } from './unix-socket.js';

/**
 * A server's listening socket: bound as the options say (an inherited descriptor, a Unix socket made way
 * for, host and port, `reusePort`), a `close()` that comes while it binds, and its address.
 */
export class Listener {
  readonly #net: net.Server;
  readonly #options: ResolvedServerOptions;
  /** Rejects a bind still in progress when the server closes first. */
  #abort: ((error: Error) => void) | undefined;

  /**
   * @param server the `net.Server` (or `tls.Server`) the accept path made
   * @param options the server's options
   */
  constructor(server: net.Server, options: ResolvedServerOptions) {
    this.#net = server;
    this.#options = options;
  }

  /** Makes way for a Unix socket's path (a stale file left by a crashed run); in a cluster worker the primary does. */
  prepare(): Promise<void> {
    const { path } = this.#options;
    return path === null || cluster.isWorker ? Promise.resolve() : clearStaleSocket(path);
  }

  /**
   * Binds and starts accepting.
   * @param failed hears errors of the listening socket once it listens (accept failures)
   * @throws rejects with Node's error (`EADDRINUSE`…), or `ERR_SERVER_STATE` when {@link close} comes first
   */
  bind(failed: (error: Error) => void): Promise<ListenAddress> {
    return new Promise((resolve, reject) => {
      const server = this.#net;
      const onError = (error: Error): void => {
        server.off('listening', onListening);
        this.#abort = undefined;
        reject(error);
      };
      const onListening = (): void => {
        server.off('error', onError);
        this.#abort = undefined;
        server.on('error', failed);
        resolve(this.address()!);
      };
      this.#abort = onError;
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen(this.#listenOptions());
    });
  }

  /** Where it listens, or `null` when it does not. */
  address(): ListenAddress | null {
    const address = this.#net.address() as AddressInfo | string | null;
    if (typeof address === 'string') return { address, port: 0, family: 'unix' };
    return address ? { address: address.address, port: address.port, family: address.family } : null;
  }

  /** Stops accepting new connections now, without waiting (a drain that no longer takes new ones). */
  stopAccepting(): void {
    this.#net.close();
  }

  /**
   * Stops accepting: a bind under way fails with `ERR_SERVER_STATE` (a socket it opens later, after a DNS
   * lookup, is closed then). Resolves once the listening socket is closed (at once if it never was bound).
   */
  close(bound: boolean): Promise<void> {
    const server = this.#net;
    if (this.#abort) {
      this.#abort(new PulsarError('ERR_SERVER_STATE', 'close() was called before the server was listening'));
      if (!server.listening) server.once('listening', () => server.close());
    }
    return bound ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
  }

  /** What `net.Server#listen()` is given: an inherited descriptor, a Unix socket, or host and port. */
  #listenOptions(): net.ListenOptions | { fd: number } {
    const { host, port, path, fd, reusePort } = this.#options;
    if (fd !== null) return { fd };
    if (path !== null) return { path };
    // With reusePort, a cluster worker binds a socket of its own (exclusive) instead of the primary's.
    return reusePort ? { host, port, reusePort, exclusive: true } as net.ListenOptions : { host, port };
  }
}
