import type { Socket } from 'node:net';

/** The parts of a socket's internals that show write progress (see kernelTakenBytes). */
interface SocketWriteInternals {
  _bytesDispatched?: number;
  _handle?: { writeQueueSize?: number } | null;
}

/**
 * Bytes the kernel has accepted: dispatched to libuv minus what libuv still queues. `writableLength`
 * alone cannot show this, as it only drops when a whole write request completes, and one request
 * can hold megabytes. These fields are internal to Node (stable since v8, used by its own TLS and
 * HTTP/2 code); `undefined` if they ever disappear, and callers fall back to `writableLength`.
 */
export function kernelTakenBytes(socket: Socket): number | undefined {
  const internals = socket as unknown as SocketWriteInternals;
  const queued = internals._handle?.writeQueueSize;
  const dispatched = internals._bytesDispatched;
  return typeof queued === 'number' && typeof dispatched === 'number' ? dispatched - queued : undefined;
}


/** Write progress last seen on a connection: its `flushedBytes` then, and when they last moved. */
export interface WriteProgress {
  flushed: number;
  movedAt: number;
}

/**
 * The one rule for output still moving, used by the idle reaping and the write timeout alike: pending
 * output whose `flushedBytes` changed since last seen moved at `now` (a slow reader draining is alive and
 * not stalled, even inside one large write).
 * @returns whether it moved
 */
export function noteWriteProgress(progress: WriteProgress, peer: { readonly pendingBytes: number; readonly flushedBytes: number }, now: number): boolean {
  if (peer.pendingBytes === 0 || peer.flushedBytes === progress.flushed) return false;
  progress.flushed = peer.flushedBytes;
  progress.movedAt = now;
  return true;
}
