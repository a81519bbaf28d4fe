import { addressGroup } from './address-rules.js';

/** How fast one address may open connections: `count` per `interval` ms. */
export interface ConnectionRateOptions {
  /** Connections an address may open per `interval`, and at once after a quiet spell. */
  count: number;
  /** ms. @default 1000 */
  interval?: number;
  /**
   * Addresses remembered at most; past it, those seen longest ago are forgotten (they start afresh, with
   * their full `count`). About 110 bytes each for IPv4, 160 for IPv6. @default 100000
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
 * table is bounded, in two generations of at most half of `maxAddresses` each (quick-lru's scheme): an
 * address seen again moves to the young one; when the young one is full it becomes the old one and the
 * old one is forgotten whole, the addresses seen longest ago first. Every step is O(1): no scan, however
 * many distinct addresses a flood brings.
 */
export class ConnectionRate {
  /** The limit in force. */
  readonly count: number;
  /** Its interval, in ms. */
  readonly interval: number;
  readonly #generation: number;
  readonly #perMs: number;
  #young = new Map<string, Entry>();
  #old = new Map<string, Entry>();

  /** @param options checked by the caller (see `resolveServerOptions`) */
  constructor({ count, interval = 1000, maxAddresses = 100_000 }: ConnectionRateOptions) {
    this.count = count;
    this.interval = interval;
    this.#generation = Math.max(1, Math.floor(maxAddresses / 2));
    this.#perMs = count / interval;
  }

  /** Addresses remembered now (at most `maxAddresses`). */
  get size(): number {
    return this.#young.size + this.#old.size;
  }

  /**
   * Counts a new connection from `address` at `now`.
   * @returns the address group, when it is over its rate (the connection is to be refused); `null` otherwise
   */
  over(address: string, now: number): string | null {
    const group = addressGroup(address);
    const entry = this.#entry(group, now);
    entry.tokens = Math.min(this.count, entry.tokens + (now - entry.at) * this.#perMs);
    entry.at = now;
    if (entry.tokens < 1) return group;
    entry.tokens -= 1;
    return null;
  }

  /** The group's entry, in the young generation; a new one (full) for a group not remembered. */
  #entry(group: string, now: number): Entry {
    const young = this.#young.get(group);
    if (young !== undefined) return young;
    const entry = this.#old.get(group) ?? { tokens: this.count, at: now };
    this.#old.delete(group);
    if (this.#young.size >= this.#generation) {
      this.#old = this.#young; // the old generation, the addresses seen longest ago, is forgotten
      this.#young = new Map();
    }
    this.#young.set(group, entry);
    return entry;
  }
}
