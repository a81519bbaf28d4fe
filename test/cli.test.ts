// The built CLI (dist/cli.js, made by `npm test`'s build step), spawned as a user would run it.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { Cli } from './cli-process.js';
import { TestClient, frame, onCleanup, when } from './helpers.js';

describe('CLI', function () {
  this.timeout(20000);

  it('logs the real port first, echoes, and exits 0 on SIGINT after a final line', async () => {
    const cli = new Cli(['--port', '0']);
    const port = await cli.port();
    expect(cli.stderr[0]).to.match(/pulsar:server listening on 127\.0\.0\.1:\d+$/);
    const client = await TestClient.connect(port);
    client.send('HELLO');
    await client.waitFrames(1);
    expect(client.received.toString('hex')).to.equal('0000000548454c4c4f');
    await cli.line(/pulsar:connection 127\.0\.0\.1:\d+ connected \(#1, 1 open\)/);
    cli.child.kill('SIGINT');
    expect(await cli.exit()).to.deep.equal({ code: 0, signal: null });
    await client.waitClosed();
    expect(cli.stderr.some((l) => /SIGINT: shutting down, 1 connection\(s\) to drain/.test(l))).to.equal(true);
    expect(cli.stderr.some((l) => /disconnected \(#1, shutdown\)/.test(l))).to.equal(true);
    expect(cli.stderr.at(-1)).to.match(/pulsar:server closed: 1 drained, 0 forced$/);
  });

  it('shuts down on SIGTERM with exit 0', async () => {
    const cli = new Cli(['--port', '0']);
    await cli.port();
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).to.deep.equal({ code: 0, signal: null });
    expect(cli.stderr.at(-1)).to.match(/closed: 0 drained, 0 forced$/);
  });

  it('exits 130 at once on a second SIGINT during shutdown', async () => {
    const cli = new Cli(['--port', '0', '--shutdown-timeout', '60000']);
    const port = await cli.port();
    // A peer that ignores our FIN keeps the shutdown waiting, so there is time for a second Ctrl+C.
    const client = await TestClient.connect(port, '127.0.0.1', { allowHalfOpen: true });
    await cli.line(/connected \(#1/);
    cli.child.kill('SIGINT');
    await cli.line(/shutting down/);
    await when(client.socket, ['end'], () => client.socket.readableEnded, 'the server FIN');
    const started = Date.now();
    cli.child.kill('SIGINT');
    expect(await cli.exit()).to.deep.equal({ code: 130, signal: null });
    expect(Date.now() - started, 'at once, not after the 60 s shutdown timeout').to.be.below(10_000);
  });

  it('rejects an unknown flag with a one-line reason and the usage, exit 2', async () => {
    const cli = new Cli(['--nope']);
    expect((await cli.exit()).code).to.equal(2);
    expect(cli.stderr[0]).to.equal("pulsar: unknown option '--nope'");
    expect(cli.stderr.join('\n')).to.include('Usage: pulsar [options]');
  });

  it('suggests the flag a typo meant, and --help shows \\n as text', async () => {
    const typo = new Cli(['--prot', '9000']);
    expect((await typo.exit()).code).to.equal(2);
    expect(typo.stderr[0]).to.equal("pulsar: unknown option '--prot' (did you mean '--port'?)");
    const help = new Cli(['--help']);
    expect((await help.exit()).code).to.equal(0);
    expect(help.stdout.join('\n')).to.include('or text lines ending \\n or \\r\\n (default length)');
  });

  for (const [args, reason] of [
    [['--port', 'abc'], /^pulsar: --port must be a whole number, got 'abc'$/],
    [['--port', '70000'], /^pulsar: --port must be an integer from 0 to 65535, got 70000 \(number\)$/],
    [['--heartbeat', '-5'], /--heartbeat/],
    [['--log', 'xml'], /--log must be 'text' or 'json', got 'xml'/],
    [['--max-connections', '0'], /^pulsar: --max-connections must be an integer >= 1, got 0 \(number\)$/],
    [['serve'], /Unexpected argument 'serve'/],
    [['--max-buffered', '64x'], /^pulsar: --max-buffered must be a byte count \(digits, optionally followed by k, m or g\) of at most \d+, got '64x'$/],
    [['--max-frame', '5g'], /^pulsar: --max-frame must be a byte count .* of at most 4294967295, got '5g'$/],
    [['--frame-timeout', '-1'], /--frame-timeout/],
  ] as const) {
    it(`rejects ${args.join(' ')} with exit 2`, async () => {
      const cli = new Cli([...args]);
      expect((await cli.exit()).code).to.equal(2);
      expect(cli.stderr[0]).to.match(reason);
    });
  }

  it('says so in one line and exits 1 when the port is taken', async () => {
    const blocker = net.createServer();
    onCleanup(() => new Promise((resolve) => blocker.close(resolve)));
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const cli = new Cli(['--port', String(port)]);
    expect((await cli.exit()).code).to.equal(1);
    expect(cli.stderr.filter((l) => l !== '')).to.deep.equal([`pulsar: cannot listen on 127.0.0.1:${port}: address already in use (EADDRINUSE)`]);
  });

  it('prints the usage with --help and the version with --version', async () => {
    const help = new Cli(['--help']);
    expect((await help.exit()).code).to.equal(0);
    expect(help.stdout.join('\n')).to.match(/Usage: pulsar \[options\][\s\S]*--shutdown-timeout[\s\S]*\nExamples:\n(  pulsar .*\n)+/);
    const version = new Cli(['--version']);
    expect((await version.exit()).code).to.equal(0);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(version.stdout[0]).to.equal(pkg.version);
  });

  it('logs JSON lines on stdout with --log json', async () => {
    const cli = new Cli(['--port', '0', '--log', 'json', '--report', '100']);
    const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
    const client = await TestClient.connect(Number(port));
    const clientPort = client.socket.localPort;
    client.send('json');
    await client.waitFrames(1);
    await cli.line(/"event":"report".*"count":1/, 'stdout');
    cli.child.kill('SIGINT');
    expect((await cli.exit()).code).to.equal(0);
    const records = cli.records();
    expect(records[0]).to.include({ level: 30, event: 'listening', address: '127.0.0.1', port: Number(port), pid: cli.child.pid, hostname: os.hostname() });
    expect(records[0]!.msg).to.equal(`listening on 127.0.0.1:${port}`);
    for (const record of records) {
      expect(record).to.include.keys('time', 'level', 'event', 'msg', 'pid', 'hostname');
      expect(record.time).to.be.a('number').within(Date.now() - 60_000, Date.now());
    }
    const events = records.map((r) => r.event);
    expect(events).to.include.members(['listening', 'connection', 'report', 'shutdown', 'disconnect', 'closed']);
    const connection = records.find((r) => r.event === 'connection')!;
    expect(connection).to.include({ remoteAddress: '127.0.0.1', remotePort: clientPort });
    const report = records.find((r) => r.event === 'report')! as { connections: Array<Record<string, unknown>> };
    expect(report.connections[0]).to.include({ framesIn: 1, bytesIn: 8 });
    expect(cli.stderr.filter((l) => l !== '')).to.deep.equal([]);
  });

  it('logs reports and client errors with the client address', async () => {
    const cli = new Cli(['--port', '0', '--report', '100', '--max-frame', '16']);
    const port = await cli.port();
    const client = await TestClient.connect(port);
    await cli.line(/pulsar:report 1 connection\(s\)/);
    await cli.line(new RegExp(`#1 127\\.0\\.0\\.1:${client.socket.localPort} idle \\d+ ms`));
    client.socket.write(frame(Buffer.alloc(17)));
    await cli.line(new RegExp(`pulsar:connection 127\\.0\\.0\\.1:${client.socket.localPort} \\(connection 1\\): frame header announces 17 bytes.* \\[ERR_FRAME_TOO_LARGE\\]`));
    await client.waitClosed();
  });

  it('takes the port and host from PORT and HOST when the flags are absent, and -p for --port', async () => {
    const fromEnv = new Cli([], { PORT: '0', HOST: '127.0.0.1' });
    const client = await TestClient.connect(await fromEnv.port());
    client.send('env');
    await client.waitFrames(1);
    const short = new Cli(['-p', '0'], { PORT: 'not used: the flag wins' });
    await short.port();
    const bad = new Cli([], { PORT: 'eighty' });
    expect((await bad.exit()).code).to.equal(2);
    expect(bad.stderr[0]).to.equal("pulsar: PORT (environment) must be a whole number, got 'eighty'");
  });

  it('takes byte counts with k, m and g suffixes', async () => {
    const cli = new Cli(['--port', '0', '--max-frame', '1k', '--max-buffered', '1g', '--max-pending-output', '2M']);
    const client = await TestClient.connect(await cli.port());
    client.send(Buffer.alloc(1024));
    await client.waitFrames(1);
    client.socket.write(frame(Buffer.alloc(1025)));
    await cli.line(/frame header announces 1025 bytes, over the 1024-byte limit \[ERR_FRAME_TOO_LARGE\]/);
  });

  it('logs the address from the PROXY header with --proxy-protocol, and refuses a connection without one', async () => {
    const cli = new Cli(['--port', '0', '--proxy-protocol']);
    const port = await cli.port();
    const proxied = await TestClient.connect(port);
    proxied.socket.write(Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 10.0.0.1 51234 8080\r\n'), frame('hi')]));
    await proxied.waitFrames(1);
    await cli.line(/pulsar:connection 203\.0\.113\.7:51234 connected \(#1, 1 open\)/);
    const direct = await TestClient.connect(port);
    direct.send('no header');
    await cli.line(new RegExp(`pulsar:connection 127\\.0\\.0\\.1:${direct.socket.localPort}: the connection did not start with a PROXY protocol header \\[ERR_PROXY_PROTOCOL\\]`));
    await direct.waitClosed();
  });

  it('logs heartbeats only when DEBUG asks for them', async () => {
    const quiet = new Cli(['--port', '0', '--heartbeat', '50']);
    const quietClient = await TestClient.connect(await quiet.port());
    await quietClient.waitFrames(2);
    quiet.child.kill('SIGINT');
    expect((await quiet.exit()).code).to.equal(0);
    expect(quiet.stderr.some((l) => l.includes('heartbeat'))).to.equal(false);

    const verbose = new Cli(['--port', '0', '--heartbeat', '50'], { DEBUG: 'pulsar:*' });
    const verboseClient = await TestClient.connect(await verbose.port());
    await verboseClient.waitFrames(1);
    await verbose.line(new RegExp(`pulsar:heartbeat 127\\.0\\.0\\.1:${verboseClient.socket.localPort} heartbeat sent`));

    const narrow = new Cli(['--port', '0', '--report', '50'], { DEBUG: 'pulsar:report' });
    await narrow.line(/pulsar:report 0 connection\(s\)/);
    expect(narrow.stderr.some((l) => l.includes('pulsar:server'))).to.equal(false);
  });

  it('answers every frame it decoded when SIGTERM comes amid 50 pipelining clients, then exits 0', async function () {
    this.timeout(40000);
    const cli = new Cli(['--port', '0', '--heartbeat', '0', '--report', '0', '--log', 'json']);
    const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
    const batch = Array.from({ length: 16 }, (_, i) => Buffer.alloc((i * 397) % 3000, i + 1));
    const wire = Buffer.concat(batch.map(frame));
    const clients = await Promise.all(Array.from({ length: 50 }, () => TestClient.connect(Number(port), '127.0.0.1', { keepRaw: false })));
    const ports = clients.map((c) => c.socket.localPort);
    // Each client pipelines through a window of 4 batches (64 frames in flight when SIGTERM comes),
    // sending a batch for each one answered, until the server's FIN ends its socket. A client that
    // sends without bound instead cannot be promised its answers: after our FIN the server discards
    // its input while waiting for its FIN, and if it has not read its answers by the shutdown timeout,
    // the destroy resets them away (counted as forced, with ERR_CLOSE_TIMEOUT; see limits.test.ts).
    const window = 4;
    for (const client of clients) {
      let sent = 0;
      const topUp = (): void => {
        while (client.socket.writable && sent - Math.floor(client.frames.length / batch.length) < window) {
          client.socket.write(wire);
          sent++;
        }
      };
      client.socket.on('data', topUp);
      topUp();
    }
    await Promise.all(clients.map((c) => c.waitFrames(200, 15000)));
    cli.child.kill('SIGTERM');
    expect(await cli.exit(30000)).to.deep.equal({ code: 0, signal: null });
    await Promise.all(clients.map((c) => c.waitClosed()));

    const records = cli.records();
    expect(records.at(-1)).to.include({ event: 'closed', drained: 50, forced: 0 });
    for (const [i, client] of clients.entries()) {
      const gone = records.find((r) => r.event === 'disconnect' && r.remotePort === ports[i])!;
      expect(gone, 'the server logged the disconnect').to.not.equal(undefined);
      expect(gone).to.include({ reason: 'shutdown' });
      expect(gone.framesOut, 'every frame the server decoded was answered').to.equal(gone.framesIn);
      expect(client.frames.length, 'the client received every answer').to.equal(gone.framesOut);
      client.frames.forEach((f, n) => {
        if (!f.equals(batch[n % batch.length]!)) expect.fail(`frame ${n} differs from what was sent`);
      });
      const wireBytes = client.frames.reduce((n, f) => n + 4 + f.length, 0);
      expect(client.bytesReceived, 'no torn frame at the end').to.equal(wireBytes);
    }
    const errors = records.filter((r) => r.event === 'clientError').map((r) => (r.err as { code: string }).code);
    expect(errors.every((code) => code === 'ERR_TRUNCATED_FRAME'), `only frames cut by the shutdown are reported: ${errors}`).to.equal(true);
  });
});
