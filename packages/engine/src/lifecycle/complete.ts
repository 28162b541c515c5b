import type { TaskRow } from '@tasker/db';
import { endCancelled } from './cancel.ts';
import { bestEffort, emit, type LifecycleResources } from './resources.ts';

/**
 * Step 5 ends well: RUNNING → COMPLETED with the handler's (validated) output, announced by
 * PostgreSQL on commit, then cached for polling clients. If the task's cancellation was recorded
 * before this result, the cancel wins: the task ends CANCELLED and the output is dropped. Undefined
 * when another delivery finished the task first.
 */
export async function complete(
  r: LifecycleResources,
  row: TaskRow,
  output: unknown,
): Promise<TaskRow | undefined> {
  const completed = await r.store.complete(row.id, output);
  if (completed) {
    emit(r, { kind: 'attempt-ended', row, outcome: 'completed' });
    emit(r, { kind: 'finished', row: completed });
    await bestEffort(r, 'result cache write', row.id, () => r.cache.put(completed));
    return completed;
  }
  return endCancelled(r, row.id, row.attempts, row);
}
