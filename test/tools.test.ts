// `pulsar send` and `pulsar bench`, run from the built bin as a user would, against the CLI server, a raw
// `s.pipe(s)` server and servers built for the case; the prompt driven through a pseudo-terminal (tmux).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { json } from '../lib/index.js';
import { Cli } from './cli-process.js';
import { eventually, freePort, onCleanup, ROOT, selfSigned, startServer } from './helpers.js';

const CLI = join(ROOT, 'dist', 'cli.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `pulsar …args` to its end (asynchronously: servers may run in this process), with `input` on stdin. */
function pulsar(args: string[], input?: string | Buffer, ms = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pulsar ${args.join(' ')} did not exit within ${ms} ms; stderr: ${Buffer.concat(err)}`));
    }, ms);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.end(input);
  });
}

/** The CLI server on a free port, with these flags. */
async function cliServer(...flags: string[]): Promise<number> {
  const server = new Cli(['-p', '0', ...flags]);
  return server.port();
}

describe('pulsar send', function () {
  this.timeout(30_000);

  it('sends text, non-ASCII text and an empty frame, and prints each echo', async () => {
    const port = await cliServer();
    const run = await pulsar(['send', String(port), '-n', '3', '-w', '5000', 'hello', 'héllo wörld ✓ 日本', '']);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.equal('hello\nhéllo wörld ✓ 日本\n(empty)\n');
  });

  it('sends binary with --hex and shows replies as hex dumps; a binary reply is dumped in the default mode too', async () => {
    const port = await cliServer();
    const hex = await pulsar(['send', String(port), '-n', '2', '-w', '5000', '--hex', '00ff 10 7f', '48454c4c4f']);
    expect(hex.code, hex.stderr).to.equal(0);
    expect(hex.stdout).to.equal('00000000: 00ff 107f                                ....\n00000000: 4845 4c4c 4f                             HELLO\n');
    const { server, port: libraryPort } = await startServer({ handler: (_frame, conn) => conn.send(Buffer.from([0, 1, 2, 0xfe])) });
    void server;
    const auto = await pulsar(['send', String(libraryPort), '-n', '1', '-w', '5000', 'anything']);
    expect(auto.stdout).to.equal('00000000: 0001 02fe                                ....\n');
    const bad = await pulsar(['send', String(port), '--hex', 'zz']);
    expect([bad.code, bad.stderr]).to.deep.equal([2, "pulsar send: not hex: not hex bytes: 'zz'\n"]);
  });

  it('reads one frame per stdin line with -, a 1 MiB line among them', async () => {
    const port = await cliServer();
    const big = 'x'.repeat(1024 * 1024);
    const run = await pulsar(['send', String(port), '-n', '5', '-w', '5000', 'first', '-', 'last'], `one\r\ntwo\n${big}\n`);
    expect(run.code, run.stderr).to.equal(0);
    const lines = run.stdout.split('\n');
    expect(lines.slice(0, 3)).to.deep.equal(['first', 'one', 'two']);
    expect(lines[3]).to.have.length(1024 * 1024);
    expect(lines.slice(4)).to.deep.equal(['last', '']);
  });

  it('exits after --count replies at once, and 1 when fewer come before the quiet --wait', async () => {
    const port = await cliServer();
    const started = Date.now();
    const counted = await pulsar(['send', String(port), '-n', '2', '-w', '5000', 'a', 'b']);
    expect([counted.code, counted.stdout]).to.deep.equal([0, 'a\nb\n']);
    expect(Date.now() - started, 'not after the 5 s wait').to.be.below(4000);
    const short = await pulsar(['send', String(port), '-n', '3', '-w', '300', 'only one']);
    expect([short.code, short.stdout, short.stderr]).to.deep.equal([1, 'only one\n', 'pulsar send: 1 of 3 replies after 300 ms of quiet\n']);
  });

  it('shows heartbeats apart, on stderr, and never counts them as replies', async () => {
    const port = await cliServer('--heartbeat', '50');
    const run = await pulsar(['send', String(port), '-w', '600', 'ping']);
    expect([run.code, run.stdout]).to.deep.equal([0, 'ping\n']);
    expect(run.stderr).to.match(/^(\(heartbeat\)\n)+$/);
    const counted = await pulsar(['send', String(port), '-n', '2', '-w', '600', 'ping']);
    expect(counted.code, 'heartbeats are not the second reply').to.equal(1);
  });

  it('speaks the server\'s framing: --codec lines, --length-field 2 --byte-order little', async () => {
    const lines = await cliServer('--codec', 'lines');
    expect((await pulsar(['send', String(lines), '-n', '1', '-w', '5000', '--codec', 'lines', 'a line'])).stdout).to.equal('a line\n');
    const little = await cliServer('--length-field', '2', '--byte-order', 'little');
    expect((await pulsar(['send', String(little), '-n', '1', '-w', '5000', '--length-field', '2', '--byte-order', 'little', 'short'])).stdout).to.equal('short\n');
  });

  it('connects over TLS with --ca or --insecure, and refuses an unknown certificate', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pulsar-send-tls-'));
    onCleanup(() => rmSync(dir, { recursive: true, force: true }));
    const { certFile, keyFile } = selfSigned(dir);
    const port = await cliServer('--tls-cert', certFile, '--tls-key', keyFile);
    expect((await pulsar(['send', String(port), '-n', '1', '-w', '5000', '--tls', '--ca', certFile, 'secret'])).stdout).to.equal('secret\n');
    expect((await pulsar(['send', String(port), '-n', '1', '-w', '5000', '--tls', '--insecure', 'unchecked'])).stdout).to.equal('unchecked\n');
    const refused = await pulsar(['send', String(port), '--tls', 'x']);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.match(/^pulsar send: cannot connect to 127\.0\.0\.1:\d+: self[- ]signed certificate/);
  });

  it('says in one line that it cannot connect, and exits 1', async () => {
    const port = await freePort();
    const run = await pulsar(['send', String(port), 'x']);
    expect([run.code, run.stdout, run.stderr]).to.deep.equal([1, '', `pulsar send: cannot connect to 127.0.0.1:${port}: connection refused (ECONNREFUSED)\n`]);
  });

  it('sends JSON requests with --rpc and prints each reply with its round trip, errors as the server said them', async () => {
    const port = await cliServer('--rpc');
    const echo = await pulsar(['send', String(port), '--rpc', '{"a":1,"b":[true,null]}', '"text"']);
    expect(echo.code, echo.stderr).to.equal(0);
    expect(echo.stdout).to.match(/^\{"a":1,"b":\[true,null\]\} {2}\(\d+\.\d+ ms\)\n"text" {2}\(\d+\.\d+ ms\)\n$/);
    const { port: failing } = await startServer({
      messages: json(), rpc: true,
      handler: (m) => {
        if (m === 'fail') throw Object.assign(new Error('no such thing'), { code: 'E_NONE' });
        return { ok: m };
      },
    });
    const mixed = await pulsar(['send', String(failing), '--rpc', '1', '"fail"', '2']);
    expect(mixed.code).to.equal(1);
    expect(mixed.stdout).to.match(/^\{"ok":1\} {2}\(.+\)\nerror E_NONE: no such thing {2}\(.+\)\n\{"ok":2\} {2}\(.+\)\n$/);
    const notJson = await pulsar(['send', String(port), '--rpc', '{"a":1}', 'nope']);
    expect([notJson.code, notJson.stdout]).to.deep.equal([2, '']);
    expect(notJson.stderr).to.match(/^pulsar send: not JSON: /);
  });

  it('is interactive on a terminal: a prompt, replies and heartbeats as they come, history, Ctrl+D to leave', async function () {
    const port = await cliServer('--heartbeat', '700');
    const session = `pulsar-send-${process.pid}-${Date.now()}`;
    const tmux = (...args: string[]): Promise<string> => promisify(execFile)('tmux', args).then(({ stdout }) => stdout);
    const done = join(tmpdir(), `${session}.exit`);
    onCleanup(async () => {
      await tmux('kill-session', '-t', session).catch(() => {});
      rmSync(done, { force: true });
    });
    await tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '30', `${process.execPath} ${CLI} send ${port}; echo "exit $?" > ${done}`);
    const screen = (): Promise<string> => tmux('capture-pane', '-p', '-t', session);
    await eventually(async () => /Ctrl\+D to leave\n(.*\n)*>/.test(await screen()), 'the prompt', 10_000, 50);
    await tmux('send-keys', '-t', session, 'hello there', 'Enter');
    await eventually(async () => (await screen()).includes('< hello there'), 'the echo under the prompt', 10_000, 50);
    await tmux('send-keys', '-t', session, 'Up', 'Enter'); // history: the same line again
    await eventually(async () => ((await screen()).match(/< hello there/g) ?? []).length === 2, 'the line from history, echoed', 10_000, 50);
    await eventually(async () => (await screen()).includes('< (heartbeat)'), 'a heartbeat, shown as one', 10_000, 50);
    await tmux('send-keys', '-t', session, 'C-d');
    const { readFileSync, existsSync } = await import('node:fs');
    await eventually(async () => existsSync(done) && readFileSync(done, 'utf8'), 'the exit status', 10_000, 50);
    expect(readFileSync(done, 'utf8').trim()).to.equal('exit 0');
  });
});

describe('pulsar bench', function () {
  this.timeout(60_000);

  /** Runs `pulsar bench` with --json and returns its result. */
  async function benchJson(port: number, ...flags: string[]): Promise<{ code: number | null; result: Record<string, unknown> & { latency: Record<string, number> } }> {
    const run = await pulsar(['bench', String(port), '--json', ...flags]);
    expect(run.stdout, run.stderr).to.match(/^\{.*\}\n$/);
    return { code: run.code, result: JSON.parse(run.stdout) };
  }

  it('loads the CLI server: frames/s × seconds is the frames counted, no mismatch, every documented --json field', async () => {
    const port = await cliServer();
    const { code, result } = await benchJson(port, '-c', '4', '-d', '4', '-D', '1', '--warmup', '0.2');
    expect(code).to.equal(0);
    expect(Object.keys(result).sort()).to.deep.equal(['bytes', 'connections', 'depth', 'errors', 'frames', 'framesPerSec', 'heartbeats', 'latency', 'mbPerSec', 'mismatches', 'rate', 'seconds', 'size', 'target', 'threads'].sort());
    expect(Object.keys(result.latency).sort()).to.deep.equal(['max', 'mean', 'p50', 'p90', 'p99', 'p999']);
    expect(result).to.include({ connections: 4, depth: 4, size: 64, threads: 1, errors: 0, mismatches: 0 });
    const frames = result.frames as number;
    expect(frames).to.be.above(1000);
    expect(Math.abs((result.framesPerSec as number) * (result.seconds as number) - frames)).to.be.below(1);
    expect(result.bytes).to.equal(frames * 64 * 2);
    expect(result.seconds).to.be.within(0.95, 1.5);
    const l = result.latency;
    expect(l.p50).to.be.above(0);
    const ordered = [l.p50, l.p90, l.p99, l.p999, l.max] as number[];
    expect(ordered, 'percentiles in order').to.deep.equal([...ordered].sort((a, b) => a - b));
  });

  it('loads a raw s.pipe(s) server from two threads, with a payload of 16 KiB', async () => {
    const raw = net.createServer((s) => s.pipe(s));
    await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
    onCleanup(() => new Promise((resolve) => raw.close(resolve)));
    const { code, result } = await benchJson((raw.address() as net.AddressInfo).port, '-c', '4', '-d', '2', '-s', '16k', '-D', '1', '--warmup', '0.2', '--threads', '2');
    expect(code).to.equal(0);
    expect(result).to.include({ threads: 2, size: 16384, mismatches: 0, errors: 0 });
    expect(result.frames).to.be.above(100);
  });

  it('counts the mismatches of a server that corrupts one frame in a thousand, and exits 1', async () => {
    let answered = 0;
    const { port } = await startServer({
      handler: (frame, conn) => {
        answered++;
        if (answered % 1000 !== 0) return conn.send(frame);
        const corrupt = Buffer.from(frame);
        corrupt[corrupt.length - 1]! ^= 1;
        return conn.send(corrupt);
      },
    });
    const { code, result } = await benchJson(port, '-c', '2', '-d', '8', '-D', '1', '--warmup', '0.2');
    expect(code).to.equal(1);
    expect(answered).to.be.above(5000);
    expect(result.mismatches, `${answered} answered`).to.equal(Math.floor(answered / 1000));
  });

  it('holds a --rate cap', async () => {
    const port = await cliServer();
    const { result } = await benchJson(port, '-c', '4', '-d', '4', '--rate', '2000', '-D', '1.5', '--warmup', '0.3');
    // A cap is a ceiling: a loaded machine may send less, never more (its loose floor: the cap, not a stall, holds it).
    expect(result.framesPerSec, 'frames/s under a cap of 2,000').to.be.within(500, 2200);
  });

  it('says in one line that it cannot connect, and exits 1', async () => {
    const port = await freePort();
    const run = await pulsar(['bench', String(port), '-D', '1']);
    expect([run.code, run.stdout]).to.deep.equal([1, '']);
    expect(run.stderr).to.match(/^pulsar bench: cannot run against 127\.0\.0\.1:\d+: .*ECONNREFUSED.*\n$/);
  });
});

describe('the tools\' usage', () => {
  it('lists the subcommands in pulsar --help; send and bench --help end with examples', async () => {
    expect((await pulsar(['--help'])).stdout).to.match(/pulsar send \[host:\]port \[message…\]/).and.match(/pulsar bench \[host:\]port/);
    for (const tool of ['send', 'bench']) {
      const help = await pulsar([tool, '--help']);
      expect(help.code).to.equal(0);
      expect(help.stdout).to.match(new RegExp(`Examples:\\n(  .*pulsar ${tool} .*\\n)+$`));
    }
  });

  it('exits 2 on bad flags, with "did you mean"', async () => {
    const send = await pulsar(['send', '8080', '--cuont', '2', 'x']);
    expect([send.code, send.stderr.split('\n')[0]]).to.deep.equal([2, "pulsar send: unknown option '--cuont' (did you mean '--count'?)"]);
    const bench = await pulsar(['bench', '8080', '--thread', '2']);
    expect([bench.code, bench.stderr.split('\n')[0]]).to.deep.equal([2, "pulsar bench: unknown option '--thread' (did you mean '--threads'?)"]);
    for (const [args, message] of [
      [['bench', '8080', '-c', '0'], '--connections must be at least 1'],
      [['bench'], 'missing [host:]port'],
      [['send', 'nowhere', 'x'], '[host:]port must be a port or host:port'],
      [['send', '8080', '--hex', '--json', 'x'], '--hex reads and shows bytes'],
      [['send', '8080', '--ca', 'x.pem', 'x'], '--ca and --insecure go with --tls'],
      [['send', '8080', '--codec', 'morse', 'x'], "--codec must be 'length', 'varint' or 'lines'"],
    ] as const) {
      const run = await pulsar([...args]);
      expect(run.code, args.join(' ')).to.equal(2);
      expect(run.stderr, args.join(' ')).to.include(message);
    }
    await sleep(0);
  });
});
