// The built package as users load it, by name through its `exports` map, in both module systems.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { succeed } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
// Every runtime export of lib/index.ts (types vanish at run time), kept in step by the test below.
const EXPORTS = ['PulsarServer', 'PulsarClient', 'Connection', 'LengthPrefixedCodec', 'VarintCodec', 'varintLength', 'DelimiterCodec',
  'LineCodec', 'ByteQueue', 'MemoryRegistry', 'ConnectionGroup', 'IdleHeartbeat', 'DecodingError', 'PulsarError', 'PulsarCluster', 'serveWorker', 'closeOnSignals',
  'reloadOnSignal', 'healthCheck', 'serveHealth', 'json', 'InvalidMessageError', 'RemoteError', 'decodeEnvelope', 'encodeEnvelope', 'contract', 'request', 'message', 'stream', 'streamOf'];

describe('package', () => {
  it('loads with require() and import, with the same exports', () => {
    const script = `console.log(JSON.stringify(${JSON.stringify(EXPORTS)}.map((n) => typeof m[n])))`;
    const cjs = succeed(process.execPath, ['-e', `const m = require('pulsar'); ${script}`]);
    const esm = succeed(process.execPath, ['--input-type=module', '-e', `import * as m from 'pulsar'; ${script}`]);
    expect(JSON.parse(cjs)).to.deep.equal(EXPORTS.map(() => 'function'));
    expect(esm).to.equal(cjs);
  });

  it('exports exactly the values the list above names, besides constants and the channels', () => {
    const names = JSON.parse(succeed(process.execPath, ['-e', `console.log(JSON.stringify(Object.keys(require('pulsar'))))`])) as string[];
    expect(names.filter((n) => !['DEFAULT_MAX_FRAME_LENGTH', 'HEARTBEAT_PAYLOAD', 'PROXY_TLV_NAMES', 'channels', 'EnvelopeKind', 'MAX_REQUEST_ID', 'HEADERS_FLAG'].includes(n)).sort()).to.deep.equal([...EXPORTS].sort());
  });

  it('offers pulsar/metrics in both module systems, and never loads prom-client for pulsar alone', () => {
    const names = ['PulsarMetrics', 'serveMetrics', 'serveClusterMetrics', 'shareWithPrimary'];
    const script = `console.log(JSON.stringify(${JSON.stringify(names)}.map((n) => typeof m[n])))`;
    expect(JSON.parse(succeed(process.execPath, ['-e', `const m = require('pulsar/metrics'); ${script}`]))).to.deep.equal(names.map(() => 'function'));
    expect(JSON.parse(succeed(process.execPath, ['--input-type=module', '-e', `import * as m from 'pulsar/metrics'; ${script}`]))).to.deep.equal(names.map(() => 'function'));
    const loaded = succeed(process.execPath, ['-e', `require('pulsar'); console.log(Object.keys(require.cache).filter((p) => p.includes('prom-client')).length)`]);
    expect(loaded, 'prom-client modules loaded by require("pulsar")').to.equal('0');
    expect(readFileSync(join(root, 'dist', 'index.js'), 'utf8')).to.not.include('prom-client');
  });

  it('offers pulsar/testing in both module systems, loading fast-check only there', () => {
    const script = `console.log(typeof m.codecConformance)`;
    expect(succeed(process.execPath, ['-e', `const m = require('pulsar/testing'); ${script}`])).to.equal('function');
    expect(succeed(process.execPath, ['--input-type=module', '-e', `import * as m from 'pulsar/testing'; ${script}`])).to.equal('function');
    const loaded = succeed(process.execPath, ['-e', `require('pulsar'); console.log(Object.keys(require.cache).filter((p) => p.includes('fast-check')).length)`]);
    expect(loaded, 'fast-check modules loaded by require("pulsar")').to.equal('0');
  });

  it('offers pulsar/msgpack in both module systems, loading msgpackr only there', () => {
    const script = `console.log(m.msgpack().decode(Buffer.from(m.msgpack().encode({ a: [1, 'x'] }))).a.join())`;
    expect(succeed(process.execPath, ['-e', `const m = require('pulsar/msgpack'); ${script}`])).to.equal('1,x');
    expect(succeed(process.execPath, ['--input-type=module', '-e', `import * as m from 'pulsar/msgpack'; ${script}`])).to.equal('1,x');
    const loaded = succeed(process.execPath, ['-e', `require('pulsar'); console.log(Object.keys(require.cache).filter((p) => p.includes('msgpackr')).length)`]);
    expect(loaded, 'msgpackr modules loaded by require("pulsar")').to.equal('0');
    expect(readFileSync(join(root, 'dist', 'index.js'), 'utf8')).to.not.include('msgpackr');
  });

  it('offers pulsar/opentelemetry in both module systems, loading @opentelemetry/api only there', () => {
    const script = `const t = m.openTelemetry(); console.log([typeof t.call, typeof t.answer, typeof t.inject].join())`;
    expect(succeed(process.execPath, ['-e', `const m = require('pulsar/opentelemetry'); ${script}`])).to.equal('function,function,function');
    expect(succeed(process.execPath, ['--input-type=module', '-e', `import * as m from 'pulsar/opentelemetry'; ${script}`])).to.equal('function,function,function');
    const loaded = succeed(process.execPath, ['-e', `require('pulsar'); console.log(Object.keys(require.cache).filter((p) => p.includes('@opentelemetry')).length)`]);
    expect(loaded, '@opentelemetry modules loaded by require("pulsar")').to.equal('0');
    expect(readFileSync(join(root, 'dist', 'index.js'), 'utf8')).to.not.include('@opentelemetry');
  });

  it('offers pulsar/tools in both module systems, without loading hdr-histogram-js until a bench runs', () => {
    const script = `console.log([typeof m.send, typeof m.bench, m.display(Buffer.from('hi'), 'auto'), m.didYouMean('--cont', ['--count'])].join())`;
    expect(succeed(process.execPath, ['-e', `const m = require('pulsar/tools'); ${script}`])).to.equal("function,function,hi,did you mean '--count'?");
    expect(succeed(process.execPath, ['--input-type=module', '-e', `import * as m from 'pulsar/tools'; ${script}`])).to.equal("function,function,hi,did you mean '--count'?");
    const loaded = succeed(process.execPath, ['-e', `require('pulsar/tools'); console.log(Object.keys(require.cache).filter((p) => p.includes('hdr-histogram')).length)`]);
    expect(loaded, 'hdr-histogram-js modules loaded by require("pulsar/tools")').to.equal('0');
  });

  it('recognises errors from the other build with instanceof', () => {
    const out = succeed(process.execPath, ['--input-type=module', '-e', `
      import { createRequire } from 'node:module';
      import { DecodingError, PulsarError } from 'pulsar';
      const cjs = createRequire(import.meta.url)('pulsar');
      const fromCjs = new cjs.DecodingError('ERR_FRAME_TOO_LARGE', 'x');
      console.log([fromCjs instanceof PulsarError, fromCjs instanceof DecodingError, new Error('x') instanceof PulsarError].join());
    `]);
    expect(out).to.equal('true,true,false');
  });
});
