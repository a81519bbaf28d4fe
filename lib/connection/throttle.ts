import createDebug from 'debug';
import { PulsarError } from '../errors.js';
import { ReadThrottle } from '../rate/throttle.js';
import type { Connection } from './connection.js';
import { kCloseForError, kResumed, type ConnectionOwner } from './owner.js';

const debug = createDebug('pulsar:connection:trace');

/**
 * The read rate of a connection with `rateLimit` (made only then): over it, reading is held back and the
 * owner told; back under it, what was read is dispatched and reading resumes; with `onRateLimit: 'close'`,
 * the connection closes after answering the frames it let through.
 * @param conn the connection
 * @param owner its server
 */
export function connectionThrottle(conn: Connection, owner: ConnectionOwner): ReadThrottle {
  const { rateLimit, onRateLimit } = owner.settings;
  return new ReadThrottle(rateLimit!, onRateLimit, {
    holdBack: (kind, wait) => {
      conn.socket.pause();
      debug('%s over its %s rate: reading held back %d ms', conn.remote, kind, wait);
      owner.rateLimited(conn, kind, 'pause');
    },
    release: () => {
      if (conn.state !== 'open') return;
      debug('%s back under its rate: dispatching what was read, then reading', conn.remote);
      conn[kResumed](true);
    },
    close: (kind, limit) => {
      owner.rateLimited(conn, kind, 'close');
      conn[kCloseForError](new PulsarError('ERR_RATE_LIMITED', `${conn}: over its rate limit (${limit}): closed after answering the frames it let through`));
    },
  }, conn.connectedAt);
}
