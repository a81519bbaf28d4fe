// JSON messages answered by `npm run bench`'s json cell, two ways on the same pulsar server defaults:
//   (no flag)   through the message layer: messages: json(), handler (message, conn) => conn.send(message)
//   --by-hand   what an application writes on raw frames: JSON.parse of the frame, JSON.stringify to send
import { PulsarServer, json } from 'pulsar';

const byHand = process.argv.includes('--by-hand');
const server = byHand
  ? new PulsarServer({ port: 0, handler: (frame, conn) => conn.send(JSON.stringify(JSON.parse(frame.toString('utf8')))) })
  : new PulsarServer({ port: 0, messages: json(), handler: (message, conn) => conn.send(message) });
server.on('clientError', () => {});
const { port } = await server.listen();
console.log(JSON.stringify({ port }));
