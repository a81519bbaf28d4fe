import type { Connection, ConnectionData } from '../connection/connection.js';
import type { ContractCaller } from '../contract/router.js';
import type { Untyped } from '../contract/typed.js';
import { PulsarError } from '../errors.js';
import type { RequestOptions } from '../messages/settings.js';
import { GroupAnswers } from './group-answers.js';
import { kCreate, kDeliver, kSendEncoded } from '../connection/owner.js';

/** What a group needs from its server. */
export interface GroupHost {
  /** A frame's payload from what a broadcast was given (with `messages`, the message encoded). */
  payloadOf(value: unknown): Uint8Array;
  /** Encodes a payload once, with the server's codec, for every member. */
  encode(payload: Uint8Array): Buffer;
  /** Hands a broadcast to the other instances of a fleet, when the server has a `relay` (`RedisRelay`). */
  relay(group: string, payload: Buffer): void;
  /** What the server sends, checked against its contract, or `null` without one. */
  readonly caller: ContractCaller | null;
}

/** The groups each connection is in, so that it leaves them all when it closes. */
const membership = new WeakMap<Connection, Set<ConnectionGroup>>();

/**
 * A named set of connections that can be sent to at once (Netty's `ChannelGroup`, a socket.io room).
 * Set-like: `add`, `delete`, `has`, `size`, iteration. A connection leaves every group when it closes.
 * Get one with `server.group(name)`.
 */
export class ConnectionGroup<D extends ConnectionData = ConnectionData> implements Iterable<Connection<D>> {
  /** The group's name, unique within its server (and across a fleet, for relayed broadcasts). */
  readonly name: string;
  readonly #host: GroupHost;
  readonly #members = new Set<Connection>();

  /** @internal Made by `PulsarServer#group()`; not constructible by applications. */
  constructor(token: typeof kCreate, name: string, host: GroupHost) {
    if (token !== kCreate) throw new TypeError("ConnectionGroup is not constructible: get one with server.group(name)");
    this.name = name;
    this.#host = host;
  }

  /** Members on this instance. */
  get size(): number {
    return this.#members.size;
  }

  /** Adds an open connection (a closed or closing one is not added: it could never leave). */
  add(conn: Connection<D>): this {
    if (conn.state !== 'open' || this.#members.has(conn)) return this;
    this.#members.add(conn);
    let groups = membership.get(conn);
    if (groups === undefined) membership.set(conn, (groups = new Set()));
    groups.add(this);
    return this;
  }

  /** Removes a connection; `false` if it was not a member. */
  delete(conn: Connection<D>): boolean {
    if (!this.#members.delete(conn)) return false;
    membership.get(conn)?.delete(this);
    return true;
  }

  /** Whether `conn` is a member. */
  has(conn: Connection<D>): boolean {
    return this.#members.has(conn);
  }

  /** The members on this instance. */
  [Symbol.iterator](): Iterator<Connection<D>> {
    return this.#members.values() as Iterator<Connection<D>>;
  }

  /**
   * Sends `payload` to every member: encoded once, the same bytes queued by reference on each member's
   * connection (no copy per member), written when the current tick ends, so that a burst of broadcasts
   * (a read chunk's frames) reaches each member in one write. A member that cannot keep up
   * is closed by the slow-consumer limits (`maxPendingOutput`, `writeTimeout`), never buffered without
   * bound. Members leave the group the moment they can no longer be written. With a `relay` (`RedisRelay`),
   * the members on the other instances get it too.
   * @param payload a string or a `Uint8Array`; with `messages`, any value the message codec encodes
   * @param options `except`: a connection not to send it to (the sender, in a chat)
   * @returns how many members on this instance it was queued for
   */
  broadcast(payload: unknown, options: { except?: Connection<D> } = {}): number {
    const bytes = this.#host.payloadOf(payload);
    const sent = this[kDeliver](this.#host.encode(bytes), options.except);
    this.#host.relay(this.name, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length));
    return sent;
  }

  /**
   * Sends the contract's message `name` to every member, as {@link broadcast} does (encoded once, relayed
   * to a fleet), checked first when `validateOutgoing`.
   * @returns how many members on this instance it was queued for
   * @throws {PulsarError} `ERR_UNKNOWN_ROUTE` (no such message, or no contract), `ERR_INVALID_MESSAGE`
   */
  emit(this: ConnectionGroup<D> & Untyped, name: string, value: unknown, options: { except?: Connection<D> } = {}): number {
    return this.broadcast(this.#caller('emit').emitBody(name, value), options);
  }

  /**
   * Calls the contract's request `name` on every member here at the time of the call, and yields their
   * answers as they arrive: `{ conn, output }` (validated) or `{ conn, error }`; `.all()` collects them.
   * `timeout` and `signal` apply to each member's call.
   * @throws {PulsarError} `ERR_UNKNOWN_ROUTE` without a contract
   */
  call(this: ConnectionGroup<D> & Untyped, name: string, input: unknown, options?: RequestOptions): GroupAnswers<unknown, Connection<D>> {
    this.#caller('call'); // no contract: thrown here, not once per member
    return new GroupAnswers([...this].map((conn) => [conn, conn.call(name, input, options)] as const));
  }

  /** As {@link call}, without a contract: `conn.request(value)` to every member (`rpc`). */
  request(value: unknown, options?: RequestOptions): GroupAnswers<unknown, Connection<D>> {
    return new GroupAnswers([...this].map((conn) => [conn, conn.request(value, options)] as const));
  }

  #caller(what: string): ContractCaller {
    const { caller } = this.#host;
    if (caller === null) throw new PulsarError('ERR_UNKNOWN_ROUTE', `group.${what}() needs a contract on the server`);
    return caller;
  }

  /** @internal Queues frames already encoded for every member here but `except`; no relaying. */
  [kDeliver](wire: Buffer, except?: Connection): number {
    let sent = 0;
    for (const member of this.#members) {
      if (member !== except && member[kSendEncoded](wire)) sent++;
    }
    return sent;
  }
}

/** The names of the groups a connection left when it became unwritable, still readable in `disconnect`. */
const formerly = new WeakMap<Connection, readonly string[]>();

/** Takes a closed connection out of every group it was in. */
export function leaveGroups(conn: Connection): void {
  const groups = membership.get(conn);
  if (groups === undefined) return;
  formerly.set(conn, Object.freeze([...groups].map((group) => group.name)));
  for (const group of groups) group.delete(conn);
  membership.delete(conn);
}

/** The names of the groups `conn` is in (or, once it left them all on closing, was in). */
export function groupsOf(conn: Connection): readonly string[] {
  const groups = membership.get(conn);
  return groups === undefined ? (formerly.get(conn) ?? []) : [...groups].map((group) => group.name);
}
