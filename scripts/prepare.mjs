// `npm install`'s prepare step: builds dist/ unless it is already newer than every source. `npx pulsar` in
// a clone installs the clone into npx's cache as a directory dependency, which runs prepare again: without
// this check, every first `npx pulsar` would rebuild (and delete dist/ under a running server meanwhile).
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const SOURCES = ['lib', 'bin', 'package.json', 'tsconfig.json', 'tsup.config.ts'];

/** Every file under `path` (a file or a folder), with its modification time. */
function mtimes(path) {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (stats === undefined) return [];
  if (!stats.isDirectory()) return [stats.mtimeMs];
  return readdirSync(path).flatMap((name) => mtimes(join(path, name)));
}

const built = mtimes('dist');
const fresh = built.length > 0 && Math.max(...SOURCES.flatMap(mtimes)) < Math.min(...built);
if (fresh) console.error('prepare: dist/ is newer than the sources, not rebuilt (npm run build forces it)');
else execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
