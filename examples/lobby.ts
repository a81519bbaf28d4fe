// A multiplayer lobby with no glue (SPEC section 17, docs/applications.md): a hello that says who you are,
// a contract with routes instead of a switch, rooms that know their members, and a ready-check that
// gathers every member's answer as it arrives.
//
//   npx tsx examples/lobby.ts [port]                  the server (port 0 picks one; it prints it)
//   npx tsx examples/lobby.ts --client NAME port      a player: joins "lobby", says each stdin line there;
//                                                     "/ready" runs a ready-check, "/quit" leaves
import { createInterface } from 'node:readline';
import { z } from 'zod';
import { json, PulsarClient, PulsarServer } from 'pulsar';
import { lobby } from './lobby-contract.js';

async function serve(port: number): Promise<void> {
  const server = new PulsarServer({
    port, messages: json(), contract: lobby, heartbeat: false, reportInterval: false,
    // Every connection says who it is first; what the handler returns is conn.data, typed everywhere.
    hello: { schema: z.object({ name: z.string().min(1).max(20) }), handler: ({ name }) => ({ name }) },
  });
  server.routes({
    join: ({ room }, conn) => {
      server.group(room).add(conn);
      return { members: [...server.group(room)].map((member) => member.data.name) };
    },
    say: ({ text }, conn) => {
      for (const room of conn.groups) server.group(room).emit('said', { room, from: conn.data.name, text });
    },
    readyCheck: async (_input, conn) => {
      const [room = 'lobby'] = conn.groups;
      const ready: string[] = [];
      const notReady: string[] = [];
      // Answers come as they arrive; a player that does not answer in 2 s counts as not ready.
      for await (const answer of server.group(room).call('areYouReady', { room }, { timeout: 2000 })) {
        (answer.output === true ? ready : notReady).push(answer.conn.data.name);
      }
      return { ready, notReady };
    },
  });
  // The rooms a player was in are still known when it leaves: tell them.
  server.on('disconnect', (conn) => {
    for (const room of conn.groups) server.group(room).emit('left', { room, who: conn.data.name });
  });
  const address = await server.listen();
  console.log(`listening on ${address.address}:${address.port}`);
  process.once('SIGINT', () => void server.close().then(() => process.exit(0)));
}

async function play(name: string, port: number): Promise<void> {
  const client = new PulsarClient({
    port, messages: json(), contract: lobby, reconnect: true, hello: { name },
    routes: { areYouReady: () => true },
  });
  client.on('said', ({ from, text }) => console.log(`<${from}> ${text}`));
  client.on('left', ({ who }) => console.log(`* ${who} left`));
  // After every (re)connect and accepted hello: back into the room.
  client.on('ready', () => {
    void client.call('join', { room: 'lobby' }).then(({ members }) => console.log(`* in lobby with ${members.join(', ')}`));
  });
  await client.connect();
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === '/quit') break;
    if (line === '/ready') {
      const { ready, notReady } = await client.call('readyCheck', null);
      console.log(`* ready: ${ready.join(', ') || 'nobody'}; not ready: ${notReady.join(', ') || 'nobody'}`);
    } else if (line !== '') {
      client.emit('say', { text: line });
    }
  }
  await client.close();
}

const [first, name, port] = process.argv.slice(2);
if (first === '--client') await play(name ?? 'guest', Number(port));
else await serve(Number(first ?? 0));
