import type { z } from 'zod';
import type { TaskDefinition } from './define.ts';
import { findLongestConsecutiveLetters } from './tasks/find-longest-consecutive-letters.ts';
import { queryChatgpt } from './tasks/query-chatgpt.ts';
import { sumTwoNumbers } from './tasks/sum-two-numbers.ts';
import { summarizeDocuments } from './tasks/summarize-documents.ts';

/** Every task type Tasker runs. Adding one: a file in `tasks/` and a line here. */
export const taskDefinitions = [
  sumTwoNumbers,
  queryChatgpt,
  findLongestConsecutiveLetters,
  summarizeDocuments,
] as const;

type Definitions = (typeof taskDefinitions)[number];

/** Task name → its parameters (`input`, what callers send) and result (`output`). */
export type TaskTypes = {
  [D in Definitions as D['name']]: { input: z.input<D['input']>; output: z.output<D['output']> };
};
export type TaskName = keyof TaskTypes & string;

export const taskNames = taskDefinitions.map((d) => d.name) as [TaskName, ...TaskName[]];

const byName = new Map<string, TaskDefinition>(taskDefinitions.map((d) => [d.name, d as TaskDefinition]));

export function getTaskDefinition(name: string): TaskDefinition | undefined {
  return byName.get(name);
}
