import type { Headers } from './headers.js';

/** What a traced call is. */
export type TracedKind = 'request' | 'stream' | 'message';

/** A span of one call, at either end. */
export interface TraceSpan {
  /** Runs `fn` inside the span's context: calls it makes (and the handler's own spans) are its children. */
  run<T>(fn: () => T): T;
  /** Ends the span, failed with `error` when given. */
  end(error?: unknown): void;
}

/**
 * Tracing of requests, streams and messages (SPEC section 18): the `tracing` option of either end. The core
 * only calls it; `openTelemetry()` from `pulsar/opentelemetry` makes one on `@opentelemetry/api`.
 */
export interface Tracing {
  /**
   * A call this side makes (`parent`: the span of the handler it is made from with `{ parent: ctx }`, if
   * any; else the active context): starts its client span and adds its context (`traceparent`) to `headers`.
   */
  call(name: string, kind: TracedKind, headers: Record<string, string>, parent: TraceSpan | undefined): TraceSpan;
  /** A call or message that came with `headers`: starts its server span, a child of the caller's. */
  answer(name: string, kind: TracedKind, headers: Headers): TraceSpan;
  /** A message or broadcast about to leave: adds the active context (if any) to `headers`. */
  inject(headers: Record<string, string>): void;
}

/** The span name of a body: a contract's `[name, value]` gives its name; anything else the kind alone. */
export function tracedName(kind: TracedKind, body: unknown): string {
  return Array.isArray(body) && typeof body[0] === 'string' ? `pulsar ${kind} ${body[0]}` : `pulsar ${kind}`;
}
