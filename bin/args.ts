import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { IdleHeartbeat, LengthPrefixedCodec, PulsarError, PulsarServer, type FrameCodec, type LengthFieldLength, type PulsarServerOptions } from 'pulsar';
import { codecOf, didYouMean, type CodecSpec } from 'pulsar/tools';

/** The CLI's usage text. */
/**
 * The usage text; every default it states is the library's own, read from a server made with no options
 * (it is never started) and a default codec and heartbeat.
 */
export function usage(): string {
  const d = new PulsarServer().options;
  const hb = new IdleHeartbeat();
  const codec = new LengthPrefixedCodec();
  return `Usage: pulsar [options]                       serve (below)
       pulsar send [host:]port [message…]     send frames to a server, print the replies (pulsar send --help)
       pulsar bench [host:]port               load a server, measure frames/s and latency (pulsar bench --help)

A length-prefixed TCP echo server with heartbeats, connection reports and graceful shutdown.

Options:
  --host <addr>             bind address (default $HOST, else ${d.host}; IPv6 and 0.0.0.0 work too)
  -p, --port <n>            TCP port, 0 for a free one (default $PORT, else ${d.port})
  --unix <path>             listen on this Unix domain socket instead of TCP (a stale file
                            from a crashed run is replaced, a live server's is not)
  --heartbeat <ms>          heartbeat after this much client silence, 0 = off (default ${hb.interval})
  --report <ms>             registry report interval, 0 = off (default ${d.reportInterval || 0})
  --codec <length|varint|lines>
                            framing: a length prefix, a protobuf varint length (it-length-prefixed),
                            or text lines ending \\n or \\r\\n (default length)
  --messages <json|msgpack> messages instead of frames, echoed decoded and encoded again (msgpack
                            needs the msgpackr package)
  --rpc                     with --messages (json unless given): requests answered by id, the
                            reply being the request (try it: pulsar send 8080 --rpc '{"a":1}')
  --length-field <1|2|3|4|8>
                            size of the length prefix in bytes, for --codec length (default ${codec.lengthFieldLength})
  --byte-order <big|little> byte order of the length prefix, for --codec length (default ${codec.byteOrder})
  --max-frame <bytes>       largest frame payload (default ${size(codec.maxFrameLength)}, or what --length-field can say)
  --idle-timeout <ms>       close clients silent this long, 0 = never (default ${hb.idleTimeout})
  --max-connections <n>     refuse connections beyond n (default unlimited)
  --max-per-address <n>     refuse connections beyond n from one address, IPv6 per /64 (default unlimited)
  --allow <cidr>            only clients in this block may connect (repeatable; default all)
  --deny <cidr>             refuse clients in this block; deny wins over allow (repeatable)
  --shutdown-timeout <ms>   destroy what is still open this long after SIGINT/SIGTERM (default ${d.shutdownTimeout})
  --max-buffered <bytes>    server-wide budget for partial frames and pending output;
                            the biggest holders are closed past it, 0 = off (default ${size(d.maxBufferedBytes)})
  --frame-timeout <ms>      a frame begun must be complete within this, 0 = off (default ${d.frameTimeout})
  --max-pending-output <bytes>
                            close a client whose pending output passes this, 0 = off (default ${size(d.maxPendingOutput)})
  --write-timeout <ms>      close a client whose pending output stalls this long, 0 = off (default ${d.writeTimeout})
  --rate-limit <N/duration> frames a client may send per duration, e.g. 1000/s (default no limit)
  --rate-limit-bytes <size/duration>
                            bytes a client may send per duration, e.g. 1m/s (default no limit)
  --on-rate-limit <pause|close>
                            over the rate: stop reading until it refills, or close (default ${d.onRateLimit})
  --connection-rate <N/duration>
                            new connections one address may open per duration, e.g. 20/10s
                            (IPv6 per /64; default no limit)
  --workers <n|auto>        worker processes sharing the port, auto = one per CPU (default 1)
  --proxy-protocol          expect a PROXY protocol v1/v2 header on every connection (behind HAProxy)
  --trusted-proxy <cidr>    believe PROXY headers only from this block, refuse others (repeatable)
  --tls-cert <file>         serve TLS with this PEM certificate (chain); needs --tls-key
  --tls-key <file>          the PEM private key of --tls-cert
  --redis <url>             share the registry and deliver across instances through Redis
                            (redis://host:port; needs the ioredis package)
  --redis-ttl <ms>          an instance that stops refreshing leaves the fleet after this (default 15000)
  --metrics <[host:]port>   serve Prometheus metrics at http://host:port/metrics (host 127.0.0.1
                            unless given; port 0 picks a free one), and /livez and /readyz
  --health <[host:]port>    serve /livez and /readyz alone (Kubernetes probes)
  --drain-delay <ms>        on SIGTERM, /readyz turns 503 and the server keeps serving this long
                            before it shuts down (default ${d.drainDelay})
  --reuse-port              with --workers, each worker binds its own socket (SO_REUSEPORT; Node 22.12+)
  --log <text|json>         text logs on stderr, or JSON lines on stdout (default text)
  -h, --help                show this help
  -v, --version             show the version

Sizes are bytes, or with a k, m or g suffix (KiB, MiB, GiB): --max-buffered 64m.
Rates are a count, a slash and a duration in ms, s, m or h, with an optional number: 20/10s, 1000/s.

Signals: SIGTERM drains (--drain-delay), then shuts down; SIGINT shuts down at once; SIGHUP reloads
the TLS certificate (with --workers: replaces the workers one at a time, code and certificate anew).
systemd socket activation (LISTEN_PID, LISTEN_FDS) is served instead of binding.

Logs: DEBUG=pulsar:* adds heartbeats and the library's traces; the default is
DEBUG=pulsar:server,pulsar:connection,pulsar:report.

Examples:
  pulsar -p 0                                   a free port, named on the first log line
  pulsar --host 0.0.0.0 --metrics 9464          all interfaces, Prometheus metrics on :9464
  pulsar --log json | npx pino-pretty           JSON lines, read as text
  pulsar --max-frame 64k --max-buffered 64m     tighter limits for small frames
  pulsar --codec lines                          a line echo: try it with pulsar send 8080 --codec lines hi
  PORT=9000 pulsar --workers auto               one worker per CPU, port from the environment`;
}

/** A byte count as the flags write it: `256m`, `8m`, `64k`. */
function size(bytes: number): string {
  for (const [unit, factor] of [['g', 1024 ** 3], ['m', 1024 ** 2], ['k', 1024]] as const) {
    if (bytes % factor === 0 && bytes >= factor) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** The framing flags (`--codec`, `--length-field`, `--byte-order`, `--max-frame`), as the server and the tools share them. */
export const CODEC_FLAGS = {
  codec: { type: 'string' },
  'length-field': { type: 'string' },
  'byte-order': { type: 'string' },
  'max-frame': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** The flags, as `node:util` parseArgs takes them. */
const OPTIONS = {
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  unix: { type: 'string' },
  heartbeat: { type: 'string' },
  report: { type: 'string' },
  ...CODEC_FLAGS,
  messages: { type: 'string' },
  rpc: { type: 'boolean', default: false },
  'idle-timeout': { type: 'string' },
  'max-connections': { type: 'string' },
  'max-per-address': { type: 'string' },
  allow: { type: 'string', multiple: true, default: [] },
  deny: { type: 'string', multiple: true, default: [] },
  'shutdown-timeout': { type: 'string' },
  'max-buffered': { type: 'string' },
  'frame-timeout': { type: 'string' },
  'max-pending-output': { type: 'string' },
  'write-timeout': { type: 'string' },
  'rate-limit': { type: 'string' },
  'rate-limit-bytes': { type: 'string' },
  'on-rate-limit': { type: 'string' },
  'connection-rate': { type: 'string' },
  'proxy-protocol': { type: 'boolean', default: false },
  'trusted-proxy': { type: 'string', multiple: true, default: [] },
  workers: { type: 'string', default: '1' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  metrics: { type: 'string' },
  health: { type: 'string' },
  'drain-delay': { type: 'string' },
  'reuse-port': { type: 'boolean', default: false },
  redis: { type: 'string' },
  'redis-ttl': { type: 'string' },
  log: { type: 'string', default: 'text' },
  help: { type: 'boolean', short: 'h', default: false },
  version: { type: 'boolean', short: 'v', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** A bad flag or value: the CLI prints the message and the usage, and exits 2. */
export class UsageError extends Error {}

/** The CLI's settings: the server's options as the library takes them, and what only the CLI does. */
export interface CliOptions {
  /** The server's options, built from the flags (the library checks them: see {@link asUsageError}). */
  server: PulsarServerOptions;
  /** `--workers` (`auto`: one per CPU); 1 runs the server in this process. */
  workers: number | 'auto';
  /** `--messages` (`json` with `--rpc` alone) and `--rpc`: the message layer, if any. */
  messages: { format: 'json' | 'msgpack'; rpc: boolean } | undefined;
  /** `--redis` and `--redis-ttl`: the fleet's Redis, if any. */
  redis: { url: string; ttl: number | undefined } | undefined;
  /** Where to serve `/metrics` (`--metrics`), if anywhere. */
  metrics: { host?: string; port: number } | undefined;
  /** Where to serve `/livez` and `/readyz` alone (`--health`), if anywhere. */
  health: { host?: string; port: number } | undefined;
  /** True when systemd passed the listening socket (fd 3): served instead of binding. */
  socketActivated: boolean;
  log: 'text' | 'json';
  help: boolean;
  version: boolean;
}

/** The library's option names, as the flags that set them. */
const FLAG_OF_OPTION: Readonly<Record<string, string>> = {
  host: '--host', port: '--port', path: '--unix', reportInterval: '--report', interval: '--heartbeat',
  idleTimeout: '--idle-timeout', maxFrameLength: '--max-frame', lengthFieldLength: '--length-field',
  byteOrder: '--byte-order', maxConnections: '--max-connections', maxConnectionsPerAddress: '--max-per-address',
  allow: '--allow', deny: '--deny', shutdownTimeout: '--shutdown-timeout', maxBufferedBytes: '--max-buffered',
  frameTimeout: '--frame-timeout', maxPendingOutput: '--max-pending-output', writeTimeout: '--write-timeout',
  proxyProtocol: '--proxy-protocol', trustedProxies: '--trusted-proxy', tls: '--tls-cert', workers: '--workers',
  url: '--redis', ttl: '--redis-ttl', kind: '--codec', drainDelay: '--drain-delay', reusePort: '--reuse-port', 'rateLimit.frames': '--rate-limit', 'rateLimit.bytes': '--rate-limit-bytes',
  'rateLimit.interval': '--rate-limit', onRateLimit: '--on-rate-limit', 'connectionRate.count': '--connection-rate',
  'connectionRate.interval': '--connection-rate',
};

/**
 * Builds a library object from flags; the library's `ERR_INVALID_OPTION` becomes a usage error naming the
 * flag that set the option (from the error's `option` field, not its text).
 */
export function asUsageError<T>(build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (!(error instanceof PulsarError) || error.code !== 'ERR_INVALID_OPTION' || error.option === undefined) throw error;
    const flag = FLAG_OF_OPTION[error.option] ?? error.option;
    throw new UsageError(`${flag} ${error.reason ?? error.message}`);
  }
}

/**
 * Parses the CLI's arguments (without `node` and the script) into the library's options. `--host` and
 * `--port` default to the `HOST` and `PORT` environment variables (as container platforms set them).
 * Values are only converted here; the library checks them when they are used (see {@link asUsageError}).
 * @throws {UsageError} naming the bad flag or value
 */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv = process.env, pid = process.pid): CliOptions {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false, options: OPTIONS }));
  } catch (error) {
    throw new UsageError(usageMessage(error as Error, Object.keys(OPTIONS)));
  }
  if (values.log !== 'text' && values.log !== 'json') throw new UsageError(`--log must be 'text' or 'json', got '${values.log}'`);
  if ((values['tls-cert'] === undefined) !== (values['tls-key'] === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  if (values['redis-ttl'] !== undefined && values.redis === undefined) throw new UsageError('--redis-ttl needs --redis');
  // The environment's HOST and PORT do not apply to a Unix socket.
  const port = values.port ?? (values.unix === undefined ? nonEmpty(env.PORT) : undefined);
  const host = values.host ?? (values.unix === undefined ? nonEmpty(env.HOST) : undefined);
  // systemd socket activation (sd_listen_fds): the sockets are fds 3 on, for this very process.
  const socketActivated = env.LISTEN_PID === String(pid) && Number(env.LISTEN_FDS) >= 1;
  if (socketActivated && values.workers !== '1') throw new UsageError('--workers cannot serve a socket systemd passed (LISTEN_FDS): serve it in one process');
  const address = socketActivated ? { fd: 3 } : {
    ...(values.unix === undefined ? {} : { path: values.unix }),
    ...(host === undefined ? {} : { host }),
    ...(port === undefined ? {} : { port: whole(values.port === undefined ? 'PORT (environment)' : '--port', port) }),
  };
  // Only what was given: every default is the library's own.
  const given = <T>(text: string | undefined, parse: (text: string) => T): T | undefined => (text === undefined ? undefined : parse(text));
  const heartbeat = given(values.heartbeat, (text) => whole('--heartbeat', text));
  const idleTimeout = given(values['idle-timeout'], (text) => whole('--idle-timeout', text));
  const report = given(values.report, (text) => whole('--report', text));
  const server: PulsarServerOptions = {
    ...address,
    ...(values.codec === undefined && values['length-field'] === undefined && values['byte-order'] === undefined && values['max-frame'] === undefined
      ? {}
      : { codec: codecFrom(values.codec, values['length-field'], values['byte-order'], values['max-frame']) }),
    ...(heartbeat === undefined && idleTimeout === undefined ? {} : { heartbeat: heartbeatFrom(heartbeat, idleTimeout) }),
    ...(report === undefined ? {} : { reportInterval: report > 0 ? report : false }),
    ...defined({
      shutdownTimeout: given(values['shutdown-timeout'], (text) => whole('--shutdown-timeout', text)),
      maxBufferedBytes: given(values['max-buffered'], (text) => byteSize('--max-buffered', text)),
      frameTimeout: given(values['frame-timeout'], (text) => whole('--frame-timeout', text)),
      maxPendingOutput: given(values['max-pending-output'], (text) => byteSize('--max-pending-output', text)),
      writeTimeout: given(values['write-timeout'], (text) => whole('--write-timeout', text)),
      drainDelay: given(values['drain-delay'], (text) => whole('--drain-delay', text)),
      maxConnections: given(values['max-connections'], (text) => whole('--max-connections', text)),
      maxConnectionsPerAddress: given(values['max-per-address'], (text) => whole('--max-per-address', text)),
      connectionRate: given(values['connection-rate'], (text) => rate('--connection-rate', text)),
      tls: values['tls-cert'] === undefined ? undefined : tlsFiles(values['tls-cert'], values['tls-key']!),
      trustedProxies: values['trusted-proxy'].length === 0 ? undefined : values['trusted-proxy'],
      allow: values.allow.length === 0 ? undefined : values.allow,
      deny: values.deny.length === 0 ? undefined : values.deny,
      proxyProtocol: values['proxy-protocol'] ? true : undefined,
      reusePort: values['reuse-port'] ? true : undefined,
    }),
    ...rateLimitFrom(values['rate-limit'], values['rate-limit-bytes'], values['on-rate-limit']),
  };
  const format = values.messages ?? (values.rpc ? 'json' : undefined);
  if (format !== undefined && format !== 'json' && format !== 'msgpack') throw new UsageError(`--messages must be json or msgpack, got '${format}'`);
  return {
    server,
    messages: format === undefined ? undefined : { format, rpc: values.rpc },
    workers: values.workers === 'auto' ? 'auto' : whole('--workers', values.workers),
    redis: values.redis === undefined ? undefined : { url: values.redis, ttl: values['redis-ttl'] === undefined ? undefined : whole('--redis-ttl', values['redis-ttl']) },
    metrics: values.metrics === undefined ? undefined : hostAndPort('--metrics', values.metrics),
    health: values.health === undefined ? undefined : hostAndPort('--health', values.health),
    socketActivated,
    log: values.log,
    help: values.help,
    version: values.version,
  };
}

/** parseArgs' error in one line; an unknown flag gets the nearest known one (`--prot`: did you mean '--port'?). */
export function usageMessage(error: Error, flags: readonly string[]): string {
  const unknown = /^Unknown option '(-{1,2}[^']+)'/.exec(error.message);
  if (unknown === null) return error.message.split('\n')[0]!; // parseArgs adds multi-line hints
  const flag = unknown[1]!;
  const hint = didYouMean(flag.replace(/^-+/, '--'), flags.map((name) => `--${name}`));
  return `unknown option '${flag}'${hint === '' ? '' : ` (${hint})`}`;
}

/** The framing flags' codec, described; checked by building it (what `codecOf` refuses names its flag). */
export function codecSpecFrom(kind: string | undefined, lengthField: string | undefined, byteOrder: string | undefined, maxFrame: string | undefined): CodecSpec {
  const spec: CodecSpec = {
    ...(kind === undefined ? {} : { kind: kind as 'length' }),
    ...(maxFrame === undefined ? {} : { maxFrameLength: byteSize('--max-frame', maxFrame, 2 ** 32 - 1) }),
    ...(lengthField === undefined ? {} : { lengthFieldLength: whole('--length-field', lengthField) as LengthFieldLength }),
    ...(byteOrder === undefined ? {} : { byteOrder: byteOrder as 'big' }),
  };
  asUsageError(() => codecOf(spec));
  return spec;
}

/** The codec of the framing flags. */
function codecFrom(kind: string | undefined, lengthField: string | undefined, byteOrder: string | undefined, maxFrame: string | undefined): FrameCodec {
  return codecOf(codecSpecFrom(kind, lengthField, byteOrder, maxFrame));
}

/** `--rate-limit`, `--rate-limit-bytes`, `--on-rate-limit`: one `rateLimit`, both rates over the frames' interval. */
function rateLimitFrom(frames: string | undefined, bytes: string | undefined, action: string | undefined): Pick<PulsarServerOptions, 'rateLimit' | 'onRateLimit'> {
  const onRateLimit = action === undefined ? {} : { onRateLimit: action as 'pause' };
  if (frames === undefined && bytes === undefined) {
    if (action !== undefined) throw new UsageError('--on-rate-limit needs --rate-limit or --rate-limit-bytes');
    return {};
  }
  const perFrames = frames === undefined ? undefined : rate('--rate-limit', frames);
  const perBytes = bytes === undefined ? undefined : rate('--rate-limit-bytes', bytes, true);
  const interval = (perFrames ?? perBytes)!.interval;
  return {
    rateLimit: {
      interval,
      ...(perFrames === undefined ? {} : { frames: perFrames.count }),
      ...(perBytes === undefined ? {} : { bytes: (perBytes.count * interval) / perBytes.interval }),
    },
    ...onRateLimit,
  };
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `N/DURATION`: a count (a byte size with `bytes`), a slash, a duration with an optional number: `20/10s`, `1m/s`. */
function rate(flag: string, text: string, bytes = false): { count: number; interval: number } {
  const match = /^(\d+[kmg]?)\/(\d*)(ms|s|m|h)$/i.exec(text);
  if (match === null || (!bytes && /[kmg]$/i.test(match[1]!))) {
    throw new UsageError(`${flag} must be N/DURATION (${bytes ? 'a size such as 64k or 1m' : 'a count'}, a slash, a duration such as s, 10s, 500ms, 1m or 1h), got '${text}'`);
  }
  const count = bytes ? byteSize(flag, match[1]!) : Number(match[1]);
  const interval = Number(match[2] === '' ? 1 : match[2]) * DURATION_UNITS[match[3]!.toLowerCase()]!;
  // A rate over no time cannot be converted to another interval (--rate-limit-bytes to --rate-limit's):
  // parsing, not the range check, which is the library's.
  if (interval === 0) throw new UsageError(`${flag} needs a duration above 0, got '${text}'`);
  return { count, interval };
}

/** Digits only; the range is the library's to check. */
export function whole(flag: string, text: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value)) throw new UsageError(`${flag} must be a whole number, got '${text}'`);
  return value;
}

/** An environment variable's value, `undefined` when unset or empty. */
function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}

/** `port`, `host:port` or `[v6]:port` (the host left to the library's default when not given); the range is the library's to check. */
export function hostAndPort(flag: string, text: string): { host?: string; port: number } {
  const match = /^(?:(?:\[([^\]]+)\]|([^:]+)):)?(\d+)$/.exec(text);
  if (!match) throw new UsageError(`${flag} must be a port or host:port, got '${text}'`);
  const host = match[1] ?? match[2];
  return { ...(host === undefined ? {} : { host }), port: Number(match[3]) };
}

/** The options whose value is not `undefined`. */
function defined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}

/** `--heartbeat` and `--idle-timeout`: the heartbeat, the library's defaults for what was not given; both 0: none. */
function heartbeatFrom(interval: number | undefined, idleTimeout: number | undefined): IdleHeartbeat | false {
  const heartbeat = asUsageError(() => new IdleHeartbeat({ ...(interval === undefined ? {} : { interval }), ...(idleTimeout === undefined ? {} : { idleTimeout }) }));
  return heartbeat.interval === 0 && heartbeat.idleTimeout === 0 ? false : heartbeat;
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A byte count: digits with an optional `k`, `m` or `g` suffix (KiB, MiB, GiB), at most `max` bytes. */
export function byteSize(flag: string, text: string, max = Number.MAX_SAFE_INTEGER): number {
  const match = /^(\d+)([kmg]?)$/i.exec(text);
  const value = match ? Number(match[1]) * SIZE_UNITS[match[2]!.toLowerCase()]! : NaN;
  if (!Number.isSafeInteger(value) || value > max) {
    throw new UsageError(`${flag} must be a byte count (digits, optionally followed by k, m or g) of at most ${max}, got '${text}'`);
  }
  return value;
}

/**
 * The TLS options as a function that reads the files each time it is called: now, and again on every
 * SIGHUP (`server.reload()`), so a renewed certificate is served without a restart. Unreadable files are a
 * usage error now.
 */
function tlsFiles(certFile: string, keyFile: string): () => { cert: Buffer; key: Buffer } {
  readPem('--tls-cert', certFile);
  readPem('--tls-key', keyFile);
  return () => ({ cert: readFileSync(certFile), key: readFileSync(keyFile) });
}

export function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`${flag}: cannot read '${path}' (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
}
