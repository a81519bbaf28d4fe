// Listening on a Unix domain socket (`path`, `--unix`): served like TCP, the file removed on close, a stale
// file from a crashed run replaced, a live server's socket and other files left alone.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PulsarServer } from '../lib/index.js';
import { Cli } from './cli-process.js';
import { TestClient, frame, onCleanup, within } from './helpers.js';

function socketPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pulsar-unix-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'pulsar.sock');
}

/** Sends one frame over the Unix socket and resolves with what came back once `expected` bytes arrived. */
async function echoOver(path: string, payload: string, prefix = Buffer.alloc(0)): Promise<Buffer> {
  const client = await TestClient.connect({ path });
  client.socket.write(Buffer.concat([prefix, frame(payload)]));
  return (await client.waitFrames(1))[0]!;
}

/** Leaves a socket file behind, as a crashed server would: its process is SIGKILLed while listening. */
async function crashedServerAt(path: string): Promise<void> {
  const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  await within(child, 'exit', 10000);
  expect(statSync(path).isSocket(), 'the crashed server left its socket file').to.equal(true);
}

describe('Unix domain sockets', function () {
  this.timeout(20000);

  it('serves a Unix socket like TCP, names its clients "unix", and removes the file on close', async () => {
    const path = socketPath();
    const server = new PulsarServer({ path, heartbeat: false });
    onCleanup(() => server.close());
    expect(await server.listen()).to.deep.equal({ address: path, port: 0, family: 'unix' });
    expect(String(await echoOver(path, 'over unix'))).to.equal('over unix');
    const [conn] = server.connections.values();
    expect([conn!.remoteAddress, conn!.remote, String(conn)]).to.deep.equal(['', 'unix', 'unix (connection 1)']);
    await server.close();
    expect(existsSync(path), 'the socket file is removed on close').to.equal(false);
  });

  it('replaces a stale socket file left by a crashed run', async () => {
    const path = socketPath();
    await crashedServerAt(path);
    const server = new PulsarServer({ path, heartbeat: false });
    onCleanup(() => server.close());
    await server.listen();
    expect(String(await echoOver(path, 'after a crash'))).to.equal('after a crash');
  });

  it('leaves a live server\'s socket and any other file alone', async () => {
    const path = socketPath();
    const live = net.createServer((socket) => socket.on('error', () => {}).end('still mine'));
    live.listen(path);
    await within(live, 'listening');
    onCleanup(() => new Promise((resolve) => live.close(resolve)));
    const error = await new PulsarServer({ path }).listen().catch((e: NodeJS.ErrnoException) => e);
    expect(error).to.include({ code: 'EADDRINUSE', message: `another server is listening on ${path}` });
    const answer = await new Promise<string>((resolve) => net.connect({ path }).on('data', (d) => resolve(String(d))).on('error', () => {}));
    expect(answer, 'the live server still answers').to.equal('still mine');

    const file = socketPath();
    writeFileSync(file, 'precious');
    const notSocket = await new PulsarServer({ path: file }).listen().catch((e: NodeJS.ErrnoException) => e);
    expect(notSocket).to.include({ code: 'EEXIST', message: `${file} exists and is not a socket: not replacing it` });
    expect(statSync(file).isFile()).to.equal(true);
  });

  it('reads PROXY headers on a Unix socket (a proxy in front), and judges the address they give', async () => {
    const path = socketPath();
    const server = new PulsarServer({ path, proxyProtocol: true, deny: ['203.0.113.0/24'], heartbeat: false });
    onCleanup(() => server.close());
    await server.listen();
    const answer = await echoOver(path, 'proxied', Buffer.from('PROXY TCP4 198.51.100.7 127.0.0.1 4000 8080\r\n'));
    expect(String(answer)).to.equal('proxied');
    expect([...server.connections.values()][0]!.remote).to.equal('198.51.100.7:4000');
  });

  it('refuses options that cannot apply to a Unix socket', () => {
    expect(() => new PulsarServer({ path: '/tmp/x.sock', port: 9000 })).to.throw(/path replaces host and port/).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => new PulsarServer({ path: '/tmp/x.sock', allow: ['10.0.0.0/8'] })).to.throw(/need proxyProtocol/).with.property('code', 'ERR_INVALID_OPTION');
    expect(() => new PulsarServer({ path: '/tmp/x.sock', proxyProtocol: true, trustedProxies: ['10.0.0.1/32'] })).to.throw(/cannot apply to a Unix socket/);
    expect(() => new PulsarServer({ path: '' })).to.throw(/path must be a non-empty string/);
  });

  it('--unix from the CLI: serves, is refused by a live server, replaces a stale file, removes it on SIGTERM', async () => {
    const path = socketPath();
    const first = new Cli(['--unix', path, '--heartbeat', '0']);
    await first.line(new RegExp(`pulsar:server listening on unix:${path}$`));
    expect(String(await echoOver(path, 'cli'))).to.equal('cli');

    const second = new Cli(['--unix', path]);
    expect((await second.exit()).code).to.equal(1);
    expect(second.stderr.join('\n')).to.include(`pulsar: cannot listen on unix:${path}: another server is listening on ${path} (EADDRINUSE)`);

    first.child.kill('SIGKILL'); // a crash: the file stays
    await first.exit();
    expect(existsSync(path)).to.equal(true);
    const third = new Cli(['--unix', path, '--heartbeat', '0']);
    await third.line(/listening on unix:/);
    expect(String(await echoOver(path, 'after the crash'))).to.equal('after the crash');
    third.child.kill('SIGTERM');
    expect((await third.exit()).code).to.equal(0);
    expect(existsSync(path), 'removed on a clean exit').to.equal(false);

    const bad = new Cli(['--unix', path, '--port', '9000']);
    expect((await bad.exit()).code).to.equal(2);
    expect(bad.stderr[0]).to.equal('pulsar: --unix replaces host and port (a Unix socket has neither): give one or the other');
  });

  it('--unix with --workers 2: the primary replaces a stale file, both workers serve it', async () => {
    const path = socketPath();
    await crashedServerAt(path);
    const cli = new Cli(['--unix', path, '--workers', '2', '--heartbeat', '0']);
    await cli.line(/listening on unix:.* \(2 workers\)$/, 'stderr', 15000);
    const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => echoOver(path, `worker ${i}`)));
    expect(answers.map(String)).to.deep.equal(Array.from({ length: 6 }, (_, i) => `worker ${i}`));
    // The primary hands connections out round robin: both workers got some.
    await cli.line(/connected \(#w1\./);
    await cli.line(/connected \(#w2\./);
    cli.child.kill('SIGTERM');
    expect((await cli.exit(15000)).code).to.equal(0);
    expect(existsSync(path)).to.equal(false);
  });
});
