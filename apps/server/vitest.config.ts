import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
    // Two files at a time, also on a 2-core machine (vitest's default there is one): these tests
    // mostly wait on the processes they start (servers, workers, PostgreSQL and Redis round trips),
    // and each file has its own database, key prefix and ports. Measured on the 2-core machine with
    // a load of about 7: the suite in 356 s, against 504 s one file at a time at a lower load.
    // Connections: a file's processes use pools of 5 (packages/testing), so two files fit well in
    // PostgreSQL's 100.
    maxWorkers: 2,
  },
});
