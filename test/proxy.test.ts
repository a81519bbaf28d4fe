// The PROXY protocol (v1 text, v2 binary): the header parser on its own, then a server reading it over
// real sockets. Headers are built here from the spec, byte by byte.
import { expect } from 'chai';
import type { PulsarError } from '../lib/index.js';
import { ProxyHeaderParser, type ProxyHeader } from '../lib/accept/proxy-protocol.js';
import { TestClient, frame, nextEvent, startServer } from './helpers.js';

const SIGNATURE = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header: version 2, `command` (0 LOCAL, 1 PROXY), `family` byte, then the address block and TLVs. */
function v2(command: number, family: number, block: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | command;
  fixed[1] = family;
  fixed.writeUInt16BE(block.length, 2);
  return Buffer.concat([SIGNATURE, fixed, block]);
}

function v2ipv4(source: string, sourcePort: number, extra = Buffer.alloc(0)): Buffer {
  const block = Buffer.alloc(12);
  source.split('.').forEach((octet, i) => (block[i] = Number(octet)));
  block.set([127, 0, 0, 1], 4);
  block.writeUInt16BE(sourcePort, 8);
  block.writeUInt16BE(8080, 10);
  return v2(1, 0x11, Buffer.concat([block, extra]));
}

function v2ipv6(sourceGroups: number[], sourcePort: number): Buffer {
  const block = Buffer.alloc(36);
  sourceGroups.forEach((group, i) => block.writeUInt16BE(group, i * 2));
  block[31] = 1; // destination ::1
  block.writeUInt16BE(sourcePort, 32);
  block.writeUInt16BE(8080, 34);
  return v2(1, 0x21, block);
}

/** Feeds `bytes` in two pieces, cut inside the header at `cut`: the first piece must not complete it. */
function parseInPieces(bytes: Buffer, cut: number): ProxyHeader {
  const parser = new ProxyHeaderParser(1024);
  expect(parser.push(bytes.subarray(0, cut)), `complete after only ${cut} bytes`).to.equal(null);
  return parser.push(bytes.subarray(cut))!;
}

function parseError(bytes: Buffer, maxHeaderLength = 1024): PulsarError {
  try {
    new ProxyHeaderParser(maxHeaderLength).push(bytes);
  } catch (error) {
    return error as PulsarError;
  }
  throw new Error('expected the header to be refused');
}

describe('PROXY protocol', () => {
  describe('header parser', () => {
    const after = Buffer.from('00000002hi');
    const cases: Array<[string, Buffer, ProxyHeader['source']]> = [
      ['v1 TCP4', Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 51234 8080\r\n'), { address: '203.0.113.7', port: 51234, family: 'IPv4' }],
      ['v1 TCP6', Buffer.from('PROXY TCP6 2001:db8::7 ::1 51234 8080\r\n'), { address: '2001:db8::7', port: 51234, family: 'IPv6' }],
      ['v1 UNKNOWN', Buffer.from('PROXY UNKNOWN whatever\r\n'), null],
      ['v2 TCP over IPv4', v2ipv4('198.51.100.9', 40000), { address: '198.51.100.9', port: 40000, family: 'IPv4' }],
      ['v2 TCP over IPv4 with TLVs', v2ipv4('198.51.100.9', 40000, Buffer.from('0300040a0b0c0d', 'hex')), { address: '198.51.100.9', port: 40000, family: 'IPv4' }],
      ['v2 TCP over IPv6', v2ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 443), { address: '2001:db8::7', port: 443, family: 'IPv6' }],
      ['v2 LOCAL (health check)', v2(0, 0x00, Buffer.alloc(0)), null],
      ['v2 UNSPEC', v2(1, 0x00, Buffer.alloc(0)), null],
    ];
    for (const [name, header, source] of cases) {
      it(`reads a ${name} header cut at any point, and hands back the bytes after it`, () => {
        const bytes = Buffer.concat([header, after]);
        const whole = new ProxyHeaderParser(1024).push(bytes)!;
        expect(whole.source).to.deep.equal(source);
        expect(whole.rest.toString()).to.equal(after.toString());
        for (let cut = 1; cut < header.length; cut++) {
          const result = parseInPieces(bytes, cut);
          expect(result.source).to.deep.equal(source);
          expect(result.rest.toString(), `rest after a cut at ${cut}`).to.equal(after.toString());
        }
      });
    }

    const refused: Array<[string, Buffer, RegExp]> = [
      ['a stream with no header', frame('hello'), /did not start with a PROXY protocol header/],
      ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\n'), /did not start with a PROXY protocol header/],
      ['a v1 line over 107 bytes', Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), /longer than 107 bytes/],
      ['a v1 line with an unknown protocol', Buffer.from('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), /must be TCP4, TCP6 or UNKNOWN/],
      ['a v1 line with a bad address', Buffer.from('PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n'), /malformed PROXY v1 line/],
      ['a v1 line with an IPv6 address as TCP4', Buffer.from('PROXY TCP4 ::1 ::1 1 2\r\n'), /malformed PROXY v1 line/],
      ['a v1 line with a port over 65535', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), /malformed PROXY v1 line/],
      ['a v1 line with extra fields', Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), /malformed PROXY v1 line/],
      ['a v2 header of version 3', Buffer.concat([SIGNATURE, Buffer.from('31110000', 'hex')]), /version 3/],
      ['a v2 header with command 2', Buffer.concat([SIGNATURE, Buffer.from('22110000', 'hex')]), /unknown command 2/],
      ['a v2 header over the size limit', Buffer.concat([SIGNATURE, Buffer.from('2111ffff', 'hex')]), /65551 bytes, over the 1024-byte limit/],
      ['a v2 header for UDP', v2(1, 0x12, Buffer.alloc(12)), /unsupported family\/transport 0x12/],
      ['a v2 IPv4 block too short', v2(1, 0x11, Buffer.alloc(8)), /IPv4 address block too short/],
    ];
    for (const [name, bytes, message] of refused) {
      it(`refuses ${name} with ERR_PROXY_PROTOCOL`, () => {
        const error = parseError(bytes);
        expect(error.code).to.equal('ERR_PROXY_PROTOCOL');
        expect(error.message).to.match(message);
      });
    }

    it('refuses a stream with no header as soon as its first byte shows it', () => {
      expect(parseError(Buffer.from([0])).code).to.equal('ERR_PROXY_PROTOCOL');
      expect(new ProxyHeaderParser(1024).push(Buffer.from('PRO'))).to.equal(null);
      expect(new ProxyHeaderParser(1024).push(SIGNATURE.subarray(0, 5))).to.equal(null);
    });
  });

  describe('destination and TLVs', () => {
    const tlv = (type: number, value: Buffer | string): Buffer => {
      const bytes = Buffer.from(value);
      return Buffer.concat([Buffer.from([type, bytes.length >> 8, bytes.length & 0xff]), bytes]);
    };
    const tlvs = Buffer.concat([
      tlv(0x01, 'h2'), tlv(0x02, 'example.com'), tlv(0x05, Buffer.from('0123456789abcdef', 'hex')),
      tlv(0xea, Buffer.concat([Buffer.from([0x01]), Buffer.from('vpce-08d2bf15fac5001c9')])), tlv(0xc0, 'custom'),
    ]);

    it('reads the destination of v1 and v2 headers and every v2 TLV, naming the well-known ones', () => {
      const v1 = new ProxyHeaderParser(1024).push(Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\n'))!;
      expect(v1.destination).to.deep.equal({ address: '192.0.2.1', port: 443, family: 'IPv4' });
      expect(v1.tlvs).to.deep.equal([]);
      const header = new ProxyHeaderParser(1024).push(v2ipv4('198.51.100.9', 40000, tlvs))!;
      expect(header.destination).to.deep.equal({ address: '127.0.0.1', port: 8080, family: 'IPv4' });
      expect(header.tlvs.map((t) => [t.type, t.name, t.value.toString('hex')])).to.deep.equal([
        [0x01, 'alpn', Buffer.from('h2').toString('hex')],
        [0x02, 'authority', Buffer.from('example.com').toString('hex')],
        [0x05, 'unique_id', '0123456789abcdef'],
        [0xea, 'aws', Buffer.from('\x01vpce-08d2bf15fac5001c9', 'latin1').toString('hex')],
        [0xc0, undefined, Buffer.from('custom').toString('hex')],
      ]);
      expect(new ProxyHeaderParser(1024).push(v2ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 443))!.destination).to.deep.equal({ address: '::1', port: 8080, family: 'IPv6' });
    });

    it('refuses TLVs that run past the header', () => {
      expect(parseError(v2ipv4('198.51.100.9', 40000, Buffer.from('0100ff61', 'hex'))).message).to.match(/TLV 0x1 of 255 bytes runs past the header/);
      expect(parseError(v2ipv4('198.51.100.9', 40000, Buffer.from('01', 'hex'))).message).to.match(/TLV cut short/);
    });

    it('exposes them on the connection and in its snapshot', async () => {
      const { server, port } = await startServer({ proxyProtocol: true, reportInterval: 50 });
      const client = await TestClient.connect(port);
      client.socket.write(Buffer.concat([v2ipv4('198.51.100.9', 40000, tlvs), frame('hi')]));
      await client.waitFrames(1);
      const [conn] = server.connections.values();
      expect(conn!.proxy!.destination).to.deep.equal({ address: '127.0.0.1', port: 8080, family: 'IPv4' });
      expect(conn!.proxy!.tlvs.find((t) => t.name === 'authority')!.value.toString()).to.equal('example.com');
      const [report] = await nextEvent(server, 'report');
      expect(report.connections[0]!.proxy).to.deep.include({ destination: '127.0.0.1:8080' });
      expect(report.connections[0]!.proxy!.tlvs[0]).to.deep.equal({ type: 1, name: 'alpn', value: '6832' });
      expect(report.connections[0]!.proxy!.tlvs[4]).to.deep.equal({ type: 0xc0, value: Buffer.from('custom').toString('hex') });
    });
  });

  describe('server with proxyProtocol', () => {
    it('shows the address from a v1 header in the connection, the registry and reports, and echoes what follows in the same read', async () => {
      const { server, port } = await startServer({ proxyProtocol: true });
      const client = await TestClient.connect(port);
      const connected = nextEvent(server, 'connection');
      client.socket.write(Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51234 8080\r\n'), frame('first')]));
      const [conn] = await connected;
      expect(conn).to.include({ remoteAddress: '203.0.113.7', remotePort: 51234, remote: '203.0.113.7:51234' });
      expect(String((await client.waitFrames(1))[0])).to.equal('first');
      const snapshot = await server.options.registry.snapshot();
      expect(snapshot[0]).to.include({ remoteAddress: '203.0.113.7', remotePort: 51234 });
      client.send('second');
      expect(String((await client.waitFrames(2))[1])).to.equal('second');
    });

    it('reads a v2 header written in pieces, IPv6 included', async () => {
      const { server, port } = await startServer({ proxyProtocol: { timeout: 2000 } });
      const client = await TestClient.connect(port);
      const header = v2ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 7], 443);
      const connected = nextEvent(server, 'connection');
      for (const piece of [header.subarray(0, 7), header.subarray(7, 20), header.subarray(20)]) {
        client.socket.write(piece);
        await new Promise(setImmediate);
      }
      const [conn] = await connected;
      expect(conn.remote).to.equal('[2001:db8::7]:443');
      client.send('x');
      await client.waitFrames(1);
    });

    it('keeps the proxy\'s own address for a v2 LOCAL header (health checks)', async () => {
      const { server, port } = await startServer({ proxyProtocol: true });
      const client = await TestClient.connect(port);
      const connected = nextEvent(server, 'connection');
      client.socket.write(Buffer.concat([v2(0, 0, Buffer.alloc(0)), frame('ok')]));
      const [conn] = await connected;
      expect(conn).to.include({ remoteAddress: '127.0.0.1', remotePort: client.socket.localPort });
      await client.waitFrames(1);
    });

    it('closes a connection without a header with ERR_PROXY_PROTOCOL, naming it, and serves the others', async () => {
      const { server, port } = await startServer({ proxyProtocol: true });
      const good = await TestClient.connect(port);
      good.socket.write(Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51234 8080\r\n'));
      const direct = await TestClient.connect(port);
      const refused = nextEvent(server, 'clientError');
      direct.send('no header');
      const [error] = await refused;
      expect((error as PulsarError).code).to.equal('ERR_PROXY_PROTOCOL');
      expect(error.message, "refused before it was served: no id").to.equal(`127.0.0.1:${direct.socket.localPort}: the connection did not start with a PROXY protocol header`);
      await direct.waitClosed();
      expect(direct.frames).to.have.length(0);
      good.send('still served');
      await good.waitFrames(1);
      expect(server.connections.size).to.equal(1);
    });

    it('closes a connection that sends half a header and stalls with ERR_PROXY_TIMEOUT', async () => {
      const { server, port } = await startServer({ proxyProtocol: { timeout: 200 } });
      const client = await TestClient.connect(port);
      const started = Date.now();
      const refused = nextEvent(server, 'clientError');
      client.socket.write('PROXY TCP4 203.0.113.7');
      const [error] = await refused;
      expect((error as PulsarError).code).to.equal('ERR_PROXY_TIMEOUT');
      expect(Date.now() - started).to.be.within(150, 3000);
      await client.waitClosed();
      expect(server.connections.size).to.equal(0);
    });

    it('closes connections still sending their header at shutdown, at once', async () => {
      const { server, port } = await startServer({ proxyProtocol: { timeout: 10000 } });
      const client = await TestClient.connect(port);
      client.socket.write('PROXY ');
      const started = Date.now();
      expect(await server.close()).to.deep.equal({ drained: 0, forced: 0 });
      await client.waitClosed();
      expect(Date.now() - started).to.be.below(1000);
    });

    it('rejects bad proxyProtocol options with ERR_INVALID_OPTION', async () => {
      const { PulsarServer } = await import('../lib/index.js');
      for (const proxyProtocol of [1, 'yes', { timeout: 0 }, { maxHeaderLength: 16 }]) {
        expect(() => new PulsarServer({ proxyProtocol: proxyProtocol as never })).to.throw(/proxyProtocol/).with.property('code', 'ERR_INVALID_OPTION');
      }
    });
  });
});
