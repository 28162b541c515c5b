import type { TaskRow } from '@tasker/db';
import { listInWords, RETRYABLE_STATUSES } from '@tasker/states';
import { TaskNotFoundError } from '../errors/task-not-found.ts';
import { TaskStateConflictError } from '../errors/task-state-conflict.ts';
import { bestEffort, type LifecycleResources, withTimeout } from './resources.ts';

/**
 * A retry by hand: a FAILED, CANCELLED or EXPIRED task goes back to PENDING under the same id, for a new
 * round of attempts (the errors of the earlier ones stay in `attempt_errors`). Its cached final
 * state is dropped, and its job replaced: BullMQ may still hold the old job under that id (failed,
 * or still held by the worker that just ended it), and would ignore a plain add. If the
 * replacement fails, the sweeper replaces it later: a PENDING row whose job is missing or left from
 * an earlier round is queued again, never failed. Any other status: TaskStateConflictError (409).
 */
export async function retry(r: LifecycleResources, id: string, tenantId?: string): Promise<TaskRow> {
  const row = await r.store.retry(id, tenantId);
  if (!row) {
    const current = await r.store.get(id, tenantId);
    if (!current) throw new TaskNotFoundError(id);
    throw new TaskStateConflictError(
      `Task is ${current.status}; only a ${listInWords(RETRYABLE_STATUSES)} task can be retried`,
    );
  }
  await bestEffort(r, 'result cache drop', id, () => r.cache.drop(id));
  if (await r.paused.has(row.name).catch(() => false)) return row; // resuming the type queues it
  await bestEffort(r, 'requeue (the sweeper will requeue it later)', id, () =>
    withTimeout(r.queue.replace(row), 5000, 'requeue'),
  );
  return row;
}
