import { addressGroup } from './address-rules.js';

/** How fast one address may open connections: `count` per `interval` ms. */
export interface ConnectionRateOptions {
  /** Connections an address may open per `interval`, and at once after a quiet spell. */
  count: number;
  /** ms. @default 1000 */
  interval?: number;
  /**
   * Addresses remembered at most; past it, the one seen longest ago is forgotten (it starts afresh, with
   * its full `count`). About 150 bytes each. @default 100000
   */
  maxAddresses?: number;
}

/** One address's bucket: tokens as of `at`. */
interface Entry {
  tokens: number;
  at: number;
}

/**
 * Connections per address (an IPv4 address, an IPv6 /64), as nginx's `limit_conn` rate or HAProxy's
 * stick-table `conn_rate`: a token bucket per address, `count` per `interval`, refilled continuously. The
 * table is bounded: a `Map` in least-recently-seen order, the oldest forgotten first, so a flood of
 * distinct addresses costs memory up to `maxAddresses` and no more.
 */
export class ConnectionRate {
  /** The limit in force. */
  readonly count: number;
  /** Its interval, in ms. */
  readonly interval: number;
  readonly #maxAddresses: number;
  readonly #perMs: number;
  readonly #entries = new Map<string, Entry>();

  /** @param options checked by the caller (see `resolveServerOptions`) */
  constructor({ count, interval = 1000, maxAddresses = 100_000 }: ConnectionRateOptions) {
    this.count = count;
    this.interval = interval;
    this.#maxAddresses = maxAddresses;
    this.#perMs = count / interval;
  }

  /** Addresses remembered now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Counts a new connection from `address` at `now`.
   * @returns the address group, when it is over its rate (the connection is to be refused); `null` otherwise
   */
  over(address: string, now: number): string | null {
    const group = addressGroup(address);
    const entries = this.#entries;
    let entry = entries.get(group);
    if (entry === undefined) {
      entry = { tokens: this.count, at: now };
      if (entries.size >= this.#maxAddresses) entries.delete(entries.keys().next().value!);
    } else {
      entries.delete(group); // re-inserted below: the Map's order is the order addresses were last seen
      entry.tokens = Math.min(this.count, entry.tokens + (now - entry.at) * this.#perMs);
      entry.at = now;
    }
    entries.set(group, entry);
    if (entry.tokens < 1) return group;
    entry.tokens -= 1;
    return null;
  }
}
