import { defineConfig } from 'tsup';

// The library's entry points. `pulsar/metrics`, `pulsar/testing` and `pulsar/redis` are entries of their
// own, so that importing `pulsar` never loads prom-client, fast-check or ioredis.
const library = {
  index: 'lib/index.ts',
  metrics: 'lib/metrics/index.ts',
  testing: 'lib/testing/index.ts',
  redis: 'lib/redis/index.ts',
};

const common = { target: 'node20', platform: 'node', sourcemap: true } as const;

export default defineConfig([
  {
    // ESM, with the CLI in the same build: it shares the library's chunks instead of bundling a copy of
    // it (tsup keeps the CLI's shebang and marks it executable). Declarations (.d.ts) for the library only.
    ...common,
    entry: { ...library, cli: 'bin/pulsar.ts' },
    format: ['esm'],
    dts: { entry: library },
  },
  {
    // CommonJS, with its own declarations (.d.cts).
    ...common,
    entry: library,
    format: ['cjs'],
    dts: true,
  },
]);
