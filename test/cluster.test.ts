// `npx pulsar --workers N`: node:cluster workers behind one port, driven through the built CLI (which
// uses the library's PulsarCluster and serveWorker) with JSON logs.
import { expect } from 'chai';
import os from 'node:os';
import { Cli } from './cli-process.js';
import { TestClient, when } from './helpers.js';

interface LogRecord {
  event: string;
  [field: string]: unknown;
}

interface ClusterReportRecord {
  count: number;
  workers: Array<{ worker: number; pid: number; count: number }>;
}

/** Parsed JSON log records of a CLI, so far. */
const records = (cli: Cli): LogRecord[] => cli.records() as LogRecord[];

/** Waits for a report satisfying `test` (the newest first), checking again as output arrives. */
async function report(cli: Cli, test: (r: ClusterReportRecord) => boolean): Promise<ClusterReportRecord> {
  const latest = (): ClusterReportRecord | undefined =>
    (records(cli).filter((r) => r.event === 'report') as unknown as ClusterReportRecord[]).reverse().find(test);
  await when(cli.child.stdout!, ['data'], () => latest() !== undefined, `a report matching ${test}`, 10000);
  return latest()!;
}

describe('cluster (--workers)', function () {
  this.timeout(30000);

  it('serves from 2 workers on one port, reports for all, and drains every worker on SIGTERM', async () => {
    const cli = new Cli(['--port', '0', '--workers', '2', '--report', '100', '--heartbeat', '0', '--log', 'json']);
    const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
    expect(records(cli)[0]).to.include({ event: 'listening', workers: 2 });
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.connect(Number(port))));
    for (const [i, client] of clients.entries()) client.send(`hello ${i}`);
    await Promise.all(clients.map((c) => c.waitFrames(1)));
    const full = await report(cli, (r) => r.count === 6);
    expect(full.workers).to.have.length(2);
    expect(full.workers.every((w) => w.count > 0), 'both workers hold clients').to.equal(true);
    expect(full.workers[0]!.pid).to.not.equal(full.workers[1]!.pid);
    const connected = records(cli).filter((r) => r.event === 'connection');
    expect(new Set(connected.map((r) => r.worker)), 'connection logs name their worker').to.deep.equal(new Set(full.workers.map((w) => w.worker)));
    for (const [i, client] of clients.entries()) client.send(`bye ${i}`);
    await Promise.all(clients.map((c) => c.waitFrames(2)));
    cli.child.kill('SIGTERM');
    expect(await cli.exit(15000)).to.deep.equal({ code: 0, signal: null });
    await Promise.all(clients.map((c) => c.waitClosed()));
    expect(records(cli).at(-1)).to.include({ event: 'closed', drained: 6, forced: 0 });
  });

  it('replaces a worker that dies, while the other keeps its clients', async () => {
    const cli = new Cli(['--port', '0', '--workers', '2', '--report', '100', '--heartbeat', '0', '--log', 'json']);
    const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
    const clients = await Promise.all(Array.from({ length: 4 }, () => TestClient.connect(Number(port))));
    for (const client of clients) client.send('x');
    await Promise.all(clients.map((c) => c.waitFrames(1)));
    const before = await report(cli, (r) => r.count === 4 && r.workers.every((w) => w.count > 0));
    const victim = before.workers[0]!;
    process.kill(victim.pid, 'SIGKILL');
    await cli.line(/"event":"workerExit".*"signal":"SIGKILL".*"replaced":true/, 'stdout');
    const after = await report(cli, (r) => r.workers.length === 2 && !r.workers.some((w) => w.pid === victim.pid) && r.count === 4 - victim.count);
    expect(after.workers.map((w) => w.pid)).to.include(before.workers[1]!.pid);
    const survivors = clients.filter((c) => !c.closed);
    expect(survivors).to.have.length(4 - victim.count);
    for (const client of survivors) client.send('still');
    await Promise.all(survivors.map((c) => c.waitFrames(2)));
    const fresh = await TestClient.connect(Number(port));
    fresh.send('new');
    await fresh.waitFrames(1);
  });

  it('exits 130 at once on a second SIGINT while workers drain, killing them', async () => {
    const cli = new Cli(['--port', '0', '--workers', '2', '--shutdown-timeout', '8000', '--report', '100', '--log', 'json']);
    const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
    // A peer that ignores our FIN keeps its worker draining.
    const client = await TestClient.connect(Number(port), '127.0.0.1', { allowHalfOpen: true });
    const { workers } = await report(cli, (r) => r.count === 1);
    cli.child.kill('SIGINT');
    await cli.line(/"event":"shutdown"/, 'stdout');
    await when(client.socket, ['end'], () => client.socket.readableEnded, 'the worker to end its side');
    const started = Date.now();
    cli.child.kill('SIGINT');
    expect(await cli.exit()).to.deep.equal({ code: 130, signal: null });
    expect(Date.now() - started).to.be.below(2000);
    const alive = (pid: number): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    const deadline = Date.now() + 5000;
    while (workers.some((w) => alive(w.pid)) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(workers.filter((w) => alive(w.pid)), 'workers left running').to.deep.equal([]);
  });

  it('runs one worker per CPU with --workers auto, and shuts down cleanly', async () => {
    const cli = new Cli(['--port', '0', '--workers', 'auto']);
    // One CPU: one process, and no "(N workers)" in the line.
    const [, port, workers] = await cli.line(/listening on 127\.0\.0\.1:(\d+)(?: \((\d+) workers\))?$/);
    expect(Number(workers ?? 1)).to.equal(os.availableParallelism());
    const client = await TestClient.connect(Number(port));
    client.send('auto');
    await client.waitFrames(1);
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).to.deep.equal({ code: 0, signal: null });
    expect(cli.stderr.filter((l) => l !== '').at(-1)).to.match(/closed: 1 drained, 0 forced$/);
  });

  it('rejects --workers 0 and --workers many with exit 2', async () => {
    for (const [value, reason] of [['0', 'must be an integer from 1 to 1024, got 0 (number)'], ['many', "must be a whole number, got 'many'"]]) {
      const cli = new Cli(['--workers', value!]);
      expect((await cli.exit()).code).to.equal(2);
      expect(cli.stderr[0]).to.equal(`pulsar: --workers ${reason}`);
    }
  });
});
