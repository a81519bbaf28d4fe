import { lstat, unlink } from 'node:fs/promises';
import net from 'node:net';

/**
 * Makes way for a Unix socket at `path`: nothing there, or a socket file nothing answers on (left by a
 * crashed run), which is removed. A live server's socket, or a file that is not a socket, is left alone
 * and reported (`EADDRINUSE`, `EEXIST`). `PulsarServer#listen()` calls it, except in a cluster worker,
 * whose primary listens for it: a primary calls it before forking.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!stats.isSocket()) throw Object.assign(new Error(`${path} exists and is not a socket: not replacing it`), { code: 'EEXIST' });
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path }, () => {
      probe.destroy();
      resolve(true);
    });
    probe.on('error', () => resolve(false));
  });
  if (live) throw Object.assign(new Error(`another server is listening on ${path}`), { code: 'EADDRINUSE' });
  await unlink(path);
}
