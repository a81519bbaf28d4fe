// The push cells of `npm run bench`: 64-byte JSON messages one way, in either direction.
//   --to-client: the server pushes to every client as fast as backpressure lets it (conn.send() until it
//                returns false, then the socket's 'drain'), as chat fan-out, game ticks and telemetry do.
//   --to-server: the server takes what the clients push. A client's { count: true } is answered with
//                { count: n }, the messages received so far, for the client to time the rate.
import { json, PulsarServer } from 'pulsar';

const toClient = process.argv.includes('--to-client');
const MESSAGE = { device: 'sensor-17', temperature: 21.5, seq: 12345, unit: 'C' }; // 64 bytes as JSON
let received = 0;
const server = new PulsarServer({
  port: 0, messages: json(), heartbeat: false, reportInterval: false,
  handler: (message, conn) => {
    if (message.count === true) conn.send({ count: received });
    else received++;
  },
});
server.on('clientError', () => {});

/**
 * Sends to `conn` until its socket is full, then again once it drains; at most 1,024 in one turn of the
 * event loop, as an application's loop yields (a loopback kernel may take everything, so that a loop
 * that never meets backpressure would never let the connection see its peer leave).
 */
function pump(conn) {
  for (let i = 0; i < 1024; i++) {
    if (!conn.writable) return;
    if (!conn.send(MESSAGE)) {
      conn.socket.once('drain', () => pump(conn));
      return;
    }
  }
  setImmediate(pump, conn);
}
if (toClient) server.on('connection', pump);
const { port } = await server.listen();
console.log(JSON.stringify({ port }));
