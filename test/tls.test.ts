// TLS: server and client over real sockets, with a self-signed certificate made by the openssl CLI for
// this run (CN=localhost, subjectAltName IP:127.0.0.1).
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { IdleHeartbeat, PulsarClient, type PulsarError } from '../lib/index.js';
import { Cli } from './cli-process.js';
import { TestClient, frame, nextEvent, onCleanup, runCleanups, startServer, when } from './helpers.js';

afterEach(runCleanups);

let dir: string;
let cert: Buffer;
let key: Buffer;

before(function () {
  this.timeout(20000);
  dir = mkdtempSync(join(tmpdir(), 'pulsar-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
  ], { stdio: 'ignore' });
  cert = readFileSync(join(dir, 'cert.pem'));
  key = readFileSync(join(dir, 'key.pem'));
});

after(() => rmSync(dir, { recursive: true, force: true }));

/** A PulsarClient over TLS trusting the test certificate; closed after the test. */
async function tlsClient(port: number, options: ConstructorParameters<typeof PulsarClient>[0] = {}): Promise<PulsarClient> {
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
    expect(error.message).to.match(/^127\.0\.0\.1:\d+ \(connection \d+\): TLS handshake failed: /);
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
    const cli = new Cli(['--port', '0', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    const client = await tlsClient(await cli.port());
    expect(String(await client.request('cli tls'))).to.equal('cli tls');
    await client.close();
    cli.child.kill('SIGTERM');
    expect((await cli.exit()).code).to.equal(0);

    const half = new Cli(['--tls-cert', join(dir, 'cert.pem')]);
    expect((await half.exit()).code).to.equal(2);
    expect(half.stderr.join('\n')).to.match(/--tls-cert and --tls-key go together/);
  });

  it('rejects tls with proxyProtocol, and a non-object tls, with ERR_INVALID_OPTION', async () => {
    const { PulsarServer } = await import('../lib/index.js');
    expect(() => new PulsarServer({ tls: { cert, key }, proxyProtocol: true })).to.throw(/cannot be combined with proxyProtocol/).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => new PulsarServer({ tls: 'yes' as never })).to.throw(/tls must be/).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => new PulsarClient({ tls: 1 as never })).to.throw(/tls must be/).with.property('code', 'ERR_INVALID_OPTION');
  });
});
