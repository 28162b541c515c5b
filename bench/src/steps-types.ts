/**
 * The task types of `pnpm bench:steps` (steps.ts), which its worker (steps-worker.ts) runs beside
 * the catalog.
 */
import { defineTask, type TaskDefinition } from '@tasker/tasks';
import { z } from 'zod';

/** Steps in a `bench_ten_steps` task. */
export const STEPS = 10;

/** `a + b` in ten durable steps: each adds one part, so the result checks every step's record. */
const tenSteps = defineTask({
  name: 'bench_ten_steps',
  description: 'Adds a and b in ten durable steps',
  input: z.object({ a: z.number(), b: z.number() }),
  output: z.number(),
  run: async ({ a, b }, ctx) => {
    let sum = a;
    for (let i = 0; i < STEPS; i++) {
      const before = sum;
      sum = await ctx.step(`part-${i}`, () => before + (i === STEPS - 1 ? b : 0));
    }
    return sum;
  },
});

/** `n` sum_two_numbers children (a + i each), fanned out with ctx.runMany; the sum of their outputs. */
const fanOut = defineTask({
  name: 'bench_fan_out',
  description: 'Runs n sum_two_numbers children and adds their outputs',
  input: z.object({ n: z.number().int().min(1).max(100), a: z.number() }),
  output: z.number(),
  run: async ({ n, a }, ctx) => {
    const sums = await ctx.runMany(
      Array.from({ length: n }, (_, i) => ({ name: 'sum_two_numbers' as const, input: { a, b: i } })),
    );
    return sums.reduce((total, sum) => total + sum, 0);
  },
});

/** By name, for the worker's `tasks` lookup. */
export const benchTypes = new Map<string, TaskDefinition>(
  [tenSteps, fanOut].map((d) => [d.name, d as unknown as TaskDefinition]),
);
