// custom-codec: a codec pulsar does not ship, written on its ByteQueue and checked with its conformance
// suite. Netstrings (https://cr.yp.to/proto/netstrings.txt): "5:hello," — the length in decimal, a colon,
// the bytes, a comma. The header's size depends on the length and there is a trailer, so the codec
// implements WrappingFrameCodec (measureHeader, writeHeader, trailer) and keeps the batched send path.
//
// Run:  node examples/custom-codec.mjs      (checks the codec, serves it on a free port, talks to it, stops)
import { ByteQueue, DecodingError, PulsarClient, PulsarError, PulsarServer } from 'pulsar';
import { codecConformance } from 'pulsar/testing';

const COLON = 0x3a;
const COMMA = 0x2c;

class NetstringCodec {
  trailer = Buffer.from(',');

  constructor({ maxFrameLength = 64 * 1024 } = {}) {
    this.maxFrameLength = maxFrameLength;
  }

  createDecoder() {
    return new NetstringDecoder(this.maxFrameLength);
  }

  encode(payload) {
    const header = this.measureHeader(payload);
    const wire = Buffer.allocUnsafe(header + payload.length + 1);
    this.writeHeader(payload.length, wire, 0);
    wire.set(payload, header);
    wire[wire.length - 1] = COMMA;
    return wire;
  }

  measureHeader(payload) {
    if (payload.length > this.maxFrameLength) {
      throw new PulsarError('ERR_FRAME_TOO_LARGE', `cannot send ${payload.length} bytes: the limit is ${this.maxFrameLength}`);
    }
    return String(payload.length).length + 1;
  }

  writeHeader(length, target, offset) {
    target.write(`${length}:`, offset, 'latin1');
  }
}

class NetstringDecoder {
  #queue = new ByteQueue();
  #maxDigits;
  #max;

  constructor(max) {
    this.#max = max;
    this.#maxDigits = String(max).length;
  }

  get bufferedBytes() {
    return this.#queue.length;
  }

  push(chunk) {
    this.#queue.push(chunk);
  }

  next() {
    const queue = this.#queue;
    let length = 0;
    let colon = 0;
    for (; colon < queue.length; colon++) {
      const byte = queue.at(colon);
      if (byte === COLON) break;
      if (byte < 0x30 || byte > 0x39 || colon === this.#maxDigits) this.#fail('ERR_MALFORMED_FRAME', `the length is not a number of at most ${this.#maxDigits} digits`);
      length = length * 10 + byte - 0x30;
    }
    if (colon === queue.length) return null;
    if (colon === 0) this.#fail('ERR_MALFORMED_FRAME', 'empty length');
    if (length > this.#max) this.#fail('ERR_FRAME_TOO_LARGE', `announces ${length} bytes, over the ${this.#max}-byte limit`);
    if (queue.length < colon + 1 + length + 1) return null;
    if (queue.at(colon + 1 + length) !== COMMA) this.#fail('ERR_MALFORMED_FRAME', 'no comma after the bytes');
    queue.skip(colon + 1);
    const frame = queue.take(length);
    queue.skip(1);
    return frame;
  }

  end() {
    if (this.#queue.length > 0) this.#fail('ERR_TRUNCATED_FRAME', `stream ended inside a netstring (${this.#queue.length} bytes)`);
  }

  #fail(code, message) {
    this.#queue.clear();
    throw new DecodingError(code, message);
  }
}

// 1. The conformance suite, against a reference parser written from the netstring specification.
const reference = {
  frame: (body) => ({ wire: Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]), frame: Buffer.from(body) }),
  parse(stream) {
    const text = stream.toString('latin1');
    const items = [];
    for (let at = 0; at < text.length;) {
      const [digits] = /^\d{0,3}/.exec(text.slice(at));
      const next = text[at + digits.length];
      if (next === undefined) return { items, end: 'ERR_TRUNCATED_FRAME' };
      if (next !== ':' || digits === '') return { items, end: 'ERR_MALFORMED_FRAME' };
      const length = Number(digits);
      if (length > 300) return { items, end: 'ERR_FRAME_TOO_LARGE' };
      const start = at + digits.length + 1;
      if (stream.length < start + length + 1) return { items, end: 'ERR_TRUNCATED_FRAME' };
      if (stream[start + length] !== COMMA) return { items, end: 'ERR_MALFORMED_FRAME' };
      items.push(stream.subarray(start, start + length));
      at = start + length + 1;
    }
    return { items, end: 'clean' };
  },
};
let failed = 0;
for (const check of codecConformance({ name: 'netstrings', codec: new NetstringCodec({ maxFrameLength: 300 }), reference, overhead: 5 }, { numRuns: 50 })) {
  try {
    check.run();
    console.log(`ok    ${check.name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL  ${check.name}\n${error.message}`);
  }
}
if (failed > 0) process.exit(1);

// 2. Served over TCP: the server echoes netstrings, the client speaks them.
const server = new PulsarServer({ port: 0, codec: new NetstringCodec(), heartbeat: false, reportInterval: false });
const { port } = await server.listen();
const client = new PulsarClient({ port, codec: new NetstringCodec() });
await client.connect();
const answer = await client.request('hello');
console.log(`sent "hello" as ${new NetstringCodec().encode(Buffer.from('hello'))}, got "${answer}" back`);
await client.close();
await server.close();
console.log('done');
