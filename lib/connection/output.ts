import type { Socket } from 'node:net';
import createDebug from 'debug';
import { PulsarError } from '../errors.js';
import type { Connection } from './connection.js';
import { OutboundBatch } from '../io/frame-batch.js';

/**
 * Answers gathered from one read chunk leave in parts of this many frames: a client with many requests in
 * flight gets the first answers (and sends more requests) while the server makes the rest, instead of
 * both sides taking turns with the whole batch. 16 measured best (`npm run bench -- --only rpc`).
 */
const FLUSH_FRAMES = 16;
import type { ConnectionOwner } from './owner.js';

const debug = createDebug('pulsar:lifecycle:connection');

/** What a connection's output needs from the connection itself. */
export interface OutputHost {
  /** Whether reading is on (the connection is open): only then does backpressure pause it. */
  reading(): boolean;
  /** Bytes the connection holds now, in and out (see `Connection#bufferedBytes`). */
  held(): number;
  /** Reading resumed after backpressure. */
  resumed(): void;
  /** Closes the connection for a limit it broke (a slow consumer). */
  fail(error: PulsarError): void;
}

/**
 * A connection's outbound side: frames gathered while a read chunk is dispatched leave in one write at
 * its end (broadcasts at the end of the job), the write's answer is respected (reading pauses past the
 * server's `highWaterMark` and resumes on drain), a slow consumer past `maxPendingOutput` is closed, and
 * every change in the bytes held is reported to the server's memory budget.
 */
export class ConnectionOutput {
  readonly #conn: Connection;
  readonly #socket: Socket;
  readonly #owner: ConnectionOwner;
  readonly #host: OutputHost;
  readonly #batch: OutboundBatch;
  #framesOut = 0;
  #bytesOut = 0;
  /** True while a chunk's frames are dispatched: what is sent leaves with the rest, at the end. */
  #gathering = false;
  #gatheredFrames = 0;
  /** Room left under the socket's high-water mark when the gathering began (no write happens during it). */
  #roomAtGather = 0;
  /** A flush of queued broadcasts is scheduled for the end of the current job (see queue). */
  #flushQueued = false;
  #flushQueuedOutput: (() => void) | undefined;
  #paused = false;
  /** Bytes held as last reported to the owner's budget. */
  #accounted = 0;

  /**
   * @param conn the connection, as events name it
   * @param owner the server's side of it
   * @param host the connection's own state
   */
  constructor(conn: Connection, owner: ConnectionOwner, host: OutputHost) {
    this.#conn = conn;
    this.#socket = conn.socket;
    this.#owner = owner;
    this.#host = host;
    this.#batch = new OutboundBatch(owner.codec);
  }

  /** Frames gathered or written, heartbeats included. */
  get framesOut(): number {
    return this.#framesOut;
  }
  /** Bytes of those frames, as encoded on the wire. */
  get bytesOut(): number {
    return this.#bytesOut;
  }
  /** Bytes gathered and not yet written. */
  get gathered(): number {
    return this.#batch.bytes;
  }
  /** True while reading is paused for backpressure. */
  get paused(): boolean {
    return this.#paused;
  }
  /** True while a chunk's frames are being dispatched. */
  get gathering(): boolean {
    return this.#gathering;
  }

  /** Encodes and sends one payload. @returns `false` when the socket is over its high-water mark */
  send(payload: Uint8Array): boolean {
    return this.#sent(this.#batch.add(payload));
  }

  /** Sends one frame already encoded (the heartbeat). */
  sendEncoded(wire: Buffer): boolean {
    this.#batch.addEncoded(wire);
    return this.#sent(wire.length);
  }

  /**
   * Queues one frame already encoded (a group broadcast) to leave with whatever else is sent before the
   * current job ends: a burst of broadcasts reaches each member in one write, not one each.
   */
  queue(wire: Buffer): void {
    this.#batch.addEncoded(wire);
    this.#count(wire.length);
    if (this.#gathering || this.#flushQueued) return; // a chunk being dispatched flushes at its end
    this.#flushQueued = true;
    queueMicrotask((this.#flushQueuedOutput ??= () => {
      this.#flushQueued = false;
      this.flushOrDrop();
    }));
  }

  /** Queues received frames as they arrived, `frames` of them in `wire`: the default echo in bulk. */
  echo(wire: Buffer, frames: number): void {
    this.#framesOut += frames;
    this.#bytesOut += wire.length;
    this.#batch.addEncoded(wire);
  }

  /** A read chunk's dispatch begins: what is sent is gathered until {@link endGathering}. */
  beginGathering(): void {
    this.#gathering = true;
    this.#roomAtGather = this.#socket.writableHighWaterMark - this.#socket.writableLength;
  }

  /** The dispatch is over: what was gathered is written. */
  endGathering(): void {
    this.#gathering = false;
    this.#gatheredFrames = 0;
    this.flushOrDrop();
  }

  /** Writes what was gathered, or drops it when the socket is already gone. */
  flushOrDrop(): void {
    if (this.#socket.destroyed) this.#batch.clear();
    else this.#flush();
  }

  /** The socket drained: the bytes held are reported again and reading resumes if it was paused. */
  drained(): void {
    this.account();
    if (!this.#paused) return;
    this.#paused = false;
    this.#host.resumed();
    debug('%s drained, reading resumed', this.#conn.remote);
    this.#owner.onFlowChange(this.#conn, false);
  }

  /** Reports the change in bytes held since the last report to the owner's budget. */
  account(): void {
    const held = this.#host.held();
    const delta = held - this.#accounted;
    if (delta === 0) return;
    this.#accounted = held;
    this.#owner.onHeldChange(delta);
  }

  /** Counts the bytes held now, for the owner's budget, which takes it as the new baseline. */
  recount(): number {
    this.#accounted = this.#host.held();
    return this.#accounted;
  }

  #count(size: number): void {
    this.#framesOut++;
    this.#bytesOut += size;
  }

  /** Counts a frame just gathered; writes it unless a read chunk is being dispatched (it leaves with the rest). */
  #sent(size: number): boolean {
    this.#count(size);
    if (!this.#gathering) return this.#flush();
    // A long run of answers leaves in parts of FLUSH_FRAMES frames, so that the client starts on them
    // while the rest are made (pipelining), instead of all in one write at the chunk's end.
    if (++this.#gatheredFrames >= FLUSH_FRAMES) {
      this.#gatheredFrames = 0;
      this.#flush();
    }
    return this.#batch.bytes < this.#roomAtGather;
  }

  /**
   * Writes what was gathered; closes a slow consumer whose pending output passed its limit, pauses
   * reading if it passed the high-water mark, and reports the bytes now held.
   */
  #flush(): boolean {
    const socket = this.#socket;
    const accepted = this.#batch.writeTo(socket);
    const pending = socket.writableLength;
    const limit = this.#owner.maxPendingOutput;
    if (limit > 0 && pending > limit) {
      this.#host.fail(new PulsarError('ERR_SLOW_CONSUMER', `${this.#conn}: slow consumer: ${pending} bytes of output pending, over maxPendingOutput (${limit} bytes)`));
      return false;
    }
    if (!this.#paused && pending >= this.#owner.highWaterMark && this.#host.reading()) this.#pause();
    this.account();
    return accepted;
  }

  #pause(): void {
    this.#paused = true;
    this.#socket.pause();
    debug('%s paused reading: %d bytes pending', this.#conn.remote, this.#socket.writableLength);
    this.#owner.onFlowChange(this.#conn, true);
  }
}
