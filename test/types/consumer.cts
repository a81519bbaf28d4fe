// Type-checked by `npm run typecheck` against the built package (the `require` condition,
// dist/index.d.cts): what a CommonJS TypeScript user writes must compile.
import pulsar = require('pulsar');
import pulsarMetrics = require('pulsar/metrics');

const server = new pulsar.PulsarServer({ port: 0, heartbeat: false });
server.on('clientError', (error: pulsar.PulsarError, conn: pulsar.Connection) => void [error.code, conn.remote]);
const closing: Promise<pulsar.CloseResult> = server.close();
const client: pulsar.PulsarClient = new pulsar.PulsarClient({ heartbeatPayload: false });
client.on('heartbeat', (payload: Buffer) => void payload.length);
const metrics = new pulsarMetrics.PulsarMetrics(server, { defaultMetrics: false });
void metrics.registry;
export = closing;
