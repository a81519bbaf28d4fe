// echo-server: pulsar's defaults (length-prefixed echo, heartbeats, reports) with every event logged.
//
// Run:  node examples/echo-server.mjs [port]        (after `npm install`; port 0 picks a free one)
// Try:  printf '\x00\x00\x00\x05HELLO' | nc -N 127.0.0.1 8080 | xxd
// Stop: Ctrl+C closes gracefully and prints how many connections drained.
import { PulsarServer } from 'pulsar';

const server = new PulsarServer({ port: Number(process.argv[2] ?? 8080), reportInterval: 5000 });

server.on('listening', ({ address, port }) => console.log(`listening on ${address}:${port}`));
server.on('connection', (conn) => console.log(`${conn.remote} connected (#${conn.id})`));
server.on('frame', (frame, conn) => console.log(`${conn.remote} sent ${frame.length} byte(s)`));
server.on('heartbeat', (conn) => console.log(`${conn.remote} heartbeat sent`));
server.on('report', ({ count, connections }) => console.log(`report: ${count} connection(s)`, connections));
server.on('backpressure', (conn) => console.log(`${conn.remote} reading paused (${conn.pendingBytes} bytes pending)`));
server.on('drain', (conn) => console.log(`${conn.remote} drained`));
server.on('clientError', (error, conn) => console.log(`${conn.remote} ${error.code}: ${error.message}`));
server.on('disconnect', (conn, reason, error) => console.log(`${conn.remote} disconnected (${reason}${error ? `: ${error.code}` : ''})`));
server.on('error', (error) => console.error('server error:', error));
server.on('close', ({ drained, forced }) => console.log(`closed: ${drained} drained, ${forced} forced`));

process.once('SIGINT', () => void server.close());
await server.listen();
