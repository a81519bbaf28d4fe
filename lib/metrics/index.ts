export { PulsarMetrics } from './prometheus.js';
export type { PulsarMetricsOptions } from './prometheus.js';
export { serveMetrics } from './http.js';
export type { MetricsEndpoint, MetricsEndpointOptions } from './http.js';
export { serveClusterMetrics, shareWithPrimary } from './cluster.js';
