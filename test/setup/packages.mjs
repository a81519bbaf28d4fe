// Run by `npm test` (pretest): the end-to-end tests drive real components from Debian's packages
// (haproxy, prometheus with promtool, redis-server). Installs the missing ones (as root, with apt-get), so that a fresh
// machine needs nothing but the README's two commands. Exits 1 with the command to run when it cannot.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Each package, with the programs the tests run from it. */
const PACKAGES = {
  haproxy: ['haproxy'],
  prometheus: ['prometheus', 'promtool'],
  'redis-server': ['redis-server'],
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
    console.error(`test setup: the end-to-end tests need ${needed.join(', ')}; install with: sudo apt-get install ${needed.join(' ')}`);
    process.exit(1);
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
