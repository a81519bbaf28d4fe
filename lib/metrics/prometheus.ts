import diagnosticsChannel from 'node:diagnostics_channel';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ClientErrorMessage, DisconnectMessage, RateLimitedMessage, RefusedMessage } from '../server/channels.js';
import type { PulsarServer, ServerStats } from '../server/server.js';
import { checkKnownOptions } from '../util/validate.js';

/** Options of {@link PulsarMetrics}. */
export interface PulsarMetricsOptions {
  /** The `prom-client` registry the series are registered in: an application's own, to serve them with its other series. @default a new `Registry` */
  registry?: Registry;
  /**
   * Also collect `prom-client`'s default `process_*` and `nodejs_*` series in that registry. Leave it off
   * when the application collects them itself (they can be registered only once per registry).
   * @default true
   */
  defaultMetrics?: boolean;
}

/** The series that are counted from events, by channel, with their label. */
const EVENT_SERIES = [
  { channel: 'pulsar:refused', name: 'pulsar_connections_refused_total', help: 'Connections turned away before being served, by reason (the error code).', label: 'reason' },
  { channel: 'pulsar:disconnect', name: 'pulsar_disconnects_total', help: 'Served connections that went away, by reason.', label: 'reason' },
  { channel: 'pulsar:client-error', name: 'pulsar_client_errors_total', help: 'Client errors, by code.', label: 'code' },
] as const;

type EventMessage = RefusedMessage | DisconnectMessage | ClientErrorMessage;

/** A totals figure exported as a counter: its value is read at scrape time, not counted per frame. */
const TOTALS: ReadonlyArray<{ name: string; help: string; figure: keyof ServerStats }> = [
  { name: 'pulsar_connections_accepted_total', help: 'Connections accepted and served.', figure: 'accepted' },
  { name: 'pulsar_frames_received_total', help: 'Frames received.', figure: 'framesIn' },
  { name: 'pulsar_frames_sent_total', help: 'Frames sent, heartbeats included.', figure: 'framesOut' },
  { name: 'pulsar_received_bytes_total', help: 'Bytes received, frame headers included.', figure: 'bytesIn' },
  { name: 'pulsar_sent_bytes_total', help: 'Bytes sent, frame headers and heartbeats included.', figure: 'bytesOut' },
  { name: 'pulsar_heartbeats_sent_total', help: 'Heartbeat frames sent.', figure: 'heartbeats' },
  { name: 'pulsar_frames_dropped_total', help: 'Frames offered to connections that could no longer be written, and dropped.', figure: 'framesDropped' },
  { name: 'pulsar_late_replies_total', help: 'Replies to server requests that came after the request gave up, dropped.', figure: 'lateReplies' },
];

const GAUGES: ReadonlyArray<{ name: string; help: string; figure: keyof ServerStats }> = [
  { name: 'pulsar_rate_limited_connections', help: 'Connections whose reading is held back for their rate limit now.', figure: 'rateLimitedNow' },
  { name: 'pulsar_connections', help: 'Connections open now.', figure: 'connections' },
  { name: 'pulsar_buffered_bytes', help: 'Bytes held for clients now: partial inbound frames plus output not yet taken by the kernel.', figure: 'bufferedBytes' },
  { name: 'pulsar_paused_connections', help: 'Connections whose reading is paused for backpressure now.', figure: 'paused' },
];

/**
 * One server's Prometheus series, in a `prom-client` registry. Frame and byte counters cost nothing per
 * frame: they are read from the server's {@link PulsarServer.stats} when Prometheus scrapes, so the
 * default echo keeps its bulk path. Refusals, disconnects and client errors are counted from pulsar's
 * `diagnostics_channel` events.
 *
 * @example
 * ```ts
 * import { PulsarMetrics, serveMetrics } from 'pulsar/metrics';
 * const metrics = new PulsarMetrics(server);
 * const endpoint = await serveMetrics(() => metrics.registry.metrics(), { port: 9464 });
 * ```
 */
export class PulsarMetrics {
  /** The registry holding the series. */
  readonly registry: Registry;
  readonly #server: PulsarServer;
  readonly #subscriptions: Array<{ channel: string; listener: (message: unknown) => void }> = [];
  /** One `stats()` per scrape, shared by every series (cleared once the scrape's collection is done). */
  #stats: ServerStats | undefined;

  /**
   * @param server the server to observe
   * @param options see {@link PulsarMetricsOptions}
   */
  constructor(server: PulsarServer, options: PulsarMetricsOptions = {}) {
    checkKnownOptions('PulsarMetrics', options, { registry: true, defaultMetrics: true });
    this.#server = server;
    this.registry = options.registry ?? new Registry();
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    const stats = (): ServerStats => this.#currentStats();
    for (const { name, help, figure } of TOTALS) {
      new Counter({ name, help, registers: [this.registry], collect() { this.reset(); this.inc(stats()[figure]); } });
    }
    for (const { name, help, figure } of GAUGES) {
      new Gauge({ name, help, registers: [this.registry], collect() { this.set(stats()[figure]); } });
    }
    const rateLimited = new Counter({
      name: 'pulsar_rate_limited_total',
      help: 'Rate limits met: kind frames or bytes (rateLimit) or connections (connectionRate); action pause, close or refuse.',
      labelNames: ['kind', 'action'],
      registers: [this.registry],
    });
    this.#subscribe('pulsar:rate-limited', (message) => {
      const { server, kind, action } = message as unknown as RateLimitedMessage;
      if (server === this.#server) rateLimited.inc({ kind, action });
    });
    for (const { channel, name, help, label } of EVENT_SERIES) {
      const counter = new Counter({ name, help, labelNames: [label], registers: [this.registry] });
      this.#subscribe(channel, (message: EventMessage) => {
        if (message.server !== this.#server) return;
        counter.inc({ [label]: labelOf(message) });
      });
    }
  }

  /** Stops counting events for this server (the series stay in the registry). Idempotent. */
  close(): void {
    for (const { channel, listener } of this.#subscriptions.splice(0)) diagnosticsChannel.unsubscribe(channel, listener);
  }

  #subscribe(channel: string, onMessage: (message: EventMessage) => void): void {
    const listener = onMessage as (message: unknown) => void;
    diagnosticsChannel.subscribe(channel, listener);
    this.#subscriptions.push({ channel, listener });
  }

  #currentStats(): ServerStats {
    if (this.#stats === undefined) {
      this.#stats = this.#server.stats();
      // prom-client collects every series synchronously at the start of a scrape: one stats() serves them all.
      queueMicrotask(() => (this.#stats = undefined));
    }
    return this.#stats;
  }
}

function labelOf(message: EventMessage): string {
  if ('reason' in message) return message.reason;
  return message.error.code;
}
