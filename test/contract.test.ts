// SPEC section 17: hello, contracts with routes, rooms and their names, over real sockets.
import { expect } from 'chai';
import { z } from 'zod';
import { contract, json, message, PulsarClient, PulsarError, request, RemoteError, type Connection, type PulsarClientOptions } from '../lib/index.js';
import { nextEvent, onCleanup, rejection, startServer } from './helpers.js';

const api = contract({
  client: {
    join: request({ input: z.object({ room: z.string() }), output: z.object({ members: z.number() }) }),
    say: message(z.object({ text: z.string().max(500) })),
    whoami: request({ input: z.null(), output: z.string() }),
  },
  server: {
    said: message(z.object({ from: z.string(), text: z.string() })),
    ping: request({ input: z.null(), output: z.literal('pong') }),
  },
});

type Data = { user: string };

async function lobby(options: { helloTimeout?: number; users?: Record<string, string> } = {}) {
  const users = options.users ?? { t1: 'ann', t2: 'bob' };
  const { server, port } = await startServer({
    messages: json(), contract: api,
    hello: {
      schema: z.object({ token: z.string() }),
      timeout: options.helloTimeout ?? 5000,
      handler: ({ token }: { token: string }) => {
        const user = users[token];
        if (user === undefined) throw Object.assign(new Error('unknown token'), { code: 'ERR_UNAUTHORIZED' });
        return { user };
      },
    },
  });
  server.routes({
    join: ({ room }, conn) => {
      server.group(room).add(conn);
      return { members: server.group(room).size };
    },
    say: ({ text }, conn) => {
      for (const name of conn.groups) server.group(name).broadcast(['said', { from: String(conn.data.user), text }]);
    },
    whoami: (_input, conn) => String(conn.data.user),
  });
  return { server, port };
}

function client(port: number, token: string, extra: PulsarClientOptions<unknown, never, typeof api> = {}) {
  const c = new PulsarClient({ port, messages: json(), contract: api, hello: () => ({ token }), routes: { ping: () => 'pong' as const }, ...extra });
  onCleanup(() => c.close());
  return c;
}

describe('applications without glue (contract, hello, rooms)', () => {
  it('says hello first: connect() resolves once accepted, conn.data holds what the hello handler returned', async () => {
    const { server, port } = await lobby();
    const hello = nextEvent(server, 'hello');
    const ann = client(port, 't1');
    const ready = nextEvent(ann, 'ready');
    await ann.connect();
    await ready;
    const [conn, value] = await hello;
    expect(value).to.deep.equal({ token: 't1' });
    expect(conn.data).to.deep.equal({ user: 'ann' });
    expect(await ann.call('whoami', null)).to.equal('ann');
  });

  it('refuses a hello whose handler throws: connect() rejects with its code, and the server closes', async () => {
    const { server, port } = await lobby();
    const gone = nextEvent(server, 'disconnect');
    const error = await rejection(client(port, 'nope').connect());
    expect(error).to.be.instanceOf(RemoteError);
    expect((error as RemoteError).remoteCode).to.equal('ERR_UNAUTHORIZED');
    await gone;
  });

  it('closes a connection that asks anything before its hello (ERR_HELLO_REQUIRED), and one that never says it (ERR_HELLO_TIMEOUT)', async () => {
    const { server, port } = await lobby({ helloTimeout: 200 });
    const errors: string[] = [];
    server.on('clientError', (error) => errors.push(error.code));
    const rude = new PulsarClient({ port, messages: json(), rpc: true });
    onCleanup(() => rude.close());
    await rude.connect();
    const refused = await rejection(rude.request(['whoami', null]));
    expect((refused as RemoteError).remoteCode).to.equal('ERR_HELLO_REQUIRED');
    const silent = new PulsarClient({ port, messages: json(), rpc: true });
    onCleanup(() => silent.close());
    const closed = nextEvent(server, 'disconnect', 5000, (conn) => errors.includes('ERR_HELLO_TIMEOUT') || conn.id === 2);
    await silent.connect();
    await closed;
    expect(errors).to.include.members(['ERR_HELLO_REQUIRED', 'ERR_HELLO_TIMEOUT']);
  });

  it('routes calls and messages by name, validates inputs and outputs, and names a connection\'s rooms', async () => {
    const { server, port } = await lobby();
    const ann = client(port, 't1');
    const bob = client(port, 't2');
    await Promise.all([ann.connect(), bob.connect()]);
    expect(await ann.call('join', { room: 'lobby' })).to.deep.equal({ members: 1 });
    expect(await bob.call('join', { room: 'lobby' })).to.deep.equal({ members: 2 });
    ann.on('said' as 'message', () => {}); // ann hears herself too
    const heard = nextEvent(bob, 'said' as 'message');
    ann.emit('say', { text: 'hi' });
    expect(await heard).to.deep.equal([{ from: 'ann', text: 'hi' }]);
    const [conn] = [...server.connections.values()].filter((c) => c.data.user === 'ann') as Connection<Data>[];
    expect(conn!.groups).to.deep.equal(['lobby']);
    expect(server.group('lobby').has(conn!)).to.equal(true);
    const left = nextEvent(server, 'disconnect');
    await ann.close();
    const [gone] = await left;
    expect(gone.groups, 'still readable in disconnect').to.deep.equal(['lobby']);
    expect(server.group('lobby').size).to.equal(1);
  });

  it('refuses what the contract refuses: a bad input (answered ERR_INVALID_MESSAGE), an unknown name, a bad outgoing value', async () => {
    const { server, port } = await lobby();
    const errors: string[] = [];
    server.on('clientError', (error) => errors.push(error.code));
    const ann = client(port, 't1');
    await ann.connect();
    const invalid = await rejection(ann.request(['join', { room: 7 }]));
    expect((invalid as RemoteError).remoteCode).to.equal('ERR_INVALID_MESSAGE');
    const unknown = await rejection(ann.request(['nosuch', null]));
    expect((unknown as RemoteError).remoteCode).to.equal('ERR_UNKNOWN_ROUTE');
    expect(errors).to.include.members(['ERR_INVALID_MESSAGE', 'ERR_UNKNOWN_ROUTE']);
    expect(() => ann.emit('say', { text: 'x'.repeat(501) })).to.throw(PulsarError).with.property('code', 'ERR_INVALID_MESSAGE');
    const local = await rejection(ann.call('join', { room: 1 as unknown as string }));
    expect(local.code, 'checked before it leaves').to.equal('ERR_INVALID_MESSAGE');
  });

  it('lets the server call the client\'s routes (conn.call), with the output validated', async () => {
    const { server, port } = await lobby();
    const connected = nextEvent(server, 'hello');
    const ann = client(port, 't1');
    await ann.connect();
    const [conn] = await connected;
    expect(await conn.call('ping', null)).to.equal('pong');
    const liar = client(port, 't2', { routes: { ping: () => 'pang' as 'pong' }, validateOutgoing: false });
    const second = nextEvent(server, 'hello');
    await liar.connect();
    const [other] = await second;
    const refused = await rejection(other.call('ping', null));
    expect(refused.code, 'the output is checked at the caller').to.equal('ERR_INVALID_MESSAGE');
  });

  it('says hello again after a reconnect, before anything else', async () => {
    const { server, port } = await lobby();
    const ann = client(port, 't1', { reconnect: { initialDelay: 20 } });
    await ann.connect();
    const [first] = [...server.connections.values()];
    const readyAgain = nextEvent(ann, 'ready');
    first!.destroy();
    await readyAgain;
    expect(await ann.call('whoami', null)).to.equal('ann');
  });

  it('refuses contracts that reuse reserved names, and routes without a contract', async () => {
    expect(() => contract({ client: { $hello: message(z.null()) } })).to.throw(PulsarError).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => contract({ server: { ready: message(z.null()) } })).to.throw(/client's own events/);
    expect(() => new PulsarClient({ messages: json(), routes: {} })).to.throw(/needs a contract/);
  });
});
