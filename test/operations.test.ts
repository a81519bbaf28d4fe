// Operations (docs/deployment.md): health and readiness, drain before shutdown, TLS reload, rolling
// reloads of workers, systemd socket activation, --reuse-port. Real processes, real sockets.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { healthCheck, PulsarServer, serveHealth, type Readiness } from '../lib/index.js';
import { reusePortSupported } from '../lib/server/options.js';
import { Cli } from './cli-process.js';
import { ROOT, TestClient, frame, httpGet, onCleanup, selfSigned, startServer, when } from './helpers.js';

/** A temporary folder, removed after the test. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pulsar-ops-'));
  onCleanup(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

describe('operations', function () {
  this.timeout(30000);

  describe('health and drain', () => {
    it('readiness: 503 before listening, 200 when ready, draining then closing on close({ drainDelay }) while still serving', async () => {
      const server = new PulsarServer({ port: 0, heartbeat: false, reportInterval: false, drainDelay: 300, shutdownTimeout: 2000 });
      onCleanup(() => server.close({ drainDelay: 0 }));
      const seen: Readiness[] = [];
      server.on('readiness', (r) => seen.push(r));
      const endpoint = await serveHealth(server, { port: 0 });
      onCleanup(() => endpoint.close());
      expect(await httpGet(`${endpoint.url}/readyz`)).to.include({ status: 503, body: 'starting\n' });
      expect((await httpGet(`${endpoint.url}/livez`)).status).to.equal(200);
      const { port } = await server.listen();
      expect(await httpGet(`${endpoint.url}/readyz`)).to.include({ status: 200, body: 'ready\n' });
      const early = await TestClient.connect(port);
      const closed = server.close();
      expect(server.readiness).to.equal('draining');
      expect(await httpGet(`${endpoint.url}/readyz`)).to.include({ status: 503, body: 'draining\n' });
      expect((await httpGet(`${endpoint.url}/livez`)).status, 'alive while draining').to.equal(200);
      const late = await TestClient.connect(port); // still accepted while draining
      late.send('during the drain');
      early.send('early');
      expect(String((await late.waitFrames(1))[0])).to.equal('during the drain');
      expect(String((await early.waitFrames(1))[0])).to.equal('early');
      expect(await closed).to.deep.equal({ drained: 2, forced: 0 });
      expect(seen).to.deep.equal(['ready', 'draining', 'closing', 'closed']);
      // The endpoint closed with the server it watches: it never keeps a process alive after it.
      expect(await httpGet(`${endpoint.url}/readyz`).then(() => 'answered', () => 'gone'), 'the endpoint after the close').to.equal('gone');
    });

    it('healthCheck() answers the probes for an application\'s own HTTP server, and leaves other paths to it', async () => {
      const { server } = await startServer();
      const check = healthCheck(server);
      const handled: boolean[] = [];
      const app = await import('node:http').then((http) => http.createServer((req, res) => {
        const mine = check(req, res);
        handled.push(mine);
        if (!mine) res.writeHead(200).end('the app');
      }));
      await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
      onCleanup(() => new Promise((resolve) => app.close(resolve)));
      const base = `http://127.0.0.1:${(app.address() as net.AddressInfo).port}`;
      expect(await httpGet(`${base}/readyz`)).to.include({ status: 200, body: 'ready\n' });
      expect(await httpGet(`${base}/elsewhere`)).to.include({ status: 200, body: 'the app' });
      expect(handled).to.deep.equal([true, false]);
    });

    it('--drain-delay 1500: /readyz 503 at once on SIGTERM, /livez 200, a client connecting 1 s later is served, every answer arrives', async () => {
      const cli = new Cli(['--port', '0', '--health', '0', '--drain-delay', '1500', '--heartbeat', '0']);
      const port = await cli.port();
      const health = `http://127.0.0.1:${(await cli.line(/health on http:\/\/127\.0\.0\.1:(\d+)\/livez/))[1]}`;
      expect(await httpGet(`${health}/readyz`)).to.include({ status: 200, body: 'ready\n' });
      const before = await TestClient.connect(port);
      cli.child.kill('SIGTERM');
      await cli.line(/SIGTERM: draining for 1500 ms \(\/readyz answers 503, still serving\), then shutting down/);
      expect(await httpGet(`${health}/readyz`)).to.include({ status: 503, body: 'draining\n' });
      expect((await httpGet(`${health}/livez`)).status).to.equal(200);
      before.send('before');
      await before.waitFrames(1);
      // The scenario: a client the balancer still routes here after the SIGTERM, during the drain.
      const late = await TestClient.connect(port);
      for (let i = 0; i < 50; i++) late.send(`late ${i}`);
      await late.waitFrames(50);
      expect(late.frames.map(String)).to.deep.equal(Array.from({ length: 50 }, (_, i) => `late ${i}`));
      expect(await cli.exit(10000)).to.deep.equal({ code: 0, signal: null });
      expect(cli.stderr.filter(Boolean).at(-1)).to.match(/closed: 2 drained, 0 forced$/);
    });
  });

  describe('TLS reload', () => {
    /** The SHA-256 fingerprint of the certificate a new TLS client is shown. */
    async function fingerprintAt(port: number, ca: Buffer[]): Promise<{ fingerprint: string; socket: tls.TLSSocket }> {
      const socket = tls.connect({ port, host: '127.0.0.1', ca, servername: 'localhost' });
      onCleanup(() => void socket.destroy());
      await once(socket, 'secureConnect');
      return { fingerprint: socket.getPeerCertificate().fingerprint256, socket };
    }

    async function echoOver(socket: tls.TLSSocket, text: string): Promise<void> {
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.write(frame(text));
      await when(socket, ['data'], () => Buffer.concat(chunks).length >= 4 + text.length, 'the echo over TLS');
      expect(Buffer.concat(chunks).subarray(4).toString()).to.equal(text);
    }

    it('SIGHUP serves the new certificate to new connections, keeps established ones, and keeps the old one when the new key is broken', async () => {
      const dir = tempDir();
      const first = selfSigned(dir, { name: 'a', subject: '/CN=localhost/O=first' });
      const second = selfSigned(dir, { name: 'b', subject: '/CN=localhost/O=second' });
      const certFile = join(dir, 'cert.pem');
      const keyFile = join(dir, 'key.pem');
      writeFileSync(certFile, first.cert);
      writeFileSync(keyFile, first.key);
      const fingerprint = (pem: Buffer): string => new X509Certificate(pem).fingerprint256;
      const cli = new Cli(['--port', '0', '--tls-cert', certFile, '--tls-key', keyFile, '--heartbeat', '0']);
      const port = await cli.port();
      const ca = [first.cert, second.cert];
      const before = await fingerprintAt(port, ca);
      expect(before.fingerprint).to.equal(fingerprint(first.cert));

      writeFileSync(certFile, second.cert);
      writeFileSync(keyFile, second.key);
      cli.child.kill('SIGHUP');
      await cli.line(/TLS certificate reloaded: new connections get it/);
      expect((await fingerprintAt(port, ca)).fingerprint, 'a new connection sees the new certificate').to.equal(fingerprint(second.cert));
      await echoOver(before.socket, 'the established connection goes on');

      writeFileSync(keyFile, first.key); // a key that does not match the certificate
      cli.child.kill('SIGHUP');
      await cli.line(/reload failed: TLS reload failed, the certificate in use stays: .*\[?ERR_TLS_RELOAD/);
      expect((await fingerprintAt(port, ca)).fingerprint, 'the certificate in use stays').to.equal(fingerprint(second.cert));
      expect(cli.stderr.filter((l) => l.includes('reload failed'))).to.have.length(1);
    });
  });

  describe('rolling reload of workers', () => {
    /** The fixture cluster app (test/fixtures/cluster-app.mjs), its JSON lines, and a way to send it commands. */
    function clusterApp(env: NodeJS.ProcessEnv = {}) {
      const child = spawn(process.execPath, ['test/fixtures/cluster-app.mjs'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'inherit'] });
      onCleanup(async () => {
        if (child.exitCode === null) child.kill('SIGKILL');
      });
      const records: Array<Record<string, unknown>> = [];
      const lines = createInterface({ input: child.stdout! });
      lines.on('line', (line) => records.push(JSON.parse(line) as Record<string, unknown>));
      const next = (event: string): Promise<Record<string, unknown>> => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no '${event}' record; got ${JSON.stringify(records)}`)), 20000);
        const check = (): void => {
          const found = records.find((r) => r.event === event);
          if (found === undefined) return;
          records.splice(records.indexOf(found), 1);
          clearTimeout(timer);
          lines.off('line', check);
          resolve(found);
        };
        lines.on('line', check);
        check();
      });
      return { child, records, next, send: (command: string) => child.stdin!.write(`${command}\n`) };
    }

    it('SIGHUP to --workers 2 under load: every worker replaced one at a time, no connection refused, no answer lost, all pids new', async () => {
      const cli = new Cli(['--port', '0', '--workers', '2', '--heartbeat', '0', '--report', '0', '--log', 'json']);
      const port = Number((await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout'))[1]);
      const refused: string[] = [];
      let attempts = 0;
      let running = true;
      // A new connection every 10 ms, each wanting its one echo.
      const churn = (async () => {
        while (running) {
          attempts++;
          const failure = await new Promise<string | null>((resolve) => {
            const socket = net.connect({ port, host: '127.0.0.1' });
            let got = Buffer.alloc(0);
            socket.on('data', (d: Buffer) => {
              got = Buffer.concat([got, d]);
              if (got.length >= 9) socket.end();
            });
            socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
            socket.on('close', () => resolve(got.equals(frame('churn')) ? null : `closed after ${got.length} byte(s)`));
            socket.write(frame('churn'));
          });
          if (failure !== null) refused.push(failure);
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      })();
      // 20 pipelining clients: 8 frames in flight each; each connection counts what it sent and got back. A
      // worker closing stops reading and ends the connection after answering what it read: the client then
      // reconnects. Answers must come back exactly for the frames read, in order.
      const counts: Array<{ port: number; sent: number; answered: number; wrong: number }> = [];
      const pipeliner = async (): Promise<void> => {
        while (running) {
          const record = { port: 0, sent: 0, answered: 0, wrong: 0 };
          counts.push(record);
          await new Promise<void>((resolve) => {
            const socket = net.connect({ port, host: '127.0.0.1' });
            socket.on('connect', () => (record.port = socket.localPort!));
            let buffered = Buffer.alloc(0);
            const sendOne = (): void => {
              const payload = Buffer.alloc(8);
              payload.writeUInt32BE(record.sent++, 0);
              socket.write(frame(payload));
            };
            socket.on('connect', () => {
              for (let i = 0; i < 8; i++) sendOne();
            });
            socket.on('data', (d: Buffer) => {
              buffered = Buffer.concat([buffered, d]);
              while (buffered.length >= 12) {
                if (buffered.readUInt32BE(4) !== record.answered) record.wrong++;
                record.answered++;
                buffered = buffered.subarray(12);
                if (running && !socket.writableEnded) sendOne();
              }
            });
            socket.on('end', () => socket.end());
            socket.on('error', () => undefined);
            socket.on('close', () => resolve());
          });
        }
      };
      const pipeliners = Array.from({ length: 20 }, () => pipeliner());
      await new Promise((resolve) => setTimeout(resolve, 300)); // load running before the roll
      cli.child.kill('SIGHUP');
      await cli.line(/"event":"reloaded".*"replaced":2/, 'stdout', 20000);
      await new Promise((resolve) => setTimeout(resolve, 300)); // and after it
      running = false;
      await churn;
      cli.child.kill('SIGTERM');
      expect(await cli.exit(15000)).to.deep.equal({ code: 0, signal: null });
      await Promise.all(pipeliners);
      const records = cli.records();
      const roll = records.filter((r) => r.event === 'roll') as Array<{ step: string; pid?: number; replacementPid?: number }>;
      expect(roll.map((r) => r.step), 'the roll, step by step').to.deep.equal(['start', 'replacing', 'replaced', 'replacing', 'replaced', 'done']);
      const replaced = roll.filter((r) => r.step === 'replaced');
      const oldPids = replaced.map((r) => r.pid);
      const newPids = replaced.map((r) => r.replacementPid);
      expect(new Set([...oldPids, ...newPids]).size, 'every worker replaced by a new process').to.equal(4);
      expect(attempts, 'connection attempts during the test').to.be.above(20);
      expect(refused, `attempts refused or unanswered, of ${attempts}`).to.deep.equal([]);
      expect(counts.reduce((n, c) => n + c.wrong, 0), 'answers out of order or wrong').to.equal(0);
      // Every frame a worker read was answered, and every answer arrived: per connection, the client got
      // exactly what the worker says it read and sent back (frames sent after it stopped reading were never read).
      // (Each worker logs its disconnects with what it read and sent; a port may have served twice: any match.)
      const served = records.filter((r) => r.event === 'disconnect') as Array<{ remotePort: number; framesIn: number; framesOut: number }>;
      const pipelined = counts.filter((c) => c.port !== 0);
      expect(pipelined.length, 'pipelining connections, reconnections included').to.be.above(20);
      for (const c of pipelined) {
        const seen = served.filter((r) => r.remotePort === c.port).map((r) => [r.framesIn, r.framesOut]);
        expect(seen, `connection ${c.port}: the worker's records [read, answered], holding ${c.answered} received`).to.deep.include([c.answered, c.answered]);
      }
    });

    it('stops the roll when a replacement crashes at start, and the old workers go on serving', async () => {
      const dir = tempDir();
      const crashFile = join(dir, 'crash');
      const app = clusterApp({ CRASH_FILE: crashFile });
      const { port, pids: before } = (await app.next('listening')) as { port: number; pids: number[] };
      writeFileSync(crashFile, 'the deploy broke the code');
      app.send('reload');
      const failed = (await app.next('reloadFailed')) as { code: string; message: string; pids: number[] };
      expect(failed.code).to.equal('ERR_RELOAD_FAILED');
      expect(failed.message).to.match(/rolling reload stopped after 0 worker\(s\): replacement worker \d+ exited before it listened; the others go on serving/);
      expect(app.records.filter((r) => r.event === 'roll').map((r) => r.step)).to.deep.equal(['start', 'replacing', 'failed']);
      expect(failed.pids, 'the old workers, untouched').to.deep.equal(before);
      const client = await TestClient.connect(port);
      client.send('still served');
      expect(String((await client.waitFrames(1))[0])).to.equal('still served');
      app.send('reload'); // the code is still broken: the next roll stops the same way, nothing lost
      const again = (await app.next('reloadFailed')) as { code: string; pids: number[] };
      expect([again.code, again.pids], 'still the old workers').to.deep.equal(['ERR_RELOAD_FAILED', before]);
    });

    it('SIGHUP rolls the CLI\'s --workers, telling the roll step by step; a second SIGHUP during a roll is refused', async () => {
      const cli = new Cli(['--port', '0', '--workers', '2', '--heartbeat', '0']);
      const port = await cli.line(/listening on 127\.0\.0\.1:(\d+) \(2 workers\)/).then((m) => Number(m[1]));
      cli.child.kill('SIGHUP');
      await cli.line(/roll: replacing 2 worker\(s\), one at a time/);
      cli.child.kill('SIGHUP'); // during the roll
      await cli.line(/reloaded: 2 worker\(s\) replaced/, 'stderr', 20000);
      const log = cli.stderr.join('\n');
      expect(log).to.match(/SIGHUP: replacing the workers one at a time/);
      expect(log).to.match(/roll: replacing 2 worker\(s\), one at a time/);
      expect(log.match(/roll: worker \d+ \(pid \d+\): replacement worker \d+ \(pid \d+\) starting/g)).to.have.length(2);
      expect(log.match(/roll: worker \d+ \(pid \d+\) listening; worker \d+ \(pid \d+\) closed/g)).to.have.length(2);
      expect(log).to.match(/reload failed: a rolling reload is already under way/);
      const client = await TestClient.connect(port);
      client.send('after the roll');
      expect(String((await client.waitFrames(1))[0])).to.equal('after the roll');
    });
  });

  describe('systemd socket activation and --reuse-port', () => {
    it('serves the listening socket systemd passes as fd 3 (LISTEN_PID, LISTEN_FDS) instead of binding', async () => {
      // The way systemd does it: the socket is bound and listening before the service starts, handed over
      // as fd 3, and LISTEN_PID names the service's own pid (python execs node, keeping its pid).
      const launcher = `
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
if s.fileno() != 3: os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)  # Python's sockets are close-on-exec (PEP 446); dup2 onto itself would keep that
os.environ['LISTEN_PID'] = str(os.getpid())
os.environ['LISTEN_FDS'] = '1'
os.execv(sys.argv[1], sys.argv[1:])
`;
      const child = spawn('python3', ['-c', launcher, process.execPath, join(ROOT, 'dist', 'cli.js'), '--heartbeat', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
      onCleanup(() => void (child.exitCode === null && child.kill('SIGKILL')));
      const [line] = await once(createInterface({ input: child.stdout! }), 'line') as [string];
      const port = Number(line);
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d));
      await when(child.stderr!, ['data'], () => stderr.includes('listening on'), 'the listening line');
      expect(stderr).to.include(`listening on 127.0.0.1:${port}`);
      const client = await TestClient.connect(port);
      client.send('through the socket systemd made');
      expect(String((await client.waitFrames(1))[0])).to.equal('through the socket systemd made');
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit') as [number];
      expect(code).to.equal(0);
    });

    it(`--reuse-port: ${reusePortSupported() ? 'each of --workers 2 binds its own socket and serves' : 'refused on this Node with one clear line'}`, async () => {
      if (!reusePortSupported()) {
        const cli = new Cli(['--port', '0', '--workers', '2', '--reuse-port']);
        expect((await cli.exit()).code).to.equal(2);
        expect(cli.stderr[0]).to.equal(`pulsar: --reuse-port needs Node 22.12, 23.1 or later (this is ${process.versions.node})`);
        return;
      }
      // A fixed port: with SO_REUSEPORT each worker binds it itself (port 0 would give each its own).
      const probe = net.createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const port = (probe.address() as net.AddressInfo).port;
      await new Promise((resolve) => probe.close(resolve));
      const cli = new Cli(['--port', String(port), '--workers', '2', '--reuse-port', '--heartbeat', '0', '--report', '100', '--log', 'json']);
      await cli.line(/"event":"listening"/, 'stdout');
      const clients = await Promise.all(Array.from({ length: 40 }, () => TestClient.connect(port)));
      await Promise.all(clients.map(async (c, i) => {
        c.send(`hello ${i}`);
        await c.waitFrames(1);
      }));
      const report = await cli.line(/"event":"report".*"count":40/, 'stdout');
      const workers = (JSON.parse(report.input) as { workers: Array<{ count: number }> }).workers;
      expect(workers.map((w) => w.count > 0), 'the kernel spread the connections over both workers').to.deep.equal([true, true]);
    });
  });
});
