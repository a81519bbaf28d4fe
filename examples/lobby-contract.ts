// The lobby's contract (examples/lobby.ts): what players and the lobby say to each other. Both sides import
// this one object, so what a player sends and what the lobby handles cannot drift apart.
import { z } from 'zod';
import { contract, message, request } from 'pulsar';

/** What players and the lobby say to each other: both sides import this one object. */
export const lobby = contract({
  client: {
    join: request({ input: z.object({ room: z.string().min(1).max(32) }), output: z.object({ members: z.array(z.string()) }) }),
    say: message(z.object({ text: z.string().min(1).max(500) })),
    readyCheck: request({ input: z.null(), output: z.object({ ready: z.array(z.string()), notReady: z.array(z.string()) }) }),
  },
  server: {
    said: message(z.object({ room: z.string(), from: z.string(), text: z.string() })),
    left: message(z.object({ room: z.string(), who: z.string() })),
    areYouReady: request({ input: z.object({ room: z.string() }), output: z.boolean() }),
  },
});
