import type { Socket } from 'node:net';
import createDebug from 'debug';
import { PulsarError } from '../errors.js';
import { FrameWriter, type WriterHost } from '../io/frame-writer.js';
import type { Connection } from './connection.js';
import { kFail, kResumed, type ConnectionOwner } from './owner.js';

const debug = createDebug('pulsar:connection:trace');

/**
 * A connection's outbound side: what it sends goes through a {@link FrameWriter} (the client's too), so
 * the answers to one read chunk leave together and pushes from anywhere else leave once per tick; each
 * write's answer is respected (reading pauses past the server's `highWaterMark` and resumes on drain), a
 * slow consumer past `maxPendingOutput` is closed, and every change in the bytes held is reported to the
 * server's memory budget.
 */
export class ConnectionOutput implements WriterHost {
  readonly #conn: Connection;
  readonly #owner: ConnectionOwner;
  /** Made with the first frame sent: an idle connection holds none. */
  #writer: FrameWriter | null = null;
  #framesOut = 0;
  #bytesOut = 0;
  /** True while a read chunk's frames are dispatched: what is sent leaves with the rest, at the end. */
  #holding = false;
  #paused = false;
  /** Bytes held as last reported to the owner's budget. */
  #accounted = 0;

  /**
   * @param conn the connection
   * @param owner the server's side of it
   */
  constructor(conn: Connection, owner: ConnectionOwner) {
    this.#conn = conn;
    this.#owner = owner;
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
    return this.#writer?.bytes ?? 0;
  }
  /** True while reading is paused for backpressure. */
  get paused(): boolean {
    return this.#paused;
  }
  /** True while a read chunk's frames are being dispatched. */
  get holding(): boolean {
    return this.#holding;
  }

  /**
   * Encodes and sends one payload: it leaves with the other answers to the read chunk being dispatched, or
   * at the end of the tick, or with 15 more; with `now` (a stream's credit, which the producer waits on), at once.
   * @returns `false` when the socket, with what is gathered, is over its high-water mark
   */
  send(payload: Uint8Array, now = false): boolean {
    const writer = this.#writerOrNew();
    this.#count(writer.add(payload));
    if (now) writer.flush();
    return writer.hasRoom(this.#conn.socket);
  }

  /**
   * Sends one frame already encoded: a group broadcast at the end of the tick; with `now` (a heartbeat, sent
   * to a connection with nothing else going out), written at once, with nothing made for it.
   */
  sendEncoded(wire: Buffer, now: boolean): void {
    this.#count(wire.length);
    const writer = this.#writer;
    if (!now || (writer !== null && writer.bytes > 0)) {
      this.#writerOrNew().addEncoded(wire);
      if (now) writer!.flush();
      return;
    }
    this.#conn.socket.write(wire);
    this.wrote();
  }

  /**
   * Sends received frames back as they arrived, `frames` of them in `wire`: the default echo in bulk.
   * The `last` of a read's frames, with nothing gathered before them (a read of whole frames, the common
   * case), are written at once, with nothing gathered or made for them.
   */
  echo(wire: Buffer, frames: number, last: boolean): void {
    this.#framesOut += frames;
    this.#bytesOut += wire.length;
    const socket = this.#conn.socket;
    if (!last || this.gathered > 0 || socket.destroyed) {
      this.#writerOrNew().addReceived(wire, frames);
      return;
    }
    socket.write(wire);
    this.wrote();
  }

  /** A read chunk's dispatch begins: what is sent is gathered until {@link release}. */
  hold(): void {
    this.#holding = true;
    this.#writer?.hold();
  }

  /** The dispatch is over: what was gathered is written, and the bytes held (a partial frame too) reported. */
  release(): void {
    this.#holding = false;
    this.#writer?.release();
    this.account(); // once per read chunk: the writes while holding left it to here
  }

  /** Writes what was gathered now (before our FIN). */
  flush(): void {
    this.#writer?.flush();
  }

  /** The socket drained: the bytes held are reported again and reading resumes if it was paused. */
  drained(): void {
    this.account();
    if (!this.#paused) return;
    this.#paused = false;
    this.#conn[kResumed]();
    debug('%s drained, reading resumed', this.#conn.remote);
    this.#owner.flowChanged(this.#conn, false);
  }

  /** Reports the change in bytes held since the last report to the owner's budget. */
  account(): void {
    const held = this.#conn.bufferedBytes;
    const delta = held - this.#accounted;
    if (delta === 0) return;
    this.#accounted = held;
    this.#owner.heldChanged(delta);
  }

  /** Counts the bytes held now, for the owner's budget, which takes it as the new baseline. */
  recount(): number {
    this.#accounted = this.#conn.bufferedBytes;
    return this.#accounted;
  }

  /** {@inheritDoc WriterHost.writerSocket} */
  writerSocket(): Socket {
    return this.#conn.socket;
  }

  /**
   * A write was made: closes a slow consumer whose pending output passed its limit, pauses reading if it
   * passed the high-water mark, and reports the bytes now held (at the release, while a chunk is answered).
   */
  wrote(): void {
    const socket = this.#conn.socket;
    const pending = socket.writableLength;
    const { maxPendingOutput, highWaterMark } = this.#owner.settings;
    if (maxPendingOutput > 0 && pending > maxPendingOutput) {
      this.#conn[kFail](new PulsarError('ERR_SLOW_CONSUMER', `${this.#conn}: slow consumer: ${pending} bytes of output pending, over maxPendingOutput (${maxPendingOutput} bytes)`));
      return;
    }
    if (!this.#paused && pending >= highWaterMark && this.#conn.state === 'open') this.#pause();
    if (!this.#holding) this.account();
  }

  #writerOrNew(): FrameWriter {
    if (this.#writer !== null) return this.#writer;
    const writer = (this.#writer = new FrameWriter(this.#owner.settings.codec, this));
    if (this.#holding) writer.hold();
    return writer;
  }

  #count(size: number): void {
    this.#framesOut++;
    this.#bytesOut += size;
  }

  #pause(): void {
    this.#paused = true;
    this.#conn.socket.pause();
    debug('%s paused reading: %d bytes pending', this.#conn.remote, this.#conn.socket.writableLength);
    this.#owner.flowChanged(this.#conn, true);
  }
}
