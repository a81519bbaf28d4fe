// The rpc cell's contract (servers/rpc.mjs and clients/rpc-load.mjs --contract): { a, b } answered with
// { sum }, validated by zod on the way in and, at the caller, on the way back.
import { contract, request } from 'pulsar';
import { z } from 'zod';

export const calculator = contract({
  client: { add: request({ input: z.object({ a: z.number(), b: z.number() }), output: z.object({ sum: z.number() }) }) },
});
