// gateway: devices report telemetry as JSON requests and get an ack; a reading over the threshold is
// pushed as an alert to every dashboard, encoded once; dashboards query the latest readings with requests
// on the same connection as the alerts. Messages are validated (zod); per-connection state is conn.data.
//
// Run:  node examples/gateway.mjs [port] [threshold]     (default 8080, 80)
// Try:  with PulsarClient({ messages: json(), rpc: true }): a device requests { type: 'hello', device: 'd1' }
//       then { type: 'telemetry', temperature: 91 }; a dashboard requests { type: 'watch' }, then
//       { type: 'latest' }, and gets { alert: 'hot', device: 'd1', temperature: 91 } as a message.
// Stop: Ctrl+C.
import { PulsarServer, json } from 'pulsar';
import { z } from 'zod';

const Message = z.discriminatedUnion('type', [
  z.object({ type: z.literal('hello'), device: z.string().min(1) }),
  z.object({ type: z.literal('telemetry'), temperature: z.number() }),
  z.object({ type: z.literal('watch') }),
  z.object({ type: z.literal('latest') }),
]);
const threshold = Number(process.argv[3] ?? 80);
const latest = new Map(); // device -> { temperature, at }

const server = new PulsarServer({
  port: Number(process.argv[2] ?? 8080),
  messages: json({ schema: Message }),
  rpc: true,
  handler: (message, conn) => {
    switch (message.type) {
      case 'hello':
        conn.data.device = message.device;
        return { ok: true };
      case 'telemetry': {
        const { device } = conn.data;
        if (device === undefined) throw Object.assign(new Error('say hello first'), { code: 'E_NO_HELLO' });
        latest.set(device, { temperature: message.temperature, at: Date.now() });
        if (message.temperature > threshold) dashboards.broadcast({ alert: 'hot', device, temperature: message.temperature });
        return { ok: true };
      }
      case 'watch':
        dashboards.add(conn);
        return { watching: dashboards.size };
      case 'latest':
        return Object.fromEntries(latest);
    }
  },
});
const dashboards = server.group('dashboards');

server.on('listening', ({ address, port }) => console.log(`gateway listening on ${address}:${port}, alerts over ${threshold}`));
server.on('clientError', (error) => console.log(`${error.code}: ${error.message}`));
process.once('SIGINT', () => void server.close());
process.once('SIGTERM', () => void server.close());
await server.listen();
