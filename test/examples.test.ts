// Every example, run as its header says, talked to over the wire, and stopped: no example can rot.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IdleHeartbeat, PulsarClient, json, type RemoteError } from '../lib/index.js';
import { TestClient, onCleanup, startServer, when } from './helpers.js';
import { lobby } from '../examples/lobby-contract.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Starts `node examples/<file> ...args`; killed after the test if still running. */
function runExample(file: string, ...args: string[]) {
  const runner = file.endsWith('.ts') ? ['--import', 'tsx'] : []; // TypeScript examples run through tsx (npx tsx)
  const child = spawn(process.execPath, [...runner, `examples/${file}`, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  onCleanup(() => { child.kill('SIGKILL'); return exited; });
  const example = {
    child,
    exited,
    out: '',
    /** Waits until the output matches `pattern`; returns the match. */
    async waitFor(pattern: RegExp, what = String(pattern)): Promise<RegExpExecArray> {
      await when(child.stdout, ['data'], () => pattern.test(example.out), what);
      return pattern.exec(example.out)!;
    },
    /** Waits for the example's `listening on host:port` line and returns the port. */
    async port(): Promise<number> {
      return Number((await example.waitFor(/listening on 127\.0\.0\.1:(\d+)/, 'the listening line'))[1]);
    },
  };
  child.stdout.on('data', (d: Buffer) => (example.out += d));
  return example;
}

describe('examples', function () {
  this.timeout(15000);

  it('echo-server echoes, logs every event and closes on Ctrl+C', async () => {
    const example = runExample('echo-server.mjs', '0');
    const client = await TestClient.connect(await example.port());
    client.send('HELLO');
    await client.waitFrames(1);
    expect(String(client.frames[0])).to.equal('HELLO');
    await example.waitFor(/sent 5 byte\(s\)/, 'the frame line');
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
    expect(example.out).to.match(/connected \(#1\)/).and.match(/disconnected \(shutdown\)/).and.match(/closed: 1 drained, 0 forced/);
  });

  it('echo-client prints round trips, then the server\'s heartbeats, and exits 0', async () => {
    const { port } = await startServer({ heartbeat: new IdleHeartbeat({ interval: 50 }) });
    const example = runExample('echo-client.mjs', String(port), '3', '400');
    expect(await example.exited).to.equal(0);
    expect(example.out).to.match(/frame 1: 'hello 1' back in [\d.]+ ms/).and.match(/frame 3: 'hello 3' back in/);
    expect(example.out).to.match(/heartbeat from the server: HEARTBEAT/).and.match(/closed\n$/);
  });

  it('chat broadcasts a frame to everyone else in the lobby, and sends "@id text" to one client', async () => {
    const example = runExample('chat.mjs', '0');
    const port = await example.port();
    const [alice, bob, carol] = [await TestClient.connect(port), await TestClient.connect(port), await TestClient.connect(port)];
    await example.waitFor(/joined as .* \(3 in the lobby here\)/, 'three clients');
    await Promise.all([alice, bob, carol].map((c) => c.waitFrames(1)));
    const [aliceId, bobId] = [alice, bob].map((c) => String(c.frames[0]).replace('you are ', ''));
    alice.send('hi all');
    await Promise.all([bob.waitFrames(2), carol.waitFrames(2)]);
    expect([String(bob.frames[1]), String(carol.frames[1])]).to.deep.equal(['hi all', 'hi all']);
    carol.send(`@${bobId} psst`);
    expect(String((await bob.waitFrames(3))[2])).to.match(/^from .*\/3: psst$/);
    bob.send('hi alice');
    expect(String((await alice.waitFrames(2))[1])).to.equal('hi alice');
    expect(alice.frames.map(String), 'alice never gets her own frame back').to.deep.equal([`you are ${aliceId}`, 'hi alice']);
    await carol.waitFrames(3);
    expect(carol.frames.slice(1).map(String), 'the direct message went to bob only').to.deep.equal(['hi all', 'hi alice']);
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
  });

  it('custom-codec passes the conformance suite with a netstring codec on ByteQueue, then serves it', async () => {
    const example = runExample('custom-codec.mjs');
    expect(await example.exited).to.equal(0);
    expect(example.out.match(/^ok {4}netstrings: /gm)).to.have.length(5);
    expect(example.out).to.not.match(/FAIL/);
    expect(example.out).to.match(/sent "hello" as 5:hello,, got "hello" back/);
  });

  it('custom-registry rewrites its status file as clients come and go', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pulsar-'));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'status.json');
    const example = runExample('custom-registry.mjs', '0', file);
    const client = await TestClient.connect(await example.port());
    await example.waitFor(/status written: 1 live/, 'the status with one client');
    const status = JSON.parse(readFileSync(file, 'utf8'));
    expect(status.live).to.have.length(1);
    expect(status.visits).to.deep.equal({ '127.0.0.1': 1 });
    client.socket.end();
    await example.waitFor(/status written: 0 live/, 'the status with none');
    expect(JSON.parse(readFileSync(file, 'utf8')).live).to.have.length(0);
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
  });

  it('custom-heartbeat sends the server\'s time to a silent client', async () => {
    const example = runExample('custom-heartbeat.mjs', '0', '100');
    const client = await TestClient.connect(await example.port());
    const [beat] = await client.waitFrames(1);
    const match = /^TIME (.+)$/.exec(String(beat));
    expect(match, String(beat)).to.not.equal(null);
    expect(Math.abs(Date.parse(match![1]!) - Date.now())).to.be.below(5000);
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
  });

  it('rpc-service answers rpc-client\'s concurrent calls each to its caller, a bad call with its code, a timeout by cancelling', async () => {
    const service = runExample('rpc-service.mjs', '0');
    const client = runExample('rpc-client.mjs', String(await service.port()));
    expect(await client.exited).to.equal(0);
    expect(client.out).to.include('{"op":"sleep","ms":300} -> {"slept":300}\n{"op":"add","a":1,"b":2} -> {"sum":3}\n{"op":"sleep","ms":100} -> {"slept":100}\n{"op":"add","a":40,"b":2} -> {"sum":42}');
    expect(client.out).to.match(/"a":"one".* -> ERR_REMOTE ERR_INVALID_MESSAGE: .*a: /);
    expect(client.out).to.match(/"ms":5000\} -> ERR_REQUEST_TIMEOUT: no reply to request \d+ .* in 200 ms/);
    await service.waitFor(/ERR_INVALID_MESSAGE: 127\.0\.0\.1:\d+ \(connection 1\): invalid message/, 'the refused call logged with the client');
    service.child.kill('SIGINT');
    expect(await service.exited).to.equal(0);
  });

  it('gateway acks telemetry, pushes alerts to dashboards and answers their queries on the same connection', async () => {
    const example = runExample('gateway.mjs', '0', '80');
    const port = await example.port();
    const device = new PulsarClient({ port, messages: json(), rpc: true });
    const dashboard = new PulsarClient({ port, messages: json(), rpc: true });
    onCleanup(() => Promise.all([device.close(), dashboard.close()]));
    await Promise.all([device.connect(), dashboard.connect()]);
    const early = await device.request({ type: 'telemetry', temperature: 20 }).catch((error: RemoteError) => error.remoteCode);
    expect(early).to.equal('E_NO_HELLO');
    expect(await device.request({ type: 'hello', device: 'd1' })).to.deep.equal({ ok: true });
    expect(await dashboard.request({ type: 'watch' })).to.deep.equal({ watching: 1 });
    const alert = new Promise((resolve) => dashboard.once('message', resolve));
    expect(await device.request({ type: 'telemetry', temperature: 91 })).to.deep.equal({ ok: true });
    expect(await alert).to.deep.equal({ alert: 'hot', device: 'd1', temperature: 91 });
    const latest = (await dashboard.request({ type: 'latest' })) as Record<string, { temperature: number }>;
    expect(latest['d1']!.temperature).to.equal(91);
    const refused = await device.request({ type: 'telemetry', temperature: 'hot' }).catch((error: RemoteError) => error.remoteCode);
    expect(refused).to.equal('ERR_INVALID_MESSAGE');
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
  });
  it('lobby (TypeScript): hello, rooms by contract, a ready-check gathering every answer, departures announced', async () => {
    const example = runExample('lobby.ts', '0');
    const port = await example.port();
    const player = (name: string, ready: boolean) => {
      const client = new PulsarClient({ port, messages: json(), contract: lobby, hello: { name }, routes: { areYouReady: () => ready } });
      onCleanup(() => client.close());
      return client;
    };
    const ann = player('ann', true);
    const bob = player('bob', false);
    await ann.connect();
    expect(await ann.call('join', { room: 'lobby' })).to.deep.equal({ members: ['ann'] });
    await bob.connect();
    expect(await bob.call('join', { room: 'lobby' })).to.deep.equal({ members: ['ann', 'bob'] });
    const heard = new Promise((resolve) => bob.on('said', resolve));
    ann.emit('say', { text: 'gl hf' });
    expect(await heard).to.deep.equal({ room: 'lobby', from: 'ann', text: 'gl hf' });
    expect(await bob.call('readyCheck', null)).to.deep.equal({ ready: ['ann'], notReady: ['bob'] });
    const left = new Promise((resolve) => ann.on('left', resolve));
    await bob.close();
    expect(await left).to.deep.equal({ room: 'lobby', who: 'bob' });
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
  });

  it('query-stream (TypeScript): a client reads half the rows and leaves; the server\'s query is cancelled, never far ahead', async () => {
    const example = runExample('query-stream.ts', '0');
    const port = await example.port();
    const client = runExample('query-stream.ts', '--client', String(port));
    expect(await client.exited).to.equal(0);
    expect(client.out).to.match(/read 50 rows, the last city 50; left the loop/);
    const [, sent] = await example.waitFor(/query cancelled after (\d+) rows \(.*cancelled by/, 'the cancel');
    expect(Number(sent)).to.be.within(50, 50 + 8); // the window: 8 rows ahead at most
    example.child.kill('SIGINT');
    expect(await example.exited).to.equal(0);
  });
});
