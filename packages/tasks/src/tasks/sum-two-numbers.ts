import { z } from 'zod';
import { defineTask } from '../define.ts';

export const sumTwoNumbers = defineTask({
  name: 'sum_two_numbers',
  description: 'Adds two numbers. The result is `a + b`.',
  input: z
    .strictObject({ a: z.number().describe('First number'), b: z.number().describe('Second number') })
    .refine(({ a, b }) => Number.isFinite(a + b), { message: 'a + b is too large to represent' }),
  output: z.number(),
  example: { a: 5, b: 10 },
  exampleOutput: 15,
  retry: { attempts: 1 },
  run: ({ a, b }) => a + b,
});
