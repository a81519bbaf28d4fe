// custom-codec: server and client agreeing on a 2-byte little-endian length field with a 64 KiB limit.
// The same codec object type frames both ends; a frame over the limit is refused before it is sent.
//
// Run:  node examples/custom-codec.mjs           (starts a server on a free port, talks to it, stops)
import { LengthPrefixedCodec, PulsarClient, PulsarServer } from 'pulsar';

const codec = () => new LengthPrefixedCodec({ lengthFieldLength: 2, byteOrder: 'little', maxFrameLength: 65535 });

const server = new PulsarServer({ port: 0, codec: codec(), heartbeat: false, reportInterval: false });
const { port } = await server.listen();
console.log(`server on 127.0.0.1:${port}: 2-byte little-endian lengths, at most 65535 bytes`);

const client = new PulsarClient({ port, codec: codec() });
await client.connect();
for (const payload of ['short', 'x'.repeat(65535)]) {
  const answer = await client.request(payload);
  console.log(`sent ${payload.length} bytes, got ${answer.length} back, header on the wire: ${codec().encode(Buffer.from(payload)).subarray(0, 2).toString('hex')}`);
}
try {
  client.send(Buffer.alloc(65536));
} catch (error) {
  console.log(`65536 bytes refused: ${error.code}`);
}
await client.close();
await server.close();
console.log('done');
