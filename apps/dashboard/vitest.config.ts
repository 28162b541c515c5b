import { defineConfig } from 'vitest/config';

// The browser tests: node environment (Playwright drives a real Chromium), one file at a time.
export default defineConfig({
  test: {
    environment: 'node',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
