import net from 'node:net';
import type { FrameCodec, FrameDecoder } from '../codecs/types.js';
import { HEARTBEAT_PAYLOAD } from '../heartbeat.js';
import { codecOf, type CodecSpec } from './codec-spec.js';
import { HISTOGRAM, loadHdrHistogram } from './histogram.js';

/** One thread's share of a `pulsar bench` run (plain data: it crosses to worker threads). */
export interface LoadSpec {
  host: string;
  port: number;
  codec: CodecSpec;
  /** Connections this thread opens. */
  connections: number;
  /** Frames in flight per connection. */
  depth: number;
  /** Payload bytes per frame. */
  size: number;
  warmupMs: number;
  durationMs: number;
  /** This thread's cap in frames/s; `0`: none. */
  rate: number;
}

/** What one thread measured (plain data). */
export interface LoadResult {
  /** Answers checked in the measured window. */
  frames: number;
  /** Their payload bytes, both ways. */
  bytes: number;
  /** Ms the measured window lasted. */
  elapsedMs: number;
  /** Connections that failed (reset, closed by the server) during the run. */
  errors: number;
  /** Answers that were not the frame sent (another payload, another length, out of order). */
  mismatches: number;
  /** Heartbeat frames received (not answers). */
  heartbeats: number;
  /** Round-trip times of the measured answers in µs: an HDR histogram, compressed (hdr-histogram-js). */
  histogram: string;
}

/** Progress of a thread, sent about every 250 ms. */
export type LoadProgress = (measuredFrames: number) => void;

/**
 * Frames of a bench connection: payloads of `size` bytes whose first (up to 16) bytes are the frame's
 * sequence number in hex, the rest letters (no newline, for the line codec), so that each answer is
 * checked against the frame it answers.
 */
class Frames {
  readonly wire: Buffer;
  /** Where the payload starts in `wire`. */
  readonly offset: number;
  readonly template: Buffer;
  readonly digits: number;

  constructor(codec: FrameCodec, size: number) {
    this.template = Buffer.alloc(size);
    for (let i = 0; i < size; i++) this.template[i] = 0x61 + (i % 26);
    this.digits = Math.min(16, size);
    this.wire = codec.encode(this.template);
    this.offset = size === 0 ? this.wire.length : this.wire.indexOf(this.template);
  }

  /** Writes frame `seq` at `at` in `into`. */
  write(into: Buffer, at: number, seq: number): void {
    this.wire.copy(into, at);
    // The sequence number in hex, least significant digit last, written without making a string.
    let rest = seq;
    for (let i = at + this.offset + this.digits - 1; i >= at + this.offset; i--) {
      into[i] = HEX[rest & 15]!;
      rest = Math.floor(rest / 16);
    }
  }

  /** Whether `payload` is frame `seq`. */
  matches(payload: Buffer, seq: number): boolean {
    const { template, digits } = this;
    if (payload.length !== template.length) return false;
    let rest = seq;
    for (let i = digits - 1; i >= 0; i--) {
      if (payload[i] !== HEX[rest & 15]) return false;
      rest = Math.floor(rest / 16);
    }
    return payload.compare(template, digits, template.length, digits) === 0;
  }
}

/** The ASCII hex digits, by value. */
const HEX = Buffer.from('0123456789abcdef');

/**
 * Runs one thread's share: opens the connections, keeps `depth` frames in flight on each (within the
 * rate cap), checks every answer, and measures after the warm-up.
 * @throws the first connection's error when the server cannot be reached
 */
export async function runLoad(spec: LoadSpec, progress: LoadProgress = () => {}): Promise<LoadResult> {
  const codec = codecOf(spec.codec);
  const frames = new Frames(codec, spec.size);
  const heartbeatPayload = Buffer.from(HEARTBEAT_PAYLOAD);
  const hdr = await loadHdrHistogram();
  const histogram = hdr.build(HISTOGRAM);
  const state = { measuring: false, stopping: false, frames: 0, bytes: 0, errors: 0, mismatches: 0, heartbeats: 0, sent: 0, started: 0 };
  const sockets = await Promise.all(Array.from({ length: spec.connections }, () => connect(spec.host, spec.port)));
  const rateStart = performance.now();
  const waiting = new Set<Lane>();

  class Lane {
    readonly socket: net.Socket;
    readonly decoder: FrameDecoder;
    readonly sentAt = new Float64Array(spec.depth);
    next = 0;
    answered = 0;
    dead = false;

    constructor(socket: net.Socket) {
      this.socket = socket;
      this.decoder = codec.createDecoder();
      socket.setNoDelay(true);
      socket.on('data', (chunk: Buffer) => this.receive(chunk));
      socket.on('error', () => this.fail());
      socket.on('close', () => this.fail());
    }

    get inflight(): number {
      return this.next - this.answered;
    }

    /** Sends up to `wanted` frames, within the rate cap; a lane held back by the cap waits for the ticker. */
    fill(wanted: number): void {
      let n = wanted;
      if (spec.rate > 0) {
        const allowed = Math.floor(((performance.now() - rateStart) / 1000) * spec.rate) - state.sent;
        if (allowed < n) {
          n = Math.max(0, allowed);
          waiting.add(this);
        }
      }
      if (n <= 0 || state.stopping || this.dead) return;
      const size = frames.wire.length;
      const out = Buffer.allocUnsafe(n * size);
      const now = performance.now();
      for (let i = 0; i < n; i++) {
        const seq = this.next++;
        frames.write(out, i * size, seq);
        this.sentAt[seq % spec.depth] = now;
      }
      state.sent += n;
      this.socket.write(out);
    }

    receive(chunk: Buffer): void {
      this.decoder.push(chunk);
      let answered = 0;
      const now = performance.now();
      try {
        for (let payload = this.decoder.next(); payload !== null; payload = this.decoder.next()) {
          if (payload.equals(heartbeatPayload)) { // never an answer: those start with hex digits
            state.heartbeats++;
            continue;
          }
          const seq = this.answered++;
          answered++;
          if (!frames.matches(payload, seq)) state.mismatches++;
          if (state.measuring) {
            state.frames++;
            state.bytes += 2 * payload.length;
            histogram.recordValue(Math.max(1, Math.round((now - this.sentAt[seq % spec.depth]!) * 1000)));
          }
        }
      } catch {
        state.mismatches++; // bytes that are not frames of this codec
        this.socket.destroy();
        return;
      }
      if (answered > 0) this.fill(answered);
    }

    fail(): void {
      if (this.dead) return;
      this.dead = true;
      if (!state.stopping) state.errors++;
    }
  }

  const lanes = sockets.map((socket) => new Lane(socket));
  const ticker = spec.rate > 0 ? setInterval(() => {
    for (const lane of [...waiting]) {
      waiting.delete(lane);
      lane.fill(spec.depth - lane.inflight);
    }
  }, 2) : undefined;
  const reporter = setInterval(() => progress(state.frames), 250);
  for (const lane of lanes) lane.fill(spec.depth);

  await sleep(spec.warmupMs);
  state.measuring = true;
  const from = performance.now();
  await sleep(spec.durationMs);
  state.measuring = false;
  const elapsedMs = performance.now() - from;
  state.stopping = true;
  clearInterval(ticker);
  clearInterval(reporter);
  progress(state.frames);
  // Let the answers in flight come back (they are checked, not counted), then close.
  const drained = Date.now() + 2000;
  while (lanes.some((lane) => !lane.dead && lane.inflight > 0) && Date.now() < drained) await sleep(5);
  for (const lane of lanes) lane.socket.destroy();
  const encoded = hdr.encodeIntoCompressedBase64(histogram);
  histogram.destroy();
  return { frames: state.frames, bytes: state.bytes, elapsedMs, errors: state.errors, mismatches: state.mismatches, heartbeats: state.heartbeats, histogram: encoded };
}

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
