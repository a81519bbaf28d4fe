import { readFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CidrList } from '../lib/admission/address-rules.js';
import { LengthPrefixedCodec, type LengthFieldLength } from '../lib/codecs/length-prefixed.js';
import { LineCodec } from '../lib/codecs/line.js';
import type { FrameCodec } from '../lib/codecs/types.js';
import { VarintCodec } from '../lib/codecs/varint.js';
import { PulsarError } from '../lib/errors.js';
import { didYouMean, MAX_TIMER_MS } from '../lib/validate.js';

/** The CLI's usage text. */
export const USAGE = `Usage: pulsar [options]

A length-prefixed TCP echo server with heartbeats, connection reports and graceful shutdown.

Options:
  --host <addr>             bind address (default $HOST, else 127.0.0.1; IPv6 and 0.0.0.0 work too)
  -p, --port <n>            TCP port, 0 for a free one (default $PORT, else 8080)
  --unix <path>             listen on this Unix domain socket instead of TCP (a stale file
                            from a crashed run is replaced, a live server's is not)
  --heartbeat <ms>          heartbeat after this much client silence, 0 = off (default 5000)
  --report <ms>             registry report interval, 0 = off (default 10000)
  --codec <length|varint|lines>
                            framing: a length prefix, a protobuf varint length (it-length-prefixed),
                            or text lines ending \\n or \\r\\n (default length)
  --length-field <1|2|3|4|8>
                            size of the length prefix in bytes, for --codec length (default 4)
  --byte-order <big|little> byte order of the length prefix, for --codec length (default big)
  --max-frame <bytes>       largest frame payload (default 8m, or what --length-field can say)
  --idle-timeout <ms>       close clients silent this long, 0 = never (default 0)
  --max-connections <n>     refuse connections beyond n (default unlimited)
  --max-per-address <n>     refuse connections beyond n from one address, IPv6 per /64 (default unlimited)
  --allow <cidr>            only clients in this block may connect (repeatable; default all)
  --deny <cidr>             refuse clients in this block; deny wins over allow (repeatable)
  --shutdown-timeout <ms>   destroy what is still open this long after SIGINT/SIGTERM (default 10000)
  --max-buffered <bytes>    server-wide budget for partial frames and pending output;
                            the biggest holders are closed past it, 0 = off (default 256m)
  --frame-timeout <ms>      a frame begun must be complete within this, 0 = off (default 30000)
  --max-pending-output <bytes>
                            close a client whose pending output passes this, 0 = off (default 64m)
  --write-timeout <ms>      close a client whose pending output stalls this long, 0 = off (default 10000)
  --workers <n|auto>        worker processes sharing the port, auto = one per CPU (default 1)
  --proxy-protocol          expect a PROXY protocol v1/v2 header on every connection (behind HAProxy)
  --trusted-proxy <cidr>    believe PROXY headers only from this block, refuse others (repeatable)
  --tls-cert <file>         serve TLS with this PEM certificate (chain); needs --tls-key
  --tls-key <file>          the PEM private key of --tls-cert
  --redis <url>             share the registry and deliver across instances through Redis
                            (redis://host:port; needs the ioredis package)
  --redis-ttl <ms>          an instance that stops refreshing leaves the fleet after this (default 15000)
  --metrics <[host:]port>   serve Prometheus metrics at http://host:port/metrics (host 127.0.0.1
                            unless given; port 0 picks a free one)
  --log <text|json>         text logs on stderr, or JSON lines on stdout (default text)
  -h, --help                show this help
  -v, --version             show the version

Sizes are bytes, or with a k, m or g suffix (KiB, MiB, GiB): --max-buffered 64m.

Logs: DEBUG=pulsar:* adds heartbeats and lifecycle detail; the default is
DEBUG=pulsar:server,pulsar:conn,pulsar:report.

Examples:
  pulsar -p 0                                   a free port, named on the first log line
  pulsar --host 0.0.0.0 --metrics 9464          all interfaces, Prometheus metrics on :9464
  pulsar --log json | npx pino-pretty           JSON lines, read as text
  pulsar --max-frame 64k --max-buffered 64m     tighter limits for small frames
  pulsar --codec lines                          a line echo: try it with nc localhost 8080
  PORT=9000 pulsar --workers auto               one worker per CPU, port from the environment`;

/** The CLI's settings, parsed and checked. */
export interface CliOptions {
  host: string;
  port: number;
  /** `--unix`: the Unix socket to listen on instead of host and port. */
  unix: string | undefined;
  heartbeat: number;
  report: number;
  /** The codec the flags describe (--codec, --length-field, --byte-order, --max-frame). */
  codec: FrameCodec;
  idleTimeout: number;
  maxConnections: number | undefined;
  maxPerAddress: number | undefined;
  allow: string[];
  deny: string[];
  shutdownTimeout: number;
  maxBuffered: number;
  frameTimeout: number;
  maxPendingOutput: number;
  writeTimeout: number;
  proxyProtocol: boolean;
  trustedProxies: string[];
  /** Worker processes (`--workers`, `auto` resolved); 1 runs the server in this process. */
  workers: number;
  /** PEM certificate and key, read from the --tls-cert and --tls-key files. */
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** `--redis` and `--redis-ttl`: the fleet's Redis, if any. */
  redis: { url: string; ttl: number } | undefined;
  /** Where to serve `/metrics` (`--metrics`), if anywhere. */
  metrics: { host: string; port: number } | undefined;
  log: 'text' | 'json';
  help: boolean;
  version: boolean;
}

/** The flags, as `node:util` parseArgs takes them. */
const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  unix: { type: 'string' },
  heartbeat: { type: 'string', default: '5000' },
  report: { type: 'string', default: '10000' },
  codec: { type: 'string', default: 'length' },
  'length-field': { type: 'string' },
  'byte-order': { type: 'string' },
  'max-frame': { type: 'string' },
  'idle-timeout': { type: 'string', default: '0' },
  'max-connections': { type: 'string' },
  'max-per-address': { type: 'string' },
  allow: { type: 'string', multiple: true, default: [] },
  deny: { type: 'string', multiple: true, default: [] },
  'shutdown-timeout': { type: 'string', default: '10000' },
  'max-buffered': { type: 'string', default: '256m' },
  'frame-timeout': { type: 'string', default: '30000' },
  'max-pending-output': { type: 'string', default: '64m' },
  'write-timeout': { type: 'string', default: '10000' },
  'proxy-protocol': { type: 'boolean', default: false },
  'trusted-proxy': { type: 'string', multiple: true, default: [] },
  workers: { type: 'string', default: '1' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  metrics: { type: 'string' },
  redis: { type: 'string' },
  'redis-ttl': { type: 'string' },
  log: { type: 'string', default: 'text' },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** A bad flag or value: the CLI prints the message and the usage, and exits 2. */
export class UsageError extends Error {}


/**
 * Parses the CLI's arguments (without `node` and the script). `--host` and `--port` default to the
 * `HOST` and `PORT` environment variables (as container platforms set them), then 127.0.0.1 and 8080.
 * @throws {UsageError} naming the bad flag or value
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: OPTIONS,
    }));
  } catch (error) {
    throw new UsageError(usageMessage(error as NodeJS.ErrnoException, Object.keys(OPTIONS)));
  }
  if (values.log !== 'text' && values.log !== 'json') throw new UsageError(`--log must be 'text' or 'json', got '${values.log}'`);
  const host = values.host ?? nonEmpty(env.HOST) ?? '127.0.0.1';
  if (host === '') throw new UsageError('--host must not be empty');
  checkRules(values.allow, values.deny);
  if (values.unix !== undefined) checkUnix(values);
  if (values['trusted-proxy'].length > 0 && !values['proxy-protocol']) throw new UsageError('--trusted-proxy needs --proxy-protocol');
  checkBlocks('--trusted-proxy', values['trusted-proxy']);
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  return {
    host,
    port: values.port !== undefined ? integer('--port', values.port, 0, 65535)
      : nonEmpty(env.PORT) !== undefined ? integer('PORT (environment)', env.PORT!, 0, 65535) : 8080,
    unix: values.unix,
    heartbeat: integer('--heartbeat', values.heartbeat, 0, MAX_TIMER_MS),
    report: integer('--report', values.report, 0, MAX_TIMER_MS),
    codec: codecFrom(values.codec, values['length-field'], values['byte-order'], values['max-frame']),
    idleTimeout: integer('--idle-timeout', values['idle-timeout'], 0, MAX_TIMER_MS),
    maxConnections: values['max-connections'] === undefined ? undefined : integer('--max-connections', values['max-connections'], 1, Number.MAX_SAFE_INTEGER),
    maxPerAddress: values['max-per-address'] === undefined ? undefined : integer('--max-per-address', values['max-per-address'], 1, Number.MAX_SAFE_INTEGER),
    allow: values.allow,
    deny: values.deny,
    shutdownTimeout: integer('--shutdown-timeout', values['shutdown-timeout'], 0, MAX_TIMER_MS),
    maxBuffered: byteSize('--max-buffered', values['max-buffered']),
    frameTimeout: integer('--frame-timeout', values['frame-timeout'], 0, MAX_TIMER_MS),
    maxPendingOutput: byteSize('--max-pending-output', values['max-pending-output']),
    writeTimeout: integer('--write-timeout', values['write-timeout'], 0, MAX_TIMER_MS),
    proxyProtocol: values['proxy-protocol'],
    trustedProxies: values['trusted-proxy'],
    workers: values.workers === 'auto' ? os.availableParallelism() : integer('--workers', values.workers, 1, 1024),
    tls: values['tls-cert'] === undefined ? undefined : { cert: readPem('--tls-cert', values['tls-cert']), key: readPem('--tls-key', values['tls-key']!) },
    metrics: values.metrics === undefined ? undefined : hostAndPort('--metrics', values.metrics),
    redis: redisFrom(values.redis, values['redis-ttl']),
    log: values.log,
    help: values.help,
    version: values.version,
  };
}

/** The codec of --codec and its options; a combination the codec refuses is a usage error. */
function codecFrom(kind: string, lengthField: string | undefined, byteOrder: string | undefined, maxFrame: string | undefined): FrameCodec {
  if (kind !== 'length' && (lengthField !== undefined || byteOrder !== undefined)) {
    throw new UsageError(`--length-field and --byte-order apply to --codec length, not '${kind}'`);
  }
  const limits = maxFrame === undefined ? {} : { maxFrameLength: byteSize('--max-frame', maxFrame, 2 ** 32 - 1) };
  try {
    switch (kind) {
      case 'length': return new LengthPrefixedCodec({
        ...limits,
        lengthFieldLength: lengthField === undefined ? 4 : integer('--length-field', lengthField, 1, 8) as LengthFieldLength,
        byteOrder: (byteOrder ?? 'big') as 'big',
      });
      case 'varint': return new VarintCodec(limits);
      case 'lines': return new LineCodec(limits);
      default: throw new UsageError(`--codec must be length, varint or lines, got '${kind}'`);
    }
  } catch (error) {
    if (!(error instanceof PulsarError)) throw error;
    const flag = /maxFrameLength/.test(error.message) ? '--max-frame' : /byteOrder/.test(error.message) ? '--byte-order' : '--length-field';
    throw new UsageError(`${flag}: ${error.message.replace(/^\w+: /, '')}`);
  }
}

/** parseArgs' error in one line; an unknown flag gets the nearest known one (`--prot`: did you mean '--port'?). */
function usageMessage(error: NodeJS.ErrnoException, flags: readonly string[]): string {
  const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(error.message);
  if (unknown === null) return error.message.split('\n')[0]!; // parseArgs adds multi-line hints
  const hint = didYouMean(unknown[1]!.replace(/^-+/, ''), flags).replace(/'(.+)'/, "'--$1'");
  return `unknown option '${unknown[1]}'${hint === '' ? '' : ` (${hint})`}`;
}

function integer(flag: string, text: string, min: number, max: number): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(`${flag} must be an integer from ${min} to ${max}, got '${text}'`);
  }
  return value;
}

/** `--redis URL` (and `--redis-ttl`, only with it). */
function redisFrom(url: string | undefined, ttl: string | undefined): CliOptions['redis'] {
  if (url === undefined) {
    if (ttl !== undefined) throw new UsageError('--redis-ttl needs --redis');
    return undefined;
  }
  if (!/^rediss?:\/\/[^\s]+$/.test(url)) throw new UsageError(`--redis must be a redis://host:port URL, got '${url}'`);
  return { url, ttl: ttl === undefined ? 15_000 : integer('--redis-ttl', ttl, 300, MAX_TIMER_MS) };
}

/** --unix replaces --host and --port; the address flags need a PROXY header to judge (Unix clients have no address). */
function checkUnix(values: { unix?: string; host?: string; port?: string; 'proxy-protocol': boolean; allow: string[]; deny: string[]; 'max-per-address'?: string; 'trusted-proxy': string[] }): void {
  if (values.unix === '') throw new UsageError('--unix must not be empty');
  if (values.host !== undefined || values.port !== undefined) throw new UsageError('--unix replaces --host and --port: give one or the other');
  if (values['trusted-proxy'].length > 0) throw new UsageError('--trusted-proxy cannot apply to a Unix socket: control who may connect with the file\'s permissions');
  const rules = values.allow.length + values.deny.length > 0 || values['max-per-address'] !== undefined;
  if (rules && !values['proxy-protocol']) throw new UsageError('--allow, --deny and --max-per-address need --proxy-protocol with --unix: its clients have no IP address');
}

/** Compiles the --allow and --deny blocks as the server will, so a bad one is a usage error at once. */
function checkRules(allow: string[], deny: string[]): void {
  checkBlocks('--allow', allow);
  checkBlocks('--deny', deny);
}

/** Compiles a flag's CIDR blocks as the server will; a bad one is a usage error naming the flag. */
function checkBlocks(flag: string, blocks: string[]): void {
  try {
    new CidrList('', flag, blocks);
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/^: /, ''));
  }
}

/** An environment variable's value, `undefined` when unset or empty. */
function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** `port`, `host:port` or `[v6]:port`; the host defaults to 127.0.0.1. */
function hostAndPort(flag: string, text: string): { host: string; port: number } {
  const match = /^(?:(?:\[([^\]]+)\]|([^:]+)):)?(\d+)$/.exec(text);
  if (!match) throw new UsageError(`${flag} must be a port or host:port, got '${text}'`);
  return { host: match[1] ?? match[2] ?? '127.0.0.1', port: integer(flag, match[3]!, 0, 65535) };
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A byte count: digits with an optional `k`, `m` or `g` suffix (KiB, MiB, GiB), at most `max` bytes. */
function byteSize(flag: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  const match = /^(\d+)([kmg]?)$/i.exec(text);
  const value = match ? Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(value) || value > max) {
    throw new UsageError(`${flag} must be a byte count (digits, optionally followed by k, m or g) of at most ${max}, got '${text}'`);
  }
  return value;
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read '${path}' (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}
