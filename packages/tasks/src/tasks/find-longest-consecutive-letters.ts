import { z } from 'zod';
import { defineTask } from '../define.ts';

/** Length of the longest run of one repeated character, counted in Unicode code points. */
export function longestRun(text: string): number {
  let best = 0;
  let run = 0;
  let previous: string | undefined;
  for (const char of text) {
    run = char === previous ? run + 1 : 1;
    previous = char;
    if (run > best) best = run;
  }
  return best;
}

export const findLongestConsecutiveLetters = defineTask({
  name: 'find_longest_consecutive_letters',
  description:
    'Length of the longest run of one repeated character, in Unicode code points ("aaabbccccdd" → 4, "😀😀😀" → 3, "" → 0).',
  input: z.strictObject({ string: z.string().describe('The text to scan') }),
  output: z.number().int().nonnegative(),
  example: { string: 'aaabbccccdd' },
  exampleOutput: 4,
  retry: { attempts: 1 },
  run: ({ string }) => longestRun(string),
});
