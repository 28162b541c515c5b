import { defineConfig } from 'vitest/config';

/**
 * Files that time what they check (a fair turn within a slot or two, a limit change seen within 2 s,
 * a shutdown within its grace, a schedule's catch-up): they run one at a time, after the others, so
 * that another file's load (2,000 tasks of recovery.test, say) does not stretch their figures.
 */
const timed = [
  'test/fairness.test.ts',
  'test/health.test.ts',
  'test/shutdown.test.ts',
  'test/schedules.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // The others two at a time, also on a 2-core machine (vitest's default there is one): they mostly
    // wait on the workers they start, each file with its own database, key prefix and ports. One at
    // a time, the suite took about 360 s of CI's 45 minutes on each Node version.
    maxWorkers: 2,
    projects: [
      {
        extends: true,
        test: { name: 'worker', include: ['test/**/*.test.ts'], exclude: timed, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: { name: 'worker-timed', include: timed, fileParallelism: false, sequence: { groupOrder: 1 } },
      },
    ],
  },
});
