// echo-client: PulsarClient sending frames to an echo server and printing each round-trip time, then
// staying quiet for a while so that the server's heartbeats show.
//
// Run:  node examples/echo-server.mjs            (in one terminal)
//       node examples/echo-client.mjs [port] [frames] [quiet-ms]   (in another; defaults 8080, 5, 6000)
// Try:  watch the round trips, then the HEARTBEAT frames the server sends after 5 s of silence.
import { PulsarClient } from 'pulsar';

const [port = 8080, frames = 5, quietMs = 6000] = process.argv.slice(2).map(Number);
const client = new PulsarClient({ port });

client.on('heartbeat', (payload) => console.log(`heartbeat from the server: ${payload}`));
client.on('error', (error) => console.error(`error: ${error.code ?? ''} ${error.message}`));

await client.connect();
console.log(`connected to 127.0.0.1:${port}`);
for (let i = 1; i <= frames; i++) {
  const started = process.hrtime.bigint();
  const answer = await client.request(`hello ${i}`);
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  console.log(`frame ${i}: '${answer}' back in ${(micros / 1000).toFixed(3)} ms`);
}
console.log(`quiet for ${quietMs} ms…`);
await new Promise((resolve) => setTimeout(resolve, quietMs));
await client.close();
console.log('closed');
