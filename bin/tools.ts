// `pulsar send` and `pulsar bench`: flags parsed here, the work done by pulsar/tools.
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { bench, codecOf, formatBench, send, type BenchOptions, type SendOptions } from 'pulsar/tools';
import { byteSize, CODEC_FLAGS, codecSpecFrom, hostAndPort, readPem, UsageError, usageMessage, whole } from './args.js';

const FRAMING_HELP = `  --codec <length|varint|lines>, --length-field <1|2|3|4|8>, --byte-order <big|little>, --max-frame <bytes>
                            the server's framing, as its own flags say (default: a 4-byte big-endian length)`;

/** `pulsar send --help`. */
export const SEND_USAGE = `Usage: pulsar send [host:]port [message…] [options]

Sends each message as a frame and prints each reply: UTF-8 text when it is printable, a hex dump
otherwise. Heartbeats are shown apart (on stderr), never taken for replies. With no message on a
terminal: a prompt, with history; each line typed is sent, replies and heartbeats show as they come;
Ctrl+D leaves.

Options:
  -                         as a message: the lines of stdin, one frame each
  --hex                     messages are hex bytes (spaces allowed); replies shown as hex dumps
  --json                    messages must be JSON (checked before sending); replies shown as JSON
  --rpc                     for a server with rpc: true (and json messages): each message is a JSON
                            request, each reply printed with its round-trip time
  -n, --count <n>           exit after n replies (exit 1 if the wait ends first)
  -w, --wait <ms>           exit after this much quiet after the last message (default 1000);
                            with --rpc, each request's timeout
${FRAMING_HELP}
  --tls                     connect over TLS
  --ca <file>               with --tls: trust this PEM certificate (authority)
  --insecure                with --tls: do not check the server's certificate
  -h, --help                show this help

Exit status: 0 done; 1 cannot connect, the server closed early, no reply within --wait, fewer than
--count replies, a request failed; 2 bad usage.

Examples:
  pulsar send 8080 hello                         one frame, then its echo
  printf 'one\\ntwo\\n' | pulsar send 8080 -       a frame per line
  pulsar send 8080 --hex '00ff 10' ''            binary, then an empty frame
  pulsar send 8080 --rpc '{"a":1,"b":2}'         a request, its reply and round trip
  pulsar send example.com:9000 --tls --ca ca.pem hi`;

/** `pulsar bench --help`. */
export const BENCH_USAGE = `Usage: pulsar bench [host:]port [options]

Keeps connections × depth frames in flight against an echo server, checks every answer against the
frame it answers, and prints frames/s, MB/s and round-trip percentiles (an HDR histogram).

Options:
  -c, --connections <n>     connections (default 10)
  -d, --depth <n>           frames in flight per connection (default 1)
  -s, --size <bytes>        payload bytes per frame, k/m suffixes (default 64)
  -D, --duration <s>        seconds measured (default 10)
  --warmup <s>              seconds of load before measuring (default 1)
  --rate <n>                cap in frames/s over all connections (default none)
  --threads <n>             worker threads sharing the connections (default 1)
${FRAMING_HELP}
  --json                    print one JSON object instead of the summary
  -h, --help                show this help

Exit status: 0 done; 1 cannot connect, no answers at all, answers that were not the frames sent
(mismatches) or connections that failed; 2 bad usage.

Examples:
  pulsar bench 8080                              10 connections, 1 in flight each, 10 s
  pulsar bench 8080 -c 50 -d 16 -D 5             the benchmark's small-frame load
  pulsar bench 8080 -s 16k --threads 2 --json    16 KiB frames from two threads, as JSON
  pulsar bench 8080 --rate 10000 -D 30           a steady 10,000 frames/s, for latency`;

const SEND_OPTIONS = {
  hex: { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  rpc: { type: 'boolean', default: false },
  count: { type: 'string', short: 'n' },
  wait: { type: 'string', short: 'w', default: '1000' },
  tls: { type: 'boolean', default: false },
  ca: { type: 'string' },
  insecure: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  ...CODEC_FLAGS,
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const BENCH_OPTIONS = {
  connections: { type: 'string', short: 'c', default: '10' },
  depth: { type: 'string', short: 'd', default: '1' },
  size: { type: 'string', short: 's', default: '64' },
  duration: { type: 'string', short: 'D', default: '10' },
  warmup: { type: 'string', default: '1' },
  rate: { type: 'string' },
  threads: { type: 'string', default: '1' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
  ...CODEC_FLAGS,
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** What `pulsar send` or `pulsar bench` is asked: help, or a run with these options. */
type Parsed<T> = { help: true } | { help: false; options: T };

function parse<O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, strict: true, allowPositionals: true, options });
  } catch (error) {
    throw new UsageError(usageMessage(error as Error, Object.keys(options)));
  }
}

/** `[host:]port`, the tools' first argument. */
function target(positionals: string[]): { host?: string; port: number } {
  const where = positionals[0];
  if (where === undefined) throw new UsageError('missing [host:]port: where the server listens');
  const address = hostAndPort('[host:]port', where);
  if (address.port === 0 || address.port > 65535) throw new UsageError(`[host:]port needs a port from 1 to 65535, got '${where}'`);
  return address;
}

/** A whole number of at least `min`. */
function atLeast(flag: string, text: string, min: number): number {
  const value = whole(flag, text);
  if (value < min) throw new UsageError(`${flag} must be at least ${min}, got '${text}'`);
  return value;
}

/** A number of seconds, fractions allowed. */
function seconds(flag: string, text: string, min: number): number {
  const value = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(value >= min)) throw new UsageError(`${flag} must be a number of seconds of at least ${min}, got '${text}'`);
  return value;
}

/** Parses `pulsar send`'s arguments. */
export function parseSend(argv: string[], stdinIsTty: boolean): Parsed<SendOptions> {
  const { values, positionals } = parse(argv, SEND_OPTIONS);
  if (values.help) return { help: true };
  if (values.hex && (values.json || values.rpc)) throw new UsageError('--hex reads and shows bytes: it does not go with --json or --rpc');
  if (!values.tls && (values.ca !== undefined || values.insecure)) throw new UsageError('--ca and --insecure go with --tls');
  const messages = positionals.slice(1);
  const interactive = messages.length === 0;
  if (interactive && !stdinIsTty) throw new UsageError('no message to send (give messages, or - to read lines from stdin; a prompt needs a terminal)');
  const { host, port } = target(positionals);
  return {
    help: false,
    options: {
      ...(host === undefined ? {} : { host }), port,
      codec: codecOf(codecSpecFrom(values.codec, values['length-field'], values['byte-order'], values['max-frame'])),
      tls: values.tls ? { ...(values.ca === undefined ? {} : { ca: readPem('--ca', values.ca) }), rejectUnauthorized: !values.insecure, ...(host !== undefined && isIP(host) === 0 ? { servername: host } : {}) } : false,
      messages,
      mode: values.hex ? 'hex' : values.json || values.rpc ? 'json' : 'auto',
      rpc: values.rpc,
      ...(values.count === undefined ? {} : { count: atLeast('--count', values.count, 1) }),
      wait: atLeast('--wait', values.wait, 1),
      interactive,
    },
  };
}

/** Parses `pulsar bench`'s arguments. */
export function parseBench(argv: string[]): Parsed<BenchOptions> & { json?: boolean } {
  const { values, positionals } = parse(argv, BENCH_OPTIONS);
  if (values.help) return { help: true };
  if (positionals.length > 1) throw new UsageError(`pulsar bench takes one [host:]port, got '${positionals.join(' ')}'`);
  const { host, port } = target(positionals);
  return {
    help: false,
    json: values.json,
    options: {
      ...(host === undefined ? {} : { host }), port,
      codec: codecSpecFrom(values.codec, values['length-field'], values['byte-order'], values['max-frame']),
      connections: atLeast('--connections', values.connections, 1),
      depth: atLeast('--depth', values.depth, 1),
      size: byteSize('--size', values.size, 2 ** 31),
      duration: seconds('--duration', values.duration, 0.1),
      warmup: seconds('--warmup', values.warmup, 0),
      rate: values.rate === undefined ? 0 : atLeast('--rate', values.rate, 1),
      threads: atLeast('--threads', values.threads, 1),
    },
  };
}

/** `pulsar send …`: its exit status. */
export async function runSend(argv: string[]): Promise<number> {
  const parsed = parseSend(argv, process.stdin.isTTY === true);
  if (parsed.help) {
    process.stdout.write(`${SEND_USAGE}\n`);
    return 0;
  }
  return send(parsed.options);
}

/** `pulsar bench …`: its exit status. */
export async function runBench(argv: string[]): Promise<number> {
  const parsed = parseBench(argv);
  if (parsed.help) {
    process.stdout.write(`${BENCH_USAGE}\n`);
    return 0;
  }
  const live = process.stderr.isTTY === true && !parsed.json;
  let result;
  try {
    result = await bench({
      ...parsed.options,
      ...(live ? { onProgress: ({ second, framesPerSec }) => process.stderr.write(`\r\x1b[K  ${second <= 0 ? 'warming up' : `second ${second}`}: ${Math.round(framesPerSec).toLocaleString('en-US')} frames/s`) } : {}),
    });
  } catch (error) {
    const { code, message, address } = error as NodeJS.ErrnoException & { address?: string };
    // Node's error names the address it tried; the host is the library's default when none was given.
    const host = parsed.options.host ?? address;
    const at = host === undefined ? `port ${parsed.options.port}` : `${host}:${parsed.options.port}`;
    process.stderr.write(`${live ? '\r\x1b[K' : ''}pulsar bench: cannot run against ${at}: ${message}${code && !message.includes(code) ? ` (${code})` : ''}\n`);
    return 1;
  }
  if (live) process.stderr.write('\r\x1b[K');
  process.stdout.write(`${parsed.json ? JSON.stringify(result) : formatBench(result)}\n`);
  const failure = benchFailure(result);
  if (failure !== null) process.stderr.write(`pulsar bench: ${failure}\n`);
  return failure === null ? 0 : 1;
}

/** Why a bench run failed, in words (with a hint when the server seems to speak messages), or `null`. */
function benchFailure({ frames, mismatches, errors, seconds }: { frames: number; mismatches: number; errors: number; seconds: number }): string | null {
  const hint = ' (pulsar bench sends raw frames and expects each echoed: a server with --messages or --rpc does not answer them so)';
  if (frames === 0) return `no answers in ${seconds.toFixed(2)} s${mismatches > 0 ? `, ${mismatches} frame(s) that were not the frames sent` : ''}${hint}`;
  if (mismatches > 0) return `${mismatches} answer(s) were not the frames sent${hint}`;
  if (errors > 0) return `${errors} connection(s) failed during the run`;
  return null;
}
