import { isIPv4, isIPv6, SocketAddress } from 'node:net';
import { canonicalAddress } from '../admission/address-rules.js';
import { PulsarError } from '../errors.js';

/**
 * The PROXY protocol (HAProxy's, versions 1 and 2): a load balancer that forwards a TCP connection first
 * sends one header saying where the connection really comes from. Spec:
 * https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */

/** Options of the PROXY protocol reader (the server's `proxyProtocol` option). */
export interface ProxyProtocolOptions {
  /** Ms a new connection has to send its whole PROXY header before it is closed (`ERR_PROXY_TIMEOUT`). @default 5000 */
  timeout?: number;
  /** Largest header accepted, in bytes: v2 headers may carry extensions (TLVs). @default 1024 */
  maxHeaderLength?: number;
}

/** A client address carried by a PROXY header. */
export interface ProxiedAddress {
  /** The real client's IP address. */
  readonly address: string;
  /** The real client's port. */
  readonly port: number;
  /** `'IPv4'` or `'IPv6'`. */
  readonly family: 'IPv4' | 'IPv6';
}

/** The well-known PROXY v2 TLV types (spec §2.2), and the cloud load balancers' own. */
export const PROXY_TLV_NAMES: Readonly<Record<number, string>> = {
  0x01: 'alpn', 0x02: 'authority', 0x03: 'crc32c', 0x04: 'noop', 0x05: 'unique_id', 0x20: 'ssl', 0x30: 'netns',
  0xe0: 'gcp_psc_connection_id', 0xea: 'aws', 0xee: 'azure',
};

/** One PROXY v2 extension (Type-Length-Value). */
export interface ProxyTlv {
  /** The type byte. */
  readonly type: number;
  /**
   * Its name when well known: `alpn`, `authority`, `crc32c`, `noop`, `unique_id`, `ssl`, `netns`,
   * `aws` (first value byte 0x01: the VPC endpoint id), `azure` (0x01: the private endpoint LinkID),
   * `gcp_psc_connection_id`; else `undefined`.
   */
  readonly name: string | undefined;
  /** The value's bytes. */
  readonly value: Buffer;
}

/** What the PROXY header said about a connection, besides its source (the connection's address). */
export interface ProxyInfo {
  /** The address the client connected to (the proxy's frontend), or `null` when the header has none. */
  readonly destination: ProxiedAddress | null;
  /** The v2 header's extensions, in order (none for v1). */
  readonly tlvs: readonly ProxyTlv[];
}

/** What a complete PROXY header gave. */
export interface ProxyHeader extends ProxyInfo {
  /** The real client, or `null` when the header carries none (v2 `LOCAL`, e.g. a health check; v1 `UNKNOWN`). */
  readonly source: ProxiedAddress | null;
  /** Bytes that followed the header in the same reads: the start of the client's own stream. */
  readonly rest: Buffer;
}

const NONE: readonly ProxyTlv[] = [];

/** v1 lines are at most 107 bytes, CRLF included (spec §2.1). */
const V1_MAX_LENGTH = 107;
const V1_PREFIX = Buffer.from('PROXY ');
const V2_SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');
/** Signature, version/command, family/transport, 2-byte address length. */
const V2_FIXED_LENGTH = 16;

function malformed(reason: string): PulsarError {
  return new PulsarError('ERR_PROXY_PROTOCOL', reason);
}

/** Whether `bytes` could still be the start of `prefix` (or starts with all of it). */
function couldStartWith(bytes: Buffer, prefix: Buffer): boolean {
  const n = Math.min(bytes.length, prefix.length);
  return bytes.subarray(0, n).equals(prefix.subarray(0, n));
}

/**
 * Reads one PROXY header, v1 or v2, from the first bytes of a connection. Pure: no sockets, no timers.
 * Bytes are gathered until the header is complete; a header is small, so they are joined as they come.
 */
export class ProxyHeaderParser {
  readonly #maxHeaderLength: number;
  #bytes: Buffer = Buffer.alloc(0);

  /** @param maxHeaderLength largest header accepted, in bytes (v2 may carry extensions; v1 is ≤ 107) */
  constructor(maxHeaderLength: number) {
    this.#maxHeaderLength = maxHeaderLength;
  }

  /**
   * Adds bytes read from the connection.
   * @returns the header once complete, `null` while more bytes are needed
   * @throws {PulsarError} `ERR_PROXY_PROTOCOL` when the bytes are not a valid PROXY header or it is too long
   */
  push(chunk: Buffer): ProxyHeader | null {
    this.#bytes = this.#bytes.length === 0 ? chunk : Buffer.concat([this.#bytes, chunk]);
    const bytes = this.#bytes;
    if (couldStartWith(bytes, V2_SIGNATURE)) return bytes.length < V2_FIXED_LENGTH ? null : this.#v2(bytes);
    if (couldStartWith(bytes, V1_PREFIX)) return bytes.length < V1_PREFIX.length ? null : this.#v1(bytes);
    throw malformed('the connection did not start with a PROXY protocol header');
  }

  #v1(bytes: Buffer): ProxyHeader | null {
    const end = bytes.indexOf('\r\n');
    if (end === -1) {
      if (bytes.length >= V1_MAX_LENGTH) throw malformed(`PROXY v1 line longer than ${V1_MAX_LENGTH} bytes`);
      return null;
    }
    if (end + 2 > V1_MAX_LENGTH) throw malformed(`PROXY v1 line longer than ${V1_MAX_LENGTH} bytes`);
    const line = bytes.toString('latin1', 0, end);
    const rest = bytes.subarray(end + 2);
    const [, protocol, source, destination, sourcePort, destinationPort, ...extra] = line.split(' ');
    if (protocol === 'UNKNOWN') return { source: null, destination: null, tlvs: NONE, rest };
    const family = protocol === 'TCP4' ? 'IPv4' : protocol === 'TCP6' ? 'IPv6' : null;
    if (family === null) throw malformed(`PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN, got '${protocol}'`);
    const isAddress = family === 'IPv4' ? isIPv4 : isIPv6;
    if (extra.length > 0 || !isAddress(source ?? '') || !isAddress(destination ?? '') || !isPort(sourcePort) || !isPort(destinationPort)) {
      throw malformed(`malformed PROXY v1 line ${JSON.stringify(line)}`);
    }
    // A zone id names an interface of the proxy's host, not a client: no rule could match it.
    if (source!.includes('%') || destination!.includes('%')) throw malformed(`PROXY v1 address with a zone id in ${JSON.stringify(line)}`);
    return {
      source: proxied(source!, Number(sourcePort)),
      destination: proxied(destination!, Number(destinationPort)),
      tlvs: NONE,
      rest,
    };
  }

  #v2(bytes: Buffer): ProxyHeader | null {
    const versionCommand = bytes[12]!;
    if (versionCommand >> 4 !== 2) throw malformed(`PROXY v2 header with version ${versionCommand >> 4}`);
    const command = versionCommand & 0x0f;
    if (command > 1) throw malformed(`PROXY v2 header with unknown command ${command}`);
    const total = V2_FIXED_LENGTH + bytes.readUInt16BE(14);
    if (total > this.#maxHeaderLength) throw malformed(`PROXY v2 header of ${total} bytes, over the ${this.#maxHeaderLength}-byte limit`);
    if (bytes.length < total) return null;
    const rest = bytes.subarray(total);
    if (command === 0) return { source: null, destination: null, tlvs: NONE, rest }; // LOCAL: the proxy's own connection (health check)
    const block = bytes.subarray(V2_FIXED_LENGTH, total);
    switch (bytes[13]) {
      case 0x11: { // TCP over IPv4: source, destination, source port, destination port
        if (block.length < 12) throw malformed('PROXY v2 IPv4 address block too short');
        const address = (at: number): string => block.subarray(at, at + 4).join('.');
        return this.#addresses(address(0), address(4), block.readUInt16BE(8), block.readUInt16BE(10), 'IPv4', block.subarray(12), rest);
      }
      case 0x21: // TCP over IPv6
        if (block.length < 36) throw malformed('PROXY v2 IPv6 address block too short');
        return this.#addresses(ipv6(block.subarray(0, 16)), ipv6(block.subarray(16, 32)), block.readUInt16BE(32), block.readUInt16BE(34), 'IPv6', block.subarray(36), rest);
      case 0x00: // UNSPEC: the TLVs start right after the fixed part
        return { source: null, destination: null, tlvs: tlvsOf(block), rest };
      case 0x31: // UNIX stream: no IP address to show; TLVs after the two 108-byte paths
        return { source: null, destination: null, tlvs: block.length > 216 ? tlvsOf(block.subarray(216)) : NONE, rest };
      default:
        throw malformed(`PROXY v2 header with unsupported family/transport 0x${bytes[13]!.toString(16).padStart(2, '0')}`);
    }
  }

  #addresses(source: string, destination: string, sourcePort: number, destinationPort: number, family: 'IPv4' | 'IPv6', extensions: Buffer, rest: Buffer): ProxyHeader {
    return {
      source: family === 'IPv4' ? { address: source, port: sourcePort, family } : proxied(source, sourcePort),
      destination: family === 'IPv4' ? { address: destination, port: destinationPort, family } : proxied(destination, destinationPort),
      tlvs: tlvsOf(extensions),
      rest,
    };
  }
}

/** The TLVs of a v2 header's extension bytes; they must fill it exactly. */
function tlvsOf(bytes: Buffer): readonly ProxyTlv[] {
  if (bytes.length === 0) return NONE;
  const tlvs: ProxyTlv[] = [];
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < 3) throw malformed('PROXY v2 TLV cut short');
    const type = bytes[at]!;
    const length = bytes.readUInt16BE(at + 1);
    if (bytes.length - at - 3 < length) throw malformed(`PROXY v2 TLV 0x${type.toString(16)} of ${length} bytes runs past the header`);
    // Copied: a TLV outlives the read chunk it came in, which is otherwise released.
    tlvs.push({ type, name: PROXY_TLV_NAMES[type], value: Buffer.from(bytes.subarray(at + 3, at + 3 + length)) });
    at += 3 + length;
  }
  return tlvs;
}

function isPort(text: string | undefined): boolean {
  return text !== undefined && /^\d{1,5}$/.test(text) && Number(text) <= 65535;
}

/** An address from a header in its one spelling (an IPv4-mapped IPv6 address is IPv4), with its family. */
function proxied(address: string, port: number): ProxiedAddress {
  const canonical = canonicalAddress(address);
  return { address: canonical, port, family: canonical.includes(':') ? 'IPv6' : 'IPv4' };
}

/** The usual text form of a 16-byte IPv6 address (`::1`, not `0:0:0:0:0:0:0:1`). */
function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}
