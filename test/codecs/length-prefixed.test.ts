import { expect } from 'chai';
import { DecodingError, LengthPrefixedCodec, PulsarError, type FrameDecoder, type LengthFieldLength } from '../../lib/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Feeds `chunks` to a decoder and collects every frame, as copies (views would alias later input). */
function decodeAll(decoder: FrameDecoder, chunks: Buffer[]): Buffer[] {
  const frames: Buffer[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== null; f = decoder.next()) frames.push(Buffer.from(f));
  }
  return frames;
}

const FIELD_SIZES: LengthFieldLength[] = [1, 2, 4];
const ORDERS = ['big', 'little'] as const;

describe('LengthPrefixedCodec', () => {
  describe('wire format (hex fixtures)', () => {
    it('encodes HELLO as 00000005 48454c4c4f by default', () => {
      expect(new LengthPrefixedCodec().encode(Buffer.from('HELLO')).toString('hex')).to.equal('0000000548454c4c4f');
    });

    it('encodes each field size and byte order', () => {
      const p = Buffer.from('ab');
      expect(new LengthPrefixedCodec({ lengthFieldLength: 1 }).encode(p).toString('hex')).to.equal('026162');
      expect(new LengthPrefixedCodec({ lengthFieldLength: 2 }).encode(p).toString('hex')).to.equal('00026162');
      expect(new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little' }).encode(p).toString('hex')).to.equal('02006162');
      expect(new LengthPrefixedCodec({ byteOrder: 'little' }).encode(p).toString('hex')).to.equal('020000006162');
    });

    it('encodes and decodes an empty frame', () => {
      const codec = new LengthPrefixedCodec();
      expect(codec.encode(Buffer.alloc(0)).toString('hex')).to.equal('00000000');
      const frames = decodeAll(codec.createDecoder(), [hex('00000000 00000000 00000001 ff')]);
      expect(frames.map((f) => f.toString('hex'))).to.deep.equal(['', '', 'ff']);
    });

    it('decodes several frames from one chunk', () => {
      const frames = decodeAll(new LengthPrefixedCodec().createDecoder(), [hex('00000001 41 00000002 4243 00000000 00000003 444546')]);
      expect(frames.map(String)).to.deep.equal(['A', 'BC', '', 'DEF']);
    });
  });

  describe('round trips', () => {
    for (const lengthFieldLength of FIELD_SIZES) {
      for (const byteOrder of ORDERS) {
        it(`round-trips binary payloads with a ${lengthFieldLength}-byte ${byteOrder}-endian field`, () => {
          const codec = new LengthPrefixedCodec({ lengthFieldLength, byteOrder });
          const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
          const payloads = [Buffer.alloc(0), all.subarray(0, 1), all.subarray(0, 255), Buffer.alloc(codec.maxFrameLength, 0xee)];
          const wire = Buffer.concat(payloads.map((p) => codec.encode(p)));
          expect(decodeAll(codec.createDecoder(), [wire])).to.deep.equal(payloads);
        });
      }
    }
  });

  describe('streaming', () => {
    const codec = new LengthPrefixedCodec();
    const payloads = ['HELLO', '', 'x'.repeat(300), 'bye'].map((s) => Buffer.from(s));
    const stream = Buffer.concat(payloads.map((p) => codec.encode(p)));

    it('decodes the same frames whatever single split point the stream is cut at', () => {
      for (let cut = 0; cut <= stream.length; cut++) {
        const frames = decodeAll(codec.createDecoder(), [stream.subarray(0, cut), stream.subarray(cut)]);
        expect(frames, `cut at ${cut}`).to.deep.equal(payloads);
      }
    });

    it('decodes the same frames from every pair of split points', () => {
      for (let a = 0; a <= stream.length; a += 7) {
        for (let b = a; b <= stream.length; b += 5) {
          const frames = decodeAll(codec.createDecoder(), [stream.subarray(0, a), stream.subarray(a, b), stream.subarray(b)]);
          expect(frames, `cuts at ${a}, ${b}`).to.deep.equal(payloads);
        }
      }
    });

    it('decodes a stream fed one byte at a time', () => {
      const chunks = Array.from(stream, (byte) => Buffer.from([byte]));
      expect(decodeAll(codec.createDecoder(), chunks)).to.deep.equal(payloads);
    });

    it('returns null, not an error, while a frame is incomplete', () => {
      const decoder = codec.createDecoder();
      decoder.push(hex('000000'));
      expect(decoder.next()).to.equal(null);
      decoder.push(hex('02 41'));
      expect(decoder.next()).to.equal(null);
      expect(decoder.bufferedBytes, 'the header and one payload byte').to.equal(5);
      decoder.push(hex('42'));
      expect(String(decoder.next())).to.equal('AB');
      expect(decoder.bufferedBytes).to.equal(0);
    });

    it('hands out a frame inside one chunk as a view, and copies a frame spanning chunks once', () => {
      const decoder = codec.createDecoder();
      const chunk = hex('00000002 4142 00000002 43');
      decoder.push(chunk);
      const view = decoder.next()!;
      expect(decoder.next()).to.equal(null);
      decoder.push(hex('44'));
      const spanning = decoder.next()!;
      expect(String(view)).to.equal('AB');
      expect(String(spanning)).to.equal('CD');
      chunk.fill(0x5a); // what the input buffer holds later
      expect(String(view), 'a view shares the input').to.equal('ZZ');
      expect(String(spanning), 'a copy is not clobbered').to.equal('CD');
    });
  });

  describe('runs (nextRun, for relaying frames unchanged)', () => {
    const codec = new LengthPrefixedCodec();
    const payloads = ['HELLO', '', 'x'.repeat(300), 'bye', 'last'].map((s) => Buffer.from(s));
    const stream = Buffer.concat(payloads.map((p) => codec.encode(p)));

    /** Takes runs where it can and single frames where it must, as the server's bulk echo does. */
    function relayAll(chunks: Buffer[]): { wire: Buffer; frames: number; runs: number } {
      const decoder = codec.createDecoder();
      const out: Buffer[] = [];
      let frames = 0;
      let runs = 0;
      for (const chunk of chunks) {
        decoder.push(chunk);
        for (;;) {
          const run = decoder.nextRun!();
          if (run !== null) {
            out.push(Buffer.from(run.wire));
            frames += run.frames;
            runs++;
            continue;
          }
          const payload = decoder.next();
          if (payload === null) break;
          out.push(codec.encode(payload));
          frames++;
        }
      }
      return { wire: Buffer.concat(out), frames, runs };
    }

    it('gives back the exact wire bytes and frame count whatever split point the stream is cut at', () => {
      for (let cut = 0; cut <= stream.length; cut++) {
        const relayed = relayAll([stream.subarray(0, cut), stream.subarray(cut)]);
        expect(relayed.wire.equals(stream), `cut at ${cut}`).to.equal(true);
        expect(relayed.frames, `cut at ${cut}`).to.equal(payloads.length);
      }
    });

    it('returns a whole chunk of whole frames as one run, the chunk itself', () => {
      const decoder = codec.createDecoder();
      decoder.push(stream);
      const run = decoder.nextRun!()!;
      expect(run.frames).to.equal(payloads.length);
      expect(run.wire).to.equal(stream);
      expect(decoder.nextRun!()).to.equal(null);
      expect(decoder.bufferedBytes).to.equal(0);
    });

    it('relays every frame as a run, a frame cut by the read as a run of one, whatever the cut', () => {
      for (let cut = 1; cut < stream.length; cut++) {
        const decoder = codec.createDecoder();
        const wires: Buffer[] = [];
        let frames = 0;
        for (const chunk of [stream.subarray(0, cut), stream.subarray(cut)]) {
          decoder.push(chunk);
          for (let run = decoder.nextRun!(); run !== null; run = decoder.nextRun!()) {
            wires.push(Buffer.from(run.wire));
            frames += run.frames;
          }
        }
        expect(Buffer.concat(wires).equals(stream), `cut at ${cut}`).to.equal(true);
        expect(frames, `cut at ${cut}`).to.equal(payloads.length);
        expect(decoder.bufferedBytes, `cut at ${cut}`).to.equal(0);
      }
    });

    it('takes a frame whose header next() already read as a run of one', () => {
      const decoder = codec.createDecoder();
      decoder.push(hex('00000003 41'));
      expect(decoder.next()).to.equal(null);
      decoder.push(hex('4243 00000001 44'));
      const run = decoder.nextRun!()!;
      expect(run.frames).to.equal(1);
      expect(run.wire.equals(hex('00000003 414243'))).to.equal(true);
      expect(decoder.nextRun!()!.wire.equals(hex('00000001 44'))).to.equal(true);
    });

    it('stops a run before an oversized header, which next() then reports', () => {
      const decoder = new LengthPrefixedCodec({ maxFrameLength: 8 }).createDecoder();
      decoder.push(hex('00000001 41 00000009 000000000000000000'));
      const run = decoder.nextRun!()!;
      expect(run.frames).to.equal(1);
      expect(run.wire.equals(hex('00000001 41'))).to.equal(true);
      expect(decoder.nextRun!()).to.equal(null);
      expect(() => decoder.next()).to.throw(DecodingError).with.property('code', 'ERR_FRAME_TOO_LARGE');
    });

    it('reads the top bit of 4-byte lengths in both byte orders as unsigned', () => {
      for (const [byteOrder, header] of [['big', 'ffffff80'], ['little', '80ffffff']] as const) {
        const decoder = new LengthPrefixedCodec({ byteOrder }).createDecoder();
        decoder.push(hex(header));
        expect(() => decoder.next(), byteOrder).to.throw(/announces 4294967168 bytes/);
      }
    });
  });

  describe('memory', () => {
    it('holds a frame trickling in byte by byte in a few blocks, not one object per byte', () => {
      const codec = new LengthPrefixedCodec();
      const payload = Buffer.alloc(1024 * 1024, 0x61);
      const wire = codec.encode(payload);
      const decoder = codec.createDecoder();
      const heapBefore = process.memoryUsage().heapUsed;
      for (let i = 0; i < wire.length - 1; i++) {
        decoder.push(wire.subarray(i, i + 1)); // each a distinct Buffer object, as socket reads would be
        if (decoder.next() !== null) expect.fail('no frame before its last byte');
      }
      const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
      expect(decoder.bufferedBytes).to.equal(wire.length - 1);
      // One queued view per byte would keep about 100 MB of Buffer objects alive.
      expect(heapGrowth, `heap grew by ${heapGrowth} bytes`).to.be.below(20 * 1024 * 1024);
      decoder.push(wire.subarray(wire.length - 1));
      expect(decoder.next()!.equals(payload)).to.equal(true);
    });

    it('keeps frames handed out intact while later small chunks are coalesced', () => {
      const codec = new LengthPrefixedCodec();
      const payloads = Array.from({ length: 50 }, (_, i) => Buffer.from(`frame-${i}`.repeat(i + 1)));
      const wire = Buffer.concat(payloads.map((p) => codec.encode(p)));
      const decoder = codec.createDecoder();
      const frames: Buffer[] = []; // views, not copies: later input must not clobber them
      for (let i = 0; i < wire.length; i += 3) {
        decoder.push(Buffer.from(wire.subarray(i, i + 3)));
        for (let f = decoder.next(); f !== null; f = decoder.next()) frames.push(f);
      }
      expect(frames).to.deep.equal(payloads);
    });
  });

  describe('truncated input', () => {
    const codec = new LengthPrefixedCodec();

    it('ends cleanly on a frame boundary', () => {
      const decoder = codec.createDecoder();
      decodeAll(decoder, [codec.encode(Buffer.from('ok'))]);
      expect(() => decoder.end()).to.not.throw();
    });

    it('throws ERR_TRUNCATED_FRAME when the stream ends inside a header', () => {
      const decoder = codec.createDecoder();
      decoder.push(hex('0000'));
      expect(decoder.next()).to.equal(null);
      expect(() => decoder.end()).to.throw(DecodingError).with.property('code', 'ERR_TRUNCATED_FRAME');
    });

    it('throws ERR_TRUNCATED_FRAME when the stream ends inside a payload', () => {
      const decoder = codec.createDecoder();
      decoder.push(hex('00000005 4845'));
      expect(decoder.next()).to.equal(null);
      expect(() => decoder.end()).to.throw(/2 of 5 byte\(s\) after the header/).with.property('code', 'ERR_TRUNCATED_FRAME');
    });
  });

  describe('frame size limit', () => {
    for (const lengthFieldLength of FIELD_SIZES) {
      for (const byteOrder of ORDERS) {
        it(`rejects a ${lengthFieldLength}-byte ${byteOrder}-endian header over the limit and accepts the exact max`, () => {
          const max = 100;
          const codec = new LengthPrefixedCodec({ lengthFieldLength, byteOrder, maxFrameLength: max });
          const header = (n: number): Buffer => {
            const b = Buffer.alloc(lengthFieldLength);
            if (lengthFieldLength === 1) b.writeUInt8(n);
            else if (lengthFieldLength === 2) byteOrder === 'big' ? b.writeUInt16BE(n) : b.writeUInt16LE(n);
            else byteOrder === 'big' ? b.writeUInt32BE(n) : b.writeUInt32LE(n);
            return b;
          };
          expect(decodeAll(codec.createDecoder(), [header(max), Buffer.alloc(max, 7)])).to.have.length(1);
          const decoder = codec.createDecoder();
          decoder.push(header(max + 1)); // no payload bytes at all: the header alone is enough to reject
          expect(() => decoder.next()).to.throw(DecodingError).with.property('code', 'ERR_FRAME_TOO_LARGE');
          expect(decoder.bufferedBytes).to.equal(0);
          expect(() => decoder.next(), 'the decoder stays failed').to.throw(DecodingError);
        });
      }
    }

    it('rejects a 4 GiB header at once, without waiting for or holding its payload', () => {
      const decoder = new LengthPrefixedCodec().createDecoder();
      decoder.push(hex('ffffffff 00010203'));
      expect(() => decoder.next()).to.throw(/4294967295 bytes, over the 8388608-byte limit/);
      expect(decoder.bufferedBytes).to.equal(0);
    });

    it('accepts exactly 8 MiB by default and rejects one byte more', () => {
      const codec = new LengthPrefixedCodec();
      expect(codec.maxFrameLength).to.equal(8 * 1024 * 1024);
      const max = Buffer.alloc(codec.maxFrameLength, 1);
      const frames = decodeAll(codec.createDecoder(), [codec.encode(max)]);
      expect(frames[0]!.length).to.equal(max.length);
      expect(() => codec.encode(Buffer.alloc(codec.maxFrameLength + 1))).to.throw(PulsarError).with.property('code', 'ERR_FRAME_TOO_LARGE');
    });

    it('defaults the limit to what a short length field can hold', () => {
      expect(new LengthPrefixedCodec({ lengthFieldLength: 1 }).maxFrameLength).to.equal(255);
      expect(new LengthPrefixedCodec({ lengthFieldLength: 2 }).maxFrameLength).to.equal(65535);
    });
  });

  describe('options', () => {
    it('rejects bad options with ERR_INVALID_OPTION and names them', () => {
      const bad = [
        [{ lengthFieldLength: 5 }, /lengthFieldLength must be 1, 2, 3, 4 or 8, got 5 \(number\)/],
        [{ byteOrder: 'middle' }, /byteOrder must be 'big' or 'little', got 'middle'/],
        [{ maxFrameLength: -1 }, /maxFrameLength must be an integer from 0 to \d+/],
        [{ lengthFieldLength: 2, maxFrameLength: 70000 }, /from 0 to 65535 for a 2-byte length field|from 0 to 65535/],
        [{ maxFrameLength: 1.5 }, /maxFrameLength/],
      ] as const;
      for (const [options, message] of bad) {
        expect(() => new LengthPrefixedCodec(options as never), JSON.stringify(options))
          .to.throw(PulsarError, message).with.property('code', 'ERR_INVALID_OPTION');
      }
    });
  });
});
