import type { Report } from '../registry/driver.js';
import type { CloseResult, ListenAddress } from '../server/types.js';

/** What the primary and its workers say to each other over the cluster's IPC channel. */
export type ClusterMessage =
  | { pulsar: 'listening'; address: ListenAddress }
  | { pulsar: 'report'; report: Report }
  | { pulsar: 'closed'; result: CloseResult }
  | { pulsar: 'shutdown'; drainDelay: number; accepting: boolean };

/** Whether an IPC message is one of pulsar's (applications may send their own on the same channel). */
export function isClusterMessage(value: unknown): value is ClusterMessage {
  return typeof value === 'object' && value !== null && typeof (value as { pulsar?: unknown }).pulsar === 'string';
}
