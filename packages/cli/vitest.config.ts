import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
    // Two files at a time, also on a 2-core machine (vitest's default there is one): the files
    // mostly wait on the servers and workers they start (each its own database, key prefix and
    // ports) and on the CLI processes they run. One at a time, the suite took 250 s of CI's 45
    // minutes on each Node version.
    maxWorkers: 2,
  },
});
