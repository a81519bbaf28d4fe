import { expect } from 'chai';
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { json, PulsarClient, type MessageContext, type PulsarServerOptions } from '../lib/index.js';
import { openTelemetry } from '../lib/opentelemetry/index.js';
import { eventually, nextEvent, onCleanup, rejection, startServer } from './helpers.js';
import { recordSpans } from './otel.js';

/** A server and a client, both traced. */
async function tracedPair(options: PulsarServerOptions<unknown>, client: ConstructorParameters<typeof PulsarClient<unknown>>[0] = {}) {
  const { server, port } = await startServer<unknown>({ messages: json(), rpc: true, tracing: openTelemetry(), ...options });
  const connected = nextEvent(server, 'connection');
  const c = new PulsarClient<unknown>({ port, messages: json(), rpc: true, tracing: openTelemetry(), ...client });
  onCleanup(() => c.close());
  await c.connect();
  return { server, client: c, conn: (await connected)[0] };
}

describe('tracing with OpenTelemetry (SPEC section 18)', () => {
  let recording: ReturnType<typeof recordSpans>;
  beforeEach(() => (recording = recordSpans()));
  afterEach(() => recording.stop());

  it('makes a client span and a server span for a request, the server\'s its child through traceparent', async () => {
    let seen: Record<string, string> = {};
    const { client } = await tracedPair({ handler: (_m, _c, ctx) => ((seen = { ...ctx.headers }), 'ok') });
    const tracer = trace.getTracer('test');
    await tracer.startActiveSpan('checkout', async (root) => {
      expect(await client.request({ item: 1 })).to.equal('ok');
      root.end();
    });
    const spans = await eventually(async () => (recording.spans().length === 3 ? recording.spans() : undefined), 'three spans');
    const root = spans.find((s) => s.name === 'checkout')!;
    const call = spans.find((s) => s.kind === SpanKind.CLIENT)!;
    const answer = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(call.name).to.equal('pulsar request');
    expect(new Set(spans.map((s) => s.spanContext().traceId)).size).to.equal(1);
    expect(call.parentSpanContext?.spanId).to.equal(root.spanContext().spanId);
    expect(answer.parentSpanContext?.spanId).to.equal(call.spanContext().spanId);
    expect(seen.traceparent).to.match(new RegExp(`^00-${root.spanContext().traceId}-${call.spanContext().spanId}-01$`));
  });

  it('traces streams, marks a failed one, and makes a handler\'s call with { parent: ctx } the server span\'s child', async () => {
    const activeInGenerator: Array<string | undefined> = [];
    const { client, conn } = await tracedPair(
      {
        handler: async function* (msg, connection, ctx: MessageContext) {
          if (msg === 'fail') throw Object.assign(new Error('no rows'), { code: 'E_ROWS' });
          activeInGenerator.push(trace.getActiveSpan()?.spanContext().spanId); // the generator runs in its span
          yield await connection.request('inner', { parent: ctx });
        },
      },
      { handler: () => 'from the client' },
    );
    const items: unknown[] = [];
    for await (const item of client.stream('rows')) items.push(item);
    expect(items).to.deep.equal(['from the client']);
    expect((await rejection((async () => {
      for await (const _ of client.stream('fail')) { /* fails */ }
    })())).code).to.equal('ERR_REMOTE');
    const spans = await eventually(async () => (recording.spans().length >= 6 ? recording.spans() : undefined), 'six spans');
    const streams = spans.filter((s) => s.name === 'pulsar stream');
    expect(streams.filter((s) => s.kind === SpanKind.CLIENT)).to.have.length(2);
    expect(streams.filter((s) => s.kind === SpanKind.SERVER)).to.have.length(2);
    const failed = streams.filter((s) => s.status.code === SpanStatusCode.ERROR);
    expect(failed).to.have.length(2);
    const served = streams.find((s) => s.kind === SpanKind.SERVER && s.status.code !== SpanStatusCode.ERROR)!;
    const inner = spans.find((s) => s.name === 'pulsar request' && s.kind === SpanKind.CLIENT)!;
    expect(inner.parentSpanContext?.spanId).to.equal(served.spanContext().spanId);
    expect(activeInGenerator).to.deep.equal([served.spanContext().spanId]);
    const innerAnswer = spans.find((s) => s.name === 'pulsar request' && s.kind === SpanKind.SERVER)!;
    expect(innerAnswer.parentSpanContext?.spanId).to.equal(inner.spanContext().spanId);
    expect(conn.state).to.equal('open');
  });

  it('sends no traceparent and makes no span without the tracing option', async () => {
    let seen: Record<string, string> = {};
    const { server, port } = await startServer<unknown>({ messages: json(), rpc: true, handler: (_m, _c, ctx) => ((seen = { ...ctx.headers }), 'ok') });
    const client = new PulsarClient<unknown>({ port, messages: json(), rpc: true });
    onCleanup(() => client.close());
    await client.connect();
    await trace.getTracer('test').startActiveSpan('root', async (root) => {
      await client.request('q');
      root.end();
    });
    expect(seen).to.deep.equal({});
    expect(recording.spans().map((s) => s.name)).to.deep.equal(['root']);
    expect(server.connections.size).to.equal(1);
  });
});
