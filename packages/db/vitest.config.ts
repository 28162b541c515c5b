import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
    // Two files at a time, also on a 2-core machine (vitest's default there is one): each file has a
    // database of its own, and most of a file's time is PostgreSQL's (migrations, round trips).
    maxWorkers: 2,
  },
});
