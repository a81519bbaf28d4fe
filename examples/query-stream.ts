// A query that streams its rows as it finds them (SPEC section 18, docs/streams.md), read by a client that
// stops half-way: leaving the loop cancels the query on the server (its generator's finally runs, its
// ctx.signal aborts), and the server never reads ahead of the client by more than the window.
//
//   npx tsx examples/query-stream.ts [port]              the server (port 0 picks one; it prints it)
//   npx tsx examples/query-stream.ts --client port       reads `cities` rows until half of them came, then leaves
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { contract, json, PulsarClient, PulsarServer, stream } from 'pulsar';

const City = z.object({ id: z.number(), name: z.string(), population: z.number() });
export const database = contract({
  client: {
    // A stream entry: the route is an async generator, the caller's loop gets each row, validated.
    query: stream({ input: z.object({ table: z.literal('cities'), minPopulation: z.number() }), item: City }),
  },
});

const TABLE = Array.from({ length: 100 }, (_, i) => ({ id: i + 1, name: `city ${i + 1}`, population: 1000 * (i + 1) }));

async function serve(port: number): Promise<void> {
  const server = new PulsarServer({
    port, host: '127.0.0.1', messages: json(), contract: database, heartbeat: false, reportInterval: false,
    routes: {
      query: async function* ({ minPopulation }, conn, ctx) {
        let sent = 0;
        try {
          for (const row of TABLE) {
            if (row.population < minPopulation) continue;
            await sleep(1, undefined, { signal: ctx.signal }); // a page read from disk, say; a cancel stops the wait
            yield row;
            sent++;
          }
          console.log(`${conn}: query done, ${sent} rows`);
        } finally {
          if (ctx.signal.aborted) console.log(`${conn}: query cancelled after ${sent} rows (${(ctx.signal.reason as Error).message})`);
        }
      },
    },
  });
  const { port: bound } = await server.listen();
  console.log(`listening on 127.0.0.1:${bound}`);
  process.once('SIGINT', () => void server.close().then(() => process.exit(0)));
}

async function read(port: number): Promise<void> {
  const client = new PulsarClient({ port, messages: json(), contract: database });
  await client.connect();
  const rows: string[] = [];
  // The window (16 rows by default) is what the server may send ahead of this loop.
  for await (const city of client.stream('query', { table: 'cities', minPopulation: 1 }, { window: 8 })) {
    rows.push(city.name);
    if (rows.length === TABLE.length / 2) break; // enough: the server's query is cancelled
  }
  console.log(`read ${rows.length} rows, the last ${rows.at(-1)}; left the loop`);
  await client.close();
}

const args = process.argv.slice(2);
if (args[0] === '--client') await read(Number(args[1]));
else await serve(Number(args[0] ?? 0));
