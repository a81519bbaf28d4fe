import { readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

// The library's entry points. `pulsar/metrics`, `pulsar/testing`, `pulsar/redis`, `pulsar/opentelemetry` and
// `pulsar/msgpack` are entries of their own, so that importing `pulsar` never loads prom-client, fast-check,
// ioredis, @opentelemetry/api or msgpackr.
const library = {
  index: 'lib/index.ts',
  metrics: 'lib/metrics/index.ts',
  testing: 'lib/testing/index.ts',
  redis: 'lib/redis/index.ts',
  opentelemetry: 'lib/opentelemetry/index.ts',
  msgpack: 'lib/messages/msgpack.ts',
  tools: 'lib/tools/index.ts',
};

export default defineConfig({
  // One build: ESM and CommonJS, declarations (.d.ts, .d.cts) for the library in one pass. The CLI is an
  // entry of the same ESM build, so it shares the library's chunks instead of bundling a copy of it (tsup
  // keeps its shebang and marks it executable); the CommonJS copy of it that the format list also makes is
  // left out of the package (`files` in package.json).
  // `bench-worker` is the file `pulsar bench --threads` starts its worker threads on (found next to the
  // code that starts them: `shims` gives the CommonJS build an `import.meta.url`).
  entry: { ...library, cli: 'bin/pulsar.ts', 'bench-worker': 'lib/tools/bench-worker.ts' },
  shims: true,
  // An optional dependency, loaded by `pulsar bench` only when it runs: never bundled.
  external: ['hdr-histogram-js'],
  format: ['esm', 'cjs'],
  dts: { entry: library },
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  define: { PULSAR_VERSION: JSON.stringify(version) }, // `pulsar --version`, without reading files at run time
});
