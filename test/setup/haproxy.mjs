// Run by `npm test` (pretest): the HAProxy end-to-end test needs Debian's haproxy. Installs it when it is
// missing (as root, with apt-get), so that a fresh machine needs nothing but the README's two commands.
// Exits 1 with the command to run when it cannot.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const candidates = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'];
const installed = () => candidates.find((path) => existsSync(path));

function apt(...args) {
  execFileSync('apt-get', ['-q', '-y', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

if (!installed()) {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    console.error('test setup: the HAProxy test needs haproxy; install it with: sudo apt-get install haproxy');
    process.exit(1);
  }
  console.error('test setup: installing haproxy (Debian package) for the HAProxy end-to-end test…');
  try {
    apt('install', '--no-install-recommends', 'haproxy');
  } catch {
    apt('update'); // a fresh machine may have no package lists yet
    apt('install', '--no-install-recommends', 'haproxy');
  }
  if (!installed()) {
    console.error('test setup: apt-get ran but haproxy is still missing');
    process.exit(1);
  }
}
