import { existsSync } from 'node:fs';
import { defineConfig } from 'vitest/config';

/**
 * The browser tests need a Chromium (Debian's: apt-get install -y chromium). On a machine without
 * one (the README's "only Node" quick start), they are left out, saying so in one line; CI sets
 * TASKER_REQUIRE_BROWSER=1, so there a missing Chromium fails the run instead of skipping.
 */
const chromium = process.env.TASKER_CHROMIUM ?? '/usr/bin/chromium';
const required = process.env.TASKER_REQUIRE_BROWSER === '1';
const runBrowserTests = required || existsSync(chromium);
if (!runBrowserTests) {
  console.warn(
    `[dashboard] browser tests SKIPPED: no Chromium at ${chromium} (apt-get install -y chromium, or set TASKER_CHROMIUM)`,
  );
}

// The browser tests: node environment (Playwright drives a real Chromium), one file at a time. The
// unit tests (*.unit.test.ts: no browser, no server) run everywhere.
export default defineConfig({
  test: {
    environment: 'node',
    include: runBrowserTests ? ['test/**/*.test.ts'] : ['test/**/*.unit.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
