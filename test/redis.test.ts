// A fleet sharing a real redis-server (Debian's package, installed by the test set-up, started here on a
// free loopback port): RedisRegistry's fleet view, cross-instance broadcast and sendTo, a crashed
// instance expiring, Redis going away and coming back, and three chat instances behind HAProxy.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SpanKind, trace } from '@opentelemetry/api';
import { json, PulsarClient, PulsarServer, type PulsarError, type Report } from '../lib/index.js';
import { openTelemetry } from '../lib/opentelemetry/index.js';
import { recordSpans } from './otel.js';
import { redisFleet } from '../lib/redis/index.js';
import { Cli } from './cli-process.js';
import { startHaproxy } from './haproxy-process.js';
import { TestClient, eventually, freePort, needsProgram, nextEvent, onCleanup, runCommand, when, within } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));

interface RedisProcess {
  url: string;
  /** Stops it (SIGTERM, no save): clients see it go away. */
  stop(): Promise<void>;
  /** Starts it again on the same port. */
  restart(): Promise<void>;
}

/** A redis-server on a free loopback port, for this test only. */
async function startRedis(): Promise<RedisProcess> {
  const port = await freePort();
  let child: ReturnType<typeof spawn> | undefined;
  const launch = async (): Promise<void> => {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    let out = '';
    started.stdout!.on('data', (d: Buffer) => (out += d));
    await when(started.stdout!, ['data'], () => out.includes('Ready to accept connections'), `redis-server to start: ${out}`, 10000);
  };
  const stop = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null) return;
    const exited = within(child, 'exit', 10000);
    child.kill('SIGTERM');
    await exited;
  };
  await launch();
  onCleanup(stop);
  return { url: `redis://127.0.0.1:${port}`, stop, restart: launch };
}

let prefixes = 0;
/** A server of the fleet: every connection joins the group "room". */
async function member(url: string, instanceId: string, prefix: string): Promise<{ server: PulsarServer; port: number }> {
  const server = new PulsarServer({ port: 0, instanceId, heartbeat: false, reportInterval: 100, ...redisFleet({ url, prefix, ttl: 1000 }) });
  server.on('connection', (conn) => server.group('room').add(conn));
  server.on('error', () => {}); // asserted where expected
  onCleanup(() => server.close());
  const { port } = await server.listen();
  return { server, port };
}

describe('RedisRegistry (real redis-server)', function () {
  this.timeout(40000);
  let redis: RedisProcess;
  let prefix: string;

  before(function () {
    needsProgram(this, 'redis-server');
  });

  beforeEach(async () => {
    redis = await startRedis();
    prefix = `test${prefixes++}`;
  });

  it('shares the fleet in reports, broadcasts and sends across instances, and forgets an instance that closes', async () => {
    const a = await member(redis.url, 'a', prefix);
    const b = await member(redis.url, 'b', prefix);
    const [a1, a2, b1] = [await TestClient.connect(a.port), await TestClient.connect(a.port), await TestClient.connect(b.port)];
    await Promise.all([a.server, b.server].map((server) => fleetOfReports(server, { connections: 3, instances: 2 })));

    expect(a.server.group('room').broadcast('to the whole room')).to.equal(2);
    await Promise.all([a1, a2, b1].map((c) => c.waitFrames(1)));
    expect([a1, a2, b1].map((c) => String(c.frames[0]))).to.deep.equal(Array(3).fill('to the whole room'));

    await b.server.sendTo('a/2', 'across');
    expect(String((await a2.waitFrames(2))[1])).to.equal('across');
    const error = await a.server.sendTo('gone/1', 'x').then(() => undefined, (e: PulsarError) => e);
    expect(error).to.include({ code: 'ERR_NO_SUCH_CONNECTION', message: 'instance gone is not in the fleet: connection 1 is not reachable' });

    await b.server.close();
    await fleetOfReports(a.server, { connections: 2, instances: 1 });
  });

  it('carries a trace across the relay: a group message sent from a traced handler reaches another instance\'s client with its traceparent', async () => {
    const recording = recordSpans();
    onCleanup(() => recording.stop());
    const traced = async (instanceId: string) => {
      const server: PulsarServer<unknown> = new PulsarServer<unknown>({
        port: 0, instanceId, heartbeat: false, reportInterval: 100, messages: json(), rpc: true, tracing: openTelemetry(),
        handler: (said) => server.group('room').broadcast({ said }),
        ...redisFleet({ url: redis.url, prefix, ttl: 1000 }),
      });
      server.on('connection', (conn) => server.group('room').add(conn));
      onCleanup(() => server.close());
      const client = new PulsarClient<unknown>({ port: (await server.listen()).port, messages: json(), rpc: true, tracing: openTelemetry() });
      onCleanup(() => client.close());
      await client.connect();
      return { server, client };
    };
    const a = await traced('a');
    const b = await traced('b');
    await fleetOfReports(a.server as never, { connections: 2, instances: 2 });
    const heard = nextEvent(b.client, 'message');
    await trace.getTracer('test').startActiveSpan('say', async (root) => {
      await a.client.request('hello');
      root.end();
    });
    expect((await heard)[0]).to.deep.equal({ said: 'hello' });
    const spans = await eventually(async () => {
      const all = recording.spans();
      return all.filter((span) => span.name === 'pulsar message').length === 2 ? all : undefined;
    }, 'a message span on each client');
    const traceId = spans.find((span) => span.name === 'say')!.spanContext().traceId;
    const handler = spans.find((span) => span.name === 'pulsar request' && span.kind === SpanKind.SERVER)!;
    for (const span of spans.filter((s) => s.name === 'pulsar message')) {
      expect(span.spanContext().traceId).to.equal(traceId);
      expect(span.parentSpanContext?.spanId).to.equal(handler.spanContext().spanId);
    }
  });

  it('keeps serving its own clients while Redis is down, refuses to relay (ERR_RELAY), and recovers when it is back', async () => {
    const a = await member(redis.url, 'a', prefix);
    const b = await member(redis.url, 'b', prefix);
    const errors: PulsarError[] = [];
    a.server.on('error', (e) => errors.push(e as PulsarError));
    const [a1, b1] = [await TestClient.connect(a.port), await TestClient.connect(b.port)];
    await fleetOfReports(a.server, { connections: 2, instances: 2 });

    await redis.stop();
    await when(a.server, ['error'], () => errors.length > 0, 'the outage to be reported');
    a1.send('still served');
    expect(String((await a1.waitFrames(1))[0])).to.equal('still served');
    const refused = await a.server.sendTo('b/1', 'x').then(() => undefined, (e: PulsarError) => e);
    expect(refused).to.include({ code: 'ERR_RELAY' });
    for (let i = 0; i < 20; i++) a.server.group('room').broadcast(`while down ${i}`);
    await TestClient.connect(a.port); // registered again once Redis is back
    // One report per outage and per part (the registry's store, the relay's, broadcasts not relayed), not one per message.
    expect(errors.map((e) => e.code), 'one report per outage, not one per message').to.have.length.of.at.most(3);

    await redis.restart();
    await eventually(async () => a.server.sendTo('b/1', 'back').then(() => true, () => false), 'delivery to resume', 15000);
    await when(b1.socket, ['data'], () => b1.frames.some((f) => String(f) === 'back'), 'the relayed frame after the restart');
    await fleetOfReports(a.server, { connections: 3, instances: 2 }, 10000);
  });

  it('--redis from the CLI: report lines give the fleet (text and JSON), and a SIGKILLed instance leaves it', async () => {
    const text = new Cli(['-p', '0', '--redis', redis.url, '--redis-ttl', '1000', '--report', '100', '--heartbeat', '0']);
    const json = new Cli(['-p', '0', '--redis', redis.url, '--redis-ttl', '1000', '--report', '100', '--heartbeat', '0', '--log', 'json']);
    const [textPort, jsonPort] = [await text.port(), Number((await json.line(/"event":"listening".*"port":(\d+)/, 'stdout'))[1])];
    await TestClient.connect(textPort);
    await TestClient.connect(jsonPort);
    await text.line(/pulsar:report 1 connection\(s\) on this instance, 2 across 2 instance\(s\), /);
    await json.line(/"event":"report".*"fleet":\{"connections":2,"instances":2\}/, 'stdout');
    json.child.kill('SIGKILL');
    await text.line(/pulsar:report 1 connection\(s\) on this instance, 1 across 1 instance\(s\), /, 'stderr', 5000);
    const bad = new Cli(['--redis', 'localhost:6379']);
    expect((await bad.exit()).code).to.equal(2);
    expect(bad.stderr[0]).to.equal("pulsar: --redis must be a redis:// or rediss:// URL, got 'localhost:6379' (string)");
  });

  it('--redis with --workers 2: each worker is an instance, and the primary reports the fleet once, not summed', async () => {
    const cli = new Cli(['-p', '0', '--workers', '2', '--redis', redis.url, '--redis-ttl', '1000', '--report', '100', '--heartbeat', '0']);
    const port = Number((await cli.line(/listening on 127\.0\.0\.1:(\d+) \(2 workers\)$/, 'stderr', 15000))[1]);
    await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(port)));
    await cli.line(/pulsar:report 4 connection\(s\) \(worker \d: \d, worker \d: \d\), 4 across 2 instance\(s\), /, 'stderr', 10000);
  });

  it('reports ERR_MISSING_DEPENDENCY when ioredis is not installed', async () => {
    const hook = `data:text/javascript,export async function resolve(s, c, next) { if (s === 'ioredis') throw Object.assign(new Error('Cannot find package ioredis'), { code: 'ERR_MODULE_NOT_FOUND' }); return next(s, c); }`;
    const script = `
      import { register } from 'node:module';
      register(${JSON.stringify(hook)});
      const { PulsarServer } = await import('pulsar');
      const { RedisRegistry } = await import('pulsar/redis');
      await new PulsarServer({ port: 0, registry: new RedisRegistry() }).listen().catch((e) => console.log(e.code, e.message));`;
    const { stdout: out } = runCommand(process.execPath, ['--input-type=module', '-e', script], { timeout: 10_000 });
    expect(out).to.match(/^ERR_MISSING_DEPENDENCY RedisRegistry needs the ioredis package: npm install ioredis/);
  });

  it('end to end: three chat instances behind HAProxy share a room and direct messages; a SIGKILLed one leaves the fleet within the TTL', async function () {
    needsProgram(this, 'haproxy');
    const ports = await Promise.all([0, 1, 2].map(() => freePort()));
    const chats = ports.map((port) => spawnChat(port, redis.url));
    await Promise.all(chats.map((chat) => chat.ready));
    const frontend = await freePort();
    await startHaproxy(frontend, ports, 'check inter 200');
    // An observer of the fleet: the same Redis and prefix as the chats' (the example's default), reports every 100 ms.
    const observer = await member(redis.url, 'observer', 'pulsar');

    const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.connect(frontend)));
    await Promise.all(clients.map((c) => c.waitFrames(1)));
    const ids = clients.map((c) => String(c.frames[0]).replace('you are ', ''));
    const instanceOf = (id: string): string => id.slice(0, id.lastIndexOf('/'));
    expect(new Set(ids.map(instanceOf)).size, 'round robin spread the clients over the three instances').to.equal(3);
    await fleetOfReports(observer.server, { connections: 6, instances: 4 });

    clients[0]!.send('hello everyone');
    await Promise.all(clients.slice(1).map((c) => c.waitFrames(2)));
    expect(clients.slice(1).map((c) => String(c.frames[1]))).to.deep.equal(Array(5).fill('hello everyone'));

    const target = clients.findIndex((_, i) => instanceOf(ids[i]!) !== instanceOf(ids[0]!));
    clients[0]!.send(`@${ids[target]} just for you`);
    await clients[target]!.waitFrames(3);
    expect(String(clients[target]!.frames[2])).to.equal(`from ${ids[0]}: just for you`);

    const victim = chats.findIndex((chat) => chat.instance() === instanceOf(ids[target]!));
    chats[victim]!.child.kill('SIGKILL');
    const survivors = ids.filter((id) => instanceOf(id) !== chats[victim]!.instance()).length;
    const killedAt = Date.now();
    await fleetOfReports(observer.server, { connections: survivors, instances: 3 }, 5000);
    expect(Date.now() - killedAt, 'gone within the TTL (1.5 s) and a report').to.be.below(3000);

    // Redis restarts: cross-instance delivery resumes (the instances reconnect and subscribe again).
    const alive = clients.filter((_, i) => instanceOf(ids[i]!) !== chats[victim]!.instance());
    const receiver = alive.find((c) => instanceOf(ids[clients.indexOf(c)]!) !== instanceOf(ids[clients.indexOf(alive[0]!)]!))!;
    await redis.stop();
    await redis.restart();
    let attempt = 0;
    await eventually(async () => {
      const text = `after the restart ${attempt++}`;
      alive[0]!.send(text);
      const arrived = (): boolean => receiver.frames.some((f) => String(f).startsWith('after the restart'));
      return when(receiver.socket, ['data'], arrived, text, 300).then(() => true, () => false);
    }, 'a broadcast to cross instances again after Redis restarted', 15000);
  });
});

/** examples/chat.mjs with --redis, on `port`; `ready` once it listens, `instance()` its id. */
function spawnChat(port: number, url: string): { child: ReturnType<typeof spawn>; ready: Promise<void>; instance: () => string } {
  const child = spawn(process.execPath, ['examples/chat.mjs', String(port), '--redis', url], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  onCleanup(() => (child.kill('SIGKILL'), exited));
  return {
    child,
    ready: when(child.stdout!, ['data'], () => /listening on/.test(out), 'the chat to listen', 10000),
    instance: () => /^chat (\S+) listening/m.exec(out)![1]!,
  };
}

/** Resolves at the first report of `server` whose fleet is `expected`. */
function fleetOfReports(server: PulsarServer, expected: { connections: number; instances: number }, ms = 5000): Promise<void> {
  let last: Report['fleet'];
  const matches = (report: Report): boolean => {
    last = report.fleet;
    return report.fleet?.connections === expected.connections && report.fleet.instances === expected.instances;
  };
  return new Promise((resolve, reject) => {
    const onReport = (report: Report): void => {
      if (!matches(report)) return;
      clearTimeout(timer);
      server.off('report', onReport);
      resolve();
    };
    const timer = setTimeout(() => {
      server.off('report', onReport);
      reject(new Error(`no report with the fleet ${JSON.stringify(expected)} within ${ms} ms; last: ${JSON.stringify(last)}`));
    }, ms);
    server.on('report', onReport);
  });
}
