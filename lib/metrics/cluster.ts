import { AggregatorRegistry } from 'prom-client';
import { serveMetrics, type MetricsEndpoint, type MetricsEndpointOptions } from './http.js';
import type { PulsarMetrics } from './prometheus.js';

/**
 * In a `node:cluster` primary: serves one `/metrics` that sums the series of every worker (gauges and
 * counters summed; `prom-client`'s default series aggregated its own way), through `prom-client`'s
 * `AggregatorRegistry`. Each worker calls {@link shareWithPrimary}.
 */
export function serveClusterMetrics(options: MetricsEndpointOptions = {}): Promise<MetricsEndpoint> {
  const aggregator = new AggregatorRegistry();
  return serveMetrics(() => aggregator.clusterMetrics(), options);
}

/** In a `node:cluster` worker: makes `metrics` the series this worker gives the primary's {@link serveClusterMetrics}. */
export function shareWithPrimary(metrics: PulsarMetrics): void {
  AggregatorRegistry.setRegistries([metrics.registry]);
  // prom-client answers the primary's requests from a worker only once an AggregatorRegistry exists there.
  new AggregatorRegistry();
}
