// TLS: server and client over real sockets, with a self-signed certificate made by the openssl CLI for
// this run (CN=localhost, subjectAltName IP:127.0.0.1).
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { Duplex } from 'node:stream';
import tls from 'node:tls';
import { IdleHeartbeat, PulsarClient, type PulsarClientOptions, type PulsarError } from '../lib/index.js';
import { Cli } from './cli-process.js';
import { TestClient, clientErrors, frame, nextEvent, onCleanup, startServer, when, within, selfSigned } from './helpers.js';

let dir: string;
let cert: Buffer;
let key: Buffer;

before(function () {
  this.timeout(20000);
  dir = mkdtempSync(join(tmpdir(), 'pulsar-tls-'));
  ({ cert, key } = selfSigned(dir));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** A PulsarClient over TLS trusting the test certificate; closed after the test. */
async function tlsClient(port: number, options: PulsarClientOptions = {}): Promise<PulsarClient> {
  const client = new PulsarClient({ port, tls: { ca: cert }, ...options });
  onCleanup(() => client.close());
  await client.connect();
  return client;
}

describe('TLS', function () {
  this.timeout(15000);

  it('echoes over TLS to PulsarClient, with heartbeats, reports and the registry as over TCP', async () => {
    const { server, port } = await startServer({ tls: { cert, key }, heartbeat: new IdleHeartbeat({ interval: 50 }), reportInterval: 50 });
    const client = await tlsClient(port);
    expect(String(await client.request('over tls'))).to.equal('over tls');
    await nextEvent(server, 'heartbeat');
    await new Promise((resolve) => client.once('heartbeat', resolve));
    const [report] = await nextEvent(server, 'report');
    expect(report.connections[0]).to.include({ remoteAddress: '127.0.0.1', framesIn: 1 });
    const [conn] = server.connections.values();
    expect((conn!.socket as tls.TLSSocket).encrypted).to.equal(true);
  });

  it('answers every frame read before a shutdown over TLS, then closes cleanly', async () => {
    const { server, port } = await startServer({ tls: { cert, key } });
    const socket = tls.connect({ port, host: '127.0.0.1', ca: cert });
    onCleanup(() => void socket.destroy());
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    let received = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => (received = Buffer.concat([received, chunk])));
    const frames = Array.from({ length: 200 }, (_, i) => frame(`frame ${i}`));
    socket.write(Buffer.concat(frames));
    await when(server, ['frame'], () => [...server.connections.values()].some((c) => c.framesIn > 0), 'frames to arrive');
    const [conn] = server.connections.values();
    const result = await server.close();
    await new Promise((resolve) => (socket.closed ? resolve(null) : socket.once('close', resolve)));
    expect(result).to.deep.equal({ drained: 1, forced: 0 });
    expect(conn!.framesOut).to.equal(conn!.framesIn);
    expect(received.equals(Buffer.concat(frames.slice(0, conn!.framesIn))), 'every answer, whole and in order').to.equal(true);
  });

  it('turns a plain TCP client away with ERR_TLS_HANDSHAKE and keeps serving TLS clients', async () => {
    const { server, port } = await startServer({ tls: { cert, key } });
    const good = await tlsClient(port);
    const plain = await TestClient.connect(port);
    const refused = nextEvent(server, 'clientError');
    plain.send('not tls');
    const [error] = await refused;
    expect((error as PulsarError).code).to.equal('ERR_TLS_HANDSHAKE');
    expect(error.message).to.match(/^127\.0\.0\.1:\d+: TLS handshake failed: /);
    await plain.waitClosed();
    expect(String(await good.request('still here'))).to.equal('still here');
  });

  it('rejects a client that does not trust the certificate, on the client side', async () => {
    const { port } = await startServer({ tls: { cert, key } });
    const client = new PulsarClient({ port, tls: {} });
    onCleanup(() => client.close());
    await client.connect().then(
      () => expect.fail('the self-signed certificate must not be trusted by default'),
      (error: NodeJS.ErrnoException) => expect(error.code).to.equal('DEPTH_ZERO_SELF_SIGNED_CERT'),
    );
  });

  it('serves TLS from the CLI with --tls-cert and --tls-key, and refuses one without the other', async () => {
    const cli = new Cli(['--port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'cert-key.pem')]);
    const client = await tlsClient(await cli.port());
    expect(String(await client.request('cli tls'))).to.equal('cli tls');
    await client.close();
    cli.child.kill('SIGTERM');
    expect((await cli.exit()).code).to.equal(0);

    const half = new Cli(['--tls-cert', join(dir, 'cert.pem')]);
    expect((await half.exit()).code).to.equal(2);
    expect(half.stderr.join('\n')).to.match(/--tls-cert and --tls-key go together/);
  });

  it('rejects a non-object tls with ERR_INVALID_OPTION', async () => {
    const { PulsarServer } = await import('../lib/index.js');
    expect(() => new PulsarServer({ tls: 'yes' as never })).to.throw(/tls must be/).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => new PulsarClient({ tls: 1 as never })).to.throw(/tls must be/).with.property('code', 'ERR_INVALID_OPTION');
  });
});

/**
 * A TLS client behind a PROXY header: its first bytes on the TCP connection are `header` then its
 * ClientHello, written in two pieces cut at `cut` (the whole in one write when `cut` is past the end).
 */
async function tlsAfterProxy(port: number, header: Buffer, cut: number): Promise<{ secure: tls.TLSSocket; raw: net.Socket }> {
  const raw = net.connect({ port, host: '127.0.0.1' });
  onCleanup(() => void raw.destroy());
  await within(raw, 'connect');
  let first = true;
  const wire = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      if (!first) return void raw.write(chunk, callback);
      first = false;
      const opening = Buffer.concat([header, chunk]);
      raw.write(opening.subarray(0, cut));
      if (cut >= opening.length) return void callback();
      setImmediate(() => raw.write(opening.subarray(cut), callback));
    },
    final(callback) {
      raw.end();
      callback();
    },
  });
  raw.on('data', (data: Buffer) => wire.push(data));
  raw.on('end', () => wire.push(null));
  raw.on('error', () => {});
  const secure = tls.connect({ socket: wire, ca: cert, servername: 'localhost' });
  secure.on('error', () => {});
  onCleanup(() => void secure.destroy());
  return { secure, raw };
}

describe('TLS after a PROXY header (TLS passthrough behind a balancer)', function () {
  this.timeout(30000);
  const v1 = Buffer.from('PROXY TCP4 203.0.113.7 127.0.0.1 51234 8080\r\n');

  it('reads the header, then handshakes on what follows, the two in one segment or cut at every byte', async () => {
    const { server, port } = await startServer({ tls: { cert, key }, proxyProtocol: true, heartbeat: false });
    const errors = clientErrors(server);
    // Cut anywhere in the header and in the first 40 bytes of the ClientHello, and not at all.
    for (const cut of [...Array.from({ length: v1.length + 40 }, (_, i) => i + 1), 10_000]) {
      const { secure } = await tlsAfterProxy(port, v1, cut);
      await within(secure, 'secureConnect');
      secure.write(frame(`cut ${cut}`));
      await when(secure, ['data'], () => secure.bytesRead >= 4 + `cut ${cut}`.length, `the echo after a cut at ${cut}`);
      const conn = [...server.connections.values()].at(-1)!;
      expect(conn.remote, `cut at ${cut}`).to.equal('203.0.113.7:51234');
      expect((conn.socket as tls.TLSSocket).encrypted).to.equal(true);
      expect(conn.proxy!.destination).to.deep.equal({ address: '127.0.0.1', port: 8080, family: 'IPv4' });
      secure.destroy();
    }
    expect(errors).to.deep.equal([]);
  });

  it('bounds the header and the handshake together by handshakeTimeout', async () => {
    const { server, port } = await startServer({ tls: { cert, key, handshakeTimeout: 300 }, proxyProtocol: { timeout: 5000 }, heartbeat: false });
    const errors = clientErrors(server);
    const started = Date.now();
    const headerOnly = await TestClient.connect(port);
    headerOnly.socket.write(v1); // then no ClientHello
    const halfHeader = await TestClient.connect(port);
    halfHeader.socket.write(v1.subarray(0, 10));
    await when(server, ['clientError'], () => errors.length === 2, 'both to be refused', 5000);
    const elapsed = Date.now() - started;
    expect(elapsed).to.be.within(250, 2500);
    expect(errors.map((e) => e.code).sort()).to.deep.equal(['ERR_PROXY_TIMEOUT', 'ERR_TLS_HANDSHAKE']);
    expect(errors.find((e) => e.code === 'ERR_TLS_HANDSHAKE')!.message).to.match(/^203\.0\.113\.7:51234: TLS handshake failed: TLS handshake timeout \(the PROXY header included\)/);
    expect(errors.find((e) => e.code === 'ERR_PROXY_TIMEOUT')!.message).to.match(/no complete PROXY header within 300 ms/);
    await Promise.all([headerOnly.waitClosed(), halfHeader.waitClosed()]);
  });

  it('refuses plain TCP after the header with ERR_TLS_HANDSHAKE, serving others', async () => {
    const { server, port } = await startServer({ tls: { cert, key }, proxyProtocol: true, heartbeat: false });
    const errors = clientErrors(server);
    const plain = await TestClient.connect(port);
    plain.socket.write(Buffer.concat([v1, frame('not tls')]));
    await plain.waitClosed();
    expect(errors.map((e) => e.code)).to.deep.equal(['ERR_TLS_HANDSHAKE']);
    const { secure } = await tlsAfterProxy(port, v1, 10_000);
    await within(secure, 'secureConnect');
    secure.write(frame('fine'));
    await when(secure, ['data'], () => secure.bytesRead >= 8, 'the echo');
  });

  it('serves PROXY and TLS together from the CLI', async () => {
    const cli = new Cli(['--port', '0', '--proxy-protocol', '--trusted-proxy', '127.0.0.1/32', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'cert-key.pem')]);
    const { secure } = await tlsAfterProxy(await cli.port(), v1, 10_000);
    await within(secure, 'secureConnect');
    await cli.line(/pulsar:connection 203\.0\.113\.7:51234 connected/);
    const echoed: Buffer[] = [];
    secure.on('data', (chunk: Buffer) => echoed.push(chunk));
    secure.write(frame('through PROXY and TLS'));
    await when(secure, ['data'], () => Buffer.concat(echoed).length >= 4 + 21, 'the echo through PROXY and TLS');
    expect(Buffer.concat(echoed).equals(frame('through PROXY and TLS'))).to.equal(true);
  });
});
