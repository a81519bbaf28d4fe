// The floor under any flow-controlled stream's rate (docs/performance.md, streams): the round trip between
// two bare Node processes, one byte each way over loopback (`net`, `setNoDelay`), pinned as `npm run bench`
// pins (server on CPU 0, client on CPU 1, when taskset is there). A window of W items cannot carry more than
// W ÷ this a second.
//
//   node test/bench/ping-pong.mjs [--rounds 20000]
import { execFileSync, spawn } from 'node:child_process';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20000' }, serve: { type: 'boolean' }, port: { type: 'string' } } });
const here = fileURLToPath(import.meta.url);

if (values.serve) {
  const server = net.createServer((socket) => {
    socket.setNoDelay(true);
    socket.on('data', (data) => socket.write(data));
  });
  server.listen(0, '127.0.0.1', () => console.log(server.address().port));
} else if (values.port) {
  const rounds = Number(values.rounds);
  const socket = net.connect(Number(values.port), '127.0.0.1');
  socket.setNoDelay(true);
  let n = 0;
  let started = 0;
  socket.on('connect', () => {
    started = performance.now();
    socket.write('x');
  });
  socket.on('data', () => {
    if (++n < rounds) {
      socket.write('x');
      return;
    }
    console.log(`${rounds} round trips, ${((performance.now() - started) * 1000 / rounds).toFixed(1)} µs each`);
    process.exit(0);
  });
} else {
  let taskset = false;
  try {
    execFileSync('taskset', ['-c', '0', 'true']);
    taskset = true;
  } catch {
    // not pinned
  }
  const run = (cpu, args) => (taskset ? spawn('taskset', ['-c', String(cpu), process.execPath, here, ...args]) : spawn(process.execPath, [here, ...args]));
  const server = run(0, ['--serve']);
  const port = await new Promise((resolve) => server.stdout.once('data', (d) => resolve(String(d).trim())));
  const client = run(1, ['--port', port, '--rounds', values.rounds]);
  client.stdout.pipe(process.stdout);
  await new Promise((resolve) => client.on('exit', resolve));
  server.kill();
}
