import type { Connection } from '../connection/connection.js';
import type { ServerStats } from './types.js';

/**
 * A server's running totals, exact and counted without any work per frame: events add to the counts as they
 * happen, a connection's own figures are added when it closes, and the live ones are summed when asked.
 */
export class ServerTotals {
  /** Connections accepted and served. */
  accepted = 0;
  /** Heartbeat frames sent. */
  heartbeats = 0;
  /** Frames dropped: offered to connections that could no longer be written. */
  framesDropped = 0;
  /** Rate limits met. */
  rateLimited = 0;
  /** Replies to `conn.request()` that came after the request gave up, dropped. */
  lateReplies = 0;
  #framesIn = 0;
  #framesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  /** Adds a closed connection's figures. */
  retire(conn: Connection): void {
    this.#framesIn += conn.framesIn;
    this.#framesOut += conn.framesOut;
    this.#bytesIn += conn.bytesIn;
    this.#bytesOut += conn.bytesOut;
  }

  /** The totals now: the closed connections' figures and the live ones', summed. */
  sum(live: Iterable<Connection>, open: number, bufferedBytes: number): ServerStats {
    const stats: ServerStats = {
      connections: open, accepted: this.accepted, heartbeats: this.heartbeats, framesDropped: this.framesDropped,
      rateLimited: this.rateLimited, lateReplies: this.lateReplies, framesIn: this.#framesIn, framesOut: this.#framesOut, bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut, bufferedBytes, paused: 0, rateLimitedNow: 0,
    };
    for (const conn of live) {
      stats.framesIn += conn.framesIn;
      stats.framesOut += conn.framesOut;
      stats.bytesIn += conn.bytesIn;
      stats.bytesOut += conn.bytesOut;
      if (conn.paused) stats.paused++;
      if (conn.rateLimited) stats.rateLimitedNow++;
    }
    return stats;
  }
}
