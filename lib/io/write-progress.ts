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

