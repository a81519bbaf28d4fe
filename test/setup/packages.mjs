// Run by `npm test` (pretest): the end-to-end tests drive real components from Debian's packages
// (haproxy, prometheus with promtool, redis-server), a client in Python (python3) and `pulsar send`'s
// prompt through a pseudo-terminal (tmux). Installs the missing ones (as root, with apt-get), so that a fresh
// machine needs nothing but the README's two commands. Without root, says what will be skipped and why.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Each package, with the programs the tests run from it. */
const PACKAGES = {
  haproxy: ['haproxy'],
  prometheus: ['prometheus', 'promtool'],
  'redis-server': ['redis-server'],
  python3: ['python3'],
  tmux: ['tmux'],
};

const DIRS = ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
const has = (program) => DIRS.some((dir) => existsSync(`${dir}/${program}`));
const missing = () => Object.keys(PACKAGES).filter((name) => !PACKAGES[name].every(has));

function apt(...args) {
  execFileSync('apt-get', ['-q', '-y', ...args], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

const needed = missing();
if (needed.length > 0) {
  if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
    // Not root (or not Debian): the tests that need them are skipped, each with a one-line reason.
    console.error(`test setup: ${needed.join(', ')} missing and not installable here (root and apt-get needed): the tests that need them will be skipped; to run them: sudo apt-get install ${needed.join(' ')}`);
    process.exit(0);
  }
  console.error(`test setup: installing ${needed.join(', ')} (Debian packages) for the end-to-end tests…`);
  try {
    apt('install', '--no-install-recommends', ...needed);
  } catch {
    apt('update'); // a fresh machine may have no package lists yet
    apt('install', '--no-install-recommends', ...needed);
  }
  const still = missing();
  if (still.length > 0) {
    console.error(`test setup: apt-get ran but ${still.join(', ')} is still missing`);
    process.exit(1);
  }
}
