import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
    // One file at a time: each starts PostgreSQL servers, and the start-up time printed by
    // embedded.test.ts should not include the other files' initdb runs.
    fileParallelism: false,
  },
});
