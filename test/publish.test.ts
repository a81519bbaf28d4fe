// The package as it would be published: what `npm pack` puts in the tarball (and leaves out), and the
// tarball checked by arethetypeswrong (types for every entry under every moduleResolution) and publint.
import { expect } from 'chai';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { succeed } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = (name: string): string => join(root, 'node_modules', '.bin', name);


describe('the published package', function () {
  this.timeout(120000);
  let dir: string;
  let tarball: string;
  let files: string[];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pulsar-pack-'));
    // --ignore-scripts: `npm test` has just built dist/; packing must not build again.
    const [packed] = JSON.parse(succeed('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir])) as Array<{ files: Array<{ path: string }> }>;
    files = packed!.files.map((f) => f.path);
    tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('holds the builds of every entry point, their types, the CLI, and the license, readme and changelog', () => {
    for (const entry of ['index', 'metrics', 'testing', 'redis']) {
      for (const ext of ['js', 'cjs', 'd.ts', 'd.cts']) expect(files, `${entry}.${ext}`).to.include(`dist/${entry}.${ext}`);
    }
    expect(files).to.include.members(['dist/cli.js', 'LICENSE', 'README.md', 'CHANGELOG.md', 'package.json']);
  });

  it('leaves out sources, tests, examples, generated docs and tooling', () => {
    const unwanted = files.filter((f) => /^(lib|bin|test|examples|docs|node_modules|\.ci|\.github)\//.test(f) || /tsconfig|tsup\.config|typedoc|\.cpuprofile$|\.tgz$/.test(f));
    expect(unwanted).to.deep.equal([]);
  });

  it('passes arethetypeswrong (every entry, every moduleResolution) and publint --strict', () => {
    expect(succeed(bin('attw'), [tarball, '--format', 'ascii'])).to.include('No problems found');
    expect(succeed(bin('publint'), [tarball, '--strict'])).to.match(/All good!/);
  });
});
