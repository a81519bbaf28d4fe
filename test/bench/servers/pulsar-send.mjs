// pulsar with a custom handler that answers each frame with `conn.send()`, every other option at its
// default (heartbeats, registry, reports), for `npm run bench`.
import { PulsarServer } from 'pulsar';

const server = new PulsarServer({ port: 0, handler: (frame, conn) => conn.send(frame) });
server.on('clientError', () => {});
const { port } = await server.listen();
console.log(JSON.stringify({ port }));
