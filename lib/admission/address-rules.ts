import type { Socket } from 'node:net';
import type { ProxiedAddress } from '../accept/proxy-protocol.js';
import net from 'node:net';
import { invalidOption } from '../util/validate.js';

/**
 * The one spelling of a client's IP address that every rule, limit and log sees: an IPv4-mapped IPv6
 * address, however written (`::ffff:7.7.7.7`, `::FFFF:707:707`, `0:0:0:0:0:ffff:0707:0707`), is its IPv4
 * address; any other IPv6 address is normalised (lower case, zeros compressed, as `inet_ntop` writes it).
 * Without it, one IPv4 client could pass a per-address cap under four names.
 */
export function canonicalAddress(address: string): string {
  if (!address.includes(':')) return address; // IPv4 (or '' for a Unix socket's client): already one spelling
  if (address.startsWith('::ffff:') && net.isIPv4(address.slice(7))) return address.slice(7); // as the kernel writes it
  const normal = new net.SocketAddress({ address, family: 'ipv6' }).address;
  return normal.startsWith('::ffff:') && net.isIPv4(normal.slice(7)) ? normal.slice(7) : normal;
}

/** Where a socket is connected from, as the socket itself says, in the address's one spelling (see canonicalAddress). */
export function peerOf(socket: Socket): ProxiedAddress {
  const address = canonicalAddress(socket.remoteAddress ?? '');
  return { address, port: socket.remotePort ?? 0, family: address.includes(':') ? 'IPv6' : 'IPv4' };
}

/**
 * A list of CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or single addresses), compiled once into Node's
 * `net.BlockList` (Netty's `IpSubnetFilterRule` precompiles its masks the same way), so a lookup is one
 * native call, no string parsing of the rules. IPv4 blocks also match IPv4-mapped IPv6 addresses
 * (`::ffff:10.1.2.3`, as a dual-stack listener sees IPv4 clients).
 */
export class CidrList {
  readonly #list: net.BlockList | null;

  /**
   * @param owner and `option` name the list in error messages
   * @throws {PulsarError} `ERR_INVALID_OPTION` for a block that is not an address with a valid prefix
   */
  constructor(owner: string, option: string, blocks: readonly string[] | undefined) {
    this.#list = compile(owner, option, blocks);
  }

  /** Whether the list has no block. */
  get empty(): boolean {
    return this.#list === null;
  }

  /** Whether `address` is in one of the blocks. */
  contains(address: string | net.SocketAddress): boolean {
    if (this.#list === null) return false;
    return typeof address === 'string' ? this.#list.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4') : this.#list.check(address);
  }
}

/** Verdicts remembered, at most: clients come back from the same addresses, and a lookup then costs a Map get. */
const VERDICT_CACHE_SIZE = 4096;

/**
 * Which client addresses may connect: the `allow` and `deny` lists. Deny wins; with an `allow` list, an
 * address must be in it.
 */
export class AddressRules {
  readonly #allow: CidrList;
  readonly #deny: CidrList;
  /** Recent verdicts by address (the rules never change, so a verdict never goes stale). */
  readonly #verdicts = new Map<string, boolean>();

  /**
   * @param owner names the options in error messages
   * @param allow blocks clients must be in; none or empty: all
   * @param deny blocks clients must not be in
   * @throws {PulsarError} `ERR_INVALID_OPTION` for a malformed block
   */
  constructor(owner: string, allow: readonly string[] | undefined, deny: readonly string[] | undefined) {
    this.#allow = new CidrList(owner, 'allow', allow);
    this.#deny = new CidrList(owner, 'deny', deny);
  }

  /** Whether any rule is set (when none is, the server skips the check). */
  get active(): boolean {
    return !this.#allow.empty || !this.#deny.empty;
  }

  /** Whether a client at `address` may connect. */
  admits(address: string): boolean {
    const known = this.#verdicts.get(address);
    if (known !== undefined) return known;
    const verdict = this.#judge(address);
    if (this.#verdicts.size >= VERDICT_CACHE_SIZE) this.#verdicts.clear(); // bounded whatever addresses come
    this.#verdicts.set(address, verdict);
    return verdict;
  }

  /** The rules applied to one address, parsed once for both lists. */
  #judge(address: string): boolean {
    let parsed: net.SocketAddress;
    try {
      parsed = new net.SocketAddress({ address, family: net.isIPv6(address) ? 'ipv6' : 'ipv4' });
    } catch {
      return this.#allow.empty && this.#deny.empty; // not an IP address: only when there is no rule at all
    }
    if (this.#deny.contains(parsed)) return false;
    return this.#allow.empty || this.#allow.contains(parsed);
  }
}

/** The blocks as one BlockList; `null` for none. */
function compile(owner: string, option: string, blocks: readonly string[] | undefined): net.BlockList | null {
  if (blocks === undefined) return null;
  if (!Array.isArray(blocks)) throw invalidOption(owner, option, 'must be an array of CIDR blocks', blocks);
  if (blocks.length === 0) return null;
  const list = new net.BlockList();
  for (const block of blocks) {
    const [address = '', prefixText, extra] = String(block).split('/');
    const family = net.isIPv4(address) ? 'ipv4' : net.isIPv6(address) ? 'ipv6' : null;
    const bits = family === 'ipv4' ? 32 : 128;
    const prefix = prefixText === undefined ? bits : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
    if (family === null || extra !== undefined || !(prefix >= 0 && prefix <= bits)) {
      throw invalidOption(owner, option, 'must hold CIDR blocks such as 10.0.0.0/8 or 2001:db8::/32', block);
    }
    list.addSubnet(address, prefix, family);
  }
  return list;
}

/**
 * The group a client address counts in for per-address limits: the address itself for IPv4 (and
 * IPv4-mapped IPv6), its /64 for IPv6, since one IPv6 host usually holds a whole /64.
 */
export function addressGroup(address: string): string {
  if (!address.includes(':') || !net.isIPv6(address)) return address; // IPv4 without the IPv6 regex: every accept

  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  return `${ipv6Groups(address).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of an IPv6 address, in lower-case hex without leading zeros. */
function ipv6Groups(address: string): string[] {
  const [head = '', tail] = address.toLowerCase().split('::');
  const parts = (text: string | undefined): string[] => (text ? text.split(':') : []);
  const left = parts(head);
  const right = parts(tail);
  const width = (groups: string[]): number => groups.reduce((n, group) => n + (group.includes('.') ? 2 : 1), 0); // a.b.c.d fills two
  const missing = 8 - width(left) - width(right);
  const groups = tail === undefined ? left : [...left, ...Array<string>(missing).fill('0'), ...right];
  return groups.map((group) => (group.includes('.') ? group : Number.parseInt(group, 16).toString(16)));
}
