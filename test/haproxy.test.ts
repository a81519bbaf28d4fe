// End to end behind a real HAProxy (Debian's package; `npm test` installs it when missing, see
// test/setup/packages.mjs): `mode tcp` with `send-proxy-v2`, round robin over two pulsar servers with
// `proxyProtocol: true`, everything on loopback ports picked at run time.
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection, PulsarServer, Report } from '../lib/index.js';
import { startHaproxy } from './haproxy-process.js';
import { TestClient, clientErrors, frame, freePort, needsProgram, onCleanup, startServer, when, within, selfSigned } from './helpers.js';

/** The server each client landed on, found by the client's own port in the servers' connections. */
function serverOf(client: TestClient, servers: PulsarServer[]): number {
  const port = client.socket.localPort;
  return servers.findIndex((s) => [...s.connections.values()].some((c) => c.remotePort === port));
}

describe('behind HAProxy (send-proxy-v2)', function () {
  this.timeout(30000);
  before(function () {
    needsProgram(this, 'haproxy');
  });

  it('echoes through HAProxy, shows real client addresses, and moves new clients off a server that drains without loss', async () => {
    const backends = await Promise.all([0, 1].map(() => startServer({ proxyProtocol: true, reportInterval: 100 })));
    const servers = backends.map((b) => b.server);
    const frontend = await freePort();
    await startHaproxy(frontend, backends.map((b) => b.port));

    // Clients through HAProxy: echoes, and each server knows them by their own address and port.
    const clients = await Promise.all(Array.from({ length: 8 }, () => TestClient.connect(frontend)));
    for (const [i, client] of clients.entries()) client.send(`hello ${i}`);
    await Promise.all(clients.map((c, i) => c.waitFrames(1).then((frames) => expect(String(frames[0])).to.equal(`hello ${i}`))));
    const landed = clients.map((c) => serverOf(c, servers));
    expect(landed, 'every client is known to a server by its own port').to.not.include(-1);
    expect(new Set(landed), 'round robin used both servers').to.deep.equal(new Set([0, 1]));
    for (const conn of servers.flatMap((s) => [...s.connections.values()])) expect(conn.remoteAddress).to.equal('127.0.0.1');
    const reports = await Promise.all(servers.map((s) => new Promise<Report>((resolve) => s.once('report', resolve))));
    const reported = reports.flatMap((r) => r.connections.map((c) => c.remotePort)).sort();
    expect(reported, 'the reports carry the clients\' ports').to.deep.equal(clients.map((c) => c.socket.localPort).sort());

    // Server 1 drains: its clients get every answer to what they sent, then are closed.
    const draining = clients.filter((_, i) => landed[i] === 0);
    const conns = new Map<TestClient, Connection>(draining.map((c) => [c, [...servers[0]!.connections.values()].find((k) => k.remotePort === c.socket.localPort)!]));
    for (const client of draining) for (let n = 0; n < 50; n++) client.send(`burst ${n}`);
    // Close while the bursts are being read, some of each read, some not yet.
    await when(servers[0]!, ['frame'], () => [...conns.values()].every((c) => c.framesIn > 1), 'the bursts to arrive');
    const closed = servers[0]!.close();
    expect(await closed).to.deep.include({ forced: 0 });
    for (const client of draining) {
      await client.waitClosed();
      const conn = conns.get(client)!;
      expect(conn.framesOut, 'every frame the server read was answered').to.equal(conn.framesIn);
      expect(client.frames.length, 'the client got every answer').to.equal(conn.framesOut);
      expect(client.frames.slice(1).map(String)).to.deep.equal(Array.from({ length: conn.framesIn - 1 }, (_, n) => `burst ${n}`));
    }

    // New clients all land on the server still up, and are served.
    const late = await Promise.all(Array.from({ length: 6 }, () => TestClient.connect(frontend)));
    for (const client of late) client.send('after');
    await Promise.all(late.map((c) => c.waitFrames(1)));
    expect(late.map((c) => serverOf(c, servers))).to.deep.equal(late.map(() => 1));
  });
});

describe('behind HAProxy with TLS passthrough (send-proxy-v2, TLS terminated by pulsar)', function () {
  this.timeout(30000);
  let dir: string;
  let cert: Buffer;
  let key: Buffer;

  before(function () {
    needsProgram(this, 'haproxy');
    dir = mkdtempSync(join(tmpdir(), 'pulsar-haproxy-tls-'));
    ({ cert, key } = selfSigned(dir, { altNames: 'DNS:localhost' }));
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  it('sees TLS clients by their own addresses, gets HAProxy\'s TLVs, and refuses a forged header from elsewhere', async () => {
    // HAProxy connects from 127.0.0.1, the only trusted proxy; clients connect from 127.0.0.2 and .3.
    const { server, port } = await startServer({ proxyProtocol: true, tls: { cert, key }, trustedProxies: ['127.0.0.1/32'], heartbeat: false });
    const errors = clientErrors(server);
    const frontend = await freePort();
    await startHaproxy(frontend, [port], 'send-proxy-v2 proxy-v2-options unique-id,crc32c', ['  unique-id-format %ci:%cp_%fp']);

    for (const localAddress of ['127.0.0.2', '127.0.0.3']) {
      const client = tls.connect({ socket: net.connect({ port: frontend, host: '127.0.0.1', localAddress }), ca: cert, servername: 'localhost' });
      onCleanup(() => void client.destroy());
      await within(client, 'secureConnect');
      client.write(frame(`from ${localAddress}`));
      await when(client, ['data'], () => client.bytesRead >= 4 + `from ${localAddress}`.length, 'the echo through HAProxy');
      const conn = [...server.connections.values()].find((c) => c.remotePort === client.localPort)!;
      expect(conn.remoteAddress, 'the client as the server sees it').to.equal(localAddress);
      expect((conn.socket as tls.TLSSocket).encrypted, 'TLS terminated by pulsar').to.equal(true);
      expect(conn.proxy!.destination).to.deep.equal({ address: '127.0.0.1', port: frontend, family: 'IPv4' });
      const names = conn.proxy!.tlvs.map((t) => t.name);
      expect(names).to.include.members(['unique_id', 'crc32c']);
      expect(conn.proxy!.tlvs.find((t) => t.name === 'unique_id')!.value.toString()).to.equal(`${localAddress}:${client.localPort}_${frontend}`);
    }

    // A client that connects directly, claiming to be someone else, is not believed.
    const forger = net.connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    onCleanup(() => void forger.destroy());
    forger.on('error', () => {});
    await within(forger, 'connect');
    forger.write('PROXY TCP4 10.9.9.9 127.0.0.1 4000 8080\r\n');
    await when(server, ['clientError'], () => errors.length > 0, 'the forged header to be refused');
    expect(errors.map((e) => e.code), JSON.stringify(errors)).to.deep.equal(['ERR_PROXY_PROTOCOL']);
    expect(errors[0]!.message).to.match(/^127\.0\.0\.2:\d+: refused, 127\.0\.0\.2 is not a trusted proxy/);
    expect([...server.connections.values()].map((c) => c.remoteAddress)).to.not.include('10.9.9.9');
  });
});
