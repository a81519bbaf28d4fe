import { PulsarError } from './errors.js';
import { noteWriteProgress, type WriteProgress } from './io/write-progress.js';
import { sweepPeriod } from './util/sweep.js';
import { checkInteger, checkKnownOptions, invalidOption } from './util/validate.js';

/** What a heartbeat policy may read of a connection. `Connection` satisfies it; tests can fake it. */
export interface HeartbeatPeer {
  /** Epoch ms of the last inbound byte. */
  readonly lastSeen: number;
  /** Response bytes queued but not yet handed to the kernel. */
  readonly pendingBytes: number;
  /** Response bytes handed to the kernel so far (grows while a slow reader drains). */
  readonly flushedBytes: number;
}

/**
 * The narrow view of the server a heartbeat policy works against, so a policy can be tested without
 * sockets or real time.
 */
export interface HeartbeatHost<P extends HeartbeatPeer = HeartbeatPeer> {
  /** The open connections, at the time of the call. */
  connections(): Iterable<P>;
  /** Current time in epoch ms. */
  now(): number;
  /** Sends a heartbeat frame carrying `payload` to `peer`. */
  ping(peer: P, payload: Uint8Array): void;
  /** Closes `peer` at once, reporting `error` as a client error. */
  kill(peer: P, error: PulsarError): void;
}

/**
 * Decides when silent connections get a heartbeat and when they are dead. The server calls
 * {@link HeartbeatPolicy.start} once it listens and {@link HeartbeatPolicy.stop} when it closes.
 */
export interface HeartbeatPolicy {
  /** Starts watching `host`'s connections. Calling it again restarts with the new host. */
  start(host: HeartbeatHost): void;
  /** Stops all timers. Safe to call more than once. */
  stop(): void;
}

/** Options of {@link IdleHeartbeat}. */
export interface IdleHeartbeatOptions {
  /** Silence, in ms, after which a connection receives a heartbeat, and again every interval. `0`: none. @default 5000 */
  interval?: number;
  /** Heartbeat payload. @default the 9 ASCII bytes `HEARTBEAT` */
  payload?: Uint8Array | string;
  /** Silence, in ms, after which a connection is closed with `ERR_IDLE_TIMEOUT`. `0`: never. @default 0 */
  idleTimeout?: number;
}

/** Default heartbeat payload. */
export const HEARTBEAT_PAYLOAD: Readonly<Buffer> = Buffer.from('HEARTBEAT', 'ascii');

/** Per-connection bookkeeping the policy keeps for itself: its last ping, and its output's progress. */
interface PeerState extends WriteProgress {
  lastPing: number;
}

/**
 * The default heartbeat: one unref'd timer per server sweeps all connections, so the cost does not
 * grow with traffic (no timer is created or reset per chunk). Heartbeats are due `interval` ms after the
 * last inbound byte and then every `interval` ms; the sweep runs every `min(interval, idleTimeout) / 10`
 * ms (clamped to 5–500 ms), which bounds how late one can be.
 *
 * Idle reaping counts only what the peer does: inbound bytes, or response data it is still draining
 * (pending and moving). Heartbeats the server sends keep no one alive.
 */
export class IdleHeartbeat implements HeartbeatPolicy {
  /** Heartbeat interval in ms (`0`: no heartbeat frames). */
  readonly interval: number;
  /** Idle timeout in ms (`0`: off). */
  readonly idleTimeout: number;
  /** Heartbeat payload. */
  readonly payload: Uint8Array;
  readonly #sweepMs: number;
  #host: HeartbeatHost | null = null;
  #timer: ReturnType<typeof setInterval> | null = null;
  #peers = new WeakMap<HeartbeatPeer, PeerState>();

  /** @param options see {@link IdleHeartbeatOptions} */
  constructor(options: IdleHeartbeatOptions = {}) {
    checkKnownOptions('IdleHeartbeat', options, { interval: true, payload: true, idleTimeout: true });
    this.interval = checkInteger('IdleHeartbeat', 'interval', options.interval ?? 5000, 0);
    this.idleTimeout = checkInteger('IdleHeartbeat', 'idleTimeout', options.idleTimeout ?? 0, 0);
    const payload = options.payload ?? HEARTBEAT_PAYLOAD;
    if (typeof payload !== 'string' && !(payload instanceof Uint8Array)) {
      throw invalidOption('IdleHeartbeat', 'payload', 'must be a string or a Uint8Array', payload);
    }
    this.payload = typeof payload === 'string' ? Buffer.from(payload) : payload;
    this.#sweepMs = sweepPeriod(this.interval, this.idleTimeout);
  }

  /** {@inheritDoc HeartbeatPolicy.start} */
  start(host: HeartbeatHost): void {
    this.stop();
    if (this.interval === 0 && this.idleTimeout === 0) return;
    this.#host = host;
    this.#timer = setInterval(() => this.sweep(), this.#sweepMs);
    this.#timer.unref();
  }

  /** {@inheritDoc HeartbeatPolicy.stop} */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#host = null;
    this.#peers = new WeakMap();
  }

  /** Checks every connection once: pings the silent ones, reaps the dead ones. The timer calls it. */
  sweep(): void {
    const host = this.#host;
    if (!host) return;
    const now = host.now();
    for (const peer of host.connections()) {
      const state = this.#stateOf(peer);
      noteWriteProgress(state, peer, now);
      const silentFor = now - Math.max(peer.lastSeen, state.movedAt);
      if (this.idleTimeout > 0 && silentFor >= this.idleTimeout) {
        host.kill(peer, new PulsarError('ERR_IDLE_TIMEOUT', `no data for ${silentFor} ms (idle timeout ${this.idleTimeout} ms)`));
      } else if (this.interval > 0 && peer.pendingBytes === 0 && now - Math.max(peer.lastSeen, state.lastPing) >= this.interval) {
        state.lastPing = now;
        host.ping(peer, this.payload);
      }
    }
  }

  #stateOf(peer: HeartbeatPeer): PeerState {
    let state = this.#peers.get(peer);
    if (!state) {
      state = { lastPing: 0, flushed: peer.flushedBytes, movedAt: 0 };
      this.#peers.set(peer, state);
    }
    return state;
  }
}

/**
 * A server's side of its heartbeat policy: the open connections, the clock, and a `ping` that encodes the
 * heartbeat once for every silent client (again only when the payload changes) and sends it to those still open.
 * @param connections the connections that can be written
 * @param encode the server's codec's `encode`
 * @param send sends an encoded frame to a connection (and counts it); only called for open ones
 * @param kill closes a connection the policy found dead
 */
export function heartbeatHostFor<P extends HeartbeatPeer & { readonly state: string }>(
  connections: () => Iterable<P>,
  encode: (payload: Uint8Array) => Buffer,
  send: (peer: P, wire: Buffer) => void,
  kill: (peer: P, error: PulsarError) => void,
): HeartbeatHost<P> {
  let beat: { payload: Buffer; wire: Buffer } | undefined;
  return {
    connections,
    now: Date.now,
    ping: (peer, payload) => {
      if (peer.state !== 'open') return;
      if (beat === undefined || !beat.payload.equals(payload)) beat = { payload: Buffer.from(payload), wire: encode(payload) };
      send(peer, beat.wire);
    },
    kill,
  };
}
