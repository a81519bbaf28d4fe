// The conformance suite (`pulsar/testing`) run against every built-in codec, in many configurations.
// Each reference below is written from the wire format, not from the codec.
import { expect } from 'chai';
import fc from 'fast-check';
import {
  DelimiterCodec, LengthPrefixedCodec, LineCodec, VarintCodec, varintLength,
  type LengthFieldLength, type LengthPrefixedCodecOptions, type TooLongAction,
} from '../../lib/index.js';
import { codecConformance, type ConformanceSubject, type ReferenceParse, type StreamOutcome } from '../../lib/testing/index.js';

const RUNS = { numRuns: 60 };
type Items = Array<Buffer | 'skipped'>;

interface LengthFormat {
  offset: number;
  field: LengthFieldLength;
  order: 'big' | 'little';
  adjustment: number;
  strip: 'header' | 'none';
  max: number;
  onTooLong: TooLongAction;
}

function readField(format: LengthFormat, bytes: Buffer, at: number): number {
  const read = (o: number) => (format.order === 'big' ? bytes.readUIntBE(o, 4) * 2 ** 32 + bytes.readUInt32BE(o + 4) : bytes.readUInt32LE(o) + bytes.readUInt32LE(o + 4) * 2 ** 32);
  if (format.field === 8) return read(at);
  return format.order === 'big' ? bytes.readUIntBE(at, format.field) : bytes.readUIntLE(at, format.field);
}

function lengthReference(format: LengthFormat): ConformanceSubject['reference'] {
  const headerLength = format.offset + format.field;
  return {
    frame(body) {
      const header = Buffer.alloc(headerLength);
      const value = body.length - format.adjustment;
      if (format.field === 8) {
        const [high, low] = [Math.floor(value / 2 ** 32), value % 2 ** 32];
        if (format.order === 'big') (header.writeUInt32BE(high, format.offset), header.writeUInt32BE(low, format.offset + 4));
        else (header.writeUInt32LE(low, format.offset), header.writeUInt32LE(high, format.offset + 4));
      } else if (format.order === 'big') header.writeUIntBE(value, format.offset, format.field);
      else header.writeUIntLE(value, format.offset, format.field);
      const wire = Buffer.concat([header, body]);
      return { wire, frame: format.strip === 'header' ? Buffer.from(body) : wire };
    },
    parse(stream) {
      const items: Items = [];
      let at = 0;
      const done = (end: StreamOutcome): ReferenceParse => ({ items, end });
      while (at < stream.length) {
        if (stream.length - at < headerLength) return done('ERR_TRUNCATED_FRAME');
        const body = readField(format, stream, at + format.offset) + format.adjustment;
        if (!(body >= 0) || body > Number.MAX_SAFE_INTEGER) return done('ERR_MALFORMED_FRAME');
        if (body > format.max) {
          if (format.onTooLong === 'close') return done('ERR_FRAME_TOO_LARGE');
          items.push('skipped');
          at += headerLength + body;
          continue;
        }
        if (stream.length - at - headerLength < body) return done('ERR_TRUNCATED_FRAME');
        items.push(stream.subarray(format.strip === 'header' ? at + headerLength : at, at + headerLength + body));
        at += headerLength + body;
      }
      return done('clean');
    },
  };
}

function lengthSubject(format: LengthFormat): ConformanceSubject {
  const headerLength = format.offset + format.field;
  const options: LengthPrefixedCodecOptions = {
    lengthFieldOffset: format.offset, lengthFieldLength: format.field, byteOrder: format.order, lengthAdjustment: format.adjustment,
    initialBytesToStrip: format.strip === 'header' ? headerLength : 0, maxFrameLength: format.max, onTooLong: format.onTooLong,
  };
  return { name: `LengthPrefixedCodec ${JSON.stringify(options)}`, codec: new LengthPrefixedCodec(options), reference: lengthReference(format), overhead: headerLength };
}

function varintSubject(max: number, onTooLong: TooLongAction): ConformanceSubject {
  const maxHeader = varintLength(max);
  return {
    name: `VarintCodec { maxFrameLength: ${max}, onTooLong: '${onTooLong}' }`,
    codec: new VarintCodec({ maxFrameLength: max, onTooLong }),
    overhead: maxHeader,
    reference: {
      frame(body) {
        const header: number[] = [];
        let n = body.length;
        do {
          header.push((n % 128) | (n >= 128 ? 0x80 : 0));
          n = Math.floor(n / 128);
        } while (n > 0);
        return { wire: Buffer.concat([Buffer.from(header), body]), frame: Buffer.from(body) };
      },
      parse(stream) {
        const items: Items = [];
        let at = 0;
        while (at < stream.length) {
          let value = 0;
          let size = 0;
          for (;;) {
            if (size === maxHeader) return { items, end: 'ERR_MALFORMED_FRAME' };
            if (at + size >= stream.length) return { items, end: 'ERR_TRUNCATED_FRAME' };
            const byte = stream[at + size]!;
            value += (byte & 0x7f) * 128 ** size++;
            if (byte < 0x80) break;
          }
          if (value > max) {
            if (onTooLong === 'close') return { items, end: 'ERR_FRAME_TOO_LARGE' };
            items.push('skipped');
          } else if (stream.length - at - size < value) {
            return { items, end: 'ERR_TRUNCATED_FRAME' };
          } else {
            items.push(stream.subarray(at + size, at + size + value));
          }
          at += size + value;
        }
        return { items, end: 'clean' };
      },
    },
  };
}

/** Delimited frames; `lines`: a `\r` before the delimiter is part of it. */
function delimiterSubject(delimiter: Buffer, lines: boolean, max: number, onTooLong: TooLongAction): ConformanceSubject {
  const codec = lines ? new LineCodec({ maxFrameLength: max, onTooLong }) : new DelimiterCodec({ delimiter, maxFrameLength: max, onTooLong });
  const proof = max + delimiter.length + (lines ? 1 : 0);
  const excluded = lines ? [0x0a, 0x0d] : [delimiter[0]!];
  return {
    name: `${codec.constructor.name} { delimiter: ${JSON.stringify(delimiter.toString('latin1'))}, maxFrameLength: ${max}, onTooLong: '${onTooLong}' }`,
    codec,
    overhead: delimiter.length + (lines ? 1 : 0),
    bodyBytes: fc.integer({ min: 0, max: 255 }).filter((b) => !excluded.includes(b)),
    reference: {
      frame(body) {
        return { wire: Buffer.concat([body, delimiter]), frame: Buffer.from(body) };
      },
      parse(stream) {
        const items: Items = [];
        let at = 0;
        while (at < stream.length) {
          const found = stream.indexOf(delimiter, at);
          if (found === -1) {
            if (stream.length - at < proof) return { items, end: 'ERR_TRUNCATED_FRAME' };
            return onTooLong === 'close' ? { items, end: 'ERR_FRAME_TOO_LARGE' } : { items: [...items, 'skipped'], end: 'clean' };
          }
          const end = lines && found > at && stream[found - 1] === 0x0d ? found - 1 : found;
          if (end - at > max) {
            if (onTooLong === 'close') return { items, end: 'ERR_FRAME_TOO_LARGE' };
            items.push('skipped');
          } else {
            items.push(stream.subarray(at, end));
          }
          at = found + delimiter.length;
        }
        return { items, end: 'clean' };
      },
    },
  };
}

const subjects: ConformanceSubject[] = [];
for (const onTooLong of ['close', 'discard'] as const) {
  for (const field of [1, 2, 3, 4, 8] as const) {
    for (const order of ['big', 'little'] as const) {
      subjects.push(lengthSubject({ offset: 0, field, order, adjustment: 0, strip: 'header', max: field === 1 ? 200 : 300, onTooLong }));
    }
  }
  // Netty's javadoc examples 3 and 4: a length that counts the whole frame; a header before the length field.
  subjects.push(lengthSubject({ offset: 0, field: 2, order: 'big', adjustment: -2, strip: 'none', max: 300, onTooLong }));
  subjects.push(lengthSubject({ offset: 2, field: 3, order: 'big', adjustment: 0, strip: 'none', max: 300, onTooLong }));
  subjects.push(lengthSubject({ offset: 1, field: 2, order: 'little', adjustment: -3, strip: 'header', max: 250, onTooLong }));
  subjects.push(varintSubject(100, onTooLong), varintSubject(300, onTooLong), varintSubject(20_000, onTooLong));
  subjects.push(delimiterSubject(Buffer.from('\n'), true, 200, onTooLong));
  subjects.push(delimiterSubject(Buffer.from([0]), false, 200, onTooLong));
  subjects.push(delimiterSubject(Buffer.from('END'), false, 150, onTooLong));
}

describe('codec conformance (pulsar/testing, fast-check)', () => {
  for (const subject of subjects) {
    describe(subject.name, () => {
      for (const check of codecConformance(subject, RUNS)) it(check.name.slice(subject.name.length + 2), () => check.run());
    });
  }

  it('fails a codec that breaks its format (the suite can fail)', () => {
    const honest = varintSubject(300, 'close');
    const { codec } = honest;
    const lying: ConformanceSubject = { ...honest, codec: { maxFrameLength: 300, createDecoder: () => codec.createDecoder(), encode: (p) => Buffer.concat([codec.encode(p), Buffer.from([0])]) } };
    const failures = codecConformance(lying, { numRuns: 20 }).filter((check) => {
      try {
        check.run();
        return false;
      } catch {
        return true;
      }
    });
    expect(failures.map((c) => c.name)).to.have.length.of.at.least(2);
  });

  it('large frames trickling in as small chunks (coalesced into blocks) decode intact', () => {
    const cases = fc.record({
      lengths: fc.array(fc.integer({ min: 0, max: 50_000 }), { minLength: 1, maxLength: 3 }),
      sizes: fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 30 }),
      seed: fc.nat(255),
    });
    const codecs = [new LengthPrefixedCodec(), new VarintCodec(), new LineCodec()];
    fc.assert(fc.property(cases, ({ lengths, sizes, seed }) => {
      for (const codec of codecs) {
        const list = lengths.map((n, i) => Buffer.from(Array.from({ length: n }, (_, b) => 0x20 + ((b * 31 + i + seed) % 0x50))));
        const stream = Buffer.concat(list.map((p) => codec.encode(p)));
        const decoder = codec.createDecoder();
        const frames: Buffer[] = [];
        for (let at = 0, k = 0; at < stream.length; at += sizes[k++ % sizes.length]!) {
          decoder.push(stream.subarray(at, at + sizes[k % sizes.length]!));
          for (let frame = decoder.next(); frame !== null; frame = decoder.next()) frames.push(frame);
        }
        expect(frames.length).to.equal(list.length);
        frames.forEach((f, i) => expect(f.equals(list[i]!), `${codec.constructor.name} frame ${i}`).to.equal(true));
      }
    }), { numRuns: 30 });
  });
});
