import type { TaskRow } from '@tasker/db';
import { emit, type LifecycleResources } from './resources.ts';

/**
 * A model call of the attempt found its tenant over an LLM budget (`BudgetExceededError`, checked
 * before the call started): the attempt is given back without counting (RUNNING → PENDING, the
 * `release` transition) and its handout deleted, so the job ends and the task waits for the
 * dispatcher, which hands out no LLM task of an over-budget tenant: it is held until the window
 * turns or the budget is raised. Undefined when the task was no longer RUNNING.
 */
export async function hold(r: LifecycleResources, row: TaskRow): Promise<TaskRow | undefined> {
  const released = await r.store.release(row.id);
  if (!released) return undefined;
  await r.store.dispatch.undispatch([row.id]);
  emit(r, { kind: 'attempt-ended', row, outcome: 'held' });
  return released;
}
