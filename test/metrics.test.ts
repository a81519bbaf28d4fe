// Observability (docs/metrics.md): Prometheus metrics (exact counters over real sockets, the CLI's endpoint, workers summed,
// a real Prometheus scraping it, promtool's lint), report lines that scale, and pino-shaped JSON logs.
import { expect } from 'chai';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdleHeartbeat, LengthPrefixedCodec, type PulsarServer } from '../lib/index.js';
import { PulsarMetrics } from '../lib/metrics/index.js';
import { Cli } from './cli-process.js';
import { eventually, frame, freePort, httpGet, needsProgram, nextEvent, onCleanup, startDaemon, startServer, TestClient, when, runCommand, succeed } from './helpers.js';

type Sample = { value: number; labels: Record<string, string | number> };

/** The registry's series as `name` → samples. */
async function scrape(metrics: PulsarMetrics): Promise<Map<string, Sample[]>> {
  const series = await metrics.registry.getMetricsAsJSON();
  return new Map(series.map((s) => [s.name, s.values as Sample[]]));
}

/** The value of `name` (with `labels`, if given) in Prometheus text `text`. */
function valueIn(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name}{`) === false && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

async function metricsPort(cli: Cli): Promise<number> {
  const [, port] = await cli.line(/"event":"metrics".*"port":(\d+)/, 'stdout', 10000);
  return Number(port);
}

/** The environment without the variables that force colours on (colorette obeys FORCE_COLOR whatever its value). */
function withoutColor(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { FORCE_COLOR: _force, ...rest } = env;
  return rest;
}

/** Waits until `server` has no connection left. */
const allGone = (server: PulsarServer): Promise<void> => when(server, ['disconnect'], () => server.connections.size === 0, 'every client gone');

describe('metrics', function () {
  this.timeout(30000);

  it('counts exactly what crossed the wire: frames, bytes, heartbeats, refusals, errors by code, disconnects by reason', async () => {
    const { server, port } = await startServer({
      maxConnections: 2,
      heartbeat: new IdleHeartbeat({ interval: 100 }),
      codec: new LengthPrefixedCodec({ maxFrameLength: 64 }),
    });
    const metrics = new PulsarMetrics(server, { defaultMetrics: false });
    onCleanup(() => metrics.close());
    expect(server.listenerCount('frame'), 'metrics keep the bulk echo path').to.equal(0);
    let heartbeats = 0;
    server.on('heartbeat', () => heartbeats++);

    const talker = await TestClient.connect(port);
    talker.send('one', 'two', 'three!'); // 3 frames, 12 payload bytes, 24 on the wire
    await talker.waitFrames(3);
    const silent = await TestClient.connect(port);
    await silent.waitFrames(2); // two heartbeats at least
    const refused = await TestClient.connect(port); // a third, over maxConnections: 2
    await refused.waitClosed();
    silent.socket.end();
    await nextEvent(server, 'disconnect', 5000, (conn) => conn.remotePort === silent.socket.localPort);
    const oversized = await TestClient.connect(port);
    oversized.socket.write(frame(Buffer.alloc(65)).subarray(0, 4)); // a header announcing 65 > 64: 4 bytes
    await oversized.waitClosed();
    talker.socket.end();
    await allGone(server);

    const scraped = scrape(metrics);
    const beats = heartbeats; // the scrape collects synchronously: the same moment
    const series = await scraped;
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      series.get(name)?.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(beats).to.be.at.least(2);
    expect({
      accepted: value('pulsar_connections_accepted_total'),
      open: value('pulsar_connections'),
      framesIn: value('pulsar_frames_received_total'),
      framesOut: value('pulsar_frames_sent_total'),
      bytesIn: value('pulsar_received_bytes_total'),
      bytesOut: value('pulsar_sent_bytes_total'),
      heartbeats: value('pulsar_heartbeats_sent_total'),
      buffered: value('pulsar_buffered_bytes'),
      paused: value('pulsar_paused_connections'),
    }).to.deep.equal({
      accepted: 3,
      open: 0,
      framesIn: 3,
      framesOut: 3 + beats,
      bytesIn: 24 + 4,
      bytesOut: 24 + beats * (4 + 9),
      heartbeats: beats,
      buffered: 0,
      paused: 0,
    });
    expect(series.get('pulsar_connections_refused_total')!.map((s) => [s.labels.reason, s.value])).to.deep.equal([['ERR_MAX_CONNECTIONS', 1]]);
    expect(Object.fromEntries(series.get('pulsar_client_errors_total')!.map((s) => [s.labels.code, s.value]))).to.deep.equal({ ERR_MAX_CONNECTIONS: 1, ERR_FRAME_TOO_LARGE: 1 });
    expect(Object.fromEntries(series.get('pulsar_disconnects_total')!.map((s) => [s.labels.reason, s.value]))).to.deep.equal({ end: 2, error: 1 });
  });

  it('counts each server apart, and stops counting events after close()', async () => {
    const one = await startServer();
    const two = await startServer();
    const metrics = new PulsarMetrics(one.server, { defaultMetrics: false });
    const other = await TestClient.connect(two.port);
    other.send('not mine');
    await other.waitFrames(1);
    const mine = await TestClient.connect(one.port);
    mine.socket.end();
    await allGone(one.server);
    metrics.close();
    const late = await TestClient.connect(one.port);
    late.socket.end();
    await allGone(one.server);
    const series = await scrape(metrics);
    expect(series.get('pulsar_frames_received_total')![0]!.value).to.equal(0);
    expect(series.get('pulsar_disconnects_total')!.map((s) => s.value)).to.deep.equal([1]);
  });

  it('serves GET /metrics from the CLI with --metrics (404 elsewhere), and checks clean with promtool', async function () {
    needsProgram(this, 'promtool');
    const cli = new Cli(['--port', '0', '--metrics', '0', '--log', 'json']);
    const port = await metricsPort(cli);
    expect(cli.records()[0]).to.include({ event: 'listening' }); // the first line still names the server's port
    expect(cli.records()[1]!.msg).to.equal(`metrics on http://127.0.0.1:${port}/metrics`);
    const [, serverPort] = /"event":"listening".*"port":(\d+)/.exec(cli.stdout[0]!)!;
    const client = await TestClient.connect(Number(serverPort));
    client.send('x'.repeat(100));
    await client.waitFrames(1);
    const { status, type, body: text } = await httpGet(`http://127.0.0.1:${port}/metrics`);
    expect(status).to.equal(200);
    expect(type).to.equal('text/plain; version=0.0.4; charset=utf-8');
    expect(valueIn(text, 'pulsar_frames_received_total')).to.equal(1);
    expect(valueIn(text, 'pulsar_received_bytes_total')).to.equal(104);
    expect(text).to.match(/^process_cpu_seconds_total /m).and.match(/^nodejs_eventloop_lag_seconds /m);
    expect((await httpGet(`http://127.0.0.1:${port}/`)).status).to.equal(404);
    expect((await httpGet(`http://127.0.0.1:${port}/metrics/x`)).status).to.equal(404);

    // promtool lints pulsar's series clean. Of the whole output it flags only prom-client's own
    // nodejs_active_*_total gauges (named like counters upstream).
    const pulsarOnly = text.split('\n').filter((l) => /^(# (HELP|TYPE) )?pulsar_/.test(l)).join('\n') + '\n';
    expect(succeed('promtool', ['check', 'metrics'], { input: pulsarOnly })).to.equal('');
    const checked = runCommand('promtool', ['check', 'metrics'], { input: text });
    const problems = `${checked.stdout}${checked.stderr}`;
    for (const line of problems.split('\n').filter(Boolean)) expect(line).to.match(/^nodejs_active_(handles|requests|resources)_total non-counter metrics should not have "_total" suffix$/);

    // Every series the example Grafana dashboard queries is one this endpoint serves.
    const dashboard = JSON.parse(readFileSync(new URL('../examples/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: Array<{ targets: Array<{ expr: string }> }> };
    const queried = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => t.expr.match(/\b(pulsar|nodejs|process)_[a-z0-9_]+/g) ?? [])));
    expect(queried.size).to.be.at.least(9);
    for (const name of queried) expect(text, `the dashboard's ${name}`).to.match(new RegExp(`^# TYPE ${name} `, 'm'));
  });

  it('says so in one line and exits 1 when the metrics port is taken; a bad --metrics is a usage error', async () => {
    const blocker = net.createServer();
    onCleanup(() => new Promise((resolve) => blocker.close(resolve)));
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const taken = (blocker.address() as net.AddressInfo).port;
    const cli = new Cli(['--port', '0', '--metrics', `127.0.0.1:${taken}`]);
    expect((await cli.exit()).code).to.equal(1);
    expect(cli.stderr.filter((l) => l !== '').at(-1)).to.equal(`pulsar: cannot serve metrics on 127.0.0.1:${taken}: address already in use (EADDRINUSE)`);
    const bad = new Cli(['--metrics', 'nine']);
    expect((await bad.exit()).code).to.equal(2);
    expect(bad.stderr[0]).to.equal("pulsar: --metrics must be a port or host:port, got 'nine'");
  });

  it('with --workers 2, the primary serves one endpoint summing every worker', async () => {
    const cli = new Cli(['--port', '0', '--workers', '2', '--metrics', '0', '--report', '100', '--heartbeat', '0', '--log', 'json']);
    const port = await metricsPort(cli);
    const [, serverPort] = /"event":"listening".*"port":(\d+)/.exec(cli.stdout.find((l) => l.includes('"listening"'))!)!;
    const clients = await Promise.all(Array.from({ length: 6 }, () => TestClient.connect(Number(serverPort))));
    for (const client of clients) client.send('a', 'b');
    await Promise.all(clients.map((c) => c.waitFrames(2)));
    await when(cli.child.stdout!, ['data'], () => cli.records().some((r) => r.event === 'report' && r.count === 6
      && (r.workers as Array<{ count: number }>).every((w) => w.count > 0)), 'both workers holding clients', 10000);
    const { body: text } = await httpGet(`http://127.0.0.1:${port}/metrics`);
    expect(valueIn(text, 'pulsar_connections')).to.equal(6);
    expect(valueIn(text, 'pulsar_connections_accepted_total')).to.equal(6);
    expect(valueIn(text, 'pulsar_frames_received_total')).to.equal(12);
    expect(valueIn(text, 'pulsar_received_bytes_total')).to.equal(12 * 5);
  });

  it('is scraped by a real Prometheus, whose query API returns the exact counts', async function () {
    needsProgram(this, 'prometheus');
    this.timeout(40000);
    const cli = new Cli(['--port', '0', '--metrics', '0', '--heartbeat', '0', '--log', 'json']);
    const port = await metricsPort(cli);
    const [, serverPort] = /"event":"listening".*"port":(\d+)/.exec(cli.stdout[0]!)!;
    const promPort = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'pulsar-prometheus-'));
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global:',
      '  scrape_interval: 500ms',
      'scrape_configs:',
      '  - job_name: pulsar',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${port}']`,
      '',
    ].join('\n'));
    const prometheus = startDaemon('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ], dir);

    const client = await TestClient.connect(Number(serverPort));
    for (let i = 0; i < 10; i++) client.send(Buffer.alloc(100, i));
    await client.waitFrames(10);
    const query = async (promql: string): Promise<number | undefined> => {
      const response = await fetch(`http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await response.json()) as { data?: { result: Array<{ value: [number, string] }> } };
      const sample = body.data?.result[0];
      return sample === undefined ? undefined : Number(sample.value[1]);
    };
    await eventually(async () => (await query('pulsar_frames_received_total')) === 10, `Prometheus to scrape 10 frames (its log: ${prometheus.stderr().slice(-500)})`, 30000, 250);
    expect(await query('up{job="pulsar"}')).to.equal(1);
    expect(await query('pulsar_received_bytes_total')).to.equal(1040);
    expect(await query('pulsar_sent_bytes_total')).to.equal(1040);
    expect(await query('pulsar_connections')).to.equal(1);
  });
});

describe('report log lines', function () {
  this.timeout(20000);

  for (const format of ['json', 'text'] as const) {
    it(`list at most 20 connections with the totals and how many more, in ${format}`, async () => {
      const cli = new Cli(['--port', '0', '--report', '100', '--heartbeat', '0', '--log', format]);
      const port = format === 'json' ? Number((await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout'))[1]) : await cli.port();
      const clients = await Promise.all(Array.from({ length: 25 }, () => TestClient.connect(port)));
      for (const client of clients) client.send('12345');
      await Promise.all(clients.map((c) => c.waitFrames(1)));
      if (format === 'json') {
        await when(cli.child.stdout!, ['data'], () => cli.records().some((r) => r.event === 'report' && r.count === 25 && (r.totals as { framesIn: number }).framesIn === 25), 'a report of all 25');
        const report = cli.records().filter((r) => r.event === 'report').at(-1)!;
        expect(report.connections).to.have.length(20);
        expect(report).to.include({ count: 25, more: 5, bufferedBytes: 0 });
        expect(report.totals).to.deep.equal({ framesIn: 25, framesOut: 25, bytesIn: 25 * 9, bytesOut: 25 * 9 });
        expect(report.msg).to.equal(`25 connection(s), 0 bytes buffered, in 25 frames/${25 * 9} B, out 25 frames/${25 * 9} B`);
      } else {
        await cli.line(/pulsar:report 25 connection\(s\), 0 bytes buffered, in 25 frames\/225 B, out 25 frames\/225 B/);
        await cli.line(/^ {2}… and 5 more$/);
      }
    });
  }
});

describe('pino-shaped JSON logs', function () {
  this.timeout(20000);

  it('carry level, time, pid, hostname, msg and err, and pino-pretty reads them', async () => {
    const cli = new Cli(['--port', '0', '--max-frame', '16', '--log', 'json']);
    const [, port] = await cli.line(/"event":"listening".*"port":(\d+)/, 'stdout');
    const client = await TestClient.connect(Number(port));
    client.socket.write(frame(Buffer.alloc(17)));
    await client.waitClosed();
    await cli.line(/"event":"disconnect"/, 'stdout');
    const error = cli.records().find((r) => r.event === 'clientError')!;
    expect(error).to.include({ level: 40, remoteAddress: '127.0.0.1', remotePort: client.socket.localPort ?? error.remotePort });
    expect(error.err).to.deep.include({ type: 'DecodingError', code: 'ERR_FRAME_TOO_LARGE' });
    expect((error.err as { message: string }).message).to.match(/frame header announces 17 bytes/);
    expect(error.msg).to.match(/^127\.0\.0\.1:\d+ \(connection 1\): frame header announces 17 bytes.* \[ERR_FRAME_TOO_LARGE\]$/);

    const pretty = succeed(join('node_modules', '.bin', 'pino-pretty'), [], { input: `${cli.stdout.join('\n')}\n`, env: { ...withoutColor(process.env), NO_COLOR: '1' } });
    const pid = String(cli.child.pid);
    expect(pretty).to.match(new RegExp(`INFO \\(${pid}(?: on [^)]+)?\\): listening on 127\\.0\\.0\\.1:\\d+`));
    expect(pretty).to.match(new RegExp(`WARN \\(${pid}(?: on [^)]+)?\\): 127\\.0\\.0\\.1:\\d+ \\(connection 1\\): frame header announces 17 bytes`));
    expect(pretty).to.match(/err: \{\n\s+"type": "DecodingError"/);
  });
});
