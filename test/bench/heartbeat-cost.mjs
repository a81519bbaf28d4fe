// Heartbeat cost at scale: CPU a pulsar server spends over 10 s with N idle connections, with the heartbeat
// off, with the sweep running but nothing due ("sweep": the machinery alone), and with the default
// 5 s heartbeat sending frames. The server runs in a child process; the clients stay idle in this one.
//
// Run: node test/bench/heartbeat-cost.mjs [connections=10000]   (after `npm install`; needs 2×N file descriptors)
import { fork } from 'node:child_process';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

const MEASURE_MS = 10_000;

if (process.argv[2] === '--server') {
  const { IdleHeartbeat, PulsarServer } = await import('pulsar');
  const policies = { off: false, sweep: new IdleHeartbeat({ interval: 3_600_000 }), default: new IdleHeartbeat({ interval: 5000 }) };
  const server = new PulsarServer({ port: 0, heartbeat: policies[process.argv[3]], reportInterval: false });
  let beats = 0;
  server.on('heartbeat', () => beats++);
  const { port } = await server.listen();
  process.send({ port });
  let start;
  process.on('message', async (message) => {
    if (message === 'start') start = { cpu: process.cpuUsage(), beats, at: Date.now() };
    if (message === 'stop') {
      const cpu = process.cpuUsage(start.cpu);
      process.send({ cpuMs: (cpu.user + cpu.system) / 1000, wallMs: Date.now() - start.at, beats: beats - start.beats, connections: server.connections.size });
      await server.close();
      process.exit(0);
    }
  });
} else {
  const n = Number(process.argv[2] ?? 10_000);
  console.log(`heartbeat cost, ${n} idle connections, ${MEASURE_MS / 1000} s each`);
  for (const mode of ['off', 'sweep', 'default']) {
    const child = fork(new URL(import.meta.url).pathname, ['--server', mode]);
    const next = () => new Promise((resolve) => child.once('message', resolve));
    const { port } = await next();
    const sockets = [];
    for (let i = 0; i < n; i++) {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.resume();
      sockets.push(socket);
      if (i % 500 === 499) await delay(20); // stay under the listen backlog
    }
    await delay(1000);
    child.send('start');
    await delay(MEASURE_MS);
    child.send('stop');
    const r = await next();
    console.log(`${mode.padEnd(8)} ${String(r.connections).padStart(6)} conns  ${String(r.beats).padStart(6)} heartbeats  ` +
      `${r.cpuMs.toFixed(0).padStart(5)} ms CPU  = ${(100 * r.cpuMs / r.wallMs).toFixed(2)} % of a core`);
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => child.once('exit', resolve));
  }
}
