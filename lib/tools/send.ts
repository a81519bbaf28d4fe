import { createInterface } from 'node:readline';
import type { ConnectionOptions } from 'node:tls';
import { PulsarClient } from '../client/client.js';
import type { FrameCodec } from '../codecs/types.js';
import { PulsarError, RemoteError } from '../errors.js';
import { hostPort, messageOf } from '../util/format.js';
import { json } from '../messages/codec.js';
import { display, formatMs, payloadOf, type DisplayMode } from './display.js';

/** Options of {@link send}. */
export interface SendOptions {
  /** @default '127.0.0.1' */
  host?: string;
  /** The server's port. */
  port: number;
  /** The server's framing. @default new LengthPrefixedCodec() */
  codec?: FrameCodec;
  /** `tls.connect()` options (`ca`, `rejectUnauthorized`…), or `false` for plain TCP. @default false */
  tls?: ConnectionOptions | false;
  /** The messages to send, in order; `'-'` stands for the lines of `input`. Empty with `interactive`. */
  messages?: readonly string[];
  /**
   * How messages are read and replies shown: `auto` (text in, text out when printable, a hex dump
   * otherwise), `hex` (hex digits in, hex dumps out), `json` (JSON in, checked; JSON out). @default 'auto'
   */
  mode?: DisplayMode;
  /** Each message is a JSON request (`rpc: true` on the server), each reply shown with its round-trip time. @default false */
  rpc?: boolean;
  /** Exit after this many replies (frames mode). @default none: after `wait` ms of quiet */
  count?: number;
  /** Ms of quiet (no reply) after the last message before exiting; with `rpc`, each request's timeout. @default 1000 */
  wait?: number;
  /** A prompt on a terminal: each line typed is sent; replies and heartbeats shown as they come; Ctrl+D leaves. @default false */
  interactive?: boolean;
  /** Where `-` lines and interactive input come from. @default process.stdin */
  input?: NodeJS.ReadableStream;
  /** Where replies go. @default process.stdout */
  output?: NodeJS.WritableStream;
  /** Where heartbeats, errors and notes go. @default process.stderr */
  errors?: NodeJS.WritableStream;
}

/** The end of a `send`: its exit status (0 done, 1 a failure: not connected, replies missing, an error reply). */
type Finish = (status: number) => void;

/** What a session runs with: the options, defaults applied. */
type SessionOptions = Required<Pick<SendOptions, 'mode' | 'wait' | 'output' | 'errors'>> & SendOptions;

/**
 * `pulsar send`: connects, sends each message as a frame (or with `rpc` as a request) and prints each
 * reply, heartbeats apart (never taken for replies).
 * @returns the exit status: 0 when done, 1 when the server cannot be reached, closes early, fewer than
 * `count` replies come, or a request fails; 2 for a message that is not what `mode` reads
 */
export async function send(options: SendOptions): Promise<number> {
  const { host = '127.0.0.1', port, codec, tls = false, mode = 'auto', rpc = false, wait = 1000 } = options;
  const output = options.output ?? process.stdout;
  const errors = options.errors ?? process.stderr;
  const target = hostPort(host, port);
  // Messages given are checked before connecting: a typo sends nothing.
  for (const message of options.messages ?? []) {
    if (message === '-') continue;
    try {
      payloadOf(message, rpc ? 'json' : mode);
    } catch (error) {
      errors.write(`pulsar send: ${rpc || mode === 'json' ? 'not JSON' : 'not hex'}: ${messageOf(error)}\n`);
      return 2;
    }
  }
  const client = rpc
    ? new PulsarClient({ host, port, tls, requestTimeout: wait, messages: json(), rpc: true, ...(codec ? { codec } : {}) })
    : new PulsarClient({ host, port, tls, ...(codec ? { codec } : {}) });
  try {
    await client.connect();
  } catch (error) {
    errors.write(`pulsar send: cannot connect to ${target}: ${reasonOf(error)}\n`);
    return 1;
  }
  client.on('error', (error) => errors.write(`pulsar send: ${error.message}\n`));
  const session = new SendSession(client, { ...options, mode: rpc ? 'json' : mode, wait, output, errors });
  const status = options.interactive ? await session.interactive(options.input ?? process.stdin) : await session.oneShot(lines(options.messages ?? [], options.input ?? process.stdin));
  await client.close();
  return status;
}

/** One `send` run's state: replies counted, the quiet timer, the way out. */
class SendSession {
  readonly #client: PulsarClient<Buffer> | PulsarClient<unknown>;
  readonly #options: SessionOptions;
  #replies = 0;
  /** Messages sent (requests included). */
  #sent = 0;
  #failures = 0;
  #quiet: ReturnType<typeof setTimeout> | undefined;
  #finish: Finish = () => {};
  /** True once the run's status is known: what happens after (our own close) is not reported. */
  #finished = false;
  #show: (line: string) => void;
  /** What replies are prefixed with: `< ` at the prompt, nothing in one-shot output. */
  #marker = '';

  constructor(client: PulsarClient<Buffer> | PulsarClient<unknown>, options: SessionOptions) {
    this.#client = client;
    this.#options = options;
    this.#show = (line) => options.output.write(`${line}\n`);
  }

  /** Sends every message, then waits for the replies: `count` of them, or `wait` ms of quiet. */
  async oneShot(messages: AsyncIterable<string>): Promise<number> {
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    this.#listen('');
    const { rpc, count, errors } = this.#options;
    for await (const message of messages) {
      if (!(await this.#send(message, true))) {
        this.#finished = true;
        return 2;
      }
      if (rpc && count !== undefined && this.#replies >= count) break; // --count holds with --rpc too
    }
    if (rpc) {
      this.#finished = true;
      if (count !== undefined && this.#replies < count) {
        errors.write(`pulsar send: ${this.#replies} of ${count} replies\n`);
        return 1;
      }
      return this.#failures > 0 ? 1 : 0;
    }
    this.#armQuiet();
    return done;
  }

  /** A prompt: each line typed is sent, replies and heartbeats are printed as they come; Ctrl+D leaves. */
  async interactive(input: NodeJS.ReadableStream): Promise<number> {
    const { output } = this.#options;
    const prompt = createInterface({ input, output, prompt: '> ', terminal: true, historySize: 1000 });
    // Printed above the prompt, which is drawn again with what was being typed.
    this.#show = (line) => {
      output.write(`\r\x1b[K${line}\n`);
      prompt.prompt(true);
    };
    const done = new Promise<number>((resolve) => (this.#finish = resolve));
    this.#listen('< ');
    prompt.on('line', (line) => void this.#send(line, false).then(() => prompt.prompt()));
    prompt.on('close', () => this.#done(0)); // Ctrl+D
    output.write(`connected to ${hostPort(this.#options.host ?? '127.0.0.1', this.#options.port)}; Ctrl+D to leave\n`);
    prompt.prompt();
    const status = await done;
    prompt.close();
    return status;
  }

  /** Replies, pushes, heartbeats and the server's close, shown as they come. */
  #listen(marker: string): void {
    this.#marker = marker;
    const client = this.#client as PulsarClient<Buffer>;
    const { mode, errors, count } = this.#options;
    client.on('heartbeat', () => (marker === '' ? errors.write('(heartbeat)\n') : this.#show(`${marker}(heartbeat)`)));
    client.on('frame', (frame) => {
      this.#replies++;
      this.#show(`${marker}${display(frame, mode)}`);
      if (count !== undefined && this.#replies >= count) this.#done(0);
      else if (this.#quiet !== undefined) this.#armQuiet();
    });
    (this.#client as PulsarClient<unknown>).on('message', (message) => this.#show(`${marker}(message) ${JSON.stringify(message)}`));
    client.on('close', () => {
      if (this.#finished) return;
      const enough = count === undefined ? marker === '' : this.#replies >= count;
      errors.write(`pulsar send: the server closed the connection${count === undefined ? '' : ` after ${this.#replies} of ${count} replies`}\n`);
      this.#done(enough ? 0 : 1);
    });
  }

  /** Sends one message (a request with `rpc`); `false` when it is not what the mode reads. */
  async #send(message: string, oneShot: boolean): Promise<boolean> {
    const { mode, errors } = this.#options;
    let payload: Buffer;
    try {
      payload = payloadOf(message, mode);
    } catch (error) {
      errors.write(`pulsar send: ${mode === 'json' ? 'not JSON' : 'not hex'}: ${messageOf(error)}\n`);
      return !oneShot;
    }
    if (this.#options.rpc) {
      await this.#request(JSON.parse(message) as unknown);
      return true;
    }
    const client = this.#client as PulsarClient<Buffer>;
    try {
      this.#sent++;
      if (!client.send(payload)) await new Promise<void>((resolve) => client.once('drain', resolve));
    } catch (error) {
      errors.write(`pulsar send: ${messageOf(error)}\n`);
      this.#failures++;
    }
    return true;
  }

  /** One request, its reply (or error) shown with the round-trip time. */
  async #request(value: unknown): Promise<void> {
    const started = performance.now();
    try {
      this.#sent++;
      const reply = await (this.#client as PulsarClient<unknown>).request(value);
      this.#replies++;
      this.#show(`${this.#marker}${JSON.stringify(reply ?? null)}  (${formatMs(performance.now() - started)})`);
    } catch (error) {
      this.#failures++;
      const elapsed = formatMs(performance.now() - started);
      if (error instanceof RemoteError) this.#show(`${this.#marker}error ${error.remoteCode}: ${error.remoteMessage}  (${elapsed})`);
      else this.#options.errors.write(`pulsar send: ${(error as PulsarError).code ?? ''} ${messageOf(error)}\n`);
    }
  }

  #armQuiet(): void {
    clearTimeout(this.#quiet);
    this.#quiet = setTimeout(() => {
      const { count, wait, errors } = this.#options;
      if (count === undefined && (this.#replies > 0 || this.#sent === 0)) return this.#done(0);
      if (count === undefined) {
        // Sent and never answered: a server that speaks --rpc (or another framing) drops what it cannot read.
        errors.write(`pulsar send: no reply within ${wait} ms to ${this.#sent} message(s) (does the server speak --rpc? then send with --rpc)\n`);
      } else {
        errors.write(`pulsar send: ${this.#replies} of ${count} replies after ${wait} ms of quiet\n`);
      }
      this.#done(1);
    }, this.#options.wait);
  }

  #done(status: number): void {
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#quiet);
    this.#finish(status);
  }
}

/** The messages in order, `-` standing for the lines of `input`. */
async function* lines(messages: readonly string[], input: NodeJS.ReadableStream): AsyncGenerator<string> {
  for (const message of messages) {
    if (message !== '-') {
      yield message;
      continue;
    }
    for await (const line of createInterface({ input, crlfDelay: Infinity })) yield line;
  }
}

/** Node's connection errors, in words. */
const CONNECT_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused', ENOTFOUND: 'no such host', EAI_AGAIN: 'the host name cannot be resolved now',
  EHOSTUNREACH: 'host unreachable', ENETUNREACH: 'network unreachable', ETIMEDOUT: 'timed out', ECONNRESET: 'connection reset',
};

/** Why a connection failed, in a few words with Node's code: `connection refused (ECONNREFUSED)`. */
function reasonOf(error: unknown): string {
  const { code } = error as NodeJS.ErrnoException;
  if (code !== undefined && CONNECT_ERRORS[code] !== undefined) return `${CONNECT_ERRORS[code]} (${code})`;
  return code !== undefined && !messageOf(error).includes(code) ? `${messageOf(error)} (${code})` : messageOf(error);
}
