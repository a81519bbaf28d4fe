import net from 'node:net';
import { invalidOption } from '../validate.js';

/**
 * Which client addresses may connect: the `allow` and `deny` CIDR lists, compiled once into Node's
 * `net.BlockList` (Netty's `IpSubnetFilterRule` precompiles its masks the same way), so an accept costs
 * one native lookup per list, no string parsing of the rules. Deny wins; with an `allow` list, an
 * address must be in it. IPv4 rules also match IPv4-mapped IPv6 clients (`::ffff:10.1.2.3`).
 */
export class AddressRules {
  readonly #allow: net.BlockList | null;
  readonly #deny: net.BlockList | null;

  /**
   * @param owner names the options in error messages
   * @param allow CIDR blocks (`10.0.0.0/8`, `2001:db8::/32`, or a single address) clients must be in; none or empty: all
   * @param deny CIDR blocks clients must not be in
   * @throws {PulsarError} `ERR_INVALID_OPTION` for a block that is not an address with a valid prefix
   */
  constructor(owner: string, allow: readonly string[] | undefined, deny: readonly string[] | undefined) {
    this.#allow = compile(owner, 'allow', allow);
    this.#deny = compile(owner, 'deny', deny);
  }

  /** Whether any rule is set (when none is, the server skips the check). */
  get active(): boolean {
    return this.#allow !== null || this.#deny !== null;
  }

  /** Whether a client at `address` may connect. */
  admits(address: string): boolean {
    const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    if (this.#deny?.check(address, family)) return false;
    return this.#allow === null || this.#allow.check(address, family);
  }
}

/** The blocks as one BlockList; `null` for none (no rule). */
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
  if (!net.isIPv6(address)) return address;
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
