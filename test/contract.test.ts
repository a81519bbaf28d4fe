// SPEC section 17: hello, contracts with routes, rooms and their names, over real sockets.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { z } from 'zod';
import { contract, json, message, PulsarClient, PulsarError, request, RemoteError, type Connection, type PulsarClientOptions } from '../lib/index.js';
import { nextEvent, onCleanup, rejection, startServer } from './helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

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
    const closed = nextEvent(server, 'disconnect', 5000, (conn) => conn.id === 2);
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

  it('answers ERR_HANDLER for an output its own contract refuses (reported here as ERR_INVALID_MESSAGE), and ERR_UNKNOWN_ROUTE for a request to a message', async () => {
    const { server, port } = await startServer({ messages: json(), contract: api, validateOutgoing: true });
    const errors: string[] = [];
    server.on('clientError', (error) => errors.push(error.code));
    server.routes({ join: () => ({ members: -0.5 as number }), whoami: () => 7 as unknown as string });
    const c = new PulsarClient({ port, messages: json(), contract: api });
    onCleanup(() => c.close());
    await c.connect();
    const refused = await rejection(c.call('whoami', null));
    expect((refused as RemoteError).remoteCode).to.equal('ERR_HANDLER');
    expect(errors).to.deep.equal(['ERR_INVALID_MESSAGE']);
    const asRequest = await rejection(c.request(['say', { text: 'x' }]));
    expect((asRequest as RemoteError).remoteCode).to.equal('ERR_UNKNOWN_ROUTE');
    expect(errors).to.deep.equal(['ERR_INVALID_MESSAGE', 'ERR_UNKNOWN_ROUTE']);
  });

  it('closes a connection that sends what the contract refuses with onInvalid: \'close\', after answering it', async () => {
    const { server, port } = await startServer({ messages: json(), contract: api, onInvalid: 'close' });
    server.routes({ whoami: () => 'x' });
    const c = new PulsarClient({ port, messages: json(), contract: api });
    onCleanup(() => c.close());
    await c.connect();
    const gone = nextEvent(server, 'disconnect');
    const refused = await rejection(c.request(['nosuch', null]));
    expect((refused as RemoteError).remoteCode, 'answered first').to.equal('ERR_UNKNOWN_ROUTE');
    const [, reason, error] = await gone;
    expect([reason, error?.code]).to.deep.equal(['error', 'ERR_UNKNOWN_ROUTE']);
  });

  it('costs one round trip per connection for the hello, and no frame per message', async () => {
    const { server, port } = await lobby();
    const ann = client(port, 't1');
    await ann.connect();
    const [conn] = [...server.connections.values()];
    expect([conn!.framesIn, conn!.framesOut], 'the hello and its reply').to.deep.equal([1, 1]);
    for (let i = 0; i < 10; i++) await ann.call('whoami', null);
    expect([conn!.framesIn, conn!.framesOut], 'then one frame each way per call').to.deep.equal([11, 11]);
  });

  it('drops and counts a contract message nobody listens to, warning once', async () => {
    const { server, port } = await lobby();
    const ann = client(port, 't1');
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => void warnings.push(warning.code ?? '');
    process.on('warning', onWarning);
    onCleanup(() => void process.off('warning', onWarning));
    await ann.connect();
    await ann.call('join', { room: 'lobby' });
    for (let i = 0; i < 3; i++) server.group('lobby').broadcast(['said', { from: 'x', text: String(i) }]);
    await ann.call('whoami', null); // its reply comes after the three messages, on the same connection
    expect(ann.droppedMessages).to.equal(3);
    await new Promise((resolve) => setImmediate(resolve)); // process warnings are emitted on the next tick
    expect(warnings.filter((code) => code === 'PULSAR_MESSAGE_DROPPED')).to.have.length(1);
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

  it('speaks docs/protocol.md: a Python client written from it says hello, calls, emits, hears and answers', async () => {
    const { server, port } = await lobby();
    server.on('hello', (conn) => void conn.call('ping', null).catch(() => {}));
    const run = await promisify(execFile)('python3', [join(ROOT, 'test', 'fixtures', 'rpc_client.py'), String(port), '--contract', 't2'], { timeout: 15_000 });
    expect(JSON.parse(run.stdout)).to.deep.equal({
      hello: { kind: 'reply', body: null },
      join: { members: 1 },
      said: ['said', { from: 'bob', text: 'hi from python' }],
      pinged: ['ping', null],
    });
    const refused = await promisify(execFile)('python3', [join(ROOT, 'test', 'fixtures', 'rpc_client.py'), String(port), '--contract', 'nope'], { timeout: 15_000 });
    expect(JSON.parse(refused.stdout).hello).to.deep.equal({ kind: 'error', body: { code: 'ERR_UNAUTHORIZED', message: 'unknown token' } });
  });

  it('refuses contracts that reuse reserved names, and routes without a contract', () => {
    expect(() => contract({ client: { $hello: message(z.null()) } })).to.throw(PulsarError).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => contract({ server: { ready: message(z.null()) } })).to.throw(/client's own events/);
    expect(() => new PulsarClient({ messages: json(), routes: {} })).to.throw(/needs a contract/);
  });
});

describe('answers from a group, shutdown seen by handlers', () => {
  const quiz = contract({
    client: { wait: request({ input: z.null(), output: z.string() }), note: message(z.string()) },
    server: { vote: request({ input: z.number(), output: z.boolean() }), tick: message(z.number()) },
  });

  async function room(n: number, answer: (i: number, round: number) => boolean | Promise<boolean>) {
    const { server, port } = await startServer({ messages: json(), contract: quiz });
    const clients = Array.from({ length: n }, (_, i) => {
      const c = new PulsarClient({ port, messages: json(), contract: quiz, routes: { vote: (round: number) => answer(i, round) } });
      onCleanup(() => c.close());
      return c;
    });
    const joined = new Promise<void>((resolve) => server.on('connection', (conn) => server.group('table').add(conn).size === n && resolve()));
    await Promise.all(clients.map((c) => c.connect()));
    await joined;
    return { server, clients };
  }

  it('yields each member\'s answer as it arrives, errors and timeouts included, then ends', async () => {
    let release!: () => void;
    const slow = new Promise<boolean>((resolve) => (release = () => resolve(true)));
    const { server } = await room(3, (i) => (i === 0 ? slow : i === 1 ? Promise.reject(Object.assign(new Error('busy'), { code: 'ERR_BUSY' })) : false));
    const answers = server.group('table').call('vote', 1, { timeout: 5000 });
    const seen: string[] = [];
    for await (const answer of answers) {
      seen.push(answer.error ? `error ${(answer.error as RemoteError).remoteCode}` : `output ${answer.output}`);
      if (seen.length === 2) release(); // the slow one answers only once the others have arrived
    }
    expect(seen.slice(0, 2).sort()).to.deep.equal(['error ERR_BUSY', 'output false']);
    expect(seen[2]).to.equal('output true');
  });

  it('collects with all(), a member that never answers ending as its timeout', async () => {
    const { server } = await room(2, (i) => (i === 0 ? true : new Promise<boolean>(() => {})));
    const answers = await server.group('table').call('vote', 2, { timeout: 200 }).all();
    expect(answers.map((a) => (a.error ? (a.error as PulsarError).code : a.output)).sort()).to.deep.equal(['ERR_REQUEST_TIMEOUT', true].sort());
  });

  it('emits a contract message to every member, encoded once', async () => {
    const { server, clients } = await room(2, () => true);
    const heard = clients.map((c) => nextEvent(c, 'tick' as 'message'));
    expect(server.group('table').emit('tick', 7)).to.equal(2);
    expect(await Promise.all(heard)).to.deep.equal([[7], [7]]);
    // @ts-expect-error the contract says a number: TypeScript refuses it, and so does the check at run time
    expect(() => server.group('table').emit('tick', 'x')).to.throw(PulsarError).with.property('code', 'ERR_INVALID_MESSAGE');
  });

  it('aborts ctx.closing when the server closes, so a long wait answers early', async () => {
    const { server, port } = await startServer({ messages: json(), contract: quiz });
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    server.routes({
      wait: (_input, _conn, ctx) => {
        entered();
        return new Promise<string>((resolve) => ctx.closing.addEventListener('abort', () => resolve('bye')));
      },
    });
    const c = new PulsarClient({ port, messages: json(), contract: quiz });
    onCleanup(() => c.close());
    await c.connect();
    const waiting = c.call('wait', null);
    await inside;
    const closed = server.close();
    expect(await waiting).to.equal('bye');
    expect((await closed).forced).to.equal(0);
  });
});
