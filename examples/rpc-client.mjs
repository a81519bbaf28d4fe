// rpc-client: calls rpc-service.mjs. Four calls at once come back in a different order than they were
// made, each to its own caller; a call the schema refuses fails at once with the server's code; a call
// that outlives its timeout fails with ERR_REQUEST_TIMEOUT, and the cancel stops the server's work.
//
// Run:  node examples/rpc-service.mjs                   (in one terminal)
//       node examples/rpc-client.mjs [port]              (in another; default 8080)
import { PulsarClient, json } from 'pulsar';

const client = new PulsarClient({ port: Number(process.argv[2] ?? 8080), messages: json(), rpc: true });
await client.connect();

const calls = [{ op: 'sleep', ms: 300 }, { op: 'add', a: 1, b: 2 }, { op: 'sleep', ms: 100 }, { op: 'add', a: 40, b: 2 }];
const answers = await Promise.all(calls.map((call) => client.request(call)));
calls.forEach((call, i) => console.log(`${JSON.stringify(call)} -> ${JSON.stringify(answers[i])}`));

for (const [call, options] of [[{ op: 'add', a: 'one', b: 2 }, {}], [{ op: 'sleep', ms: 5000 }, { timeout: 200 }]]) {
  try {
    await client.request(call, options);
  } catch (error) {
    console.log(`${JSON.stringify(call)} -> ${error.code}${error.remoteCode ? ` ${error.remoteCode}` : ''}: ${error.message}`);
  }
}
await client.close();
