// `pulsar bench` against an independent load generator (loadgen.c, compiled with cc), on the same server
// and the same load shape, in the same run: the ratio of their frames/s says whether `pulsar bench`'s
// figures can be trusted; then how many `pulsar bench` threads it takes to saturate a server.
//
//   node test/bench/bench-vs-loadgen.mjs [--server raw|pulsar] [--runs 3] [--seconds 3]
//
// The server is pinned to CPU 0 and the load to CPU 1 (taskset), as in `npm run bench`; with --threads 2
// the load may use both cores. Linux only. Run `npm run build` first.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const { values } = parseArgs({ options: { server: { type: 'string', default: 'raw' }, runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '3' } } });
const seconds = Number(values.seconds);
const SERVERS = { raw: [join(here, 'servers', 'raw-pipe.mjs')], pulsar: [join(root, 'dist', 'cli.js'), '--port', '0', '--heartbeat', '0'] };
const SHAPES = [{ conns: 1, depth: 1, size: 64 }, { conns: 10, depth: 1, size: 64 }, { conns: 50, depth: 16, size: 64 }, { conns: 10, depth: 4, size: 16384 }];

function loadgenBinary() {
  const source = join(here, 'loadgen.c');
  const binary = join(root, 'node_modules', '.cache', 'pulsar-bench', 'loadgen');
  if (!existsSync(binary) || statSync(binary).mtimeMs < statSync(source).mtimeMs) {
    mkdirSync(dirname(binary), { recursive: true });
    execFileSync('cc', ['-O2', '-o', binary, source], { stdio: 'inherit' });
  }
  return binary;
}

function run(cpus, command, args) {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', cpus, command, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 || code === 1 ? resolve(out) : reject(new Error(`${command} exited ${code}`))));
  });
}

async function startServer() {
  const child = spawn('taskset', ['-c', '0', process.execPath, ...SERVERS[values.server]], { stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise((resolve) => {
    const look = (d) => {
      const text = String(d);
      const json = /\{"port":(\d+)\}/.exec(text) ?? /listening on \S*:(\d+)/.exec(text);
      if (json) resolve(Number(json[1]));
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
  });
  return { child, port };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const loadgen = loadgenBinary();
const cli = join(root, 'dist', 'cli.js');
console.log(`server: ${values.server} (CPU 0); load on CPU 1 unless --threads 2 (CPUs 0-1); median of ${values.runs} runs of ${seconds} s`);
for (const shape of SHAPES) {
  const figures = { loadgen: [], bench: [], bench2: [] };
  for (let i = 0; i < Number(values.runs); i++) {
    for (const who of i % 2 ? ['bench2', 'bench', 'loadgen'] : ['loadgen', 'bench', 'bench2']) {
      const { child, port } = await startServer();
      if (who === 'loadgen') {
        const out = await run('1', loadgen, ['--port', String(port), '--mode', 'echo', '--conns', String(shape.conns), '--depth', String(shape.depth), '--size', String(shape.size), '--warmup', '1', '--seconds', String(seconds)]);
        const result = JSON.parse(out.trim().split('\n').pop());
        figures.loadgen.push(result.frames / result.seconds);
      } else {
        const threads = who === 'bench2' ? '2' : '1';
        const out = await run(threads === '2' ? '0-1' : '1', process.execPath, [cli, 'bench', String(port), '-c', String(shape.conns), '-d', String(shape.depth), '-s', String(shape.size), '-D', String(seconds), '--warmup', '1', '--threads', threads, '--json']);
        figures[who].push(JSON.parse(out).framesPerSec);
      }
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  }
  const [l, b, b2] = [median(figures.loadgen), median(figures.bench), median(figures.bench2)];
  const f = (n) => Math.round(n).toLocaleString('en-US');
  console.log(`\n${shape.conns} connections × ${shape.depth} in flight, ${shape.size} B`);
  console.log(`  loadgen (C, 1 thread)             ${f(l).padStart(12)} frames/s`);
  console.log(`  pulsar bench --threads 1          ${f(b).padStart(12)} frames/s   ${(b / l).toFixed(2)}× loadgen`);
  console.log(`  pulsar bench --threads 2 (2 CPUs) ${f(b2).padStart(12)} frames/s   ${(b2 / l).toFixed(2)}× loadgen`);
}
