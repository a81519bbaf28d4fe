import { hostPort } from '../util/format.js';
import type { Connection } from './connection.js';
import type { ProxyInfo } from '../accept/proxy-protocol.js';

/** One connection's figures at a point in time, as reported every `reportInterval`. */
export interface ConnectionSnapshot {
  /** Server-unique connection id. */
  id: number;
  /** Client IP address. */
  remoteAddress: string;
  /** Client port. */
  remotePort: number;
  /** Epoch ms when the connection was accepted. */
  connectedAt: number;
  /** Ms since the last inbound byte. */
  idleMs: number;
  /** Frames decoded from the client. */
  framesIn: number;
  /** Frames sent to the client (heartbeats included). */
  framesOut: number;
  /** Bytes received from the client. */
  bytesIn: number;
  /** Bytes sent to the client. */
  bytesOut: number;
  /**
   * Why reading from it is paused, when it is: `backpressure` (its pending output passed `highWaterMark`) or
   * `rate` (it is over its `rateLimit`). Absent while it is read.
   */
  pausedBy?: 'backpressure' | 'rate';
  /** What the PROXY protocol header said besides the client's address; absent without a header. */
  proxy?: ProxySnapshot;
}

/** A PROXY header's details in a {@link ConnectionSnapshot}. */
export interface ProxySnapshot {
  /** `host:port` the client connected to (the proxy's frontend), `null` when the header has none. */
  destination: string | null;
  /** The v2 extensions: type, name when well known (see `ProxyTlv`), value in hex. */
  tlvs: Array<{
    /** The type byte. */
    type: number;
    /** Its name when well known. */
    name?: string;
    /** The value, in hex. */
    value: string;
  }>;
}

/** The PROXY header's details as plain data (logs, reports): addresses as text, TLV values in hex. */
export function proxySnapshot({ destination, tlvs }: ProxyInfo): ProxySnapshot {
  return {
    destination: destination === null ? null : hostPort(destination.address, destination.port),
    tlvs: tlvs.map(({ type, name, value }) => ({ type, ...(name === undefined ? {} : { name }), value: value.toString('hex') })),
  };
}


/** `conn`'s figures at `now` (epoch ms); `lastSeen` is its last inbound byte as read (not as the rate shows it). */
export function snapshotOf(conn: Connection, lastSeen: number, now: number): ConnectionSnapshot {
  return {
    id: conn.id,
    remoteAddress: conn.remoteAddress,
    remotePort: conn.remotePort,
    connectedAt: conn.connectedAt,
    idleMs: Math.max(0, now - lastSeen),
    framesIn: conn.framesIn,
    framesOut: conn.framesOut,
    bytesIn: conn.bytesIn,
    bytesOut: conn.bytesOut,
    ...(conn.paused ? { pausedBy: 'backpressure' as const } : conn.rateLimited ? { pausedBy: 'rate' as const } : {}),
    ...(conn.proxy === null ? {} : { proxy: proxySnapshot(conn.proxy) }),
  };
}
