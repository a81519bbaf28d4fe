// The built package as users load it, by name through its `exports` map, in both module systems.
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const EXPORTS = ['PulsarServer', 'LengthPrefixedCodec', 'MemoryRegistry', 'IdleHeartbeat', 'DecodingError', 'PulsarError', 'Connection'];

function run(args: string[]): string {
  return execFileSync(process.execPath, args, { cwd: root, encoding: 'utf8' }).trim();
}

describe('package', () => {
  it('loads with require() and import, with the same exports', () => {
    const script = `console.log(JSON.stringify(${JSON.stringify(EXPORTS)}.map((n) => typeof m[n])))`;
    const cjs = run(['-e', `const m = require('pulsar'); ${script}`]);
    const esm = run(['--input-type=module', '-e', `import * as m from 'pulsar'; ${script}`]);
    expect(JSON.parse(cjs)).to.deep.equal(EXPORTS.map(() => 'function'));
    expect(esm).to.equal(cjs);
  });

  it('recognises errors from the other build with instanceof', () => {
    const out = run(['--input-type=module', '-e', `
      import { createRequire } from 'node:module';
      import { DecodingError, PulsarError } from 'pulsar';
      const cjs = createRequire(import.meta.url)('pulsar');
      const fromCjs = new cjs.DecodingError('ERR_FRAME_TOO_LARGE', 'x');
      console.log([fromCjs instanceof PulsarError, fromCjs instanceof DecodingError, new Error('x') instanceof PulsarError].join());
    `]);
    expect(out).to.equal('true,true,false');
  });
});
