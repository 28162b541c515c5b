import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 180_000,
    include: ['test/**/*.test.ts'],
    // Two files at a time: each starts a stack of its own (database, key prefix, ports), and the
    // files mostly wait on it, while pack.test (a tarball, an install and tsc) mostly computes. One
    // at a time, the suite took 220 s of CI's 45 minutes on each Node version.
    maxWorkers: 2,
  },
});
