// Mocha root hooks (loaded by .mocharc.json's `require`): after every test, in every file, the cleanups it
// registered with onCleanup() run, newest first: servers closed, sockets destroyed, processes stopped.
import { runCleanups } from './helpers.js';

export const mochaHooks = { afterEach: runCleanups };
