// The codec family over real sockets: byte-identical echo for every codec (bulk and handler paths),
// discard mode keeping the connection, coded errors for broken formats, the CLI's --codec flags, and
// interop with the npm peers (it-length-prefixed, split2) as real clients and servers.
import { expect } from 'chai';
import * as lp from 'it-length-prefixed';
import net from 'node:net';
import { createInterface } from 'node:readline';
import split2 from 'split2';
import {
  DelimiterCodec, LengthPrefixedCodec, LineCodec, PulsarClient, VarintCodec, type FrameCodec,
} from '../../lib/index.js';
import { Cli } from '../cli-process.js';
import { TestClient, clientErrors, onCleanup, startServer, when, within } from '../helpers.js';

/** A plain client that keeps every byte it receives (no frame parsing: these are other framings). */
function rawClient(port: number): Promise<TestClient> {
  return TestClient.connect(port, '127.0.0.1', { frames: false });
}

/** Waits for `n` bytes and returns every byte received. */
async function receivedAtLeast(client: TestClient, n: number, what: string): Promise<Buffer> {
  await when(client.socket, ['data', 'close'], () => client.bytesReceived >= n, what);
  return client.received;
}

const CODECS: Array<[string, FrameCodec, Buffer]> = [
  ['varint', new VarintCodec(), Buffer.concat([Buffer.from([0]), Buffer.from([5]), Buffer.from('hello'), Buffer.from([0xac, 0x02]), Buffer.alloc(300, 7)])],
  ['lines', new LineCodec(), Buffer.from('first\nsecond\r\n\nthird line\n')],
  ['delimiter "\\0"', new DelimiterCodec({ delimiter: '\0' }), Buffer.from('a\0bc\0\0def\0')],
  ['2-byte little-endian length', new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little' }), Buffer.from('0300616263000002007a7a', 'hex')],
  ['Netty example 4: 2-byte header, 3-byte length, whole frame', new LengthPrefixedCodec({ lengthFieldOffset: 2, lengthFieldLength: 3, initialBytesToStrip: 0 }),
    Buffer.from('cafe00000548454c4c4fcafe000000', 'hex')],
];

describe('codecs over sockets', function () {
  this.timeout(20000);

  for (const [name, codec, stream] of CODECS) {
    it(`${name}: the default echo returns every frame byte-identical, in bulk and through the handler`, async () => {
      const { server, port } = await startServer({ codec, heartbeat: false });
      const bulk = await rawClient(port);
      bulk.socket.write(stream);
      expect((await receivedAtLeast(bulk, stream.length, 'the bulk echo')).equals(stream)).to.equal(true);

      const frames: Buffer[] = [];
      server.on('frame', (frame) => frames.push(Buffer.from(frame)));
      const handled = await rawClient(port);
      // One byte at a time: every frame crosses chunks.
      for (const byte of stream.includes(0x0d) ? Buffer.from(stream.toString().replace(/\r/g, '')) : stream) handled.socket.write(Buffer.from([byte]));
      const expected = stream.includes(0x0d) ? Buffer.from(stream.toString().replace(/\r/g, '')) : stream;
      expect((await receivedAtLeast(handled, expected.length, 'the handler echo')).equals(expected)).to.equal(true);
      expect(frames.length).to.be.greaterThan(1);
    });
  }

  it("lines: the handler gets each line without its ending, \\r\\n or \\n, and send() ends lines with \\n", async () => {
    const seen: string[] = [];
    const { port } = await startServer({ codec: new LineCodec(), heartbeat: false, handler: (line, conn) => (seen.push(String(line)), conn.send(String(line).toUpperCase())) });
    const client = await rawClient(port);
    client.socket.write('hello\r\nworld\n\r\n');
    expect(String(await receivedAtLeast(client, 13, 'three answers'))).to.equal('HELLO\nWORLD\n\n');
    expect(seen).to.deep.equal(['hello', 'world', '']);
  });

  for (const [name, codec, tooLong, next] of [
    ['length', new LengthPrefixedCodec({ maxFrameLength: 16, onTooLong: 'discard' }), Buffer.concat([Buffer.from('00000400', 'hex'), Buffer.alloc(1024, 1)]), Buffer.from('00000002686921', 'hex').subarray(0, 6)],
    ['varint', new VarintCodec({ maxFrameLength: 16, onTooLong: 'discard' }), Buffer.concat([Buffer.from([0x7f]), Buffer.alloc(127, 1)]), Buffer.from('026869', 'hex')],
    ['lines', new LineCodec({ maxFrameLength: 16, onTooLong: 'discard' }), Buffer.from(`${'x'.repeat(1024)}\n`), Buffer.from('hi\n')],
  ] as const) {
    it(`${name}, onTooLong 'discard': an oversized frame is reported and skipped, the connection goes on`, async () => {
      const { server, port } = await startServer({ codec, heartbeat: false });
      const errors = clientErrors(server);
      const client = await rawClient(port);
      // The oversized frame trickles in: it is skipped as it arrives, never held.
      for (let at = 0; at < tooLong.length; at += 100) client.socket.write(tooLong.subarray(at, at + 100));
      client.socket.write(next);
      expect((await receivedAtLeast(client, next.length, 'the next frame')).equals(next)).to.equal(true);
      expect(errors.map((e) => e.code)).to.deep.equal(['ERR_FRAME_TOO_LARGE']);
      expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection 1\): .*over the 16-byte limit: skipped$/);
      expect(client.closed).to.equal(false);
      expect(server.connections.size).to.equal(1);
    });
  }

  it('ERR_MALFORMED_FRAME for bytes that break the format closes that client only', async () => {
    const { server, port } = await startServer({ codec: new VarintCodec({ maxFrameLength: 1000 }), heartbeat: false });
    const errors = clientErrors(server);
    const bystander = await TestClient.connect(port);
    const client = await rawClient(port);
    client.socket.write(Buffer.from([0xff, 0xff, 0xff]));
    await when(client.socket, ['close'], () => client.closed, 'the malformed client to be closed');
    expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MALFORMED_FRAME']);
    expect(errors[0]!.message).to.match(/^127\.0\.0\.1:\d+ \(connection 2\): varint length runs past 2 bytes/);
    bystander.socket.write(Buffer.from('0470696e67', 'hex'));
    await when(bystander.socket, ['data'], () => bystander.bytesReceived >= 5, 'the bystander echo');
  });

  it('a negative adjusted length is ERR_MALFORMED_FRAME, and send() refuses what the format cannot carry', async () => {
    const codec = new LengthPrefixedCodec({ lengthFieldLength: 2, lengthAdjustment: -2, initialBytesToStrip: 0 });
    const { server, port } = await startServer({ codec, heartbeat: false });
    const errors = clientErrors(server);
    const client = await rawClient(port);
    client.socket.write(Buffer.from('0001', 'hex'));
    await when(client.socket, ['close'], () => client.closed, 'the client to be closed');
    expect(errors.map((e) => e.code)).to.deep.equal(['ERR_MALFORMED_FRAME']);
    expect(() => codec.encode(Buffer.from('0009ff', 'hex'))).to.throw(/length field announces 7 byte\(s\) after the header instead of 1/).with.property('code', 'ERR_MALFORMED_FRAME');
    expect(() => new LineCodec().encode(Buffer.from('a\nb'))).to.throw(/holding the delimiter/).with.property('code', 'ERR_MALFORMED_FRAME');
  });

  describe('interop with the npm peers', () => {
    it("it-length-prefixed as a client talks to pulsar's VarintCodec server", async () => {
      const { port } = await startServer({ codec: new VarintCodec(), heartbeat: false });
      const socket = net.connect({ port, host: '127.0.0.1' });
      onCleanup(() => void socket.destroy());
      await within(socket, 'connect');
      const payloads = [Buffer.alloc(0), Buffer.from('hello'), Buffer.alloc(200, 9), Buffer.alloc(70_000, 3)];
      for (const payload of payloads) socket.write(lp.encode.single(payload).subarray());
      const echoed: Buffer[] = [];
      for await (const frame of lp.decode(socket)) {
        echoed.push(Buffer.from(frame.subarray()));
        if (echoed.length === payloads.length) break;
      }
      expect(echoed.map((b) => b.toString('hex'))).to.deep.equal(payloads.map((b) => b.toString('hex')));
    });

    it("pulsar's client with VarintCodec talks to a server built on it-length-prefixed", async () => {
      const server = net.createServer(async (socket) => {
        socket.on('error', () => {});
        for await (const frame of lp.decode(socket)) socket.write(lp.encode.single(Buffer.from(`re: ${Buffer.from(frame.subarray())}`)).subarray());
      });
      server.listen(0, '127.0.0.1');
      await within(server, 'listening');
      onCleanup(() => new Promise((resolve) => server.close(resolve)));
      const client = new PulsarClient({ port: (server.address() as net.AddressInfo).port, codec: new VarintCodec() });
      onCleanup(() => client.close());
      await client.connect();
      expect(String(await client.request('ping'))).to.equal('re: ping');
      expect(String(await client.request('x'.repeat(1000)))).to.equal(`re: ${'x'.repeat(1000)}`);
    });

    it('a line client on split2 and readline talks to LineCodec', async () => {
      const { port } = await startServer({ codec: new LineCodec(), heartbeat: false, handler: (line, conn) => conn.send(`${line.length}:${line}`) });
      const socket = net.connect({ port, host: '127.0.0.1' });
      onCleanup(() => void socket.destroy());
      await within(socket, 'connect');
      const lines = socket.pipe(split2());
      socket.write('one\r\ntwo\nthree\n');
      const got: string[] = [];
      for await (const line of lines) if (got.push(String(line)) === 3) break;
      expect(got).to.deep.equal(['3:one', '3:two', '5:three']);

      const second = net.connect({ port, host: '127.0.0.1' });
      onCleanup(() => void second.destroy());
      const reader = createInterface({ input: second });
      second.write('readline\n');
      for await (const line of reader) {
        expect(line).to.equal('8:readline');
        break;
      }
    });
  });

  describe('CLI', () => {
    it('--codec lines echoes text lines', async () => {
      const cli = new Cli(['-p', '0', '--codec', 'lines', '--heartbeat', '0']);
      const client = await rawClient(await cli.port());
      client.socket.write('hello\nworld\n');
      expect(String(await receivedAtLeast(client, 12, 'two lines'))).to.equal('hello\nworld\n');
    });

    it('--codec varint echoes it-length-prefixed frames, and --max-frame applies to it', async () => {
      const cli = new Cli(['-p', '0', '--codec', 'varint', '--max-frame', '1k']);
      const client = await rawClient(await cli.port());
      client.socket.write(lp.encode.single(Buffer.from('hi')).subarray());
      expect((await receivedAtLeast(client, 3, 'the echo')).toString('hex')).to.equal('026869');
      client.socket.write(Buffer.from([0x81, 0x08])); // 1025 bytes announced
      await cli.line(/varint header announces 1025 bytes, over the 1024-byte limit \[ERR_FRAME_TOO_LARGE\]$/);
    });

    it('--length-field 2 --byte-order little frames with a 2-byte little-endian length', async () => {
      const cli = new Cli(['-p', '0', '--length-field', '2', '--byte-order', 'little']);
      const client = await rawClient(await cli.port());
      client.socket.write(Buffer.from('02006869', 'hex'));
      expect((await receivedAtLeast(client, 4, 'the echo')).toString('hex')).to.equal('02006869');
    });

    for (const [args, reason] of [
      [['--codec', 'json'], /^pulsar: --codec must be 'length', 'varint' or 'lines', got 'json' \(string\)$/],
      [['--codec', 'lines', '--length-field', '2'], /^pulsar: --length-field applies to kind 'length', not 'lines', got 2 \(number\)$/],
      [['--length-field', '5'], /^pulsar: --length-field must be 1, 2, 3, 4 or 8, got 5/],
      [['--byte-order', 'middle'], /^pulsar: --byte-order must be 'big' or 'little', got 'middle'/],
      [['--length-field', '1', '--max-frame', '1k'], /^pulsar: --max-frame must be an integer from 0 to 255, got 1024/],
    ] as const) {
      it(`exits 2 for ${args.join(' ')}`, async () => {
        const cli = new Cli([...args]);
        expect((await cli.exit()).code).to.equal(2);
        expect(cli.stderr[0]).to.match(reason);
      });
    }
  });
});

