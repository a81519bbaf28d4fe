// The documentation as users copy it: every TypeScript snippet in the README and docs/ type-checks against
// the built package, and TypeDoc documents the API with no warning (every public symbol documented).
import { expect } from 'chai';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCommand } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const work = join(root, 'test', 'snippets', 'extracted');

/** The ```ts blocks of a markdown file, with their line numbers. */
function snippets(file: string): Array<{ line: number; code: string }> {
  const text = readFileSync(join(root, file), 'utf8');
  const found: Array<{ line: number; code: string }> = [];
  const fence = /^```ts\n([\s\S]*?)^```/gm;
  for (let match = fence.exec(text); match !== null; match = fence.exec(text)) {
    found.push({ line: text.slice(0, match.index).split('\n').length, code: match[1]! });
  }
  return found;
}

describe('documentation', function () {
  this.timeout(120000);

  it('every TypeScript snippet of the README and docs/ type-checks against the build', () => {
    rmSync(work, { recursive: true, force: true });
    mkdirSync(work, { recursive: true });
    const files = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
    const written: string[] = [];
    for (const file of files) {
      for (const { line, code } of snippets(file)) {
        const name = `${file.replace(/[/.]/g, '_')}_${line}.ts`;
        writeFileSync(join(work, name), `// ${file}:${line}\n${code}\nexport {};\n`);
        written.push(name);
      }
    }
    expect(written.length, 'snippets found').to.be.at.least(12);
    const result = runCommand(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'test', 'snippets', 'tsconfig.json')]);
    expect(`${result.stdout}${result.stderr}`, 'tsc over the snippets').to.equal('');
    expect(result.status).to.equal(0);
  });

  it('TypeDoc documents the API with no warning (npm run docs)', () => {
    const result = runCommand(process.execPath, [join(root, 'node_modules', 'typedoc', 'bin', 'typedoc'), '--emit', 'none']);
    expect(`${result.stdout}${result.stderr}`.split('\n').filter((l) => /warning|error/.test(l)), 'TypeDoc warnings').to.deep.equal([]);
    expect(result.status).to.equal(0);
  });
});
