// HAProxy (Debian's package, installed by the test set-up) run by a test, in the foreground, on loopback.
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDaemon } from './helpers.js';

/**
 * Starts HAProxy in the foreground on `port`, balancing over `backends` (each `server` line ending with
 * `serverOptions`, `frontend` lines added to the frontend); stopped after the test.
 */
export async function startHaproxy(port: number, backends: number[], serverOptions = 'send-proxy-v2 check check-send-proxy inter 100 fall 1 rise 1', frontend: string[] = []): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pulsar-haproxy-'));
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, [
    'global',
    '  maxconn 1000',
    'defaults',
    '  mode tcp',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  retries 3',
    '  option redispatch',
    'frontend pulsar',
    `  bind 127.0.0.1:${port}`,
    ...frontend,
    '  default_backend servers',
    'backend servers',
    '  balance roundrobin',
    // Health checks send a PROXY v2 LOCAL header too, as pulsar expects one on every connection.
    ...backends.map((p, i) => `  server s${i + 1} 127.0.0.1:${p} source 127.0.0.1 ${serverOptions}`),
    '',
  ].join('\n'));
  const haproxy = startDaemon('haproxy', ['-db', '-f', config], dir, { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/usr/local/sbin` });
  // Ready once the frontend accepts connections; bounded, and failing with HAProxy's own words.
  const deadline = Date.now() + 10000;
  for (;;) {
    if (haproxy.exitCode() !== null) throw new Error(`haproxy exited with ${haproxy.exitCode()}: ${haproxy.stderr()}`);
    const accepted = await new Promise<boolean>((resolve) => {
      const probe = net.connect({ port, host: '127.0.0.1' }, () => {
        probe.destroy();
        resolve(true);
      });
      probe.on('error', () => resolve(false));
    });
    if (accepted) return;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on ${port} within 10 s: ${haproxy.stderr()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

