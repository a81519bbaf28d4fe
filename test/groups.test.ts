// Groups (encode-once broadcast, Set-like, left on disconnect), sendTo() by global id, and the registry
// lifecycle (start/stop awaited, removals awaited on shutdown), over real sockets.
import { expect } from 'chai';
import {
  LengthPrefixedCodec, MemoryRegistry, PulsarServer, type Connection, type PulsarError, type RegistryContext,
} from '../lib/index.js';
import { TestClient, clientErrors, frame, gc, nextEvent, onCleanup, startServer, when } from './helpers.js';

/** The default codec, counting how often it encodes. */
class CountingCodec extends LengthPrefixedCodec {
  encodes = 0;
  override encode(payload: Uint8Array): Buffer {
    this.encodes++;
    return super.encode(payload);
  }
}

async function clients(port: number, n: number): Promise<TestClient[]> {
  return Promise.all(Array.from({ length: n }, () => TestClient.connect(port)));
}

describe('groups', function () {
  this.timeout(20000);

  it('are Set-like, and a connection leaves every group when it closes', async () => {
    const { server, port } = await startServer({ heartbeat: false });
    const [a, b] = (await clients(port, 2)) as [TestClient, TestClient];
    await when(server, ['connection'], () => server.connections.size === 2, 'two connections');
    const [ca, cb] = [...server.connections.values()] as Connection[] as [Connection, Connection];
    const room = server.group('room');
    expect(server.group('room')).to.equal(room);
    room.add(ca).add(cb).add(ca);
    server.group('other').add(ca);
    expect([room.size, room.has(ca), [...room].length]).to.deep.equal([2, true, 2]);
    expect(room.delete(cb)).to.equal(true);
    expect(room.delete(cb)).to.equal(false);
    a.socket.end();
    await nextEvent(server, 'disconnect');
    expect([room.size, server.group('other').size]).to.deep.equal([0, 0]);
    b.socket.end();
    await nextEvent(server, 'disconnect');
    room.add(cb);
    expect(room.size, 'a closed connection is not added').to.equal(0);
  });

  it('forgets a group that emptied and that nobody holds (rooms do not pile up)', async () => {
    // A WeakRef's target made or read in a job stays alive until the job ends: yield before each collection.
    const collect = async (): Promise<void> => {
      await new Promise((resolve) => setImmediate(resolve));
      gc();
    };
    const { server, port } = await startServer({ heartbeat: false });
    const client = await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
    server.group('ephemeral').add([...server.connections.values()][0]!);
    await collect();
    expect([...server.groups.keys()], 'its member keeps it').to.deep.equal(['ephemeral']);
    const gone = nextEvent(server, 'disconnect');
    client.socket.end();
    await gone;
    await collect();
    expect([...server.groups.keys()], 'empty and unheld: forgotten').to.deep.equal([]);
    expect(server.group('ephemeral').size, 'made anew on demand').to.equal(0);
  });

  it('broadcast encodes once for every member, byte-identical, skipping `except`', async () => {
    const codec = new CountingCodec();
    const { server, port } = await startServer({ codec, heartbeat: false });
    const members = await clients(port, 50);
    await when(server, ['connection'], () => server.connections.size === 50, '50 connections');
    const room = server.group('room');
    for (const conn of server.connections.values()) room.add(conn);
    const sender = [...server.connections.values()][0]!;
    const before = codec.encodes;
    expect(room.broadcast('to all but one', { except: sender })).to.equal(49);
    expect(codec.encodes - before, 'encoded once').to.equal(1);
    await Promise.all(members.slice(1).map((m) => m.waitFrames(1)));
    for (const m of members.slice(1)) expect(m.received.equals(frame('to all but one'))).to.equal(true);
    expect(members[0]!.frames).to.deep.equal([]);
  });

  it('a member that does not read is closed by the slow-consumer limit; the others get every frame', async () => {
    const { server, port } = await startServer({ heartbeat: false, maxPendingOutput: 1024 * 1024 });
    const errors = clientErrors(server);
    const readers = await clients(port, 3);
    const deaf = await TestClient.connect(port);
    deaf.socket.pause();
    await when(server, ['connection'], () => server.connections.size === 4, '4 connections');
    const room = server.group('feed');
    for (const conn of server.connections.values()) room.add(conn);
    const payload = Buffer.alloc(16 * 1024, 7);
    for (let i = 0; i < 400; i++) {
      room.broadcast(payload);
      // Bursts of 20 (320 KiB), each read before the next: readers keep up, the deaf member piles up.
      if (i % 20 === 19) await Promise.all(readers.map((r) => r.waitFrames(i + 1, 15000)));
    }
    await Promise.all(readers.map((r) => r.waitFrames(400, 15000)));
    await when(server, ['clientError'], () => errors.length > 0, 'the deaf member to be closed');
    expect(errors.map((e) => e.code)).to.deep.equal(['ERR_SLOW_CONSUMER']);
    expect(room.size).to.equal(3);
  });
});

describe('sendTo()', function () {
  this.timeout(10000);

  it('reaches a connection here by its global id, and refuses what is not there', async () => {
    const { server, port } = await startServer({ heartbeat: false, instanceId: 'edge-1' });
    const client = await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
    const [conn] = server.connections.values();
    expect(conn!.globalId).to.equal('edge-1/1');
    expect(await server.sendTo('edge-1/1', 'direct')).to.equal(true);
    expect(String((await client.waitFrames(1))[0])).to.equal('direct');
    expect(await server.sendTo('edge-1/9', 'to nobody'), 'a connection not here: dropped, as send() does').to.equal(false);
    expect(server.stats().framesDropped).to.equal(1);
    for (const [id, message] of [
      ['edge-2/1', /is on instance edge-2, and this server has no relay/],
      ['nonsense', /not a connection id/],
    ] as const) {
      const error = await server.sendTo(id, 'x').then(() => undefined, (e: PulsarError) => e);
      expect(error, id).to.include({ code: 'ERR_NO_SUCH_CONNECTION' });
      expect(error!.message).to.match(message);
    }
    expect(() => new PulsarServer({ instanceId: 'has/slash' })).to.throw(/instanceId must be/);
  });
});

describe('registry lifecycle', function () {
  this.timeout(10000);

  it('listen() waits for start(), close() waits for every removal and then stop()', async () => {
    const events: string[] = [];
    let context: RegistryContext | undefined;
    const registry = {
      snapshot: () => [],
      add: (conn: Connection) => void events.push(`added ${conn.id}`),
      remove: (conn: Connection) => new Promise<void>((resolve) => setTimeout(() => (events.push(`removed ${conn.id}`), resolve()), 200)),
      start: async (ctx: RegistryContext) => {
        await new Promise((resolve) => setTimeout(resolve, 100));
        context = ctx;
        events.push('started');
      },
      stop: () => void events.push('stopped'),
    };
    const server = new PulsarServer({ port: 0, registry, heartbeat: false, instanceId: 'life' });
    onCleanup(() => server.close());
    server.on('listening', () => events.push('listening'));
    const { port } = await server.listen();
    expect(events).to.deep.equal(['started', 'listening']);
    expect(context!.instanceId).to.equal('life');
    await TestClient.connect(port);
    await when(server, ['connection'], () => server.connections.size === 1, 'the connection');
    expect(context!.connections.size).to.equal(1);
    await server.close();
    expect(events).to.deep.equal(['started', 'listening', 'added 1', 'removed 1', 'stopped']);
  });

  it('listen() rejects with ERR_REGISTRY when start() fails, and does not listen', async () => {
    const registry = Object.assign(new MemoryRegistry(), { start: () => Promise.reject(new Error('store unreachable')) });
    const server = new PulsarServer({ port: 0, registry });
    const error = await server.listen().then(() => undefined, (e: PulsarError) => e);
    expect(error).to.include({ code: 'ERR_REGISTRY' });
    expect(error!.message).to.match(/registry.start\(\) failed: store unreachable/);
    expect(server.address()).to.equal(null);
  });
});
