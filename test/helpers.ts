// Shared test tools: a raw TCP test client with its own (deliberately independent) frame parser, server
// start-up on port 0 with cleanup, and event waits bounded in time. Nothing here sleeps to assert.
import { spawn, spawnSync } from 'node:child_process';
import { once, type EventEmitter as NodeEmitter } from 'node:events';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { expect } from 'chai';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { PulsarClient, PulsarServer, type ConnectionData, type Contract, type Inbound, type PulsarClientEvents, type PulsarClientOptions, type PulsarError, type PulsarServerEvents, type PulsarServerOptions } from '../lib/index.js';

v8.setFlagsFromString('--expose-gc');
/** V8's collector, for tests that measure what stays referenced. */
export const gc = vm.runInNewContext('gc') as () => void;

/**
 * Memory figures once garbage is collected, so that they show what is still referenced. Two passes a
 * macrotask apart: V8 frees Buffer memory (array buffer backing stores) after a collection, not during it.
 */
export async function liveMemory(): Promise<NodeJS.MemoryUsage> {
  gc();
  await new Promise(setImmediate);
  gc();
  return process.memoryUsage();
}

/** A connected `PulsarClient` to `port` (127.0.0.1), closed after the test. */
export async function connectClient<M = Buffer, S = never>(port: number, options: PulsarClientOptions<M, S> = {}): Promise<PulsarClient<M, S>> {
  const client = new PulsarClient<M, S>({ port, ...options });
  onCleanup(() => client.close());
  await client.connect();
  return client;
}

/** A 4-byte big-endian length-prefixed frame, built without the library's codec. */
export function frame(payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const header = Buffer.alloc(4);
  header.writeUInt32BE(body.length);
  return Buffer.concat([header, body]);
}

const cleanups: Array<() => Promise<unknown> | void> = [];

/** Registers a cleanup to run after the current test (see {@link runCleanups}). */
export function onCleanup(fn: () => Promise<unknown> | void): void {
  cleanups.push(fn);
}

/** Runs and clears the registered cleanups, newest first. Call it from `afterEach`. */
export async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) await cleanups.pop()!();
}

/** Starts a server on 127.0.0.1:0 with reports and heartbeats off unless given; closed after the test. */
export async function startServer<M = Buffer, S = never, D extends ConnectionData = ConnectionData, C extends Contract = Contract>(options: PulsarServerOptions<M, S, D, C> = {}): Promise<{ server: PulsarServer<M, S, D, C>; port: number }> {
  const server = new PulsarServer<M, S, D, C>({ port: 0, reportInterval: false, heartbeat: false, shutdownTimeout: 2000, ...options });
  onCleanup(() => server.close());
  const { port } = await server.listen();
  return { server, port };
}

/** Rejects with what `promise` rejected with, or fails if it resolved. */
export async function rejection(promise: Promise<unknown>): Promise<PulsarError> {
  try {
    await promise;
  } catch (error) {
    return error as PulsarError;
  }
  throw new Error('expected a rejection');
}

/** Waits for `event` (the next one `filter` accepts) on a pulsar server, a client or any emitter, failing after `ms`. */
export function nextEvent<M, S, D extends ConnectionData, C extends Contract, H, K extends keyof PulsarServerEvents<D, C>>(server: PulsarServer<M, S, D, C, H>, event: K, ms?: number, filter?: (...args: PulsarServerEvents<D, C>[K]) => boolean): Promise<PulsarServerEvents<D, C>[K]>;
export function nextEvent<M, S, C extends Contract, K extends keyof PulsarClientEvents<Inbound<M, S>>>(client: PulsarClient<M, S, C>, event: K, ms?: number, filter?: (...args: PulsarClientEvents<Inbound<M, S>>[K]) => boolean): Promise<PulsarClientEvents<Inbound<M, S>>[K]>;
export function nextEvent<T extends unknown[] = unknown[]>(emitter: NodeEmitter, event: string, ms?: number, filter?: (...args: T) => boolean): Promise<T>;
export function nextEvent(source: PulsarServer<unknown, unknown, ConnectionData, Contract, unknown> | PulsarClient<unknown, unknown, Contract> | NodeEmitter, event: string, ms = 5000, filter: (...args: unknown[]) => boolean = () => true): Promise<unknown[]> {
  // One way to listen for all three: their own typings of a generic event differ, their behaviour does not.
  const emitter = source as NodeEmitter;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`no '${event}' event within ${ms} ms`));
    }, ms);
    const listener = (...args: unknown[]): void => {
      if (!filter(...args)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args);
    };
    emitter.on(event, listener);
  });
}

/** Waits for a Node emitter's event, failing after `ms`. */
export async function within<T extends unknown[]>(emitter: NodeEmitter, event: string, ms = 5000): Promise<T> {
  return (await once(emitter, event, { signal: AbortSignal.timeout(ms) })) as T;
}

/**
 * Resolves once `condition` holds, checking it now and after each of `events` on `emitter`; fails
 * after `ms` with `what` in the message. Waits on events, never on time.
 */
export function when<E extends string>(
  emitter: { on(event: E, fn: () => void): unknown; off(event: E, fn: () => void): unknown },
  events: E[],
  condition: () => boolean,
  what: string,
  ms = 5000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!condition()) return;
      done();
      resolve();
    };
    const done = (): void => {
      clearTimeout(timer);
      for (const event of events) emitter.off(event, check);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    for (const event of events) emitter.on(event, check);
    check();
  });
}

/** Options of {@link TestClient.connect}. */
export interface TestClientOptions {
  /** Let the server's FIN leave our side open. @default false */
  allowHalfOpen?: boolean;
  /** Keep every received byte in `received` (off for bulk transfers). @default true */
  keepRaw?: boolean;
  /** Connect from this local address (127.0.0.2…, to stand for another client). */
  localAddress?: string;
  /** Parse 4-byte big-endian frames into `frames` (off for other framings). @default true */
  frames?: boolean;
}

/**
 * The tests' one raw client: a plain socket (TCP, or a Unix socket with `{ path }`), with its own,
 * deliberately independent, parser for 4-byte big-endian frames, every received byte kept, and waits on
 * frames, bytes and the close.
 */
export class TestClient {
  readonly socket: net.Socket;
  readonly frames: Buffer[] = [];
  received: Buffer = Buffer.alloc(0);
  bytesReceived = 0;
  closed = false;
  #parse: boolean;
  #chunks: Buffer[] = [];
  #buffered = 0;

  private constructor(socket: net.Socket, parse: boolean) {
    this.socket = socket;
    this.#parse = parse;
    // Registered first, so waits that listen to 'data' see the frames already parsed.
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => {}); // resets are asserted through `closed` and server events
    socket.on('close', () => (this.closed = true));
  }

  /** Connects to the server (a port, or a Unix socket's path); destroyed after the test. */
  static async connect(target: number | { path: string }, host = '127.0.0.1', options: TestClientOptions = {}): Promise<TestClient> {
    const allowHalfOpen = options.allowHalfOpen ?? false;
    const socket = typeof target === 'number'
      ? net.connect({ port: target, host, allowHalfOpen, ...(options.localAddress === undefined ? {} : { localAddress: options.localAddress }) })
      : net.connect({ path: target.path, allowHalfOpen });
    const client = new TestClient(socket, options.frames ?? true);
    client.keepRaw = options.keepRaw ?? true;
    onCleanup(() => void socket.destroy());
    await within(socket, 'connect');
    return client;
  }

  /** Keep every received byte in `received` (off for bulk transfers). */
  keepRaw = true;

  /** Sends payloads as frames. */
  send(...payloads: Array<Buffer | string>): boolean {
    return this.socket.write(Buffer.concat(payloads.map(frame)));
  }

  /** Waits until at least `n` frames have arrived. */
  async waitFrames(n: number, ms = 5000): Promise<Buffer[]> {
    await when(this.socket, ['data', 'close'], () => this.frames.length >= n, `${n} frame(s), got ${this.frames.length}`, ms);
    return this.frames;
  }

  /** Waits until at least `n` bytes have arrived. */
  async waitBytes(n: number, ms = 5000): Promise<void> {
    await when(this.socket, ['data', 'close'], () => this.bytesReceived >= n, `${n} byte(s), got ${this.bytesReceived}`, ms);
  }

  /** Waits until the socket is closed. */
  async waitClosed(ms = 5000): Promise<void> {
    await when(this.socket, ['close'], () => this.closed, 'the client socket to close', ms);
  }

  #onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    if (this.keepRaw) this.received = Buffer.concat([this.received, chunk]);
    if (!this.#parse) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    // Join the chunks only once a whole frame is there, so large frames cost one copy.
    while (this.#buffered >= 4) {
      if (this.#chunks[0]!.length < 4) this.#join();
      const length = this.#chunks[0]!.readUInt32BE(0);
      if (this.#buffered < 4 + length) break;
      if (this.#chunks[0]!.length < 4 + length) this.#join();
      const head = this.#chunks[0]!;
      this.frames.push(Buffer.from(head.subarray(4, 4 + length)));
      const rest = head.subarray(4 + length);
      if (rest.length > 0) this.#chunks[0] = rest;
      else this.#chunks.shift();
      this.#buffered -= 4 + length;
    }
  }

  #join(): void {
    this.#chunks = [Buffer.concat(this.#chunks)];
  }
}

/** A client error as the tests look at it. */
export interface ReportedError {
  code: string;
  cause: string | undefined;
  message: string;
  /** The client's port. */
  port: number;
}

/** Collects the codes of a server's client errors (and their causes' codes, for socket errors). */
export function clientErrors(server: PulsarServer): ReportedError[] {
  const errors: ReportedError[] = [];
  server.on('clientError', (error, conn) => {
    const cause = (error.cause as NodeJS.ErrnoException | undefined)?.code;
    errors.push({ code: (error as PulsarError).code, cause, message: error.message, port: conn.remotePort });
  });
  return errors;
}

/** Asserts one round trip for a well-behaved client (heartbeats may come in between). */
export async function served(client: TestClient, payload = `ping ${client.frames.length}`): Promise<void> {
  const before = client.frames.length;
  client.send(payload);
  const echoed = (): boolean => client.frames.slice(before).some((f) => String(f) === payload);
  await when(client.socket, ['data', 'close'], echoed, `the bystander's echo of "${payload}"`);
}

/** Connects `n` raw sockets at once (no test client machinery), each destroyed after the test. */
export async function rawSockets(port: number, n: number): Promise<net.Socket[]> {
  return Promise.all(Array.from({ length: n }, () => new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1' }, () => resolve(socket));
    socket.on('error', reject);
    onCleanup(() => void socket.destroy());
  })));
}

/** A loopback port that was free a moment ago, for a program that must be told its port (HAProxy, Prometheus). */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/**
 * Resolves with `probe()`'s first truthy result, asking again every `every` ms; fails after `ms`. Only for
 * outside programs that offer no event to wait on (an HTTP API polled by design, like Prometheus's).
 */
export async function eventually<T>(probe: () => Promise<T | undefined | false>, what: string, ms = 15000, every = 100): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const result = await probe();
      if (result) return result;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, every));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
}

/**
 * Runs a server program (HAProxy, Prometheus…) for the current test, keeping its stderr for error
 * messages; after the test it is stopped with SIGTERM and `dir`, its working folder, removed.
 */
export function startDaemon(command: string, args: string[], dir: string, env: NodeJS.ProcessEnv = process.env): { stderr: () => string; exitCode: () => number | null } {
  const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  onCleanup(async () => {
    child.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  return { stderr: () => stderr, exitCode: () => child.exitCode };
}

const PROGRAM_DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];

/**
 * Skips the calling test or suite, with a one-line reason, when a system program it drives is missing
 * and cannot be installed here (not root: `npm test` installs it as root). As root it must be there: the
 * test then runs, and fails if it is not.
 */
export function needsProgram(context: Mocha.Context, program: string): void {
  if (PROGRAM_DIRS.some((dir) => existsSync(`${dir}/${program}`)) || process.getuid?.() === 0) return;
  console.log(`      skipped: ${program} is not installed (npm test installs it when run as root)`);
  context.skip();
}

/** The repository's folder: commands run there, so that `pulsar` resolves to this package. */
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** How a command run to its end went. */
export interface CommandResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The tests' one way to run a command to its end: in the repository's folder unless told, with optional
 * standard input, bounded in time; a failing exit is returned, not thrown (see {@link succeed}).
 */
export function runCommand(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeout?: number } = {}): CommandResult {
  const result = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', input: options.input ?? '', env: options.env ?? process.env, timeout: options.timeout ?? 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Runs a command that must succeed, and returns its output, trimmed; a failure throws with what it printed. */
export function succeed(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): string {
  const result = runCommand(command, args, options);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  return result.stdout.trim();
}

/** A self-signed EC certificate and key made by `openssl` in `dir` (as `name.pem` and `name-key.pem`), valid for a day. */
export function selfSigned(dir: string, { name = 'cert', subject = '/CN=localhost', altNames = 'IP:127.0.0.1,DNS:localhost' } = {}): { cert: Buffer; key: Buffer; certFile: string; keyFile: string } {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  succeed('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', subject, '-addext', `subjectAltName=${altNames}`, '-keyout', keyFile, '-out', certFile,
  ]);
  return { cert: readFileSync(certFile), key: readFileSync(keyFile), certFile, keyFile };
}

/** Collects a server's client errors and disconnects for assertions. */
export function record(server: PulsarServer) {
  const clientErrors: Array<{ code: string; remote: string }> = [];
  const disconnects: Array<{ id: number; reason: string; code: string | undefined }> = [];
  server.on('clientError', (error, conn) => clientErrors.push({ code: (error as PulsarError).code, remote: conn.remote }));
  server.on('disconnect', (conn, reason, error) => disconnects.push({ id: conn.id, reason, code: (error as PulsarError | undefined)?.code }));
  return { clientErrors, disconnects };
}

/** GET `url`: its status, content type and body. */
export async function httpGet(url: string): Promise<{ status: number; type: string | null; body: string }> {
  const response = await fetch(url);
  return { status: response.status, type: response.headers.get('content-type'), body: await response.text() };
}

/** The resident set size of process `pid` now and at its peak, in bytes (from /proc). */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** A payload of `size` bytes whose first 4 bytes number it `n` (the rest the low byte of `n`). */
export function numbered(n: number, size: number): Buffer {
  const payload = Buffer.alloc(size, n & 0xff);
  payload.writeUInt32BE(n, 0);
  return payload;
}

/** `n` frames of {@link numbered} payloads of `size` bytes, counting from `from`, as one buffer. */
export function numberedFrames(n: number, size: number, from = 0): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => frame(numbered(from + i, size))));
}

/** Checks that `client` got the numbered frames 0..n-1, in order, each of `size` bytes when given. */
export function expectNumbered(client: TestClient, n: number, who = 'the client', size?: number): void {
  expect(client.frames.length, who).to.equal(n);
  client.frames.forEach((f, i) => {
    if (size !== undefined) expect(f.length, `${who}: frame ${i}'s size`).to.equal(size);
    expect(f.readUInt32BE(0), `${who}: frame ${i}'s number`).to.equal(i);
  });
}
