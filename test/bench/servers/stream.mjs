// The stream cell of `npm run bench`: 64-byte JSON items, server → client, as fast as flow control lets them.
//   --pulsar: a handler that is an async generator, answering client.stream() under its credit (window 16).
//   --grpc:   @grpc/grpc-js server streaming (JSON serialised, as pulsar's json()), written while call.write()
//             returns true, then on 'drain': gRPC's own HTTP/2 flow control.
import { json, PulsarServer } from 'pulsar';

const MESSAGE = { device: 'sensor-17', temperature: 21.5, seq: 12345, unit: 'C' }; // 64 bytes as JSON

if (process.argv.includes('--grpc')) {
  const grpc = await import('@grpc/grpc-js');
  const { service } = await import('../clients/grpc-service.mjs');
  const server = new grpc.Server();
  server.addService(service, {
    items: (call) => {
      // At most 1,024 in one turn of the event loop, as servers/push.mjs does.
      const pump = () => {
        for (let i = 0; i < 1024; i++) {
          if (call.cancelled) return;
          if (!call.write(MESSAGE)) {
            call.once('drain', pump);
            return;
          }
        }
        setImmediate(pump);
      };
      call.on('error', () => {});
      pump();
    },
  });
  const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))));
  console.log(JSON.stringify({ port }));
} else {
  const server = new PulsarServer({
    port: 0, messages: json(), rpc: true, heartbeat: false, reportInterval: false,
    handler: async function* () {
      for (;;) yield MESSAGE;
    },
  });
  server.on('clientError', () => {});
  const { port } = await server.listen();
  console.log(JSON.stringify({ port }));
}
