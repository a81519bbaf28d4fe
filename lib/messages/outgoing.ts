import { PulsarError } from '../errors.js';
import { checkTimerMs } from '../util/validate.js';
import { checkHeaders, TIMEOUT_HEADER, type Headers } from './headers.js';
import type { Settle } from './pending.js';
import type { MessageSettings, RequestOptions } from './settings.js';
import { tracedName, type TraceSpan } from './tracing.js';

/** A call about to leave: how long it waits, what aborts it, what it carries. */
export interface Outgoing {
  timeout: number;
  signal: AbortSignal | undefined;
  headers: Headers | null;
  span: TraceSpan | undefined;
}

/**
 * What a call carries and how long it waits: an explicit `timeout`, or what is left of its parent's
 * deadline, travels as a header (the default timeout does not); the parent's signal aborts it too.
 * @param settings the session's settings
 * @param peer names the other side
 * @param owner the method, for errors (`request()`, `stream()`)
 * @param defaultTimeout what it waits without a `timeout` or a parent's deadline (not sent)
 * @throws {PulsarError} `ERR_INVALID_OPTION`, `ERR_ABORTED` (already aborted), `ERR_REQUEST_TIMEOUT` (the parent's deadline passed)
 */
export function outgoing(settings: MessageSettings, peer: string, owner: string, kind: 'request' | 'stream', value: unknown, options: RequestOptions, defaultTimeout: number): Outgoing {
  const { parent } = options;
  let timeout = options.timeout === undefined ? undefined : checkTimerMs(owner, 'timeout', options.timeout);
  let headers = checkHeaders(owner, options.headers, settings.headerLimits);
  let signal = options.signal;
  if (parent !== undefined) {
    const left = parent.deadline - Date.now();
    if (left <= 0) throw new PulsarError('ERR_REQUEST_TIMEOUT', `${owner}: the deadline of the call it is made from has passed`);
    if (left !== Infinity && (timeout === undefined || timeout === 0 || left < timeout)) timeout = Math.ceil(left);
    signal = signal === undefined ? parent.signal : AbortSignal.any([signal, parent.signal]);
  }
  if (signal?.aborted) throw new PulsarError('ERR_ABORTED', `${kind} to ${peer} aborted before it was sent`, { cause: signal.reason });
  if (timeout !== undefined && timeout !== 0) headers = { ...headers, [TIMEOUT_HEADER]: String(timeout) };
  let span: TraceSpan | undefined;
  const { tracing } = settings;
  if (tracing !== null) {
    const carried: Record<string, string> = { ...headers };
    span = tracing.call(tracedName(kind, value), kind, carried, (parent as { span?: TraceSpan } | undefined)?.span);
    headers = carried;
  }
  return { timeout: timeout ?? defaultTimeout, signal, headers, span };
}

/** `settle` that also ends `span` (with tracing). */
export function traced(settle: Settle, span: TraceSpan | undefined): Settle {
  if (span === undefined) return settle;
  return {
    resolve: (value) => {
      span.end();
      settle.resolve(value);
    },
    reject: (error) => {
      span.end(error);
      settle.reject(error);
    },
  };
}
