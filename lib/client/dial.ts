import net from 'node:net';
import tls from 'node:tls';
import { PulsarError } from '../errors.js';
import type { ResolvedClientOptions } from './options.js';

/**
 * Opens the client's TCP (or TLS) connection: `socket` at once (so that a `close()` during the attempt can
 * end it), `connected` once it is established (after the TLS handshake), or rejected with Node's error or
 * `ERR_CONNECT_TIMEOUT` after `connectTimeout` (the socket then destroyed).
 * @param target names the server, for the error
 */
export function dial(options: ResolvedClientOptions, target: string): { socket: net.Socket; connected: Promise<void> } {
  const { host, port, connectTimeout, tls: tlsOptions } = options;
  const socket = tlsOptions ? tls.connect({ ...tlsOptions, host, port }) : net.connect({ host, port });
  socket.setNoDelay(true);
  const connected = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy(new PulsarError('ERR_CONNECT_TIMEOUT', `could not connect to ${target} in ${connectTimeout} ms`));
    }, connectTimeout);
    const failed = (error: Error): void => {
      clearTimeout(timer);
      reject(error);
    };
    socket.once('error', failed);
    socket.once(tlsOptions ? 'secureConnect' : 'connect', () => {
      clearTimeout(timer);
      socket.off('error', failed);
      resolve();
    });
  });
  return { socket, connected };
}

/** The wait before reconnection attempt `attempt` (from 1): capped exponential backoff, half of it random ("equal jitter"). */
export function backoffDelay(initialDelay: number, maxDelay: number, attempt: number): number {
  const ceiling = Math.min(maxDelay, initialDelay * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
