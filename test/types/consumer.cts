// Type-checked by `npm run typecheck` against the built package (the `require` condition,
// dist/index.d.cts): what a CommonJS TypeScript user writes must compile.
import pulsar = require('pulsar');

const server = new pulsar.PulsarServer({ port: 0, heartbeat: false });
server.on('clientError', (error: Error, conn: pulsar.Connection) => void [error.message, conn.remote]);
const closing: Promise<pulsar.CloseResult> = server.close();
const client: pulsar.PulsarClient = new pulsar.PulsarClient({ heartbeatPayload: false });
client.on('heartbeat', (payload: Buffer) => void payload.length);
export = closing;
