import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import type { Headers } from '../messages/headers.js';
import type { TracedKind, TraceSpan, Tracing } from '../messages/tracing.js';

/** Options of {@link openTelemetry}. */
export interface OpenTelemetryOptions {
  /** The tracer spans are made with. @default trace.getTracer('pulsar') from the global provider */
  tracer?: Tracer;
}

/** A span of OpenTelemetry's, with the context it is the active span of. */
class OpenTelemetrySpan implements TraceSpan {
  readonly span: Span;
  readonly context: Context;

  constructor(span: Span, active: Context) {
    this.span = span;
    this.context = active;
  }

  run<T>(fn: () => T): T {
    return context.with(this.context, fn);
  }

  end(error?: unknown): void {
    if (error !== undefined) {
      this.span.recordException(error instanceof Error ? error : String(error));
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: (error as { code?: string }).code ?? (error as Error)?.message });
    }
    this.span.end();
  }
}

/**
 * Tracing with OpenTelemetry (`@opentelemetry/api`, an optional peer dependency loaded by this entry
 * point only), for the `tracing` option of a server or a client: a CLIENT span for every request and stream
 * this side makes and a SERVER span for every one it answers (and for messages that carry a trace),
 * named `pulsar <kind> <route>`; the trace context travels in the headers through the global propagator
 * (W3C `traceparent` with the SDK's defaults), across the Redis relay too (a group message carries its
 * headers). Handlers run inside their span: spans and calls they make are its children.
 *
 * @example
 * ```ts
 * import { openTelemetry } from 'pulsar/opentelemetry';
 * const server = new PulsarServer({ messages: json(), rpc: true, tracing: openTelemetry(), handler });
 * ```
 */
export function openTelemetry(options: OpenTelemetryOptions = {}): Tracing {
  const tracer = options.tracer ?? trace.getTracer('pulsar');
  const start = (name: string, kind: TracedKind, spanKind: SpanKind, parent: Context): OpenTelemetrySpan => {
    const span = tracer.startSpan(name, { kind: spanKind, attributes: { 'rpc.system': 'pulsar', 'pulsar.call': kind } }, parent);
    return new OpenTelemetrySpan(span, trace.setSpan(parent, span));
  };
  return {
    call(name, kind, headers, parent) {
      const from = parent instanceof OpenTelemetrySpan ? parent.context : context.active();
      const span = start(name, kind, SpanKind.CLIENT, from);
      propagation.inject(span.context, headers);
      return span;
    },
    answer(name, kind, headers: Headers) {
      return start(name, kind, SpanKind.SERVER, propagation.extract(ROOT_CONTEXT, headers));
    },
    inject(headers) {
      propagation.inject(context.active(), headers);
    },
  };
}

export type { TracedKind, TraceSpan, Tracing } from '../messages/tracing.js';
