// The registry and its reports, over real sockets: what reports carry, custom registries (never waited on
// to serve frames), a failing one, the default one.
import { expect } from 'chai';
import { MemoryRegistry, type ConnectionSnapshot, type PulsarError, type Registry } from '../lib/index.js';
import { TestClient, nextEvent, startServer, when } from './helpers.js';
describe('registry and reports', () => {
  it('reports every live connection with its figures', async () => {
    const { server, port } = await startServer({ reportInterval: 50 });
    const a = await TestClient.connect(port);
    const b = await TestClient.connect(port);
    a.send('12345', '67');
    await a.waitFrames(2);
    const [report] = await nextEvent(server, 'report', 3000, (r) => r.count === 2);
    expect(report.connections).to.have.length(2);
    const byPort = new Map(report.connections.map((c: ConnectionSnapshot) => [c.remotePort, c]));
    const ra = byPort.get(a.socket.localPort!)!;
    const rb = byPort.get(b.socket.localPort!)!;
    expect(ra).to.include({ remoteAddress: '127.0.0.1', framesIn: 2, framesOut: 2, bytesIn: 15, bytesOut: 15 });
    expect(rb).to.include({ framesIn: 0, bytesIn: 0, framesOut: 0, bytesOut: 0 });
    expect(ra.connectedAt).to.be.within(Date.now() - 5000, Date.now());
    // b has been silent since it connected; a spoke after b connected, so it has been silent for no longer.
    expect(rb.idleMs, "b's silence").to.be.within(0, report.time - rb.connectedAt);
    expect(ra.idleMs, "a's silence, no longer than b's").to.be.at.most(rb.idleMs);
    expect(report.time).to.be.within(Date.now() - 5000, Date.now());
  });

  it('reports from a custom registry, and does not wait on its add() to serve frames', async () => {
    const added: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const registry: Registry = {
      add: async (conn) => { await gate; added.push(conn.id); },
      remove: () => undefined,
      snapshot: async () => [{ id: 42, remoteAddress: 'x', remotePort: 1, connectedAt: 0, idleMs: 0, framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0 }],
    };
    const { server, port } = await startServer({ registry, reportInterval: 30 });
    const client = await TestClient.connect(port);
    client.send('not blocked');
    await client.waitFrames(1);
    expect(added).to.deep.equal([]);
    release();
    const [report] = await nextEvent(server, 'report');
    expect(report.connections[0]!.id).to.equal(42);
  });

  it('turns a failing registry into an ERR_REGISTRY server error, not a client failure', async () => {
    const registry: Registry = { add: () => Promise.reject(new Error('store down')), remove: () => undefined, snapshot: () => [] };
    const { server, port } = await startServer({ registry });
    const errorSeen = nextEvent(server, 'error');
    const client = await TestClient.connect(port);
    const [error] = await errorSeen;
    expect((error as PulsarError).code).to.equal('ERR_REGISTRY');
    expect(error.message).to.match(/registry\.add\(\) failed: store down/);
    client.send('ok');
    await client.waitFrames(1);
  });

  it('keeps the default MemoryRegistry in step with connections', async () => {
    const registry = new MemoryRegistry();
    const { server, port } = await startServer({ registry });
    const client = await TestClient.connect(port);
    await when(server, ['connection'], () => registry.size === 1, 'registry add');
    expect([...registry][0]!.remotePort).to.equal(client.socket.localPort);
    client.socket.end();
    await nextEvent(server, 'disconnect');
    expect(registry.size).to.equal(0);
  });
});
