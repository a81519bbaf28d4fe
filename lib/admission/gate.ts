import { PulsarError } from '../errors.js';
import type { Socket } from 'node:net';
import type { AcceptHost } from '../accept/handshakes.js';
import type { ProxiedAddress, ProxyInfo } from '../accept/proxy-protocol.js';
import type { Connection } from '../connection/connection.js';
import { peerOf } from './address-rules.js';
import { kRefuse } from '../connection/owner.js';
import { messageOf } from '../util/format.js';
import type { ResolvedServerOptions } from '../server/options.js';
import { isPromiseLike } from '../util/thenable.js';
import { AddressRules, addressGroup } from './address-rules.js';
import { ConnectionRate } from './connection-rate.js';

function ignoreError(): void {}

/** What the gate needs from its server. */
export interface GateHost {
  /** Whether the server still serves new connections (not shutting down). */
  serving(): boolean;
  /** Connections served now (they hold places under `maxConnections`). */
  served(): number;
  /**
   * A connection for a socket: with the next id, to be judged by the `admit` hook or served; or (`refused`)
   * with id 0, made only to name a client refused at accept in its report (no decoder, no output).
   */
  connectionFor(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, refused?: boolean): Connection;
  /** Serves an admitted connection, with the bytes read after its PROXY header. */
  serve(conn: Connection, rest: Buffer | null): void;
  /** A client was refused (already closed): report why (`error` does not name it yet). */
  refused(conn: Connection, error: PulsarError): void;
  /** A client was refused for `connectionRate`. */
  rateLimited(conn: Connection): void;
}

/**
 * How a connection is admitted, in order: `connectionRate`, `maxConnections`, the `allow`/`deny` address
 * rules, the per-address limit (`maxConnectionsPerAddress`, IPv6 per /64), all on the address alone
 * before any connection object exists ({@link AdmissionGate.screen}); then the `admit` hook (sync or
 * async, within `admitTimeout`). All judge the client's real address: the PROXY source when there was a
 * header.
 */
export class AdmissionGate implements AcceptHost {
  readonly #options: ResolvedServerOptions;
  readonly #host: GateHost;
  readonly #rules: AddressRules;
  /** Open connections per address group (see addressGroup), kept only with `maxConnectionsPerAddress`. */
  readonly #perAddress = new Map<string, number>();
  /** Connections waiting for an asynchronous `admit` hook: not served yet, but holding a place. */
  readonly #waiting = new Set<Connection>();
  /** New connections per address (`connectionRate`), or `null` without it. */
  readonly #connectionRate: ConnectionRate | null;

  /**
   * @param options the server's options (`maxConnections`, `allow`, `deny`, `maxConnectionsPerAddress`, `admit`, `admitTimeout`)
   * @param host the server
   */
  constructor(options: ResolvedServerOptions, host: GateHost) {
    this.#options = options;
    this.#host = host;
    this.#rules = new AddressRules('PulsarServer', options.allow, options.deny);
    this.#connectionRate = options.connectionRate === null ? null : new ConnectionRate(options.connectionRate);
  }

  /** {@inheritDoc AcceptHost.accepting} */
  accepting(): boolean {
    return this.#host.serving();
  }

  /** {@inheritDoc AcceptHost.screen} */
  screen(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, pending: number): boolean {
    const address = source?.address ?? peerOf(socket).address;
    const overRate = this.#overRate(address);
    const refusal = overRate ?? this.#overLimits(address, pending);
    if (refusal === null) return false;
    const conn = this.#refuseSocket(socket, source, proxy, refusal);
    if (overRate !== null) this.#host.rateLimited(conn);
    return true;
  }

  /** {@inheritDoc AcceptHost.full} */
  full(socket: Socket, pending: number): boolean {
    const refusal = this.#full(pending);
    if (refusal !== null) this.#refuseSocket(socket, null, null, refusal);
    return refusal !== null;
  }

  /** {@inheritDoc AcceptHost.refuse} */
  refuse(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, error: PulsarError, screened: boolean): void {
    if (screened) this.release(source?.address ?? peerOf(socket).address);
    this.#refuseSocket(socket, source, proxy, error);
  }

  /** {@inheritDoc AcceptHost.gone} */
  gone(address: string): void {
    this.release(address);
  }

  /** {@inheritDoc AcceptHost.admit} */
  admit(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, rest: Buffer | null): void {
    this.#admit(this.#host.connectionFor(socket, source, proxy), rest);
  }

  /**
   * Counts a new connection from `address` against `connectionRate` (asked before TLS or any read of the
   * client's own).
   * @returns why it is refused, or `null`
   */
  #overRate(address: string): PulsarError | null {
    const rate = this.#connectionRate;
    if (rate === null || address === '') return null;
    const group = rate.over(address, Date.now());
    if (group === null) return null;
    return new PulsarError('ERR_RATE_LIMITED', `refused, ${group} opened more than ${rate.count} connections within ${rate.interval} ms (connectionRate)`);
  }

  /**
   * Judges a client by its address alone, before any connection object is made (a refusal costs the
   * accept and nothing more): `maxConnections` (sockets still in their PROXY header or TLS handshake,
   * `pending`, hold places too, as HAProxy's `maxconn` counts them), the `allow`/`deny` rules, and the
   * per-address limit, whose place it claims (given back by {@link release}).
   * @returns why it is refused, or `null`
   */
  #overLimits(address: string, pending: number): PulsarError | null {
    return this.#full(pending) ?? this.#claimPlace(address);
  }

  /** Whether `maxConnections` are held already, counting `pending` sockets still in their handshake. */
  #full(pending: number): PulsarError | null {
    const held = this.#host.served() + this.#waiting.size + pending;
    if (held < this.#options.maxConnections) return null;
    return new PulsarError('ERR_MAX_CONNECTIONS', `refused, ${held} connections are already open or in their handshake (maxConnections)`);
  }

  /** Serves a connection {@link screen} let through, after the `admit` hook if there is one. */
  #admit(conn: Connection, rest: Buffer | null): void {
    if (!this.#host.serving()) {
      this.release(conn.remoteAddress);
      conn[kRefuse]();
      return;
    }
    const { admit } = this.#options;
    if (admit === null) {
      this.#host.serve(conn, rest);
      return;
    }
    let verdict: boolean | PromiseLike<boolean>;
    try {
      verdict = admit(conn);
    } catch (error) {
      this.#refuseByHook(conn, `refused, the admit hook threw: ${messageOf(error)}`, error);
      return;
    }
    if (isPromiseLike(verdict)) this.#awaitVerdict(conn, verdict, rest);
    else if (verdict === true) this.#host.serve(conn, rest);
    else this.#refuseByHook(conn, 'refused by the admit hook');
  }

  /** Gives back a closed connection's place in its address group. */
  release(address: string): void {
    if (this.#options.maxConnectionsPerAddress === Infinity) return;
    const group = addressGroup(address);
    const open = (this.#perAddress.get(group) ?? 1) - 1;
    if (open > 0) this.#perAddress.set(group, open);
    else this.#perAddress.delete(group);
  }

  /** Refuses every connection still waiting for the `admit` hook (the server is closing). */
  refuseWaiting(): void {
    for (const conn of this.#waiting) conn[kRefuse]();
  }

  /**
   * Holds a connection, reading nothing, until the `admit` hook's promise settles or `admitTimeout` passes.
   * The socket has no connection listeners yet: its errors and close are handled here meanwhile.
   */
  #awaitVerdict(conn: Connection, verdict: PromiseLike<boolean>, rest: Buffer | null): void {
    const { socket } = conn;
    const { admitTimeout } = this.#options;
    socket.pause();
    this.#waiting.add(conn);
    let settled = false;
    const settle = (admitted: boolean, reason: string, cause?: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('error', onGone);
      socket.off('close', onGone);
      this.#waiting.delete(conn);
      if (!this.#host.serving() || socket.destroyed) {
        this.release(conn.remoteAddress);
        conn[kRefuse](); // gone while waiting, or the server is closing: nothing was accepted from it
      } else if (admitted) {
        this.#host.serve(conn, rest);
        socket.resume();
      } else {
        this.#refuseByHook(conn, reason, cause);
      }
    };
    const onGone = (): void => settle(false, 'gone');
    const timer = setTimeout(() => settle(false, `refused, the admit hook did not answer within ${admitTimeout} ms`), admitTimeout);
    socket.on('error', onGone);
    socket.on('close', onGone);
    verdict.then(
      (answer) => settle(answer === true, 'refused by the admit hook'),
      (error: unknown) => settle(false, `refused, the admit hook failed: ${messageOf(error)}`, error),
    );
  }

  /** Turns away a connection the `admit` hook did not accept, giving back its place in its address group. */
  #refuseByHook(conn: Connection, reason: string, cause?: unknown): void {
    this.release(conn.remoteAddress);
    this.#refuse(conn, new PulsarError('ERR_REFUSED', reason, cause === undefined ? undefined : { cause }));
  }

  /**
   * Destroys a socket refused before it became a connection, then reports why, naming the client with a
   * connection made for the report alone.
   */
  #refuseSocket(socket: Socket, source: ProxiedAddress | null, proxy: ProxyInfo | null, error: PulsarError): Connection {
    socket.on('error', ignoreError);
    socket.destroy();
    const conn = this.#host.connectionFor(socket, source, proxy, true);
    this.#refuse(conn, error);
    return conn;
  }

  /** Closes a client that is not served, and reports why. */
  #refuse(conn: Connection, error: PulsarError): void {
    conn[kRefuse]();
    this.#host.refused(conn, error);
  }

  /** The address rules and the per-address limit; a place in the client's address group claimed when they let it in. */
  #claimPlace(address: string): PulsarError | null {
    if (this.#rules.active && !this.#rules.admits(address)) {
      return new PulsarError('ERR_ADDRESS_DENIED', `refused, ${address} is not allowed to connect (allow/deny rules)`);
    }
    const limit = this.#options.maxConnectionsPerAddress;
    if (limit === Infinity) return null;
    const group = addressGroup(address);
    const open = this.#perAddress.get(group) ?? 0;
    if (open >= limit) return new PulsarError('ERR_MAX_CONNECTIONS', `refused, ${open} connections from ${group} are already open (maxConnectionsPerAddress)`);
    this.#perAddress.set(group, open + 1);
    return null;
  }
}
