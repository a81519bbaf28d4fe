import { defineConfig } from 'tsup';

export default defineConfig([
  {
    // The library: ESM and CommonJS, each with its own declarations (.d.ts / .d.cts). `pulsar/metrics`
    // `pulsar/testing` and `pulsar/redis` are entries of their own, so that importing `pulsar` never loads
    // prom-client, fast-check or ioredis.
    entry: { index: 'lib/index.ts', metrics: 'lib/metrics/index.ts', testing: 'lib/testing/index.ts', redis: 'lib/redis/index.ts' },
    format: ['esm', 'cjs'],
    dts: true,
    target: 'node20',
    platform: 'node',
    sourcemap: true,
  },
  {
    // The CLI: one ESM file; tsup keeps the shebang and marks it executable.
    entry: { cli: 'bin/pulsar.ts' },
    format: ['esm'],
    target: 'node20',
    platform: 'node',
    sourcemap: true,
  },
]);
