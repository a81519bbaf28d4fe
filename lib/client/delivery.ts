import type { EventEmitter } from 'eventemitter3';
import { PulsarError } from '../errors.js';
import { sendPayload, type MessageSession } from '../messages/session.js';
import type { RequestOptions } from '../messages/settings.js';
import { checkTimerMs } from '../util/validate.js';
import type { ResolvedClientOptions } from './options.js';
import type { PendingRequests } from '../messages/pending.js';
import { messageOf } from '../util/format.js';
import type { ClientInbox } from './inbox.js';

/** What a client's delivery hands things to. */
export interface DeliveryHost<T> {
  /** The client, whose `frame`, `message` and `heartbeat` listeners hear what came. */
  readonly emitter: Pick<EventEmitter, 'emit' | 'listenerCount'>;
  /** Requests answered in order (without `rpc`). */
  readonly ordered: PendingRequests;
  /** What waits for an iterator. */
  readonly inbox: ClientInbox<T>;
  /** The heartbeat payload to recognise, or `null`. */
  readonly heartbeat: Buffer | null;
  /** Whether requests are matched by id (`rpc`). */
  readonly rpc: boolean;
  /** Reports a listener that threw. */
  error(error: PulsarError): void;
}

/**
 * Where what the server sends goes, on a client: a heartbeat to its listeners; with `messages`, the
 * message layer; the oldest request waiting (without `rpc`); else `frame`/`message` listeners and the
 * inbox for iterators (what nobody takes waits there, so none is lost).
 */
export class ClientDelivery<T> {
  readonly #host: DeliveryHost<T>;

  constructor(host: DeliveryHost<T>) {
    this.#host = host;
  }

  /**
   * A request answered in order (without `rpc`): written through `write`, the next data frame (or message)
   * is its answer.
   * @throws {PulsarError} (rejects) `ERR_INVALID_PAYLOAD` for what cannot be sent or equals the heartbeat,
   * `ERR_ABORTED` (naming `peer`), `ERR_INVALID_OPTION`, or as `write` throws
   */
  requestInOrder(payload: unknown, options: RequestOptions, client: Pick<ResolvedClientOptions, 'requestTimeout' | 'messages'>, peer: string, write: (bytes: Uint8Array) => void): Promise<unknown> {
    try {
      const { ordered, heartbeat } = this.#host;
      const timeout = options.timeout === undefined ? client.requestTimeout : checkTimerMs('PulsarClient', 'request() timeout', options.timeout);
      const bytes = sendPayload(client.messages, payload);
      if (client.messages === null && heartbeat !== null && heartbeat.equals(bytes)) {
        throw new PulsarError('ERR_INVALID_PAYLOAD', 'a request equal to the heartbeat payload cannot be told from a heartbeat: its answer would never arrive');
      }
      if (options.signal?.aborted) throw new PulsarError('ERR_ABORTED', `request to ${peer} aborted before it was sent`, { cause: options.signal.reason });
      write(bytes);
      return ordered.wait(ordered.nextId(), timeout, options.signal);
    } catch (error) {
      return Promise.reject(error as Error);
    }
  }

  /** A frame: a heartbeat, or the session's (with `messages`), or the oldest request's answer, or a data frame. */
  frame(frame: Buffer, session: MessageSession | null): void {
    const { heartbeat, ordered, emitter, inbox } = this.#host;
    if (heartbeat !== null && frame.equals(heartbeat)) {
      emitter.emit('heartbeat', frame);
      return;
    }
    if (session !== null) {
      session.receive(frame);
      return;
    }
    if (ordered.waiting) {
      ordered.answerOldest(Buffer.from(frame));
      return;
    }
    const heard = emitter.listenerCount('frame') > 0; // before the emit: a once() listener is gone after it
    if (heard) this.#emit('frame', frame);
    if (!heard || inbox.iterating) inbox.push(Buffer.from(frame) as T);
  }

  /** A message (not a reply, not a request): the oldest request's answer without `rpc`, else the `message` event and iterators. */
  message(message: T): void {
    const { ordered, emitter, inbox } = this.#host;
    if (!this.#host.rpc && ordered.waiting) {
      ordered.answerOldest(message);
      return;
    }
    const heard = emitter.listenerCount('message') > 0;
    if (heard) this.#emit('message', message);
    if (!heard || inbox.iterating) inbox.push(message);
  }

  /**
   * Hands a frame or a message to its listeners. One that throws is the application's error, not the
   * server's: reported as `ERR_LISTENER` (as ws reports a throwing listener apart), and the connection goes on.
   */
  #emit(event: 'frame' | 'message', item: unknown): void {
    try {
      this.#host.emitter.emit(event, item);
    } catch (error) {
      this.#host.error(new PulsarError('ERR_LISTENER', `a '${event}' listener threw: ${messageOf(error)}`, { cause: error }));
    }
  }
}
