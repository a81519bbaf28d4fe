import type { Contract } from '../contract/contract.js';
import { CLIENT_APPLICATION_OPTIONS, type ClientApplicationOptions } from '../contract/client-application.js';
import { resolveApplication, type ResolvedApplication } from '../contract/options.js';
import type { ConnectionOptions } from 'node:tls';
import { LengthPrefixedCodec } from '../codecs/length-prefixed.js';
import type { FrameCodec } from '../codecs/types.js';
import { HEARTBEAT_PAYLOAD } from '../heartbeat.js';
import type { MessageCodec } from '../messages/codec.js';
import type { StandardSchemaV1 } from '../messages/schema.js';
import { MESSAGE_OPTIONS, resolveMessageSettings, type MessageContext, type MessageOptions, type MessageSettings } from '../messages/settings.js';
import { checkInteger, checkKnownOptions, checkTimerMs, CODEC_OPTION_HINTS, conflictingOption, invalidOption } from '../util/validate.js';

/** Reconnection with capped exponential backoff and jitter. */
export interface ReconnectOptions {
  /** Delay before the first attempt, in ms. @default 100 */
  initialDelay?: number;
  /** Longest delay between attempts, in ms. @default 10000 */
  maxDelay?: number;
  /** Attempts after one loss of the connection before giving up (`close` follows). @default Infinity */
  maxAttempts?: number;
}

/**
 * With `rpc`: answers the server's requests (`conn.request()`): what it returns or resolves is the
 * reply; a throw is an error reply with the error's `code` (`ERR_HANDLER` without one) and message.
 */
export type ClientRequestHandler<M> = (message: M, ctx: MessageContext) => unknown;

/**
 * Options of {@link PulsarClient}; every one is optional.
 * @typeParam M the messages' type, from `messages` (`Buffer`: frames)
 * @typeParam S the client's `schema` output, when it has one
 */
export interface PulsarClientOptions<M = Buffer, S = never, C extends Contract = Contract> extends Omit<MessageOptions, 'messages' | 'schema' | 'requestTimeout'>, ClientApplicationOptions<C> {
  /**
   * Messages instead of frames, one per frame (`json()`, `msgpack()` from `pulsar/msgpack`): `send()`
   * and `request()` encode, the `message` event and async iteration yield decoded values. @default none
   */
  messages?: MessageCodec<M>;
  /** Validates every inbound message (any Standard Schema); overrides the codec's own. Needs `messages`. @default the codec's */
  schema?: StandardSchemaV1<unknown, S>;
  /** With `rpc`: answers the server's requests. Without it, they get an `ERR_NO_HANDLER` error reply. @default none */
  handler?: ClientRequestHandler<NoInfer<[S] extends [never] ? M : S>>;
  /** @default '127.0.0.1' */
  host?: string;
  /** @default 8080 */
  port?: number;
  /** The server's codec. @default new LengthPrefixedCodec() */
  codec?: FrameCodec;
  /** How long `connect()` may take, in ms. @default 5000 */
  connectTimeout?: number;
  /**
   * Frames equal to this payload are the server's heartbeats: emitted as `heartbeat`, not as data. `false`
   * treats every frame as data. @default the 9 ASCII bytes `HEARTBEAT`
   */
  heartbeatPayload?: Uint8Array | string | false;
  /**
   * Dead-server detection: no byte at all from the server for this many ms (heartbeats count) is an
   * `ERR_SERVER_SILENT` error and closes the connection. Set it to a few of the server's heartbeat
   * intervals. `0` is off. @default 0
   */
  silenceTimeout?: number;
  /** How long `request()` waits for its answer, in ms, unless told otherwise; `0`: as long as the connection lasts. @default 30000 */
  requestTimeout?: number;
  /** Reconnect after the connection is lost (not after `close()`). @default false */
  reconnect?: boolean | ReconnectOptions;
  /**
   * Connect over TLS: Node's `tls.connect()` options (`ca` for a private certificate authority,
   * `servername`…); `host` and `port` come from the options above. @default false
   */
  tls?: ConnectionOptions | false;
}

const CLIENT_OPTIONS: Record<keyof PulsarClientOptions, true> = {
  host: true, port: true, codec: true, connectTimeout: true, heartbeatPayload: true, silenceTimeout: true,
  reconnect: true, tls: true, handler: true, ...MESSAGE_OPTIONS, ...CLIENT_APPLICATION_OPTIONS,
};

/** {@link PulsarClientOptions} with every default applied. */
export type ResolvedClientOptions = Readonly<Required<Omit<PulsarClientOptions, 'reconnect' | 'heartbeatPayload' | 'tls' | 'handler' | keyof MessageOptions | keyof ClientApplicationOptions>>> & {
  /** The contract, routes and hello, or `null` without a contract or a hello. */
  readonly application: ResolvedApplication | null;
  /** The message layer's settings, or `null` for frames. */
  readonly messages: MessageSettings | null;
  /** Answers the server's requests, or `null`. */
  readonly handler: ClientRequestHandler<unknown> | null;
  /** Ms a request waits; `0`: no limit. */
  readonly requestTimeout: number;
  /** `tls.connect()` options, or `null` for plain TCP. */
  readonly tls: ConnectionOptions | null;
  /** The heartbeat payload to recognise, or `null` when heartbeats are delivered as frames. */
  readonly heartbeatPayload: Buffer | null;
  /** The reconnection backoff, or `null` when the client does not reconnect. */
  readonly reconnect: Readonly<Required<ReconnectOptions>> | null;
};

/** Applies defaults and validates every option of `PulsarClient`, naming the bad one and its value. */
export function resolveClientOptions<M, S, C extends Contract>(options: PulsarClientOptions<M, S, C>): ResolvedClientOptions {
  checkKnownOptions('PulsarClient', options, CLIENT_OPTIONS, CODEC_OPTION_HINTS);
  const application = resolveApplication('PulsarClient', options);
  const reconnect = options.reconnect ?? false;
  const heartbeat = options.heartbeatPayload ?? HEARTBEAT_PAYLOAD;
  if (typeof heartbeat !== 'string' && heartbeat !== false && !(heartbeat instanceof Uint8Array)) {
    throw invalidOption('PulsarClient', 'heartbeatPayload', 'must be a string, a Uint8Array or false', heartbeat);
  }
  const backoff = typeof reconnect === 'object' ? reconnect : {};
  checkKnownOptions('PulsarClient reconnect', backoff, { initialDelay: true, maxDelay: true, maxAttempts: true });
  return {
    host: options.host ?? '127.0.0.1',
    port: checkInteger('PulsarClient', 'port', options.port ?? 8080, 1, 65535),
    codec: options.codec ?? new LengthPrefixedCodec(),
    connectTimeout: checkTimerMs('PulsarClient', 'connectTimeout', options.connectTimeout ?? 5000, 1),
    heartbeatPayload: heartbeat === false ? null : Buffer.from(heartbeat),
    tls: resolveTls(options.tls ?? false),
    silenceTimeout: checkTimerMs('PulsarClient', 'silenceTimeout', options.silenceTimeout ?? 0),
    requestTimeout: checkTimerMs('PulsarClient', 'requestTimeout', options.requestTimeout ?? 30_000),
    messages: resolveMessageSettings('PulsarClient', (application === null ? options : { ...options, rpc: true }) as MessageOptions, options.codec),
    handler: resolveHandler(options.handler, application !== null || (options.rpc ?? false)),
    application,
    reconnect: reconnect === false ? null : {
      initialDelay: checkTimerMs('PulsarClient', 'reconnect.initialDelay', backoff.initialDelay ?? 100, 1),
      maxDelay: checkTimerMs('PulsarClient', 'reconnect.maxDelay', backoff.maxDelay ?? 10000, 1),
      maxAttempts: backoff.maxAttempts === undefined || backoff.maxAttempts === Infinity
        ? Infinity
        : checkInteger('PulsarClient', 'reconnect.maxAttempts', backoff.maxAttempts, 1),
    },
  };
}

function resolveTls(option: ConnectionOptions | false): ConnectionOptions | null {
  if (option === false) return null;
  if (typeof option !== 'object' || option === null) throw invalidOption('PulsarClient', 'tls', 'must be tls.connect() options or false', option);
  return option;
}

function resolveHandler(handler: unknown, rpc: boolean): ClientRequestHandler<unknown> | null {
  if (handler === undefined) return null;
  if (typeof handler !== 'function') throw invalidOption('PulsarClient', 'handler', 'must be a function', handler);
  if (!rpc) throw conflictingOption('PulsarClient', 'handler', 'answers the server\'s requests: it needs rpc: true (messages from the server go to the message event and to iteration)');
  return handler as ClientRequestHandler<unknown>;
}
