// pulsar broadcasting every frame to a group that every connection joins, for `npm run bench`'s broadcast
// cell. With --redis, the server is part of a fleet on Redis (redisFleet: each broadcast is also published
// to Redis for other instances); the redis-server it needs is started here, on a free loopback port.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { PulsarServer } from 'pulsar';

let fleet = {};
if (process.argv.includes('--redis')) {
  const port = await new Promise((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise((resolve) => redis.stdout.on('data', (d) => String(d).includes('Ready to accept') && resolve()));
  process.on('exit', () => redis.kill());
  const { redisFleet } = await import('pulsar/redis');
  fleet = redisFleet({ url: `redis://127.0.0.1:${port}` });
}

const server = new PulsarServer({ port: 0, heartbeat: false, ...fleet, handler: (frame) => void all.broadcast(frame) });
const all = server.group('all');
server.on('connection', (conn) => all.add(conn));
server.on('clientError', () => {});
const { port } = await server.listen();
console.log(JSON.stringify({ port }));
process.on('SIGTERM', () => server.close().then(() => process.exit(0)));
