import cluster from 'node:cluster';
import { PulsarError } from '../errors.js';
import type { PulsarServer } from '../server/server.js';
import type { ListenAddress } from '../server/types.js';
import { isClusterMessage, type ClusterMessage } from './ipc.js';

/**
 * In a worker process: listens with `server` (on the port all workers share), forwards its reports to
 * the primary, and closes it gracefully when the primary says so (after the drain the primary asks for),
 * on SIGINT (Ctrl+C reaches the whole process group), or when the primary is gone, then exits 0. SIGTERM
 * is the primary's to coordinate (a drain first), so a worker ignores it while its primary is there.
 * @returns the address, once listening
 * @throws {PulsarError} `ERR_SERVER_STATE` outside a cluster worker; rejects with `listen()`'s error
 */
export async function serveWorker(server: PulsarServer): Promise<ListenAddress> {
  if (!cluster.isWorker) throw new PulsarError('ERR_SERVER_STATE', 'serveWorker() runs in a cluster worker');
  const send = (message: ClusterMessage, then?: () => void): void => {
    if (process.connected) process.send!(message, undefined, {}, () => then?.());
    else then?.();
  };
  const close = (drainDelay = 0, accepting = true): void => {
    void server.close({ drainDelay, accepting }).then((result) => send({ pulsar: 'closed', result }, () => process.exit(0)));
  };
  process.on('message', (message: unknown) => {
    if (isClusterMessage(message) && message.pulsar === 'shutdown') close(message.drainDelay, message.accepting);
  });
  process.on('SIGINT', () => close());
  process.on('SIGTERM', () => {
    if (!process.connected) close();
  });
  process.on('SIGHUP', () => {}); // the primary's to act on (a rolling reload): never the default, which exits
  process.on('disconnect', () => close()); // the primary is gone
  server.on('report', (report) => send({ pulsar: 'report', report }));
  const address = await server.listen();
  send({ pulsar: 'listening', address });
  return address;
}
